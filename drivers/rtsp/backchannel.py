"""A camera's speaker over RTSP: the ONVIF audio back channel (ONVIF Streaming Specification 5.3).

    BackChannelError (CameraError, a ConnectionError)   cannot connect, refused, no back channel, broke off
    └── NoBackChannel                                   the camera answered, but offers no G.711 speaker

`open()` negotiates on the caller's thread: DESCRIBE with `Require: www.onvif.org/ver20/backchannel`
(Basic or Digest authentication as drivers.rtsp.native), picks the first `sendonly` audio media in
G.711 (PCMU or PCMA: what ONVIF profiles make cameras offer), SETUPs only that track over TCP
(interleaved in the RTSP connection), and PLAYs. From then on a thread of its own reads the connection
(the camera's RTCP, answers to keep-alives) and keeps the session alive, while `send(samples)` encodes
8 kHz int16 sound once to the camera's G.711 and writes 20-ms RTP packets.

`send` blocks at most SEND_TIMEOUT_S (a camera that stops reading costs the talker that long, once:
the session is then broken and every later `send` raises at once).

A session may be idle between sounds (an alarm sound player keeps it open while the last sound plays
out, and reuses it for a newer one): sound sent after a silence of more than RESUME_GAP_S starts a talk
spurt (RTP marker) whose timestamp has moved on by the silence, as RFC 3551 has senders that suppress
silence do, so the camera's jitter buffer sees sound that is on time, not late.
"""
from __future__ import annotations

import logging
import select
import socket
import threading
from dataclasses import dataclass

import numpy as np

from base import g711
from base.clock import Clocks
from base.credentials import mask_credentials
from drivers.rtsp.ffmpeg import CameraError
from drivers.rtsp.protocol import (Authenticator, RtspMessage, RtspProtocolError, RtspStreamParser, build_request,
                                   build_response, camera_tls, parse_interleaved, parse_session, server_address,
                                   split_credentials)
from drivers.rtsp.rtp_send import G711Packetizer, interleaved
from drivers.rtsp.sdp import MediaDescription, SdpError, parse_sdp

log = logging.getLogger("nvr.rtsp.talk")

REQUIRE = "www.onvif.org/ver20/backchannel"
READ_BYTES = 65536
SEND_TIMEOUT_S = 2.0  # a camera that takes no sound for this long has broken the talk session
POLL_S = 0.5  # how often the reader thread looks at the clock for keep-alives when nothing arrives
MAX_SAMPLES_PER_SEND = 8000  # one second of sound at 8 kHz: more in one call is the caller's bug
# `close` waits until the sound sent has had time to play, plus this: a camera tears its speaker's
# pipeline down at TEARDOWN, dropping what its playout buffer still holds (GStreamer's holds ~200 ms at
# the start of a session), so closing at once would cut a short sound or a talker's last word.
PLAYOUT_S = 0.3
MAX_LINGER_S = 2.0  # but never longer than this (a burst sent far ahead of real time is cut)
RESUME_GAP_S = 0.06  # silence after which sound sent starts a new talk spurt, its timestamp moved on


class BackChannelError(CameraError):
    """The camera's speaker cannot be reached or stopped taking sound; the message says why."""


class NoBackChannel(BackChannelError):
    """The camera answered but offers no G.711 back channel (not ONVIF Profile T/S audio-out, or off)."""


@dataclass(frozen=True, slots=True)
class Speaker:
    """The back channel a camera offers: how to encode for it and where to SETUP it."""

    encoding: str  # "PCMU" or "PCMA"
    payload_type: int
    clock_rate: int
    control: str


def pick_speaker(media: list[MediaDescription]) -> Speaker | None:
    """The first `sendonly` audio media in G.711 at 8 kHz mono, or None."""
    for m in media:
        if m.kind == "audio" and m.direction == "sendonly" and m.encoding in g711.ENCODINGS \
                and m.clock_rate == g711.SAMPLE_RATE and m.channels == 1:
            return Speaker(m.encoding, m.payload_type, m.clock_rate, m.control)
    return None


class BackChannel:
    """One talk session to one camera: `open()`, `send(samples)` any number of times, `close()`."""

    def __init__(self, url: str, *, clocks: Clocks, timeout_s: float = 10.0):
        self.where = mask_credentials(url)
        self.url, user, password = split_credentials(url)
        self._auth = Authenticator(user, password)
        self._clocks = clocks
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._parser = RtspStreamParser()
        self._cseq = 0
        self._session: str | None = None
        self._keepalive_s = 30.0
        self._lock = threading.Lock()  # one writer at a time: `send` and the keep-alives
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._control = self.url
        self._channel = 0
        self.speaker: Speaker | None = None
        self.packetizer: G711Packetizer | None = None
        self.error: str | None = None
        self._play_end_s: float | None = None  # when what was sent ends, if played in real time from sending
        # `close` wakes the reader's select through this pair at once, rather than after its POLL_S.
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None

    # the handshake

    def open(self) -> Speaker:
        """Connect and PLAY the back channel; BackChannelError (or NoBackChannel) if it cannot be had."""
        try:
            self._connect()
            speaker = self._describe()
            self._setup(speaker)
            self._check(self._request("PLAY", self._control, {"Range": "npt=0.000-"}), "PLAY")
        except BaseException:
            self._close_socket()
            raise
        self.speaker = speaker
        self.packetizer = G711Packetizer(payload_type=speaker.payload_type, clock_rate=speaker.clock_rate)
        self._wake_r, self._wake_w = socket.socketpair()
        self._reader = threading.Thread(target=self._read, name=f"talk-{self.where}", daemon=True)
        self._reader.start()
        return speaker

    def _connect(self) -> None:
        try:
            scheme, host, port = server_address(self.url)
        except ValueError as exc:
            raise BackChannelError(f"{self.where}: a back channel needs an rtsp:// or rtsps:// URL ({exc})") from None
        try:
            self._sock = socket.create_connection((host, port), timeout=self.timeout_s)
            if scheme == "rtsps":
                self._sock = camera_tls(self._sock, host)
        except OSError as exc:
            raise BackChannelError(f"{self.where}: cannot connect for talk: {exc}") from exc

    def _describe(self) -> Speaker:
        describe = self._request("DESCRIBE", self.url, {"Accept": "application/sdp"})
        self._check(describe, "DESCRIBE")
        base = describe.header("content-base") or describe.header("content-location") or self.url
        try:
            sdp = parse_sdp(describe.body, base_url=split_credentials(base)[0])
        except SdpError as exc:
            raise NoBackChannel(f"{self.where}: no back channel: {exc}") from exc
        speaker = pick_speaker(sdp.media)
        if speaker is None:
            offered = ", ".join(f"{m.kind} {m.encoding} {m.direction}" for m in sdp.media)
            raise NoBackChannel(f"{self.where}: the camera offers no G.711 back channel (a sendonly audio "
                                f"media; it offered {offered}); check that its audio output is on")
        self._control = sdp.control
        return speaker

    def _setup(self, speaker: Speaker) -> None:
        response = self._request("SETUP", split_credentials(speaker.control)[0],
                                 {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})
        self._check(response, "SETUP")
        session = parse_session(response.header("session"))
        if session is None:
            raise BackChannelError(f"{self.where}: SETUP of the back channel answered without a session")
        self._session = session.session_id
        self._keepalive_s = max(1.0, min(30.0, session.timeout_s / 2))
        self._channel = (parse_interleaved(response.header("transport")) or (0, 1))[0]

    def _request(self, method: str, uri: str, headers: dict[str, str] | None = None) -> RtspMessage:
        response = None
        for _ in range(2):  # once more after a challenge
            try:
                self._send_request(method, uri, headers)
            except OSError as exc:
                raise BackChannelError(f"{self.where}: cannot send {method}: {exc}") from exc
            response = self._response(self._cseq, method)
            if not (response.status == 401 and self._auth.challenge(response)):
                break
        return response

    def _send_request(self, method: str, uri: str, headers: dict[str, str] | None) -> None:
        self._cseq += 1
        all_headers = {"Require": REQUIRE, **(headers or {})}
        if self._session:
            all_headers["Session"] = self._session
        authorization = self._auth.authorization(method, uri)
        if authorization:
            all_headers["Authorization"] = authorization
        self._sock.sendall(build_request(method, uri, self._cseq, all_headers))

    def _response(self, cseq: int, method: str) -> RtspMessage:
        deadline_s = self._clocks.monotonic_us() / 1e6 + self.timeout_s
        while self._clocks.monotonic_us() / 1e6 < deadline_s:
            try:
                chunk = self._sock.recv(READ_BYTES)
            except (TimeoutError, OSError) as exc:
                raise BackChannelError(f"{self.where}: no answer to {method}: {exc}") from exc
            if not chunk:
                raise BackChannelError(f"{self.where}: the camera closed the connection during {method}")
            try:
                messages = self._parser.feed(chunk)
            except RtspProtocolError as exc:
                raise BackChannelError(f"{self.where}: {method}: {exc}") from exc
            for message in messages:
                if message.status and message.cseq in (cseq, None):
                    return message
        raise BackChannelError(f"{self.where}: no answer to {method} within {self.timeout_s:g} s")

    def _check(self, response: RtspMessage, method: str) -> None:
        if 200 <= response.status < 300:
            return
        if response.status == 551:  # Option not supported: the Require header was refused
            raise NoBackChannel(f"{self.where}: the camera does not support the ONVIF back channel "
                                f"({method} answered 551 Option not supported)")
        hint = " (wrong user or password?)" if response.status == 401 else ""
        raise BackChannelError(f"{self.where}: {method} answered {response.status} {response.reason[:80]}{hint}")

    # talking

    def send(self, samples: np.ndarray) -> int:
        """Encode 8 kHz mono int16 `samples` and send the whole 20-ms packets they complete; the number
        of packets sent. BackChannelError once the session broke (the message says why)."""
        if self.packetizer is None or self.speaker is None:
            raise BackChannelError(f"{self.where}: the back channel is not open")
        if len(samples) > MAX_SAMPLES_PER_SEND:
            raise ValueError(f"{len(samples)} samples in one send (at most {MAX_SAMPLES_PER_SEND})")
        if self.error is not None:
            raise BackChannelError(self.error)
        now_s = self._clocks.monotonic_us() / 1e6
        if self._play_end_s is not None and now_s - self._play_end_s > RESUME_GAP_S:
            self.packetizer.skip(round((now_s - self._play_end_s) * self.speaker.clock_rate))
        self._play_end_s = max(self._play_end_s or now_s, now_s) + len(samples) / self.speaker.clock_rate
        packets = self.packetizer.push(g711.encode(samples, self.speaker.encoding))
        if packets:
            self._write(b"".join(interleaved(self._channel, p) for p in packets))
        return len(packets)

    def playout_left_s(self) -> float:
        """How long what was sent still needs to be heard (plus PLAYOUT_S, at most MAX_LINGER_S); 0 when
        nothing was sent or the session broke."""
        if self._play_end_s is None or self.error is not None:
            return 0.0
        return min(MAX_LINGER_S, max(0.0, self._play_end_s + PLAYOUT_S - self._clocks.monotonic_us() / 1e6))

    def spurt(self) -> None:
        """The next sound starts a talk spurt (after the talker let go of the button)."""
        if self.packetizer is not None:
            self.packetizer.spurt()

    def _write(self, data: bytes) -> None:
        with self._lock:
            try:
                self._sock.settimeout(SEND_TIMEOUT_S)
                self._sock.sendall(data)
            except OSError as exc:
                self._broken(f"{self.where}: the camera stopped taking sound: {exc}")
                raise BackChannelError(self.error) from exc

    def _broken(self, why: str) -> None:
        if self.error is None:
            self.error = why
            log.warning("%s", why)
        self._stop.set()

    def _read(self) -> None:
        """The session's reader: drains what the camera sends and keeps the session alive."""
        next_keepalive_s = self._clocks.monotonic_us() / 1e6 + self._keepalive_s
        sock, wake = self._sock, self._wake_r  # `close` may drop the attributes while this thread still polls
        while not self._stop.is_set():
            try:
                readable, _, _ = select.select([sock, wake], [], [], POLL_S)
                if sock in readable:
                    chunk = sock.recv(READ_BYTES)
                    if not chunk:
                        self._broken(f"{self.where}: the camera closed the talk session")
                        return
                    for message in self._parser.feed(chunk):
                        self._answer(message)
                now_s = self._clocks.monotonic_us() / 1e6
                if now_s >= next_keepalive_s:
                    next_keepalive_s = now_s + self._keepalive_s
                    self._keepalive()
            except (OSError, ValueError) as exc:  # ValueError: select on a socket closed meanwhile
                if not self._stop.is_set():
                    self._broken(f"{self.where}: the talk session broke: {exc}")
                return

    def _answer(self, message: RtspMessage) -> None:
        if message.method:  # the camera asks something: answer what a client can
            ok = message.method in ("OPTIONS", "GET_PARAMETER", "SET_PARAMETER")
            reply = build_response(200, "OK", message.cseq) if ok else build_response(501, "Not Implemented",
                                                                                       message.cseq)
            with self._lock:
                self._sock.sendall(reply)
        elif message.status == 401 and self._auth.challenge(message):
            self._keepalive()
        elif message.status >= 300:
            log.info("%s: talk keep-alive answered %d %s", self.where, message.status, message.reason)

    def _keepalive(self) -> None:
        with self._lock:
            self._send_request("GET_PARAMETER", self._control, None)

    # the end

    def close(self, *, linger: bool = True) -> None:
        """With `linger`, wait for the sound sent to play (see PLAYOUT_S); then TEARDOWN (best effort, its
        answer not waited for) and close; safe to call more than once. The reader is woken, not waited
        for a poll."""
        if linger and (wait_s := self.playout_left_s()) > 0:
            self._clocks.sleep(wait_s)
        self._play_end_s = None
        self._stop.set()
        if self._wake_w is not None:
            try:
                self._wake_w.send(b"x")
            except OSError as exc:
                log.debug("%s: waking the talk reader: %s", self.where, exc)
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=POLL_S * 4)
        if self._sock is not None and self._session is not None and self.error is None:
            try:
                with self._lock:
                    self._sock.settimeout(1.0)
                    self._send_request("TEARDOWN", self._control, None)
            except OSError as exc:  # the camera drops the session by its timeout anyway
                log.debug("%s: TEARDOWN not sent: %s", self.where, exc)
        self._close_socket()

    def _close_socket(self) -> None:
        for sock in (self._sock, self._wake_r, self._wake_w):
            if sock is not None:
                try:
                    sock.close()
                except OSError as exc:
                    log.debug("%s: closing the talk connection: %s", self.where, exc)
        self._sock = self._wake_r = self._wake_w = None

    def statistics(self) -> dict:
        p = self.packetizer
        return {"camera": self.where, "encoding": self.speaker.encoding if self.speaker else None,
                "packets_sent": p.packets if p else 0, "octets_sent": p.octets if p else 0, "error": self.error}
