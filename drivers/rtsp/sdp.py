"""SDP (RFC 4566) as RTSP cameras describe their streams: media, rtpmap, fmtp and control URLs. Sans-IO.

Only what a recording client needs is parsed. A malformed line is skipped and noted in
`SessionDescription.problems` (never an exception), and a media line that cannot be understood is
left out; only a text with no usable media at all raises `SdpError`.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

MAX_SDP_BYTES = 64 * 1024  # a camera's description is ~1 kB; larger is garbage, refused unparsed
MAX_SPROP_ITEM_CHARS = 8192  # base64 of one parameter set (drivers.rtsp.rtp bounds the decoded set to 4 kB)
# RFC 3551's static payload types that cameras use without an rtpmap line.
STATIC_PAYLOAD_TYPES = {0: ("PCMU", 8000, 1), 8: ("PCMA", 8000, 1)}
DIRECTIONS = frozenset({"sendonly", "recvonly", "sendrecv", "inactive"})


class SdpError(ValueError):
    """A session description with no usable media in it."""


@dataclass(frozen=True, slots=True)
class MediaDescription:
    """One m= section: its first payload type, how it is encoded, and the URL to SETUP it with."""

    kind: str  # "video", "audio", "application", ...
    protocol: str  # "RTP/AVP", ...
    payload_type: int
    encoding: str  # upper case, as in rtpmap: "H264", "H265", "MPEG4-GENERIC", "PCMU", ...
    clock_rate: int
    channels: int
    fmtp: dict[str, str]  # parameter names in lower case
    control: str  # absolute URL
    framerate: float | None = None
    # a=sendonly|recvonly|sendrecv|inactive as written (RFC 4566 default sendrecv). In an ONVIF back
    # channel's answer (`Require: www.onvif.org/ver20/backchannel`) the speaker's media is `sendonly`:
    # the client sends on it.
    direction: str = "sendrecv"


@dataclass(frozen=True, slots=True)
class SessionDescription:
    media: list[MediaDescription]
    control: str  # the aggregate control URL (for PLAY and TEARDOWN)
    problems: list[str] = field(default_factory=list)

    def first(self, kind: str) -> MediaDescription | None:
        return next((m for m in self.media if m.kind == kind), None)


def resolve_control(base_url: str, control: str | None) -> str:
    """The absolute URL of a control attribute, resolved as cameras expect (and FFmpeg does).

    An absolute URL stays; "*" or nothing means the base itself; anything else is appended to the
    base with one "/" between (RFC 2326 says resolve it like an HTTP relative URL, but cameras give a
    base without the trailing slash and mean "below it").
    """
    if not control or control == "*":
        return base_url
    if control.lower().startswith(("rtsp://", "rtsps://")):
        return control
    return base_url.rstrip("/") + "/" + control.lstrip("/")


def parse_sdp(text: bytes | str, *, base_url: str) -> SessionDescription:
    """Parse a DESCRIBE answer's body; `base_url` is its Content-Base (or the request URL)."""
    if len(text) > MAX_SDP_BYTES:
        raise SdpError(f"a session description of {len(text)} bytes (at most {MAX_SDP_BYTES})")
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    problems: list[str] = []
    session: dict[str, str | None] = {"control": None}
    sections: list[dict] = []
    for number, line in enumerate(text.replace("\r", "\n").split("\n"), start=1):
        line = line.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            problems.append(f"line {number}: not an SDP line: {line[:40]!r}")
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            sections.append({"m": value, "line": number, "attrs": []})
        elif kind == "a":
            (sections[-1]["attrs"] if sections else _session_attrs(session)).append(value)
    for attr in session.get("attrs", []):  # type: ignore[union-attr]
        if attr.startswith("control:"):
            session["control"] = attr[len("control:"):].strip()
    media = [m for m in (_media(s, base_url, problems) for s in sections) if m is not None]
    if not media:
        raise SdpError("no usable media in the session description" + (f" ({problems[0]})" if problems else ""))
    return SessionDescription(media, resolve_control(base_url, session["control"]), problems)


def _session_attrs(session: dict) -> list[str]:
    return session.setdefault("attrs", [])


def _media(section: dict, base_url: str, problems: list[str]) -> MediaDescription | None:
    fields = section["m"].split()
    try:
        kind, _port, protocol, first = fields[0], int(fields[1].split("/")[0]), fields[2], int(fields[3])
    except (IndexError, ValueError):
        problems.append(f"line {section['line']}: bad media line {section['m'][:60]!r}")
        return None
    encoding, clock_rate, channels = STATIC_PAYLOAD_TYPES.get(first, ("", 0, 1))
    fmtp: dict[str, str] = {}
    control = None
    framerate = None
    direction = "sendrecv"
    for attr in section["attrs"]:
        name, _, value = attr.partition(":")
        if name == "rtpmap" and _payload_type(value) == first:
            parsed = _rtpmap(value)
            if parsed is None:
                problems.append(f"media at line {section['line']}: bad rtpmap {value[:60]!r}")
                return None
            encoding, clock_rate, channels = parsed
        elif name == "fmtp" and _payload_type(value) == first:
            fmtp = parse_fmtp(value.split(None, 1)[1] if " " in value.strip() else "")
        elif name == "control":
            control = value.strip()
        elif name == "framerate":
            framerate = _float(value)
        elif attr in DIRECTIONS:
            direction = attr
    if not encoding or clock_rate <= 0:
        problems.append(f"media at line {section['line']}: payload type {first} has no usable rtpmap")
        return None
    return MediaDescription(kind, protocol, first, encoding, clock_rate, channels, fmtp,
                            resolve_control(base_url, control), framerate, direction)


def _payload_type(value: str) -> int | None:
    try:
        return int(value.split(None, 1)[0])
    except (IndexError, ValueError):
        return None


def _rtpmap(value: str) -> tuple[str, int, int] | None:
    """"96 H264/90000" or "97 MPEG4-GENERIC/16000/2" as (encoding, clock rate, channels)."""
    try:
        parts = value.split(None, 1)[1].strip().split("/")
        encoding, clock_rate = parts[0].upper(), int(parts[1])
        channels = int(parts[2]) if len(parts) > 2 and parts[2] else 1
    except (IndexError, ValueError):
        return None
    if not encoding or clock_rate <= 0 or channels <= 0:
        return None
    return encoding, clock_rate, channels


def parse_fmtp(params: str) -> dict[str, str]:
    """"packetization-mode=1; sprop-parameter-sets=Z0Ia,aM4=" as a dict (names in lower case)."""
    out = {}
    for item in params.split(";"):
        name, sep, value = item.strip().partition("=")
        if name:
            out[name.strip().lower()] = value.strip() if sep else ""
    return out


def _float(value: str) -> float | None:
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if number > 0 else None


def h264_parameter_sets(fmtp: dict[str, str]) -> list[bytes]:
    """The NAL units of `sprop-parameter-sets` (base64, comma-separated); unreadable ones are left out."""
    out = []
    for item in fmtp.get("sprop-parameter-sets", "").split(","):
        item = item.strip()
        if not item or len(item) > MAX_SPROP_ITEM_CHARS:
            continue
        try:
            nal = base64.b64decode(item + "=" * (-len(item) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        if nal:
            out.append(nal)
    return out


def hex_config(fmtp: dict[str, str], name: str = "config") -> bytes | None:
    """A hex fmtp parameter (the AAC AudioSpecificConfig of mpeg4-generic), or None if absent or bad."""
    value = fmtp.get(name, "").strip()
    try:
        return bytes.fromhex(value) if value else None
    except ValueError:
        return None
