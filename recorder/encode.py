"""Encoding raw captured frames once to H.264 (libx264, or the board's h264_v4l2m2m, through PyAV), as a PacketSource.

An analog channel with a microphone (`audio`) also yields its AAC packets, read between frames and
timed on the same monotonic clock as the frames (recorder.audio_encode). The microphone is opened and
retried off this thread (recorder.microphone): a failing or hanging one costs the sound, not the video.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from fractions import Fraction

import av
import numpy as np
from av.video.frame import PictureType
from av.video.reformatter import VideoReformatter

from base.clock import Clocks
from base.media import AudioInfo, EncodedPacket, RawFrame, StreamInfo
from hal.video import CaptureError, VideoCapture
from recorder.audio_encode import CapturedAudio
from recorder.errors import SourceError, TracksChanged
from recorder.faults import FaultBoard, FaultSink
from recorder.microphone import OPEN_WAIT_S, Microphone

log = logging.getLogger("nvr.encode")

TIME_BASE = Fraction(1, 90_000)  # frames are timed by the capture clock in microseconds; 90 kHz keeps it exact enough
ENCODERS = ("auto", "libx264", "h264_v4l2m2m")


def pick_encoder(name: str) -> str:
    """The H.264 encoder to use for `name`: 'auto' is h264_v4l2m2m where the board has a working one
    (Raspberry Pi 4 class), else libx264; other names are returned as they are."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of: {', '.join(ENCODERS)}")
    return _probe_hardware_encoder() if name == "auto" else name


@functools.cache
def _probe_hardware_encoder() -> str:
    """Open h264_v4l2m2m once per process (it needs a /dev/video* encoder node); libx264 if that fails."""
    try:
        codec = av.CodecContext.create("h264_v4l2m2m", "w")
        codec.width, codec.height, codec.pix_fmt = 640, 480, "yuv420p"
        codec.time_base = Fraction(1, 25)
        codec.open()
    except (av.FFmpegError, ValueError, OSError) as exc:
        log.info("no hardware H.264 encoder (h264_v4l2m2m: %s); encoding with libx264", exc)
        return "libx264"
    log.info("encoding with the hardware H.264 encoder h264_v4l2m2m")
    return "h264_v4l2m2m"


class EncodedCapture:
    """A VideoCapture (V4L2 card or test pattern) encoded to H.264, meeting `PacketSource`.

    Frames are timed by their capture timestamps, not by counting, so a frame the device dropped
    leaves a gap of the right length instead of shifting everything after it.
    """

    def __init__(self, capture: VideoCapture, *, name: str, clocks: Clocks, bitrate: int,
                 keyframe_interval_s: float = 2.0, preset: str = "veryfast", threads: int = 1,
                 encoder: str = "libx264", audio: CapturedAudio | None = None, faults: FaultSink | None = None,
                 channel: int | None = None, audio_open_wait_s: float = OPEN_WAIT_S):
        """`faults` takes the `audio_lost` alarm of `channel` (a board of its own, where it is only logged,
        when left out); `audio_open_wait_s` is how long a run's start waits for the microphone to open."""
        self.name = name
        self.audio = audio
        self._mic = None if audio is None else Microphone(
            audio, name=name, channel=channel, faults=faults or FaultBoard(clocks=clocks), clocks=clocks,
            open_wait_s=audio_open_wait_s)
        self._capture, self._clocks = capture, clocks
        self._encoder = encoder
        self._bitrate, self._keyint_s, self._preset, self._threads = bitrate, keyframe_interval_s, preset, threads
        self._codec: av.CodecContext | None = None
        self._audio_track: AudioInfo | None = None  # this run's audio track, while there is one
        self.frames_encoded = 0
        # Set by the appliance to show raw frames locally before encoding (recorder.live); must not block.
        self.frame_tap: Callable[[RawFrame], None] | None = None

    @property
    def audio_error(self) -> str | None:
        """Why the microphone is not recording (None while it is, or without one)."""
        return None if self._mic is None else self._mic.error

    def open(self) -> StreamInfo:
        try:
            fmt = self._capture.open()
        except (CaptureError, OSError) as exc:
            raise SourceError(f"{self.name}: capture device failed to open: {exc}") from exc
        self._codec = self._new_codec(fmt.width, fmt.height, fmt.fps)
        self._format = fmt
        self._half_frame_us = round(500_000 / fmt.fps)
        # The microphone's track if it is open (or opens within audio_open_wait_s); else pictures only.
        self._audio_track = None if self._mic is None else self._mic.take()
        return StreamInfo("h264", fmt.width, fmt.height, TIME_BASE, None, fmt.fps, audio=self._audio_track)

    def _new_codec(self, width: int, height: int, fps: float) -> av.CodecContext:
        encoder = pick_encoder(self._encoder)
        codec = av.CodecContext.create(encoder, "w")
        codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
        codec.time_base = TIME_BASE
        codec.framerate = Fraction(fps).limit_denominator(1001)
        codec.bit_rate = self._bitrate
        keyint = max(1, round(fps * self._keyint_s))
        codec.gop_size = keyint
        codec.thread_count = self._threads
        if encoder != "libx264":
            codec.open()  # h264_v4l2m2m takes the rate and GOP from the context; it has no presets
            return codec
        codec.options = {
            "preset": self._preset,
            "tune": "zerolatency",
            # A fixed keyframe cadence lets segments cut on time; no scene-cut keyframes in between.
            "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0",
        }
        codec.open()
        return codec

    def packets(self) -> Iterator[EncodedPacket]:
        codec = self._codec
        if codec is None:
            raise SourceError(f"{self.name}: packets() before open()")
        first_us = key_due_us = None
        keyint_us = round(self._keyint_s * 1_000_000)
        # One reformatter per stream: frame.reformat() would build swscale's context (and threads) every frame.
        reformatter = VideoReformatter()
        try:
            for frame in self._capture.frames():
                if first_us is None:
                    first_us = frame.timestamp_us
                if self.frame_tap is not None:
                    self.frame_tap(frame)
                picture = _picture(frame.data, frame.pixel_format, frame.width, frame.height)
                if frame.pixel_format != "yuv420p":
                    picture = reformatter.reformat(picture, format="yuv420p", threads=1)
                picture.pts = (frame.timestamp_us - first_us) * 9 // 100
                # Keyframes by capture time, not by frame count: a card (or a starved encoder) that
                # delivers fewer frames than nominal would otherwise stretch the GOP and the segments.
                if key_due_us is None or frame.timestamp_us >= key_due_us:
                    picture.pict_type = PictureType.I
                    key_due_us = frame.timestamp_us + keyint_us - self._half_frame_us
                for packet in codec.encode(picture):
                    yield self._packet(packet)
                self.frames_encoded += 1
                if self._mic is not None:
                    yield from self._audio_packets(first_us)
        except CaptureError as exc:
            raise SourceError(f"{self.name}: capture failed: {exc}") from exc

    def _audio_packets(self, origin_us: int) -> list[EncodedPacket]:
        """What the microphone captured since the last frame, encoded. A microphone that failed (or never
        opened) is retried in the background; back with this run's track, it goes on in this run;
        otherwise (the run has no sound, or another format) TracksChanged ends the run to add it."""
        mic = self._mic
        if not mic.in_use:
            back = mic.poll()
            if back is None:
                return []
            if back != self._audio_track:
                mic.hold_for_next_run()
                raise TracksChanged(f"{self.name}: the microphone is back; a new run records its sound")
            mic.resume()
        return mic.packets(origin_us)

    def _packet(self, packet: av.Packet) -> EncodedPacket:
        dts = packet.dts if packet.dts is not None else packet.pts
        return EncodedPacket(bytes(packet), packet.pts, dts, packet.is_keyframe, self._clocks.monotonic_us())

    def close(self) -> None:
        """Stop the capture; `packets` ends after the frame in hand. The encoder is replaced at the next
        `open`, not here, because the recording thread may still be using it."""
        self._capture.close()
        if self._mic is not None:
            self._mic.close()

    def statistics(self) -> dict:
        out: dict = {"frames_encoded": self.frames_encoded}
        capture_stats = getattr(self._capture, "statistics", None)
        if capture_stats is not None:
            out.update(capture_stats())
        if self._mic is not None:
            out.update(self._mic.statistics())
        return out


def _picture(data: np.ndarray, pixel_format: str, width: int, height: int) -> av.VideoFrame:
    """A PyAV frame holding `data`; uyvy422 is copied in by hand (PyAV 18's from_ndarray lacks it)."""
    if pixel_format != "uyvy422":
        return av.VideoFrame.from_ndarray(data, format=pixel_format)
    picture = av.VideoFrame(width, height, pixel_format)
    plane = picture.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(height, plane.line_size)
    rows[:, :width * 2] = data.reshape(height, width * 2)
    return picture
