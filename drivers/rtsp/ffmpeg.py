"""Network cameras over RTSP: `RtspCamera` demuxes a camera's H.264 stream (and its audio) with PyAV, never decoding.

The camera's first audio stream comes along as it is (AAC, G.711 µ-law/A-law, ...) as packets with
`track == "audio"`, timed on the video's clock (FFmpeg maps both to one timeline through the RTCP
sender reports); turning codecs that MP4 cannot carry into AAC is the recorder's job.

    CameraError (ConnectionError)        cannot connect, refused, 404, bad codec, stream broke off
    └── CameraStalled (TimeoutError)     connected, but no packet within `timeout_s`

The recorder treats any ConnectionError/TimeoutError from a source as a source failure and retries;
`drivers` cannot import `recorder`, so these are the driver's own classes. Messages name the URL with
its password masked (`rtsp://user:***@host/...`), and so do the chained PyAV errors.

A reader thread per connection pulls packets off PyAV into a bounded mailbox; `packets()` takes them
from there. This is what lets `close()` from another thread end a blocked `packets()` at once (PyAV
has no cancel flag), and what makes stall detection exact: FFmpeg's socket timeout fires once per
read call and its RTSP demuxer retries after the first, so a stalled read there only fails after
twice the timeout.

Cost at many cameras (bench/remux: 64 streams on 2 cores) shapes two choices:
- PyAV gets an open timeout but no read timeout. PyAV checks its timeouts in FFmpeg's interrupt
  callback, which takes the GIL, and FFmpeg calls it around every socket read: several times per
  RTP packet, thousands of GIL round trips a second per camera, which doubled the CPU of demuxing.
  Reads are bounded by FFmpeg's own socket timeout (the `timeout` option) instead.
- Packets cross from the reader thread to the consumer in batches: the reader appends without
  waking anyone, and the consumer takes whatever has gathered at most every `batch_s` (0.2 s), so
  each camera costs a few thread wake-ups a second instead of two per frame. It only waits, and
  gets woken, when nothing is there.
"""
from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av

from drivers.rtsp.mailbox import END, Mailbox
from drivers.rtsp.protocol import server_address
from base.clock import Clocks
from base.credentials import mask_credentials
from base.media import AudioInfo, EncodedPacket, StreamInfo

SUPPORTED_CODECS = ("h264",)
TRANSPORTS = ("tcp", "udp")  # RTP interleaved in the RTSP connection (the default), or over UDP
QUEUE_PACKETS = 256  # the mailbox's bound: past it the reader stops reading, and TCP holds the camera back
BATCH_S = 0.2  # the consumer takes packets at most this often (a recording's fragments are ~1 s)
PROBE_TIMEOUT_S = 0.5  # a camera that does not accept a TCP connection within this is not answering


class CameraError(ConnectionError):
    """A camera could not be opened, or its stream broke off."""


class CameraStalled(CameraError, TimeoutError):
    """A connected camera delivered no packet within its timeout."""


class CameraRefused(CameraError):
    """The camera answered and refused: wrong user or password (401, 403) or no such stream (404).
    Trying again soon will not help, so the recorder waits long between attempts (`refused` says so
    to layers that cannot import this class)."""

    refused = True


REFUSED_STATUSES = frozenset({401, 403, 404})


def probe(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the camera at `url` accepts a TCP connection now (within `timeout_s`): the cheap check
    a recorder makes between attempts to notice a camera that is back."""
    try:
        _scheme, host, port = server_address(url)
    except ValueError:
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


@dataclass(slots=True)
class RtspStatistics:
    """Counters of one camera over all its connections (read from any thread)."""

    connects: int = 0
    packets: int = 0
    bytes: int = 0
    skipped_empty: int = 0
    skipped_no_timestamp: int = 0
    skipped_no_picture: int = 0
    audio_packets: int = 0
    audio_bytes: int = 0
    audio_skipped: int = 0  # empty, or without a timestamp
    backfilled_timestamps: int = 0
    non_monotonic_dts: int = 0
    dropped_at_end: int = 0  # the frame FFmpeg flushed when the stream ended or stalled (it may be cut short)
    dropped_split_frames: int = 0  # a frame FFmpeg handed on in two pieces, and the frames up to the next keyframe
    stalls: int = 0
    errors: int = 0
    opened_monotonic_us: int | None = None
    last_packet_monotonic_us: int | None = None


class RtspCamera:
    """One RTSP stream of a network camera, as a `PacketSource` of H.264 packets (remux only).

    `timeout_s` bounds connecting (each of FFmpeg's open steps) and the gap between two packets.
    `transport` "udp" is for cameras that refuse RTP over TCP (the native client's fallback for them).
    `packets()` hands packets over in batches, at most every `batch_s` (0 for each one at once);
    `EncodedPacket.arrival_us` still says when each arrived.
    """

    def __init__(self, url: str, *, name: str, clocks: Clocks, timeout_s: float = 10.0, batch_s: float = BATCH_S,
                 audio: bool = True, transport: str = "tcp"):
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, not {timeout_s!r}")
        if not 0 <= batch_s < timeout_s:
            raise ValueError(f"batch_s must be at least 0 and below timeout_s, not {batch_s!r}")
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
        self.url = url
        self.name = name
        self.timeout_s = timeout_s
        self.batch_s = batch_s
        self.audio = audio
        self.transport = transport
        self._clocks = clocks
        self._stats = RtspStatistics()
        self._reader: _Reader | None = None
        self._closes = 0  # counts close() calls, so one during open() is noticed

    def __repr__(self) -> str:
        return f"RtspCamera({mask_credentials(self.url)!r}, name={self.name!r})"

    def open(self) -> StreamInfo:
        """Connect and return the video stream's info; a new connection every time (closing any old one).

        Blocks until connected, at most about twice `timeout_s`; a `close()` meanwhile makes it
        raise CameraError once the connection is made.
        """
        self.close()
        closes = self._closes
        container = self._connect()
        try:
            stream = self._video_stream(container)
            audio = container.streams.audio[0] if self.audio and container.streams.audio else None
            info = stream_info(stream, where=mask_credentials(self.url), audio=audio)
            if closes != self._closes:
                raise CameraError(f"{mask_credentials(self.url)}: closed while connecting")
        except BaseException:
            container.close()
            raise
        self._stats.connects += 1
        self._stats.opened_monotonic_us = self._clocks.monotonic_us()
        self._reader = _Reader(container, stream, self._clocks, self._stats, fps=info.fps, timeout_s=self.timeout_s,
                               batch_s=self.batch_s, audio=audio if info.audio is not None else None)
        self._reader.start(f"rtsp-{self.name}")
        return info

    def packets(self) -> Iterator[EncodedPacket]:
        """Yield packets in decode order; return on end of stream or `close()`, raise on failure."""
        reader = self._reader
        if reader is None:
            raise RuntimeError(f"{self!r} is not open")
        try:
            while True:
                batch = reader.take(self.timeout_s)
                if batch is None:
                    self._stats.stalls += 1
                    raise CameraStalled(f"{mask_credentials(self.url)}: no packet for {self.timeout_s:g} s")
                for item in batch:
                    if reader.stopping:
                        return
                    if isinstance(item, EncodedPacket):
                        yield item
                    elif isinstance(item, BaseException):
                        raise self._translate(item, reading=True) from item
                    else:
                        return
        except CameraError:
            reader.stop()  # release the connection now; close() is still the caller's to call
            raise

    def close(self) -> None:
        """Drop the connection; safe from any thread, ends a blocked `packets()` at once.

        The reader thread closes the PyAV container itself when its current read returns, which
        for a stalled camera is up to twice `timeout_s` later.
        """
        self._closes += 1
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.stop()

    def probe(self) -> bool:
        """Whether the camera accepts a TCP connection now (see `probe`)."""
        return probe(self.url)

    def statistics(self) -> dict[str, object]:
        out = {name: getattr(self._stats, name) for name in RtspStatistics.__slots__}
        reader = self._reader
        out["queued_packets"] = reader.queued if reader is not None else 0
        return out

    def _connect(self) -> av.container.InputContainer:
        options = {
            "rtsp_transport": self.transport,
            "allowed_media_types": "video+audio" if self.audio else "video",
            "timeout": str(round(self.timeout_s * 1_000_000)),  # socket I/O timeout, µs
        }
        started_us = self._clocks.monotonic_us()  # the real clock in service, as PyAV's own timeout is
        try:
            # No read timeout: PyAV would check it under the GIL on every socket read (module docstring).
            return av.open(self.url, options=options, timeout=(self.timeout_s, None))
        except (av.FFmpegError, OSError) as exc:
            # FFmpeg's RTSP demuxer reports an interrupted handshake as "Invalid data" or the like
            timed_out = self._clocks.monotonic_us() - started_us >= self.timeout_s * 1e6
            raise self._translate(exc, reading=False, timed_out=timed_out) from _scrubbed(exc, self.url)

    def _video_stream(self, container: av.container.InputContainer) -> av.video.stream.VideoStream:
        if not container.streams.video:
            raise CameraError(f"{mask_credentials(self.url)}: no video stream")
        return container.streams.video[0]

    def _translate(self, exc: BaseException, *, reading: bool, timed_out: bool = False) -> CameraError:
        """The driver's error for a PyAV/OS error; timeouts while reading are stalls."""
        _scrubbed(exc, self.url)
        where = mask_credentials(self.url)
        timed_out = timed_out or isinstance(exc, (av.error.ExitError, TimeoutError))
        if timed_out and reading:
            self._stats.stalls += 1
            return CameraStalled(f"{where}: no packet for {self.timeout_s:g} s")
        self._stats.errors += 1
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        if timed_out:
            return CameraError(f"{where}: no answer within {self.timeout_s:g} s ({reason})")
        verb = "stream broke off" if reading else "cannot open"
        if isinstance(exc, (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError, av.error.HTTPNotFoundError)):
            return CameraRefused(f"{where}: {verb}: {reason}")
        return CameraError(f"{where}: {verb}: {reason}")


def stream_info(stream: av.video.stream.VideoStream, *, where: str,
                audio: av.audio.stream.AudioStream | None = None) -> StreamInfo:
    """The StreamInfo of a demuxed video stream (and its audio stream); CameraError for video codecs
    the recorder cannot take."""
    ctx = stream.codec_context
    codec = ctx.name if ctx is not None else "unknown"
    if codec not in SUPPORTED_CODECS:
        raise CameraError(f"{where}: video codec {codec} not supported yet (only {', '.join(SUPPORTED_CODECS)})")
    rate = stream.average_rate or stream.guessed_rate
    extradata = ctx.extradata
    return StreamInfo(
        codec=codec,
        width=ctx.width,
        height=ctx.height,
        time_base=Fraction(stream.time_base),
        extradata=bytes(extradata) if extradata else None,
        fps=float(rate) if rate else None,
        audio=audio_info(audio) if audio is not None else None,
    )


def audio_info(stream: av.audio.stream.AudioStream) -> AudioInfo | None:
    """The AudioInfo of a demuxed audio stream, or None when FFmpeg could not tell its format."""
    ctx = stream.codec_context
    if ctx is None or not ctx.sample_rate or not ctx.channels:
        return None
    extradata = ctx.extradata
    return AudioInfo(codec=ctx.name, sample_rate=ctx.sample_rate, channels=ctx.channels,
                     time_base=Fraction(stream.time_base), extradata=bytes(extradata) if extradata else None)


class _Reader:
    """The thread that reads one connection's packets into a mailbox, then closes the container."""

    def __init__(self, container, stream, clocks: Clocks, stats: RtspStatistics, *, fps: float | None,
                 timeout_s: float, batch_s: float = BATCH_S, audio=None):
        self._mailbox = Mailbox(batch_s=batch_s, bound=QUEUE_PACKETS, clocks=clocks)
        self._audio = audio
        self._audio_index = audio.index if audio is not None else -1
        self._timeout_s = timeout_s
        self._container = container
        self._stream = stream
        self._clocks = clocks
        self._stats = stats
        self._stopping = self._mailbox.stopping
        self._fixer = _TimestampFixer(stats, default_duration=_frame_duration(stream, fps))
        self._held: EncodedPacket | None = None  # the newest video frame, until the next proves it whole
        extradata = stream.codec_context.extradata
        self._annexb = not (extradata and extradata[0] == 1)  # FFmpeg's RTSP H.264 comes with start codes
        self._need_keyframe = False  # after a split frame, until the next keyframe

    def start(self, name: str) -> None:
        threading.Thread(target=self._run, name=name, daemon=True).start()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def queued(self) -> int:
        return len(self._mailbox.items)

    def stop(self) -> None:
        self._mailbox.stop()

    def take(self, timeout_s: float) -> list[object] | None:
        """Everything gathered, after letting it gather for `batch_s`; None if nothing came in `timeout_s`."""
        return self._mailbox.take(timeout_s)

    def _run(self) -> None:
        try:
            self._pump()
            self._drop_held()
            self._put(END)
        except Exception as exc:  # handed to the consumer, which translates it
            self._put(exc)
        finally:
            self._container.close()

    def _pump(self) -> None:
        """Demux into the mailbox. The newest video frame is held back until the next one comes: when
        the stream ends (EOF) or a read times out, FFmpeg's parser flushes the frame it was still
        assembling, which lacks its tail when the camera went mid-frame (a power cut, RTP over UDP), and
        such a frame is not recorded (`dropped_at_end`): every frame handed on is whole."""
        read_started = video_at = self._clocks.monotonic_us() / 1e6
        streams = (self._stream, self._audio) if self._audio is not None else (self._stream,)
        for packet in self._container.demux(streams):
            if self._stopping.is_set():
                return
            # A read that took the whole timeout was ended by FFmpeg's socket timeout, which makes its
            # parser flush the frame it held and retry: that is the stall, report it now rather than
            # one timeout later, and leave the flushed frame (this packet) out. The held one is whole:
            # the parser let it go when the next frame began.
            now = self._clocks.monotonic_us() / 1e6
            if now - read_started >= self._timeout_s:
                if self._held is not None:
                    self._put(self._held)
                    self._held = None
                self._stats.dropped_at_end += 1
                raise TimeoutError(f"no packet for {self._timeout_s:g} s")
            for out in self._convert(packet):
                if out.track == "video":
                    held, self._held = self._held, out
                    if held is not None:
                        self._put(held)
                else:
                    self._put(out)
            if packet.stream_index != self._audio_index:
                video_at = now
            elif now - video_at >= self._timeout_s:  # audio alone does not make a recording
                raise TimeoutError(f"no video packet for {self._timeout_s:g} s")
            read_started = now

    def _convert(self, packet: av.Packet) -> list[EncodedPacket]:
        arrival_us = self._clocks.monotonic_us()
        if packet.stream_index == self._audio_index:
            return self._convert_audio(packet, arrival_us)
        if packet.size == 0:
            self._stats.skipped_empty += 1
            return []
        data = memoryview(packet).tobytes()  # the one copy out of FFmpeg's buffer (a little quicker than bytes())
        if self._annexb and data[:3] != b"\x00\x00\x01" and data[:4] != b"\x00\x00\x00\x01":
            self._split_frame()
            return []
        if not has_picture(data):
            self._stats.skipped_no_picture += 1
            return []
        pts, dts = packet.pts, packet.dts
        out = EncodedPacket(data=data, pts=pts if pts is not None else dts, dts=dts if dts is not None else pts,
                            keyframe=packet.is_keyframe, arrival_us=arrival_us)
        if self._need_keyframe:
            if not out.keyframe:
                self._stats.dropped_split_frames += 1
                return []
            self._need_keyframe = False
        ready = self._fixer.fix(out, packet.duration)
        for item in ready:
            self._stats.packets += 1
            self._stats.bytes += len(item.data)
            self._stats.last_packet_monotonic_us = arrival_us
        return ready

    def _convert_audio(self, packet: av.Packet, arrival_us: int) -> list[EncodedPacket]:
        pts = packet.pts if packet.pts is not None else packet.dts
        if packet.size == 0 or pts is None:
            self._stats.audio_skipped += 1
            return []
        data = memoryview(packet).tobytes()
        self._stats.audio_packets += 1
        self._stats.audio_bytes += len(data)
        return [EncodedPacket(data=data, pts=pts, dts=pts, keyframe=True, arrival_us=arrival_us, track="audio")]

    def _put(self, item: object) -> None:
        self._mailbox.put_bounded(item)  # full (a slow disk): stop reading meanwhile

    def _split_frame(self) -> None:
        """FFmpeg's parser handed on a frame in two pieces (seen reading VLC over UDP, about 2 s into the
        stream, where FFmpeg's stream probe ends; design/rtsp-interop.md): this piece has no start code
        and the held frame lacks its tail. Both are left out, and the frames after them up to the next
        keyframe (they would refer to the broken one), as the native client does after a loss."""
        self._stats.dropped_split_frames += 1
        if self._held is not None:
            self._held = None
            self._stats.packets -= 1
            self._stats.dropped_split_frames += 1
        self._need_keyframe = True

    def _drop_held(self) -> None:
        """Leave out the frame FFmpeg flushed at the end of the stream or of a timed-out read."""
        if self._held is not None:
            self._held = None
            self._stats.packets -= 1
            self._stats.dropped_at_end += 1


class _TimestampFixer:
    """Gives a timestamp-less packet (FFmpeg's RTSP demuxer leaves the very first one without) the
    DTS one frame before its successor's, or drops it when that would not be increasing."""

    def __init__(self, stats: RtspStatistics, *, default_duration: int):
        self._stats = stats
        self._default_duration = default_duration
        self._held: tuple[EncodedPacket, int] | None = None
        self._last_dts: int | None = None

    def fix(self, packet: EncodedPacket, duration: int | None) -> list[EncodedPacket]:
        if packet.dts is None:
            if self._held is not None:
                self._stats.skipped_no_timestamp += 1
            self._held = (packet, duration or self._default_duration)
            return []
        out = self._release(packet.dts)
        if self._last_dts is not None and packet.dts <= self._last_dts:
            self._stats.non_monotonic_dts += 1
        self._last_dts = packet.dts
        out.append(packet)
        return out

    def _release(self, next_dts: int) -> list[EncodedPacket]:
        if self._held is None:
            return []
        (held, duration), self._held = self._held, None
        dts = next_dts - duration
        if self._last_dts is not None and dts <= self._last_dts:
            self._stats.skipped_no_timestamp += 1
            return []
        held.pts = held.dts = dts
        self._stats.backfilled_timestamps += 1
        return [held]


def has_picture(data: bytes) -> bool:
    """Whether an H.264 access unit (Annex B or 4-byte length-prefixed) holds a coded slice.

    FFmpeg flushes a partial access unit (often a lone access unit delimiter) when a read fails;
    such a packet is no frame and must not reach a recording.
    """
    if data[:3] == b"\x00\x00\x01" or data[:4] == b"\x00\x00\x00\x01":
        first = 3 if data[2] == 1 else 4
        if len(data) > first and 1 <= data[first] & 0x1F <= 5:
            return True  # the usual access unit: one slice, nothing before it
        return any(1 <= nal_type <= 5 for nal_type in _annexb_nal_types(data))
    return any(1 <= nal_type <= 5 for nal_type in _avcc_nal_types(data))


def _annexb_nal_types(data: bytes) -> Iterator[int]:
    start = data.find(b"\x00\x00\x01")
    while start >= 0 and start + 3 < len(data):
        yield data[start + 3] & 0x1F
        start = data.find(b"\x00\x00\x01", start + 3)


def _avcc_nal_types(data: bytes) -> Iterator[int]:
    pos = 0
    while pos + 4 < len(data):
        yield data[pos + 4] & 0x1F
        pos += 4 + int.from_bytes(data[pos:pos + 4], "big")


def _frame_duration(stream, fps: float | None) -> int:
    """One frame in the stream's time base (fallback 25 fps)."""
    return max(1, round(1 / ((fps or 25.0) * Fraction(stream.time_base))))


def _scrubbed(exc: BaseException, url: str) -> BaseException:
    """`exc` with the URL's password masked in its args (PyAV puts the URL in its message)."""
    masked = mask_credentials(url)
    if masked != url:
        exc.args = tuple(_mask_arg(arg, url, masked) for arg in exc.args)
    return exc


def _mask_arg(arg: object, url: str, masked: str) -> object:
    if isinstance(arg, str):
        return arg.replace(url, masked)
    if isinstance(arg, tuple):
        return tuple(_mask_arg(item, url, masked) for item in arg)
    return arg
