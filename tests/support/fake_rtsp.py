"""A tiny scripted RTSP camera for the native client's tests: Digest/Basic auth, redirects, session
timeouts, audio, B-frame timestamps, refusing TCP; it records every request and RTCP packet it gets.
Hostile scripts (issue 12) replace its SDP media, Session or Transport answers, or what it sends after
PLAY (`after_play`), and `go_down()` / `come_up()` make it vanish from the network and return on the
same port (a flapping camera).

One thread accepts, one per connection serves; `stop()` closes everything. Its streams are made by
`support.rtp_bytes` from the RFCs. Its authentication check is written apart from the client's.
"""
from __future__ import annotations

import base64
import errno
import hashlib
import os
import random
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from support.rtp_bytes import IDR, P_SLICE, PPS, SPS, aac_payload, fu_a, interleaved, rtp, stap_a

SDP_VIDEO = ("m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
             "a=fmtp:96 packetization-mode=1;{sprop}\r\na=control:trackID=1\r\n")
SDP_AUDIO = ("m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/16000/1\r\n"
             "a=fmtp:97 streamtype=5;mode=AAC-hbr;config=1408;sizelength=13;indexlength=3;indexdeltalength=3\r\n"
             "a=control:trackID=2\r\n")
SPROP = "sprop-parameter-sets=Z0LAC9kChH5cBEAAAAMAQAAADIPFCpI=,aMuDyyA="


@dataclass
class Script:
    """How the fake camera behaves."""

    user: str | None = None
    password: str | None = None
    scheme: str = "digest"  # or "basic"
    redirect_from: str | None = None  # a path answered with 302 to `redirect_to`
    redirect_to: str = "/real"
    session_timeout_s: int = 60
    audio: bool = False
    sprop: bool = True  # parameter sets in the SDP (else only in-band)
    refuse_tcp: bool = False  # answer a TCP SETUP 461 (a UDP-only camera); UDP SETUPs always work
    b_frames: bool = False  # presentation timestamps out of decode order
    frames: int = 10_000
    fps: int = 25
    rtptime: int = 0xFFFFF000  # RTP-Info rtptime of the first packet: wraps soon after
    gap_after: int | None = None  # drop one packet after this many frames (loss)
    extra_headers: dict[str, str] = field(default_factory=dict)
    tls: bool = False  # rtsps: TLS with a self-signed certificate made by the openssl command
    sdp_media: str | None = None  # the m= sections of the SDP, instead of the usual H.264 (+ AAC) ones
    session: str | None = None  # the Session header's value, instead of "F00D;timeout=..."
    transport: str | None = None  # the SETUP answer's Transport header, instead of echoing the request
    redirect_location: str | None = None  # the 302's Location, instead of `redirect_to` on this camera
    # Called on its own thread after the PLAY answer instead of the usual stream: `send(bytes)`, and
    # `stopped()` says the connection or the camera is gone.
    after_play: Callable[[Callable[[bytes], None], Callable[[], bool]], None] | None = None


class FakeCamera:
    def __init__(self, script: Script):
        self.script = script
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # method, uri, headers (lower-case names)
        self.rtcp: list[bytes] = []
        self.connections = 0
        self._listener = _listen_outside_ephemeral()
        self.port = self._listener.getsockname()[1]
        self.tls = _server_tls_context() if script.tls else None
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self.up = True
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def go_down(self) -> None:
        """Vanish: stop listening (connects are refused) and close every connection."""
        self.up = False
        _stop_listening(self._listener)
        self._close_sockets()

    def come_up(self) -> None:
        """Answer again on the same port (waiting up to 10 s if another test's socket holds it meanwhile).
        Nothing to do for a camera that is up, or stopped for good."""
        if self.up or self._stop.is_set():
            return
        for _ in range(100):
            try:
                self._listener = socket.create_server(("127.0.0.1", self.port))
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or self._stop.wait(0.1):
                    raise
        else:
            raise OSError(errno.EADDRINUSE, f"port {self.port} stayed taken for 10 s")
        self.up = True
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def url(self, path: str = "/cam", userinfo: str = "") -> str:
        scheme = "rtsps" if self.tls else "rtsp"
        return f"{scheme}://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}{path}"

    def methods(self) -> list[str]:
        return [method for method, _, _ in self.requests]

    def stop(self) -> None:
        self._stop.set()
        _stop_listening(self._listener)
        self._close_sockets()

    def _close_sockets(self) -> None:
        sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def __enter__(self) -> FakeCamera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            self.connections += 1
            self._sockets.append(sock)
            threading.Thread(target=_Connection(self, sock).serve, daemon=True).start()


def _listen_outside_ephemeral() -> socket.socket:
    """A loopback listener on a free port below the kernel's ephemeral range: a camera that goes down and
    comes up again must find its port free, and outgoing connections (any test's) take ephemeral ports."""
    try:
        low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    first = 10_000 if low > 12_000 else 1024
    for port in random.sample(range(first, low), min(200, low - first)):
        try:
            return socket.create_server(("127.0.0.1", port))
        except OSError:
            continue
    return socket.create_server(("127.0.0.1", 0))


def _stop_listening(listener: socket.socket) -> None:
    """Close a listening socket for real: a thread blocked in accept() keeps the kernel's socket
    listening after a plain close(), until a connection wakes it; shutdown() wakes it now."""
    try:
        listener.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    listener.close()


def _server_tls_context() -> ssl.SSLContext:
    folder = tempfile.mkdtemp(prefix="fake-rtsps-")
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=camera"], check=True, capture_output=True, timeout=60)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    shutil.rmtree(folder, ignore_errors=True)
    return context


class _Connection:
    def __init__(self, camera: FakeCamera, sock: socket.socket):
        self.camera, self.sock, self.script = camera, sock, camera.script
        self.buffer = b""
        self.nonce = "n0"
        self.playing = threading.Event()
        self.lock = threading.Lock()
        self.udp: socket.socket | None = None
        self.udp_target: tuple[str, int] | None = None

    def serve(self) -> None:
        try:
            if self.camera.tls is not None:
                self.sock = self.camera.tls.wrap_socket(self.sock, server_side=True)
                self.camera._sockets.append(self.sock)
            while True:
                request = self._read_request()
                if request is None:
                    return
                self._answer(*request)
        except OSError:
            return

    def _read_request(self):
        while True:
            while self.buffer.startswith(b"$") and len(self.buffer) >= 4:
                size = struct.unpack_from("!H", self.buffer, 2)[0]
                if len(self.buffer) < 4 + size:
                    break
                self.camera.rtcp.append(self.buffer[4:4 + size])
                self.buffer = self.buffer[4 + size:]
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0 and not self.buffer.startswith(b"$"):
                head, self.buffer = self.buffer[:end].decode(), self.buffer[end + 4:]
                lines = head.split("\r\n")
                method, uri, _ = lines[0].split(" ")
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
                self.camera.requests.append((method, uri, headers))
                return method, uri, headers
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk

    def _send(self, data: bytes) -> None:
        with self.lock:
            self.sock.sendall(data)

    def _reply(self, status: str, headers: dict[str, str], cseq: str, body: bytes = b"") -> None:
        lines = [f"RTSP/1.0 {status}", f"CSeq: {cseq}"] + [f"{k}: {v}" for k, v in headers.items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        self._send(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def _authorized(self, method: str, headers: dict[str, str]) -> bool:
        s = self.script
        if s.user is None:
            return True
        given = headers.get("authorization", "")
        if s.scheme == "basic":
            return given == "Basic " + base64.b64encode(f"{s.user}:{s.password}".encode()).decode()
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', given))
        if not given.startswith("Digest ") or fields.get("nonce") != self.nonce:
            return False
        md5 = lambda text: hashlib.md5(text.encode()).hexdigest()  # noqa: E731
        ha1, ha2 = md5(f"{s.user}:cam:{s.password}"), md5(f"{method}:{fields.get('uri')}")
        if fields.get("qop") == "auth":
            expected = md5(f"{ha1}:{self.nonce}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}")
        else:
            expected = md5(f"{ha1}:{self.nonce}:{ha2}")
        return fields.get("response") == expected and fields.get("username") == s.user

    def _answer(self, method: str, uri: str, headers: dict[str, str]) -> None:
        s, cseq = self.script, headers.get("cseq", "0")
        if not self._authorized(method, headers):
            challenge = ('Basic realm="cam"' if s.scheme == "basic"
                         else f'Digest realm="cam", nonce="{self.nonce}", qop="auth"')
            self._reply("401 Unauthorized", {"WWW-Authenticate": challenge}, cseq)
            return
        if s.redirect_from and uri.endswith(s.redirect_from):
            location = s.redirect_location or f"rtsp://127.0.0.1:{self.camera.port}{s.redirect_to}"
            self._reply("302 Moved", {"Location": location}, cseq)
            return
        session = {"Session": s.session or f"F00D;timeout={s.session_timeout_s}"}
        if method == "OPTIONS":
            self._reply("200 OK", {"Public": "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER"}, cseq)
        elif method == "DESCRIBE":
            sdp = "v=0\r\ns=fake\r\nt=0 0\r\na=control:*\r\n"
            if s.sdp_media is not None:
                sdp += s.sdp_media
            else:
                sdp += SDP_VIDEO.format(sprop=SPROP if s.sprop else "") + (SDP_AUDIO if s.audio else "")
            self._reply("200 OK", {"Content-Type": "application/sdp", "Content-Base": uri + "/"}, cseq, sdp.encode())
        elif method == "SETUP":
            transport = headers["transport"]
            if "TCP" not in transport.upper():
                self._reply("200 OK", {**session, "Transport": self._udp_transport(transport)}, cseq)
            elif s.refuse_tcp:
                self._reply("461 Unsupported Transport", {}, cseq)
            else:
                self._reply("200 OK", {**session, "Transport": s.transport or transport + ";ssrc=00001234"}, cseq)
        elif method == "PLAY":
            base = uri.rstrip("/")
            info = f"url={base}/trackID=1;seq=1;rtptime={s.rtptime}"
            if s.audio:
                info += f",url={base}/trackID=2;seq=1;rtptime=1000"
            self._reply("200 OK", {**session, "RTP-Info": info, **s.extra_headers}, cseq)
            if s.after_play is not None:
                threading.Thread(target=self._hostile, daemon=True).start()
            else:
                threading.Thread(target=self._stream, daemon=True).start()
        elif method in ("GET_PARAMETER", "TEARDOWN"):
            self._reply("200 OK", session, cseq)
            if method == "TEARDOWN":
                self.sock.shutdown(socket.SHUT_RDWR)
        else:
            self._reply("501 Not Implemented", {}, cseq)

    def _hostile(self) -> None:
        gone = threading.Event()

        def send(data: bytes) -> None:
            try:
                self._send(data)
            except OSError:
                gone.set()

        def stopped() -> bool:
            return gone.is_set() or self.camera._stop.is_set() or self.sock.fileno() < 0

        try:
            self.script.after_play(send, stopped)
        except OSError:
            return

    def _udp_transport(self, transport: str) -> str:
        """Accept RTP over UDP (for the first track): packets go to the client's port from our own."""
        client_rtp = int(re.search(r"client_port=(\d+)", transport).group(1))
        if self.udp is None:
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.udp_target = ("127.0.0.1", client_rtp)
        port = self.udp.getsockname()[1]
        return f"RTP/AVP;unicast;client_port={client_rtp}-{client_rtp + 1};server_port={port}-{port + 1};ssrc=00001234"

    def _stream(self) -> None:
        s, seq, step = self.script, 1, 90000 // self.script.fps
        order = [0, 2, 1] if s.b_frames else [0, 1, 2]  # presentation order within each group of three
        try:
            for number in range(s.frames):
                ts = s.rtptime + (number // 3 * 3 + order[number % 3]) * step
                key = number % 25 == 0
                payloads = ([stap_a(SPS, PPS)] if key else []) + fu_a(IDR if key else P_SLICE, 3)
                packets = [rtp(seq + i, ts, p, marker=i == len(payloads) - 1) for i, p in enumerate(payloads)]
                seq += len(payloads)
                if s.gap_after is not None and number == s.gap_after:
                    packets.pop(1)
                if self.udp is not None:
                    for packet in packets:
                        self.udp.sendto(packet, self.udp_target)
                    time.sleep(1 / s.fps)
                    continue
                data = b"".join(interleaved(0, p) for p in packets)
                if s.audio:
                    data += interleaved(2, rtp(number, 1000 + number * 640, aac_payload(b"\x21\x10" + bytes(20)),
                                               pt=97, marker=True, ssrc=0x5678))
                self._send(data)
                time.sleep(1 / s.fps)
        except OSError:
            return
