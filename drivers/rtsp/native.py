"""Network cameras over RTSP with our own client: `NativeRtspCamera`, the cheap `PacketSource` for
H.264 cameras (with AAC or G.711 audio), RTP interleaved in the RTSP TCP connection (or its TLS,
rtsps://).

    CameraError (ConnectionError)            as drivers.rtsp.ffmpeg: cannot connect, refused, 404, broke off
    ├── CameraStalled (TimeoutError)         connected, but no packet within `timeout_s`
    └── NativeUnsupported                    the camera needs something this client does not do
        └── TcpRefused                       (H.265, interleaved packetization, B-frames; UDP
                                             only): `client: auto` then uses FFmpeg instead

`open` negotiates on the caller's thread (OPTIONS, DESCRIBE with Basic or Digest authentication and
redirects, SETUP video and audio, PLAY), then hands the socket to the shared `RtspLoop` thread,
which reads every camera, depacketizes (drivers.rtsp.rtp) and fills this camera's mailbox; `packets()`
takes batches from it. Packets come 4-byte length-prefixed with an avcC `extradata` (no start-code
scanning anywhere), timestamps in RTP clock units from the PLAY instant (RTP-Info), so audio and
video share one clock. design/remux-cpu.md says why.
"""
from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction
from urllib.parse import urlsplit

from base.clock import Clocks
from base.credentials import mask_credentials
from base.h264 import H264Error, avcc_record, parse_sps
from base.media import AudioInfo, EncodedPacket, StreamInfo
from drivers.rtsp.rtp import MAX_PARAMETER_SET_BYTES, AacDepacketizer, G711Depacketizer, H264Depacketizer, RtpTrack
from drivers.rtsp.ffmpeg import (BATCH_S, QUEUE_PACKETS, REFUSED_STATUSES, CameraError, CameraRefused, CameraStalled,
                          probe)
from drivers.rtsp.connection import Channel, Connection, ReorderedFrames
from drivers.rtsp.mailbox import END, Mailbox
from drivers.rtsp.loop import RtspLoop, default_loop
from drivers.rtsp.protocol import (DEFAULT_PORTS, Authenticator, RtspMessage, RtspProtocolError, RtspStreamParser,
                                build_request, camera_tls, parse_interleaved, parse_rtp_info, parse_session,
                                server_address, split_credentials)
from drivers.rtsp.sdp import MediaDescription, SdpError, SessionDescription, h264_parameter_sets, hex_config, parse_sdp

log = logging.getLogger("nvr.rtsp")

MAX_REDIRECTS = 3
STAT_KEYS = ("connects", "packets", "audio_packets", "bytes_read", "stalls", "errors", "keepalives", "rtcp_reports",
             "reauthentications", "keepalive_errors", "server_requests", "backpressure", "bye", "timestamp_jitter")


class NativeUnsupported(CameraError):
    """The camera needs something the native client does not do; FFmpeg's client may.
    `needs_udp` says the camera will not send RTP over TCP."""

    needs_udp = False


class TcpRefused(NativeUnsupported):
    """The camera will not send RTP over TCP (FFmpeg's client can take it over UDP)."""

    needs_udp = True


class NativeRtspCamera:
    """One RTSP stream of a network camera, read by our own client (see the module docstring).

    Same contract as `drivers.rtsp.ffmpeg.RtspCamera`: `open` → StreamInfo (a new connection each time;
    `StreamInfo.audio` and packets of `track == "audio"` when the camera has audio this client reads
    and `audio` is True), `packets()` in decode order until the stream ends or fails, `close()` from
    any thread ends a blocked `packets()` (and a blocked `open()`) at once; `timeout_s` bounds
    connecting and the gap between two packets.
    """

    def __init__(self, url: str, *, name: str, clocks: Clocks, timeout_s: float = 10.0, batch_s: float = BATCH_S,
                 audio: bool = True, loop: RtspLoop | None = None):
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, not {timeout_s!r}")
        if not 0 <= batch_s < timeout_s:
            raise ValueError(f"batch_s must be at least 0 and below timeout_s, not {batch_s!r}")
        self.url = url
        self.name = name
        self.timeout_s = timeout_s
        self.batch_s = batch_s
        self.audio = audio
        self._clocks = clocks
        self._loop = loop
        self._stats: dict = dict.fromkeys(STAT_KEYS, 0)
        self._stats["last_packet_monotonic_us"] = None
        self._connection: Connection | None = None
        self._opening: socket.socket | None = None
        self._closes = 0
        self._channels: list[Channel] = []

    def __repr__(self) -> str:
        return f"NativeRtspCamera({mask_credentials(self.url)!r}, name={self.name!r})"

    def open(self) -> StreamInfo:
        """Connect, negotiate and start playing; returns the stream's info. Blocks at most about `timeout_s`
        per step; a `close()` meanwhile makes it raise CameraError at once."""
        self.close()
        closes = self._closes
        where = mask_credentials(self.url)
        try:
            connection, info = _Negotiation(self, closes).run()
        except CameraError:
            self._stats["errors"] += 1
            raise
        except Exception as exc:  # noqa: BLE001 - a camera's answers no parser here foresaw: this camera only
            self._stats["errors"] += 1
            log.warning("%s: the native client failed on this camera's answers", where, exc_info=True)
            raise NativeUnsupported(f"{where}: the native client cannot read this camera's answers "
                                    f"({type(exc).__name__}: {exc})"[:300]) from exc
        if closes != self._closes:
            connection.on_removed(None)
            raise CameraError(f"{where}: closed while connecting")
        self._stats["connects"] += 1
        self._connection = connection
        connection.sock.setblocking(False)
        (self._loop or default_loop()).add(connection)
        return info

    def packets(self) -> Iterator[EncodedPacket]:
        """Yield packets in decode order (video and audio interleaved); return on end of stream or
        `close()`, raise on failure."""
        connection = self._connection
        if connection is None:
            raise RuntimeError(f"{self!r} is not open")
        mailbox = connection.mailbox
        where = mask_credentials(self.url)
        timeout_us = round(self.timeout_s * 1_000_000)
        video_at_us = self._clocks.monotonic_us()
        while True:
            batch = mailbox.take(self.timeout_s)
            if batch is None:
                self._stats["stalls"] += 1
                self._end(connection)
                raise CameraStalled(f"{where}: no packet for {self.timeout_s:g} s")
            # Per batch, not per packet: audio alone (or a frame that never ends) does not make a recording.
            video_at_us = max(video_at_us, self._stats["last_packet_monotonic_us"] or 0)
            if self._clocks.monotonic_us() - video_at_us > timeout_us:
                self._stats["stalls"] += 1
                self._end(connection)
                raise CameraStalled(f"{where}: no video frame for {self.timeout_s:g} s")
            for item in batch:
                if mailbox.stopping.is_set():
                    return
                if isinstance(item, EncodedPacket):
                    yield item
                elif item is END:
                    return
                elif isinstance(item, BaseException):
                    self._end(connection)
                    raise self._translate(item) from item

    def close(self) -> None:
        """Drop the connection; safe from any thread, ends a blocked `packets()` or `open()` at once."""
        self._closes += 1
        opening, connection, self._connection = self._opening, self._connection, None
        if opening is not None:
            try:
                opening.shutdown(socket.SHUT_RDWR)  # wakes the opening thread's blocked recv
            except OSError:
                pass
        if connection is not None:
            self._end(connection)

    def probe(self) -> bool:
        """Whether the camera accepts a TCP connection now (drivers.rtsp.ffmpeg.probe)."""
        return probe(self.url)

    def statistics(self) -> dict[str, object]:
        out = dict(self._stats)
        connection = self._connection
        out["queued_packets"] = len(connection.mailbox.items) if connection is not None else 0
        if connection is not None:
            parser = connection.parser
            out.update(rtsp_resyncs=parser.resyncs, rtsp_skipped_bytes=parser.skipped_bytes,
                       rtsp_unknown_channel_packets=parser.unhandled)
        for channel in self._channels:
            track = channel.track.stats
            out[f"{channel.kind}_rtp_packets"] = track.packets
            out[f"{channel.kind}_rtp_lost"] = track.lost
            out[f"{channel.kind}_bad_packets"] = track.bad_packets
            out[f"{channel.kind}_dropped_frames"] = track.dropped_frames
            oversized = getattr(channel.track.depacketizer, "oversized", None)
            if oversized is not None:  # frames dropped at MAX_ACCESS_UNIT_BYTES / _PARTS / the span bound
                out[f"{channel.kind}_oversized_frames"] = oversized
        return out

    def _end(self, connection: Connection) -> None:
        connection.mailbox.stop()
        (self._loop or default_loop()).remove(connection)

    def _translate(self, exc: BaseException) -> CameraError:
        where = mask_credentials(self.url)
        self._stats["errors"] += 1
        if isinstance(exc, CameraError):
            return exc
        if isinstance(exc, ReorderedFrames):
            return NativeUnsupported(str(exc))
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return CameraError(f"{where}: stream broke off: {reason}")


class _Negotiation:
    """The blocking handshake of one `open()`: from TCP connect to the PLAY answer."""

    def __init__(self, camera: NativeRtspCamera, closes: int):
        self.camera = camera
        self.closes = closes
        self.where = mask_credentials(camera.url)
        self.timeout_s = camera.timeout_s
        self.url, user, password = split_credentials(camera.url)
        self.auth = Authenticator(user, password)
        self.sock: socket.socket | None = None
        self.parser = RtspStreamParser()
        self.cseq = 0
        self.session_id: str | None = None
        self.session_timeout_s = 60.0
        self.deadline = 0.0

    def run(self) -> tuple[Connection, StreamInfo]:
        try:
            return self._run()
        except BaseException:
            self._close_socket()
            raise

    def _run(self) -> tuple[Connection, StreamInfo]:
        for _ in range(MAX_REDIRECTS + 1):
            self._connect()
            public = self._options()
            describe = self._request("DESCRIBE", self.url, {"Accept": "application/sdp"})
            location = describe.header("location")
            if 300 <= describe.status < 400 and location:
                self._close_socket()
                self._redirect(location)
                continue
            self._check(describe, "DESCRIBE")
            sdp = self._sdp(describe)
            return self._play(sdp, public)
        raise CameraError(f"{self.where}: cannot open: more than {MAX_REDIRECTS} redirects")

    def _redirect(self, location: str) -> None:
        """Go where a 3xx points. The camera's credentials go along only to the same host (and never
        from rtsps:// to plain rtsp://): anyone on the LAN can answer with a redirect."""
        target, user, password = split_credentials(_absolute(self.url, location))
        if user is None and _same_origin(self.url, target):
            user, password = self.auth.user, self.auth.password
        self.url = target
        self.auth = Authenticator(user, password)
        self.session_id = None

    # connection and requests

    def _connect(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme.lower() not in DEFAULT_PORTS:
            raise NativeUnsupported(f"{self.where}: {parts.scheme}:// is not supported by the native client")
        try:
            scheme, host, port = server_address(self.url)
        except ValueError as exc:
            raise CameraError(f"{self.where}: cannot open: bad URL ({exc})") from None
        self.deadline = self.camera._clocks.monotonic_us() / 1e6 + self.timeout_s
        try:
            self.sock = socket.create_connection((host, port), timeout=self.timeout_s)
        except TimeoutError as exc:
            raise CameraError(f"{self.where}: no answer within {self.timeout_s:g} s (connect)") from exc
        except OSError as exc:
            raise CameraError(f"{self.where}: cannot open: {exc.strerror or exc}") from exc
        self.camera._opening = self.sock
        if self.closes != self.camera._closes:
            raise CameraError(f"{self.where}: closed while connecting")
        if scheme == "rtsps":
            self._start_tls(host)

    def _start_tls(self, host: str) -> None:
        """TLS over the connection (see camera_tls: encrypted, the camera's identity unchecked)."""
        try:
            self.sock = camera_tls(self.sock, host)
        except (ssl.SSLError, OSError) as exc:
            raise self._io_error(exc, "TLS handshake") from exc
        self.camera._opening = self.sock

    def _close_socket(self) -> None:
        if self.camera._opening is self.sock:
            self.camera._opening = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _request(self, method: str, uri: str, headers: dict[str, str] | None = None) -> RtspMessage:
        """Send a request and wait for its answer, answering one authentication challenge."""
        for _ in range(3):
            self.cseq += 1
            all_headers = dict(headers or {})
            if self.session_id:
                all_headers["Session"] = self.session_id
            authorization = self.auth.authorization(method, uri)
            if authorization:
                all_headers["Authorization"] = authorization
            self._send(build_request(method, uri, self.cseq, all_headers))
            response = self._response(self.cseq, method)
            if response.status == 401 and self.auth.challenge(response):
                continue
            return response
        return response

    def _send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise self._io_error(exc, "sending") from exc

    def _response(self, cseq: int, method: str) -> RtspMessage:
        while True:
            chunk = self._recv_before_deadline(f"no answer within {self.timeout_s:g} s ({method})", method, method)
            try:
                messages = self.parser.feed(chunk)
            except RtspProtocolError as exc:
                raise CameraError(f"{self.where}: cannot open: {exc}") from exc
            for message in messages:
                if message.status and message.cseq in (cseq, None):
                    self.deadline = self.camera._clocks.monotonic_us() / 1e6 + self.timeout_s
                    return message

    def _io_error(self, exc: OSError, what: str) -> CameraError:
        if self.closes != self.camera._closes:
            return CameraError(f"{self.where}: closed while connecting")
        if isinstance(exc, TimeoutError):
            return CameraError(f"{self.where}: no answer within {self.timeout_s:g} s ({what})")
        return CameraError(f"{self.where}: cannot open: {what}: {exc.strerror or exc}")

    def _closed_error(self, what: str) -> CameraError:
        if self.closes != self.camera._closes:
            return CameraError(f"{self.where}: closed while connecting")
        return CameraError(f"{self.where}: cannot open: the camera closed the connection during {what}")

    def _check(self, response: RtspMessage, method: str) -> None:
        if 200 <= response.status < 300:
            return
        hint = " (wrong user or password?)" if response.status == 401 and self.auth.user else ""
        kind = CameraRefused if response.status in REFUSED_STATUSES else CameraError
        raise kind(f"{self.where}: cannot open: {method} answered {response.status} {response.reason[:80]}{hint}")

    # the steps

    def _options(self) -> set[str]:
        response = self._request("OPTIONS", self.url)
        if not 200 <= response.status < 300:
            return set()  # some cameras refuse OPTIONS; DESCRIBE says what matters
        return {m.strip().upper() for m in (response.header("public") or "").split(",") if m.strip()}

    def _sdp(self, describe: RtspMessage) -> SessionDescription:
        base = describe.header("content-base") or describe.header("content-location") or self.url
        try:
            sdp = parse_sdp(describe.body, base_url=split_credentials(base)[0])
        except SdpError as exc:
            raise NativeUnsupported(f"{self.where}: cannot open: {exc}") from exc
        # Some cameras echo user:password@ into absolute control URLs; requests never carry them.
        media = [replace(m, control=split_credentials(m.control)[0]) for m in sdp.media]
        return replace(sdp, media=media, control=split_credentials(sdp.control)[0])

    def _play(self, sdp: SessionDescription, public: set[str]) -> tuple[Connection, StreamInfo]:
        video_media = _video(sdp, self.where)
        audio_media, audio_info = _audio(sdp) if self.camera.audio else (None, None)
        video = self._setup(video_media, _video_track(video_media), "video", 0)
        channels = [video]
        if audio_media is not None:
            audio = self._setup(audio_media, _audio_track(audio_media), "audio", 2, optional=True)
            if audio is not None:
                channels.append(audio)
            else:
                audio_info = None
        mailbox = Mailbox(batch_s=self.camera.batch_s, bound=QUEUE_PACKETS, clocks=self.camera._clocks)
        connection = self._connection(sdp, channels, mailbox, public)
        play = self._request("PLAY", sdp.control, {"Range": "npt=0.000-"})
        self._check(play, "PLAY")
        _apply_rtp_info(play, channels, sdp)
        connection.cseq_after(self.cseq)
        info = self._stream_info(video_media, video, connection, audio_info)
        self.camera._channels = channels
        self.camera._opening = None
        return connection, info

    def _setup(self, media: MediaDescription, track: RtpTrack, kind: str, first_channel: int, *,
               optional: bool = False) -> Channel | None:
        transport = f"RTP/AVP/TCP;unicast;interleaved={first_channel}-{first_channel + 1}"
        response = self._request("SETUP", media.control, {"Transport": transport})
        accepted = 200 <= response.status < 300
        over_tcp = "TCP" in (response.header("transport") or "TCP").upper()
        if not (accepted and over_tcp):
            if optional:
                return None  # the stream goes on without this (audio) track
            if response.status == 461 or accepted:  # 461 Unsupported Transport, or it offered UDP instead
                raise TcpRefused(f"{self.where}: the camera will not send RTP over TCP "
                                        f"(SETUP answered {response.status} {response.reason})")
            self._check(response, "SETUP")
        session = parse_session(response.header("session"))
        if session is None and self.session_id is None:
            raise CameraError(f"{self.where}: cannot open: SETUP answered without a session")
        if session is not None:
            self.session_id, self.session_timeout_s = session.session_id, session.timeout_s
        rtp, rtcp = parse_interleaved(response.header("transport")) or (first_channel, first_channel + 1)
        return Channel(track, kind, rtp, rtcp)

    def _connection(self, sdp: SessionDescription, channels: list[Channel], mailbox: Mailbox,
                    public: set[str]) -> Connection:
        keepalive = "GET_PARAMETER" if "GET_PARAMETER" in public else "OPTIONS"
        return Connection(sock=self.sock, parser=self.parser, channels=channels, mailbox=mailbox,
                          clocks=self.camera._clocks, auth=self.auth, control_url=sdp.control,
                          session_id=self.session_id, keepalive_method=keepalive,
                          keepalive_s=max(1.0, min(30.0, self.session_timeout_s / 2)), next_cseq=self.cseq,
                          where=self.where, stats=self.camera._stats)

    def _stream_info(self, media: MediaDescription, video: Channel, connection: Connection,
                     audio: AudioInfo | None) -> StreamInfo:
        depacketizer: H264Depacketizer = video.track.depacketizer
        for nal in h264_parameter_sets(media.fmtp):
            if len(nal) > MAX_PARAMETER_SET_BYTES:
                continue  # garbage: the in-band ones may still come
            if nal[0] & 0x1F == 7 and depacketizer.sps is None:
                depacketizer.sps = nal
            elif nal[0] & 0x1F == 8 and depacketizer.pps is None:
                depacketizer.pps = nal
        while depacketizer.sps is None or depacketizer.pps is None:
            self._read_into(connection)  # parameter sets only in-band: wait for the first keyframe
        try:
            sps = parse_sps(depacketizer.sps)
            extradata = avcc_record(depacketizer.sps, depacketizer.pps)
        except H264Error as exc:
            raise NativeUnsupported(f"{self.where}: unreadable H.264 parameter sets: {exc}") from exc
        return StreamInfo(codec="h264", width=sps.width, height=sps.height,
                          time_base=Fraction(1, media.clock_rate), extradata=extradata,
                          fps=sps.fps or media.framerate, audio=audio)

    def _read_into(self, connection: Connection) -> None:
        chunk = self._recv_before_deadline(f"no H.264 parameter sets within {self.timeout_s:g} s",
                                           "waiting for the parameter sets", "the first frames")
        connection.feed(chunk)
        mailbox = connection.mailbox
        if connection.finished:
            failure = next((i for i in mailbox.items if isinstance(i, BaseException)), None)
            if isinstance(failure, ReorderedFrames):  # B-frames ahead of the first keyframe: FFmpeg's client can
                raise NativeUnsupported(str(failure)) from failure  # (so `client: auto` falls back in this open)
            raise CameraError(f"{self.where}: cannot open: the stream ended before its parameter sets"
                              + (f" ({failure})" if failure is not None else ""))
        if len(mailbox.items) > mailbox.bound:
            # Frames before the parameter sets cannot be recorded anyway (the recorder starts at a
            # keyframe): the mailbox keeps its bound while nobody consumes it yet.
            mailbox.items.clear()

    def _recv_before_deadline(self, late: str, reading: str, closed: str) -> bytes:
        """One read from the camera bounded by the opening deadline; errors say `late` (deadline passed),
        `reading` (socket error) or `closed` (the camera hung up)."""
        remaining = self.deadline - self.camera._clocks.monotonic_us() / 1e6
        if remaining <= 0:
            raise CameraError(f"{self.where}: {late}")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except OSError as exc:
            raise self._io_error(exc, reading) from exc
        if not chunk:
            raise self._closed_error(closed)
        return chunk


def _absolute(url: str, location: str) -> str:
    """A Location header as an absolute rtsp(s):// URL (a path is taken relative to `url`'s host)."""
    if location.lower().startswith(("rtsp://", "rtsps://")):
        return location
    parts = urlsplit(split_credentials(url)[0])
    return f"{parts.scheme}://{parts.netloc}/{location.lstrip('/')}"


def _same_origin(url: str, target: str) -> bool:
    """Whether `target` is on `url`'s host, and not a step down from rtsps:// to rtsp://."""
    try:
        old, new = urlsplit(url), urlsplit(target)
        old_host, new_host = old.hostname, new.hostname
    except ValueError:
        return False
    downgrade = old.scheme.lower() == "rtsps" and new.scheme.lower() != "rtsps"
    return bool(old_host) and old_host == new_host and not downgrade


def _video(sdp: SessionDescription, where: str) -> MediaDescription:
    media = sdp.first("video")
    if media is None:
        raise CameraError(f"{where}: no video stream")
    if media.encoding != "H264":
        codec = {"H265": "hevc", "JPEG": "mjpeg", "MP4V-ES": "mpeg4"}.get(media.encoding, media.encoding.lower())
        raise NativeUnsupported(f"{where}: video codec {codec} not supported yet (only h264)")
    if not media.protocol.upper().startswith("RTP/AVP"):
        raise NativeUnsupported(f"{where}: RTP profile {media.protocol} not supported by the native client")
    if media.fmtp.get("packetization-mode", "0").strip() not in ("0", "1"):
        raise NativeUnsupported(f"{where}: H.264 interleaved packetization is not supported by the native client")
    return media


def _video_track(media: MediaDescription) -> RtpTrack:
    return RtpTrack(H264Depacketizer(), payload_type=media.payload_type, clock_rate=media.clock_rate)


def _audio(sdp: SessionDescription) -> tuple[MediaDescription | None, AudioInfo | None]:
    """The first audio track this client can depacketize, and its AudioInfo; others are left out."""
    for media in sdp.media:
        if media.kind != "audio" or media.direction == "sendonly":
            continue  # sendonly: a camera's speaker (ONVIF back channel), sound goes to it, not from it
        rate = Fraction(1, media.clock_rate)
        if media.encoding in ("PCMU", "PCMA"):
            codec = "pcm_mulaw" if media.encoding == "PCMU" else "pcm_alaw"
            return media, AudioInfo(codec, media.clock_rate, media.channels, rate)
        mode = media.fmtp.get("mode", "").lower()
        if media.encoding == "MPEG4-GENERIC" and mode in ("aac-hbr", "aac-lbr") and hex_config(media.fmtp):
            try:
                _audio_track(media)
            except ValueError as exc:
                log.warning("recording without audio: the camera's AAC parameters are unusable: %s", exc)
                continue
            return media, AudioInfo("aac", media.clock_rate, media.channels, rate, hex_config(media.fmtp))
    return None, None


def _audio_track(media: MediaDescription) -> RtpTrack:
    if media.encoding in ("PCMU", "PCMA"):
        depacketizer = G711Depacketizer()
    else:
        fmtp = media.fmtp
        depacketizer = AacDepacketizer(size_length=_int(fmtp, "sizelength", 13),
                                       index_length=_int(fmtp, "indexlength", 3),
                                       index_delta_length=_int(fmtp, "indexdeltalength", 3),
                                       frame_samples=_int(fmtp, "constantduration", 1024) or 1024)
    return RtpTrack(depacketizer, payload_type=media.payload_type, clock_rate=media.clock_rate)


def _int(fmtp: dict[str, str], name: str, default: int) -> int:
    """An fmtp integer (sign allowed: the depacketizer range-checks it), else `default`."""
    text = str(fmtp.get(name, default)).strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not digits or len(digits) > 9 or not digits.isascii() or not digits.isdigit():
        return default
    return int(text)


def _apply_rtp_info(play: RtspMessage, channels: list[Channel], sdp: SessionDescription) -> None:
    """Media time 0 of each track is its RTP-Info rtptime, so that all tracks start at the PLAY instant."""
    infos = parse_rtp_info(play.header("rtp-info"))
    for number, channel in enumerate(channels):
        info = next((i for i in infos if _same_track(i.get("url", ""), channel, sdp)), None)
        if info is None and len(infos) == len(channels):
            info = infos[number]
        try:
            if info is not None and "rtptime" in info:
                channel.base_ts = channel.track.unwrap_reference(int(info["rtptime"]) & 0xFFFFFFFF)
        except ValueError:
            pass  # a bad rtptime: the first packet's timestamp it is


def _same_track(url: str, channel: Channel, sdp: SessionDescription) -> bool:
    media = [m for m in sdp.media if m.kind == channel.kind]
    return bool(url) and bool(media) and (url == media[0].control or media[0].control.endswith("/" + url.lstrip("/")))
