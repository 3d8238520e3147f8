"""One playing native RTSP connection: turns the bytes the loop reads into packets for the mailbox,
keeps the session alive and sends RTCP receiver reports. Runs on the loop thread once playing.
"""
from __future__ import annotations

import logging
import os
import socket
import ssl
from dataclasses import dataclass, field
from functools import partial

from base.clock import Clocks
from base.media import EncodedPacket
from drivers.rtsp.rtp import RtpTrack, parse_rtcp, receiver_report
from drivers.rtsp.mailbox import END, Mailbox
from drivers.rtsp.protocol import Authenticator, RtspMessage, RtspStreamParser, build_request, build_response

log = logging.getLogger("nvr.rtsp")

READ_BYTES = 65536  # per recv: below glibc's mmap threshold, so the buffer comes from the heap
READS_PER_WAKE = 32  # at most this many reads of one socket per loop wake-up (fairness)
RTCP_INTERVAL_S = 5.0
# A video timestamp going back less than JITTER_S is a camera's jitter, less than REORDER_LIMIT_S frame
# reordering (a B-frame comes a frame or more before the reference it was decoded after), more a restart.
JITTER_S = 0.015
REORDER_LIMIT_S = 1.0
MAX_OUTBOX_BYTES = 256 * 1024
# The pieces of a frame being assembled are views into the chunks they came in, so a frame that never
# ends (no marker, one timestamp) while other bytes flow would pin every chunk read meanwhile: past
# this many stream bytes within one frame, the frame is dropped (drivers.rtsp.rtp bounds its own size).
MAX_ACCESS_UNIT_SPAN_BYTES = 16 * 1024 * 1024
# A non-blocking socket (or TLS over one) with nothing to read, or no room to write, now.
WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class ReorderedFrames(ValueError):
    """Video timestamps went back: the camera sends B-frames, which this client does not order."""


@dataclass(slots=True)
class Channel:
    """One SETUP track on its interleaved channel pair."""

    track: RtpTrack
    kind: str  # "video" | "audio"
    rtp_channel: int
    rtcp_channel: int
    base_ts: int | None = None  # RTP timestamp of media time 0 (from RTP-Info, else the first packet)
    lsr: int = 0  # middle of the last sender report's NTP time, for our report's LSR
    lsr_at_s: float = 0.0
    out: list = field(default_factory=list)


class Connection:
    """Reads one playing connection on the loop thread (see `drivers.rtsp.loop.LoopConnection`)."""

    def __init__(self, *, sock: socket.socket, parser: RtspStreamParser, channels: list[Channel], mailbox: Mailbox,
                 clocks: Clocks, auth: Authenticator, control_url: str, session_id: str, keepalive_method: str,
                 keepalive_s: float, next_cseq: int, where: str, stats: dict):
        self.sock = sock
        self.parser = parser
        self.channels = channels
        self.mailbox = mailbox
        self._clocks = clocks
        self._auth = auth
        self._control_url = control_url
        self._session_id = session_id
        self._keepalive_method = keepalive_method
        self._keepalive_s = keepalive_s
        self._cseq = next_cseq
        self.where = where
        self.stats = stats
        self._outbox = b""
        self._ssrc = int.from_bytes(os.urandom(4), "big")
        self._cname = f"nvr@{socket.gethostname()}"
        self._next_keepalive_s: float | None = None
        self._next_rtcp_s: float | None = None
        self._last_video_pts: int | None = None
        self._video = next((c.track.depacketizer for c in channels if c.kind == "video"), None)
        self._units_seen = -1
        self._unit_span = 0
        self.finished = False
        for channel in channels:
            parser.handlers[channel.rtp_channel] = self._rtp_handler(channel)
            parser.handlers[channel.rtcp_channel] = self._rtcp_handler(channel)

    def cseq_after(self, cseq: int) -> None:
        """The handshake went on after this connection was made: continue its CSeq numbering."""
        self._cseq = cseq

    # reading (loop thread; also the opening thread before the loop takes over)

    def on_readable(self, now_s: float) -> bool:
        if self.finished:
            return False
        if self.mailbox.full:  # the consumer is behind: leave the bytes in the socket, TCP slows the camera
            self.stats["backpressure"] += 1
            return True
        recv = self.sock.recv
        pending = getattr(self.sock, "pending", None)  # TLS: decrypted bytes select() cannot see
        try:
            for _ in range(READS_PER_WAKE):
                chunk = recv(READ_BYTES)
                if not chunk:
                    self.finish(None)
                    return False
                self.feed(chunk)
                if self.finished:
                    return False
                if len(chunk) < READ_BYTES and not (pending and pending()):
                    break
        except WOULD_BLOCK:
            pass
        except OSError as exc:
            self.finish(exc)
            return False
        return True

    def feed(self, chunk: bytes) -> None:
        """Take bytes from the socket: packets go to the mailbox, messages are answered."""
        self.stats["bytes_read"] += len(chunk)
        messages = self.parser.feed(chunk)
        video = self._video
        if video is not None:  # per chunk, not per packet: how much stream the unfinished frame spans
            if video.units != self._units_seen:
                self._units_seen, self._unit_span = video.units, len(chunk)
            else:
                self._unit_span += len(chunk)
                if self._unit_span > MAX_ACCESS_UNIT_SPAN_BYTES and video.assembling:
                    video.abandon()
                    log.warning("%s: dropped a frame that spanned over %d MiB of the stream", self.where,
                                MAX_ACCESS_UNIT_SPAN_BYTES >> 20)
        arrival_us = self._clocks.monotonic_us()
        packets: list[EncodedPacket] = []
        try:
            for channel in self.channels:
                if channel.out:
                    self._packets(channel, arrival_us, packets)
        except (ReorderedFrames, ConnectionError) as exc:
            self.finish(exc)
            return
        if packets:
            self.mailbox.put_many(packets)
        for message in messages:
            self._message(message)

    @staticmethod
    def _rtp_handler(channel: Channel):
        return partial(channel.track.receive, out=channel.out)  # called per RTP packet: no Python frame of its own

    def _rtcp_handler(self, channel: Channel):
        def handle(view: memoryview) -> None:
            reports, bye = parse_rtcp(view)
            for report in reports:
                channel.lsr, channel.lsr_at_s = report.ntp_middle, self._clocks.monotonic_us() / 1e6
            if bye and channel.kind == "video":
                self.stats["bye"] += 1
                self.finish(None)
        return handle

    def _packets(self, channel: Channel, arrival_us: int, packets: list[EncodedPacket]) -> None:
        frames = channel.out[:]
        channel.out.clear()
        if channel.base_ts is None:
            channel.base_ts = frames[0][1]
        base = channel.base_ts
        if channel.kind == "video":
            last = self._last_video_pts
            for data, ts, keyframe in frames:
                pts = ts - base
                if last is not None and pts < last:
                    self._went_back(last - pts, channel.track.clock_rate)  # raises unless it is jitter
                last = pts if last is None else max(last, pts)
                packets.append(EncodedPacket(data, pts, pts, keyframe, arrival_us))
            self._last_video_pts = last
            self.stats["packets"] += len(frames)
            self.stats["last_packet_monotonic_us"] = arrival_us
        else:
            for data, ts, keyframe in frames:
                pts = ts - base
                packets.append(EncodedPacket(data, pts, pts, True, arrival_us, "audio"))
            self.stats["audio_packets"] += len(frames)

    def _went_back(self, ticks: int, clock_rate: int) -> None:
        """A video timestamp `ticks` before the newest one: jitter (under JITTER_S, counted; the recorder
        evens it out), B-frames (under a second: the native client cannot order them), or a restart."""
        if ticks < JITTER_S * clock_rate:
            self.stats["timestamp_jitter"] += 1
        elif ticks < REORDER_LIMIT_S * clock_rate:
            raise ReorderedFrames(f"{self.where}: video timestamps go back (B-frames?): not supported by the "
                                  f"native client")
        else:
            raise ConnectionError(f"{self.where}: video timestamps jumped back {ticks / clock_rate:.1f} s "
                                  f"(the camera restarted?)")

    def _message(self, message: RtspMessage) -> None:
        if message.method:  # the server asks something (rare): answer what we can
            self.stats["server_requests"] += 1
            if message.method == "REDIRECT":
                self.finish(ConnectionError(f"{self.where}: the camera redirects to {message.header('location')}"))
                return
            ok = message.method in ("OPTIONS", "GET_PARAMETER", "SET_PARAMETER")
            self.send(build_response(200, "OK", message.cseq) if ok else build_response(501, "Not Implemented",
                                                                                          message.cseq))
            return
        if message.status == 401 and self._auth.challenge(message):
            self.stats["reauthentications"] += 1
            self._next_keepalive_s = 0.0  # answer the new challenge with the next tick
        elif message.status >= 300:
            self.stats["keepalive_errors"] += 1
            log.info("%s: keep-alive answered %d %s", self.where, message.status, message.reason)

    # periodic work (loop thread)

    def on_tick(self, now_s: float) -> bool:
        if self.finished:
            return False
        if self._next_keepalive_s is None:
            self._next_keepalive_s, self._next_rtcp_s = now_s + self._keepalive_s, now_s + 1.0
        if now_s >= self._next_keepalive_s:
            self._next_keepalive_s = now_s + self._keepalive_s
            self.send(self.request(self._keepalive_method, self._control_url))
            self.stats["keepalives"] += 1
        if now_s >= self._next_rtcp_s:
            self._next_rtcp_s = now_s + RTCP_INTERVAL_S
            self._send_reports()
        self._flush()
        return not self.finished

    def _send_reports(self) -> None:
        for channel in self.channels:
            if channel.track.ssrc is None:
                continue
            dlsr = round((self._clocks.monotonic_us() / 1e6 - channel.lsr_at_s) * 65536) if channel.lsr else 0
            block = channel.track.report_block(lsr=channel.lsr, dlsr=dlsr)
            rtcp = receiver_report(self._ssrc, [block], cname=self._cname)
            self.send(b"$" + bytes((channel.rtcp_channel,)) + len(rtcp).to_bytes(2, "big") + rtcp)
            self.stats["rtcp_reports"] += 1

    def request(self, method: str, uri: str) -> bytes:
        headers = {"Session": self._session_id}
        authorization = self._auth.authorization(method, uri)
        if authorization:
            headers["Authorization"] = authorization
        self._cseq += 1
        return build_request(method, uri, self._cseq, headers)

    def send(self, data: bytes) -> None:
        """Queue `data` and send what the socket takes now (never blocks)."""
        if len(self._outbox) + len(data) > MAX_OUTBOX_BYTES:
            self.finish(ConnectionError(f"{self.where}: the camera stopped reading our requests"))
            return
        self._outbox += data
        self._flush()

    def _flush(self) -> None:
        if not self._outbox or self.finished:
            return
        try:
            sent = self.sock.send(self._outbox)
        except WOULD_BLOCK:
            return
        except OSError as exc:
            self.finish(exc)
            return
        self._outbox = self._outbox[sent:]

    # the end

    def finish(self, exc: BaseException | None) -> None:
        """The connection ended (`exc` None: the server closed it or said BYE): tell the consumer."""
        if self.finished:
            return
        self.finished = True
        self.mailbox.put(exc if exc is not None else END)

    def on_removed(self, error: BaseException | None = None) -> None:
        """Say TEARDOWN if the connection still works (best effort, never blocking), then close.
        Removed for an `error` (a bug in handling its bytes), the consumer hears of it at once."""
        if error is not None and not self.finished:
            self.finish(ConnectionError(f"{self.where}: reading the stream failed: {error!r}"))
        if not self.finished:
            self.finished = True
            try:
                self.sock.send(self._outbox + self.request("TEARDOWN", self._control_url))
            except OSError:
                pass
        try:
            self.sock.close()
        except OSError:
            pass
