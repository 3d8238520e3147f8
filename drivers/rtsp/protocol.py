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
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

USER_AGENT = "nvr"
MAX_HEADER_BYTES = 16 * 1024  # an RTSP header block (start line to blank line) larger than this is garbage
MAX_LINE_BYTES = 1024  # a start line longer than this is garbage
MAX_HEADER_LINE_BYTES = 8 * 1024  # one header line longer than this is dropped (a Digest challenge is ~300 B)
MAX_HEADERS = 64  # header lines kept per message; the rest are dropped
MAX_BODY_BYTES = 256 * 1024  # a body (an SDP) larger than this is garbage
MAX_NUMBER_DIGITS = 10  # a decimal header field (timeout, channel, CSeq) longer than this is not a number


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
        return parse_number(self.header("cseq", ""))


def parse_number(text: str | None) -> int | None:
    """A non-negative decimal of at most MAX_NUMBER_DIGITS digits (spaces around allowed), else None:
    never ValueError, and never the quadratic cost of converting thousands of digits."""
    text = (text or "").strip()
    if not text or len(text) > MAX_NUMBER_DIGITS or not text.isascii() or not text.isdigit():
        return None
    return int(text)


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
    for line in lines[1:MAX_HEADERS + 1]:
        if len(line) > MAX_HEADER_LINE_BYTES:
            continue  # no header a client needs is this long: dropped, the message stays usable
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
        # Where each search of this call found its next match (or the end): garbage made of many
        # near-misses ("RTSP/\r\n" repeated) is then scanned once, not once per candidate start.
        found = _Searches(data)
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
            done = self._message(data, pos, messages, found)
            if done is None:
                break
            pos = done
        self._rest = data[pos:] if pos < size else b""
        return messages

    def _message(self, data: bytes, pos: int, messages: list[RtspMessage], found: _Searches) -> int | None:
        """Parse the text message at `pos`; its end, or None to wait for more bytes. Garbage is skipped.

        Linear in the garbage: where no message can start (no line end, or no blank line, within the
        limits), every candidate start up to there is skipped in one step, not tried one by one.
        """
        size = len(data)
        line_end = found.next(b"\r\n", pos)
        if line_end < 0:
            if size - pos < MAX_LINE_BYTES and 0x41 <= data[pos] <= 0x5A:
                return None  # maybe a start line still arriving
            return self._skip(data, pos, found, size - MAX_LINE_BYTES)
        if line_end - pos > MAX_LINE_BYTES:
            return self._skip(data, pos, found, line_end - MAX_LINE_BYTES)
        if data.startswith(b"RTSP/", pos):
            if _STATUS_START.match(data, pos, line_end + 2) is None:
                return self._skip(data, pos, found, line_end)
        elif not _looks_like_request(data, pos, line_end):
            return self._skip(data, pos, found)
        head_end = found.next(b"\r\n\r\n", pos)
        if head_end < 0:
            if size - pos <= MAX_HEADER_BYTES:
                return None
            return self._skip(data, pos, found, size - MAX_HEADER_BYTES)
        if head_end - pos > MAX_HEADER_BYTES:
            return self._skip(data, pos, found, head_end - MAX_HEADER_BYTES)
        try:
            message = parse_head(data[pos:head_end])
        except RtspProtocolError:
            return self._skip(data, pos, found, head_end + 4)
        length = parse_number(message.header("content-length", "0"))
        if length is None or length > MAX_BODY_BYTES:
            return self._skip(data, pos, found, head_end + 4)
        body_start = head_end + 4
        if body_start + length > size:
            return None
        message.body = data[body_start:body_start + length]
        messages.append(message)
        return body_start + length

    def _skip(self, data: bytes, pos: int, found: _Searches, floor: int = 0) -> int:
        """Skip to the next '$' or status line after `pos` and at or after `floor` (or to the end, keeping
        a tail that may be the start of one still arriving); counted."""
        self.resyncs += 1
        nxt = found.next_frame(max(pos + 1, floor))
        self.skipped_bytes += nxt - pos
        return nxt


class _Searches:
    """`data.find(needle, start)` for starts that only move forward, each byte scanned once per needle:
    the last match is reused while it still lies at or after `start`."""

    __slots__ = ("_data", "_last", "_frame")

    def __init__(self, data: bytes):
        self._data = data
        self._last: dict[bytes, int] = {}
        self._frame: int | None = None

    def next_frame(self, start: int) -> int:
        """Where the next interleaved frame ('$') or status line starts at or after `start`; else the
        end of the data, less a tail that may be the first bytes of a status line."""
        last = self._frame
        if last is None or last < start:
            match = _FRAME_START.search(self._data, start)
            last = self._frame = match.start() if match else _partial_tail(self._data, start)
        return last

    def next(self, needle: bytes, start: int) -> int:
        last = self._last.get(needle)
        if last is not None and (last >= start or last < 0):
            return last  # found at or after start, or known absent from everything after an earlier start
        found = self._data.find(needle, start)
        self._last[needle] = found
        return found


_STATUS_START = re.compile(rb"RTSP/\d\.\d \d{3}[ \r]")
_FRAME_START = re.compile(rb"\$|RTSP/\d\.\d \d{3}[ \r]")  # fixed width: no backtracking
_STATUS_PREFIX_BYTES = 13  # len("RTSP/1.0 200 ")


def _partial_tail(data: bytes, start: int) -> int:
    """The end of `data`, or where a status line that is still arriving may begin in its last bytes."""
    tail = data.find(b"R", max(start, len(data) - _STATUS_PREFIX_BYTES))
    while tail >= 0:
        if b"RTSP/".startswith(data[tail:tail + 5]):
            return tail
        tail = data.find(b"R", tail + 1)
    return len(data)


_REQUEST_START = re.compile(rb"[A-Z_]{3,20} [^\s]{1,%d} RTSP/" % MAX_LINE_BYTES)


def _looks_like_request(data: bytes, pos: int, line_end: int) -> bool:
    return _REQUEST_START.match(data, pos, line_end) is not None


# URLs and sessions


DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}


def server_address(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an rtsp:// or rtsps:// URL, the port defaulting by scheme. ValueError for
    another scheme, a URL without a host or with a bad port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"{parts.scheme}:// is not RTSP")
    host, port = parts.hostname, parts.port or DEFAULT_PORTS[scheme]
    if not host:
        raise ValueError("no host in the URL")
    return scheme, host, port


def camera_tls(sock: socket.socket, host: str) -> ssl.SSLSocket:
    """TLS over a connection to a camera. Cameras present self-signed certificates, so the stream is
    encrypted but the camera's identity is not checked (as FFmpeg's client does by default)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context.wrap_socket(sock, server_hostname=host)


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
    timeout = parse_number(_parameter(params, "timeout"))
    if timeout:  # absent, 0 or not a number: the RFC's default
        timeout_s = float(timeout)
    return SessionHeader(session_id.strip(), timeout_s) if session_id.strip() else None


def _parameter(params: str, name: str) -> str | None:
    """The value of `name=value` among ';'-separated parameters (name case-insensitive), or None."""
    for item in params.split(";"):
        key, sep, val = item.partition("=")
        if sep and key.strip().lower() == name:
            return val.strip()
    return None


def parse_interleaved(transport: str | None) -> tuple[int, int] | None:
    """The interleaved channel pair a SETUP answer's Transport header grants, or None."""
    value = _parameter(transport or "", "interleaved")
    if value is None:
        return None
    first, dash, second = value.partition("-")
    rtp = parse_number(first)
    rtcp = parse_number(second) if dash else (rtp + 1 if rtp is not None else None)
    if rtp is None or rtcp is None:
        return None
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


class ChallengeError(ValueError):
    """A challenge the client cannot answer."""


class Authenticator:
    """Answers a camera's 401 challenges: Digest (MD5, qop auth or none) preferred, else Basic, which is
    only ever the first scheme (no downgrade from Digest to Basic within a session).

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
        if basic is not None and self._scheme is None:
            # Never after Digest: a 401 offering only Basic mid-session would have the password sent
            # in the clear (base64) to whoever injected it.
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


def parse_challenge(value: str) -> tuple[str, dict[str, str]]:
    """'Digest realm="x", nonce="y", qop="auth"' as ("digest", {"realm": "x", ...}).

    One pass over the text (no regular expression that could backtrack): `name=value` or
    `name="quoted, with \\" escapes"`, separated by commas; anything else is skipped to the next comma.
    """
    scheme, _, rest = value.strip().partition(" ")
    params: dict[str, str] = {}
    pos, size, eq = 0, len(rest), -1
    while pos < size:
        if eq < pos:  # searched again only once passed: a run of empty tokens costs one scan
            eq = rest.find("=", pos)
            if eq < 0:
                break
        comma = rest.find(",", pos, eq)
        if comma >= 0:  # a token without a value: skip it
            pos = comma + 1
            continue
        name = rest[pos:eq].strip().lower()
        pos = eq + 1
        while pos < size and rest[pos] == " ":
            pos += 1
        if pos < size and rest[pos] == '"':
            chars, pos = [], pos + 1
            while pos < size and rest[pos] != '"':
                if rest[pos] == "\\" and pos + 1 < size:
                    pos += 1
                chars.append(rest[pos])
                pos += 1
            val = "".join(chars)
            comma = rest.find(",", pos)
            pos = size if comma < 0 else comma + 1
        else:
            comma = rest.find(",", pos)
            end = size if comma < 0 else comma
            val = rest[pos:end].strip()
            pos = end + 1
        if name and (name.replace("-", "").replace("_", "").isalnum()):
            params[name] = val
    return scheme.lower(), params
