"""Motion detection: frame differencing with OpenCV on small grey pictures, per-channel zones, masks, sensitivity.

Cheap enough for an SBC: each analysed picture is scaled to `ANALYSIS_WIDTH` pixels wide (the luma
plane only), blurred, compared with a slowly adapting background, thresholded, masked to the zones
and counted. A channel is analysed a few times a second: network cameras on their sub stream (decoded
with PyAV; every packet must be decoded, only some pictures are analysed), analog channels on their
raw captured frames (the Y plane, no decoding at all).

`MotionDetector` is pure (pictures in, score out); `MotionWatcher` is the thread that feeds it from
a `LiveStream` and reports motion start/end through a callback.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from base.clock import Clocks
from base.media import EncodedPacket, RawFrame, StreamInfo
from recorder.live import LiveStream, RunStarted

log = logging.getLogger("nvr.motion")

ANALYSIS_WIDTH = 160
BACKGROUND_ALPHA = 0.15  # the background follows the picture over about 1/alpha analysed frames
TRIGGER_FRAMES = 2  # consecutive frames over the threshold before motion starts (ignores one-frame noise)

Polygon = Sequence[Sequence[float]]  # [[x, y], ...] normalized 0..1


def sensitivity_thresholds(sensitivity: int) -> tuple[int, float]:
    """(pixel difference threshold 0-255, minimum changed fraction of the watched area) for 1-100.

    50 -> (30, 0.56 %); 100 -> (10, 0.03 %): a few pixels of a 160-wide picture; 1 -> (50, 10 %).
    """
    s = min(100, max(1, sensitivity))
    pixel = round(50 - 40 * (s - 1) / 99)
    area = 10 ** (-1.5 + 2.5 * (100 - s) / 99) / 100
    return pixel, area


def area_mask(width: int, height: int, zones: Sequence[Polygon], masks: Sequence[Polygon]) -> np.ndarray:
    """uint8 mask (255 = watched) of a width x height picture: inside any zone (all if none), outside every mask."""
    mask = np.zeros((height, width), np.uint8)
    scale = np.array([width - 1, height - 1], np.float64)
    if zones:
        for zone in zones:
            cv2.fillPoly(mask, [np.round(np.asarray(zone, np.float64) * scale).astype(np.int32)], 255)
    else:
        mask[:] = 255
    for hole in masks:
        cv2.fillPoly(mask, [np.round(np.asarray(hole, np.float64) * scale).astype(np.int32)], 0)
    return mask


class MotionDetector:
    """Scores grey pictures of one channel: the fraction of the watched area that changed."""

    def __init__(self, *, zones: Sequence[Polygon] = (), masks: Sequence[Polygon] = (), sensitivity: int = 50,
                 analysis_width: int = ANALYSIS_WIDTH):
        self.zones, self.masks, self.analysis_width = list(zones), list(masks), analysis_width
        self.pixel_threshold, self.min_fraction = sensitivity_thresholds(sensitivity)
        self._size: tuple[int, int] | None = None
        self._mask: np.ndarray | None = None
        self._watched = 1
        self._background: np.ndarray | None = None
        self._kernel = np.ones((3, 3), np.uint8)

    def analysis_size(self, width: int, height: int) -> tuple[int, int]:
        """The (width, height) pictures are scaled to: `analysis_width` wide, aspect kept, even."""
        w = min(width, self.analysis_width)
        return w, max(2, round(height * w / width / 2) * 2)

    def score(self, grey: np.ndarray) -> float:
        """Feed one grey picture (any size; scaled here); returns the changed fraction of the watched area."""
        small = self._prepare(grey)
        if self._background is None:
            self._background = small.astype(np.float32)
            return 0.0
        diff = cv2.absdiff(small, cv2.convertScaleAbs(self._background))
        cv2.accumulateWeighted(small, self._background, BACKGROUND_ALPHA)
        _, changed = cv2.threshold(diff, self.pixel_threshold, 255, cv2.THRESH_BINARY)
        changed = cv2.bitwise_and(changed, self._mask)
        changed = cv2.morphologyEx(changed, cv2.MORPH_OPEN, self._kernel)  # drop single-pixel noise
        return cv2.countNonZero(changed) / self._watched

    def _prepare(self, grey: np.ndarray) -> np.ndarray:
        height, width = grey.shape[:2]
        size = self.analysis_size(width, height)
        if size != self._size:  # first picture, or the stream changed size: start over
            self._size, self._background = size, None
            self._mask = area_mask(size[0], size[1], self.zones, self.masks)
            self._watched = max(1, cv2.countNonZero(self._mask))
        small = grey if (width, height) == size else cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(small, (5, 5), 0)

    def is_motion(self, score: float) -> bool:
        return score >= self.min_fraction


MotionCallback = Callable[[int, bool, int, float], None]  # (channel, active, at_us UTC, score)


@dataclass
class MotionStats:
    analysed: int = 0
    decoded: int = 0
    decode_errors: int = 0
    motion_starts: int = 0
    cpu_s: float = 0.0
    last_score: float = 0.0
    peak_score: float = 0.0


class MotionWatcher:
    """Watches one channel's `LiveStream` on its own thread and calls `on_motion(channel, active, at_us, score)`
    when motion starts (`TRIGGER_FRAMES` analysed pictures in a row over the threshold) and when it ends
    (`hold_s` without any). `source` is 'frames' (raw analog frames) or 'packets' (decode H.264)."""

    def __init__(self, *, channel: int, live: LiveStream, detector: MotionDetector, clocks: Clocks,
                 on_motion: MotionCallback, fps: float = 5.0, hold_s: float = 5.0, source: str = "packets"):
        if source not in ("frames", "packets"):
            raise ValueError(f"source must be 'frames' or 'packets', got {source!r}")
        self.channel, self.live, self.detector, self._clocks = channel, live, detector, clocks
        self._on_motion, self._interval_us, self._hold_us = on_motion, round(1e6 / fps), round(hold_s * 1e6)
        self.source = source
        self.active = False
        self._over = 0
        self._last_motion_us = 0
        self._next_us = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = MotionStats()

    def start(self) -> None:
        target = self._frames_loop if self.source == "frames" else self._packets_loop
        self._thread = threading.Thread(target=self._guarded, args=(target,), name=f"motion-{self.channel}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self.active:
            self._set_active(False, 0.0)

    def _guarded(self, loop: Callable[[], None]) -> None:
        while not self._stop.is_set():
            try:
                loop()
            except Exception:  # never let one channel's detector die for good
                log.exception("channel %d: motion detection failed; restarting it", self.channel)
                self._stop.wait(1.0)

    # --- feeding -------------------------------------------------------------------------------

    def _frames_loop(self) -> None:
        sequence = -1
        while not self._stop.is_set():
            frame = self.live.latest_frame(newer_than=sequence, timeout_s=0.5)
            if frame is None:
                self._idle()
                continue
            sequence = frame.sequence
            self.analyse(luma(frame))
            self._stop.wait(self._interval_us / 1e6 * 0.9)  # the next picture is not due before this

    def _packets_loop(self) -> None:
        import av  # PyAV only where packets are decoded
        with self.live.subscribe(max_items=128) as sub:
            decoder = None
            while not self._stop.is_set():
                item = sub.get(timeout_s=0.5)
                if item is None:
                    self._idle()
                elif isinstance(item, RunStarted):
                    decoder = _decoder(av, item.info)
                elif decoder is not None and item.track == "video":
                    self._decode(av, decoder, item)

    def _decode(self, av, decoder, packet: EncodedPacket) -> None:
        started = time.process_time()
        try:
            frames = decoder.decode(av.Packet(packet.data))
        except av.error.FFmpegError as exc:
            self.stats.decode_errors += 1
            log.debug("channel %d: undecodable packet for motion: %s", self.channel, exc)
            return
        finally:
            self.stats.cpu_s += time.process_time() - started
        for frame in frames:
            self.stats.decoded += 1
            if self._clocks.monotonic_us() >= self._next_us:
                started = time.process_time()
                w, h = self.detector.analysis_size(frame.width, frame.height)
                grey = frame.reformat(width=w, height=h, format="gray").to_ndarray()
                self.stats.cpu_s += time.process_time() - started
                self.analyse(grey)

    # --- deciding ------------------------------------------------------------------------------

    def analyse(self, grey: np.ndarray) -> float:
        """Score one picture now and update the motion state (also usable without the thread)."""
        started = time.process_time()
        score = self.detector.score(grey)
        self.stats.cpu_s += time.process_time() - started
        now = self._clocks.monotonic_us()
        self._next_us = now + self._interval_us
        self.stats.analysed += 1
        self.stats.last_score = score
        self.stats.peak_score = max(self.stats.peak_score, score)
        self._over = self._over + 1 if self.detector.is_motion(score) else 0
        if self._over:
            self._last_motion_us = now
        if not self.active and self._over >= TRIGGER_FRAMES:
            self.stats.motion_starts += 1
            self._set_active(True, score)
        elif self.active and now - self._last_motion_us >= self._hold_us:
            self._set_active(False, score)
        return score

    def _idle(self) -> None:
        """No picture came: a stopped stream must still end a motion after hold_s."""
        if self.active and self._clocks.monotonic_us() - self._last_motion_us >= self._hold_us:
            self._set_active(False, 0.0)

    def _set_active(self, active: bool, score: float) -> None:
        self.active = active
        log.info("channel %d: motion %s (score %.4f)", self.channel, "started" if active else "ended", score)
        try:
            self._on_motion(self.channel, active, self._clocks.utc_now_us(), score)
        except Exception:
            log.exception("channel %d: motion callback failed", self.channel)

    def statistics(self) -> dict:
        return {"channel": self.channel, "source": self.source, "active": self.active,
                **{k: round(v, 4) if isinstance(v, float) else v for k, v in vars(self.stats).items()}}


def luma(frame: RawFrame) -> np.ndarray:
    """The grey (Y) plane of a raw frame, without copying for planar YUV."""
    if frame.pixel_format in ("yuv420p", "nv12", "yuvj420p", "gray"):
        return frame.data[:frame.height, :frame.width]
    if frame.pixel_format in ("yuyv422", "yuy2"):
        return np.ascontiguousarray(frame.data.reshape(frame.height, frame.width * 2)[:, 0::2])
    raise ValueError(f"no luma extraction for pixel format {frame.pixel_format!r}")


def _decoder(av, info: StreamInfo):
    decoder = av.CodecContext.create(info.codec, "r")
    if info.extradata:
        decoder.extradata = info.extradata
    decoder.thread_type = "NONE"  # one core per channel at most; latency over throughput
    return decoder
