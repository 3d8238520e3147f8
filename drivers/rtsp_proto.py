"""RTSP 1.0 (RFC 2326) on the wire, sans-IO: requests, responses, interleaved RTP framing, Basic and
Digest authentication (RFC 2617, as cameras do it).

`RtspStreamParser.feed(chunk)` splits what a TCP connection delivers into RTSP messages (returned)
and `$`-framed interleaved packets (handed to the per-channel callbacks at once, as views into the
chunk). Garbage between frames is skipped up to the next plausible frame and counted, never raised.
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

USER_AGENT = "nvr"
MAX_HEADER_BYTES = 64 * 1024  # an RTSP header block larger than this is garbage
MAX_LINE_BYTES = 1024  # a start line longer than this is garbage
MAX_BODY_BYTES = 1024 * 1024


class RtspProtocolError(ValueError):
    """Bytes that cannot be an RTSP message."""


@dataclass(slots=True)
class RtspMessage:
    """A response (`status` set) or a request from the server (`method` set)."""

    status: int = 0
    reason: str = ""
    method: str = ""
    uri: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)  # names in lower case, in order
    body: bytes = b""

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        return next((value for key, value in self.headers if key == name), default)

    def all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key == name]

    @property
    def cseq(self) -> int | None:
        try:
            return int(self.header("cseq", ""))
        except ValueError:
            return None


def build_request(method: str, uri: str, cseq: int, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {uri} RTSP/1.0", f"CSeq: {cseq}", f"User-Agent: {USER_AGENT}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def build_response(status: int, reason: str, cseq: int | None) -> bytes:
    cseq_line = f"CSeq: {cseq}\r\n" if cseq is not None else ""
    return f"RTSP/1.0 {status} {reason}\r\n{cseq_line}User-Agent: {USER_AGENT}\r\n\r\n".encode()


def parse_head(head: bytes) -> RtspMessage:
    """The start line and headers of a message (without the blank line)."""
    lines = head.decode("utf-8", errors="replace").split("\r\n")
    start = lines[0].split(" ", 2)
    message = RtspMessage()
    if start[0].startswith("RTSP/"):
        code = start[1] if len(start) > 1 else ""
        if not (len(code) == 3 and code.isascii() and code.isdigit() and code[0] != "0"):  # RFC 2326 7.1.1
            raise RtspProtocolError(f"bad status line {lines[0][:80]!r}")
        message.status = int(code)
        message.reason = start[2] if len(start) > 2 else ""
    elif len(start) == 3 and start[2].startswith("RTSP/") and start[0].replace("_", "").isalpha():
        message.method, message.uri = start[0].upper(), start[1]
    else:
        raise RtspProtocolError(f"not an RTSP message: {lines[0][:80]!r}")
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep and name.strip():
            message.headers.append((name.strip().lower(), value.strip()))
    return message


class RtspStreamParser:
    """Splits one connection's bytes into RTSP messages and interleaved packets.

    `handlers[channel](view)` is called for each interleaved packet (the view is only valid during
    the call unless kept by reference to its chunk). Packets on channels without a handler are
    counted in `unhandled`; bytes skipped to find the next frame in `skipped_bytes`.
    """

    def __init__(self) -> None:
        self.handlers: dict[int, Callable[[memoryview], None]] = {}
        self._rest = b""
        self.unhandled = 0
        self.skipped_bytes = 0
        self.resyncs = 0

    @property
    def buffered(self) -> int:
        return len(self._rest)

    def feed(self, chunk: bytes) -> list[RtspMessage]:
        data = self._rest + chunk if self._rest else chunk
        view = memoryview(data)
        size = len(data)
        pos = 0
        messages: list[RtspMessage] = []
        handlers = self.handlers
        while pos < size:
            if data[pos] == 0x24:  # '$' channel length(16) packet
                if pos + 4 > size:
                    break
                end = pos + 4 + ((data[pos + 2] << 8) | data[pos + 3])
                if end > size:
                    break
                handler = handlers.get(data[pos + 1])
                if handler is not None:
                    handler(view[pos + 4:end])
                else:
                    self.unhandled += 1
                pos = end
                continue
            done = self._message(data, pos, messages)
            if done is None:
                break
            pos = done
        self._rest = data[pos:] if pos < size else b""
        return messages

    def _message(self, data: bytes, pos: int, messages: list[RtspMessage]) -> int | None:
        """Parse the text message at `pos`; its end, or None to wait for more bytes. Garbage is skipped."""
        line_end = data.find(b"\r\n", pos, pos + MAX_LINE_BYTES)
        if line_end < 0:
            if len(data) - pos < MAX_LINE_BYTES and 0x41 <= data[pos] <= 0x5A:
                return None  # maybe a start line still arriving
            return self._skip(data, pos)
        if not (data.startswith(b"RTSP/", pos) or _looks_like_request(data, pos)):
            return self._skip(data, pos)
        head_end = data.find(b"\r\n\r\n", pos)
        if head_end < 0:
            if len(data) - pos > MAX_HEADER_BYTES:
                return self._skip(data, pos + 1)
            return None
        try:
            message = parse_head(data[pos:head_end])
            length = int(message.header("content-length", "0"))
        except (RtspProtocolError, ValueError):
            return self._skip(data, pos + 1)
        body_start = head_end + 4
        if not 0 <= length <= MAX_BODY_BYTES:
            return self._skip(data, pos + 1)
        if body_start + length > len(data):
            return None
        message.body = data[body_start:body_start + length]
        messages.append(message)
        return body_start + length

    def _skip(self, data: bytes, pos: int) -> int:
        """Skip to the next '$' or 'RTSP/' after `pos` (or to the end); counted."""
        self.resyncs += 1
        candidates = [i for i in (data.find(b"$", pos + 1), data.find(b"RTSP/", pos + 1)) if i >= 0]
        nxt = min(candidates) if candidates else len(data)
        self.skipped_bytes += nxt - pos
        return nxt


_REQUEST_START = re.compile(rb"[A-Z_]{3,20} \S+ RTSP/")


def _looks_like_request(data: bytes, pos: int) -> bool:
    return _REQUEST_START.match(data, pos) is not None


# URLs and sessions


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """(`url` without user:password@, user, password); user and password percent-decoded."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return clean, unquote(parts.username), unquote(parts.password or "")


@dataclass(frozen=True, slots=True)
class SessionHeader:
    session_id: str
    timeout_s: float  # the server's session timeout (RFC 2326 default 60 s)


def parse_session(value: str | None) -> SessionHeader | None:
    if not value:
        return None
    session_id, _, params = value.partition(";")
    timeout_s = 60.0
    match = re.search(r"timeout\s*=\s*(\d+)", params, re.I)
    if match and int(match.group(1)) > 0:
        timeout_s = float(match.group(1))
    return SessionHeader(session_id.strip(), timeout_s) if session_id.strip() else None


def parse_interleaved(transport: str | None) -> tuple[int, int] | None:
    """The interleaved channel pair a SETUP answer's Transport header grants, or None."""
    match = re.search(r"interleaved\s*=\s*(\d+)(?:\s*-\s*(\d+))?", transport or "", re.I)
    if match is None:
        return None
    rtp = int(match.group(1))
    rtcp = int(match.group(2)) if match.group(2) else rtp + 1
    return (rtp, rtcp) if rtp <= 255 and rtcp <= 255 else None


def parse_rtp_info(value: str | None) -> list[dict[str, str]]:
    """RTP-Info: url=...;seq=..;rtptime=.., ... as one dict per stream."""
    out = []
    for item in re.split(r",(?=\s*url=)", value or ""):
        fields = {}
        for part in item.split(";"):
            name, sep, val = part.strip().partition("=")
            if sep:
                fields[name.strip().lower()] = val.strip()
        if fields:
            out.append(fields)
    return out


# authentication


class AuthError(ValueError):
    """A challenge the client cannot answer."""


class Authenticator:
    """Answers a camera's 401 challenges: Digest (MD5, qop auth or none) preferred, else Basic.

    `challenge(response)` takes a 401 and returns whether retrying can help (credentials present and
    not already refused for the same nonce); `authorization(method, uri)` gives the header value for
    each later request, or None before any challenge.
    """

    def __init__(self, user: str | None, password: str | None):
        self.user, self.password = user, password
        self._scheme: str | None = None
        self._params: dict[str, str] = {}
        self._nonce_count = 0
        self._cnonce = os.urandom(8).hex()

    def challenge(self, response: RtspMessage) -> bool:
        if self.user is None:
            return False
        offers = [parse_challenge(value) for value in response.all("www-authenticate")]
        digest = next((p for s, p in offers if s == "digest" and p.get("algorithm", "MD5").upper() == "MD5"), None)
        basic = next((p for s, p in offers if s == "basic"), None)
        if digest is not None:
            stale = digest.get("stale", "").lower() == "true"
            if self._scheme == "digest" and not stale:
                return False  # these credentials were refused (a nonce that only expired comes stale)
            self._scheme, self._params, self._nonce_count = "digest", digest, 0
            return True
        if basic is not None and self._scheme != "basic":
            self._scheme, self._params = "basic", basic
            return True
        return False

    def authorization(self, method: str, uri: str) -> str | None:
        if self._scheme == "basic":
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            return f"Basic {token}"
        if self._scheme == "digest":
            return self._digest(method, uri)
        return None

    def _digest(self, method: str, uri: str) -> str:
        p = self._params
        realm, nonce = p.get("realm", ""), p.get("nonce", "")
        ha1 = _md5(f"{self.user}:{realm}:{self.password}")
        ha2 = _md5(f"{method}:{uri}")
        qops = [q.strip() for q in p.get("qop", "").split(",") if q.strip()]
        fields = [f'username="{self.user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
        if "auth" in qops:
            self._nonce_count += 1
            nc = f"{self._nonce_count:08x}"
            response = _md5(f"{ha1}:{nonce}:{nc}:{self._cnonce}:auth:{ha2}")
            fields += [f'response="{response}"', "qop=auth", f"nc={nc}", f'cnonce="{self._cnonce}"']
        else:
            fields.append(f'response="{_md5(f"{ha1}:{nonce}:{ha2}")}"')
        if "opaque" in p:
            fields.append(f'opaque="{p["opaque"]}"')
        if "algorithm" in p:
            fields.append(f"algorithm={p['algorithm']}")
        return "Digest " + ", ".join(fields)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


_PARAM = re.compile(r'\s*([\w-]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^,\s]*)\s*,?')


def parse_challenge(value: str) -> tuple[str, dict[str, str]]:
    """'Digest realm="x", nonce="y", qop="auth"' as ("digest", {"realm": "x", ...})."""
    scheme, _, rest = value.strip().partition(" ")
    params = {}
    for match in _PARAM.finditer(rest):
        params[match.group(1).lower()] = match.group(3) if match.group(3) is not None else match.group(2)
    return scheme.lower(), params
