"""Feeds: one thread per shown channel turning its live tap into RGB pictures at its tile's size, latest only.

`RawFeed` reads an analog channel's raw capture (`LiveStream.latest_frame`) and only scales it:
no decoding at all. `LiveFeed` subscribes to an encoded stream and decodes it, never queueing:
a packet that arrives later than `max_lag_s` behind real time is dropped with everything up to the
next keyframe; a feed that falls behind repeatedly decodes keyframes only for a while; and only the
newest decoded picture is scaled, at most `fps` times a second.
"""
from __future__ import annotations

import logging
import threading

import numpy as np

from base.clock import Clocks
from base.media import EncodedPacket
from recorder.live import LiveStream, RunStarted

from appliance.monitor.decode import H264Decoder, Scaler, pick_decoder

log = logging.getLogger("nvr.monitor")

MAX_LAG_S = 0.5
POLL_S = 0.25
BEHIND_LIMIT, BEHIND_WINDOW_S = 3, 10.0  # falling behind this often in this long...
KEYFRAMES_ONLY_S = 10.0  # ...decodes keyframes only for this long


class Feed:
    """Base of a channel's picture source. `picture()` is the newest RGB picture at the size last set
    with `set_size` (None until one is ready); `last_frame_us` is the monotonic time a frame last
    arrived, so the wall can tell video loss. Thread-safe."""

    kind = "feed"

    def __init__(self, *, channel: int, fps: float, clocks: Clocks):
        self.channel, self._fps, self._clocks = channel, fps, clocks
        self._lock = threading.Lock()
        self._size: tuple[int, int] | None = None
        self._picture: np.ndarray | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._scaler = Scaler()
        self._next_scale_us = 0
        self._period_us = int(1_000_000 / fps)
        self.last_frame_us: int | None = None
        self.started_us: int | None = None
        self.frames_in = self.frames_scaled = self.frames_dropped = self.errors = 0

    def set_size(self, width: int, height: int) -> None:
        with self._lock:
            if self._size != (width, height):
                self._size = (width, height)
                self._next_scale_us = 0  # rescale the next frame at once

    def picture(self) -> np.ndarray | None:
        with self._lock:
            picture, size = self._picture, self._size
        if picture is None or size is None or picture.shape[:2] != (size[1], size[0]):
            return None
        return picture

    def start(self) -> None:
        self.started_us = self._clocks.monotonic_us()
        self._thread = threading.Thread(target=self._guarded_run, name=f"monitor-{self.kind}-ch{self.channel}",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)

    def statistics(self) -> dict:
        return {"channel": self.channel, "kind": self.kind, "frames_in": self.frames_in,
                "frames_scaled": self.frames_scaled, "frames_dropped": self.frames_dropped, "errors": self.errors}

    def _guarded_run(self) -> None:
        while not self._stop.is_set():
            try:
                self._run()
                return
            except Exception:  # a feed failing shows no-signal in its tile; it must not end the monitor
                self.errors += 1
                log.exception("monitor feed for channel %d failed; restarting it", self.channel)
                self._stop.wait(1.0)

    def _run(self) -> None:
        raise NotImplementedError

    def _due(self) -> bool:
        # A quarter period of slack: a source at exactly the wall's rate, arriving with a little
        # jitter, must not lose every other frame to being a millisecond early.
        return self._clocks.monotonic_us() >= self._next_scale_us - self._period_us // 4

    def _store(self, make_picture) -> None:
        """Scale with `make_picture(width, height)` and keep the result as the newest picture."""
        size = self._size
        if size is None:
            return
        picture = make_picture(*size)
        now_us = self._clocks.monotonic_us()
        if now_us - self._next_scale_us > self._period_us:
            self._next_scale_us = now_us  # far behind (or the first frame): restart the cadence from now
        self._next_scale_us += self._period_us
        with self._lock:
            self._picture = picture
        self.frames_scaled += 1


class RawFeed(Feed):
    """An analog channel shown from its raw capture before encoding: scaling only, no decode."""

    kind = "raw"

    def __init__(self, *, channel: int, live: LiveStream, fps: float, clocks: Clocks):
        super().__init__(channel=channel, fps=fps, clocks=clocks)
        self._live = live

    def _run(self) -> None:
        sequence = -1
        while not self._stop.is_set():
            wait_s = max(0.0, (self._next_scale_us - self._clocks.monotonic_us()) / 1e6)
            if wait_s > 0:
                self._stop.wait(min(wait_s, POLL_S))
                continue
            frame = self._live.latest_frame(newer_than=sequence, timeout_s=POLL_S)
            if frame is None:
                continue
            if sequence >= 0 and frame.sequence > sequence + 1:
                self.frames_dropped += frame.sequence - sequence - 1  # newer ones came first: skipped, never queued
            sequence = frame.sequence
            self.frames_in += 1
            self.last_frame_us = self._clocks.monotonic_us()
            self._store(lambda w, h: self._scaler.rgb_from_raw(frame, w, h))


class LiveFeed(Feed):
    """A network (or any encoded) stream decoded for a tile, dropping to the next keyframe when behind."""

    kind = "decoded"

    def __init__(self, *, channel: int, live: LiveStream, fps: float, clocks: Clocks, decoder: str = "auto",
                 full_screen: bool = False, max_lag_s: float = MAX_LAG_S):
        super().__init__(channel=channel, fps=fps, clocks=clocks)
        self._live, self._max_lag_us = live, int(max_lag_s * 1e6)
        self._decoder_name = pick_decoder(decoder, full_screen=full_screen)
        self._decoder: H264Decoder | None = None
        self._pending = None  # newest decoded frame not yet scaled
        self._skipping = False
        self._tap_dropped = lambda: 0
        self._behind_us: list[int] = []
        self._keyframes_only_until_us = 0
        self.frames_decoded = self.keyframes_only_spells = 0

    def statistics(self) -> dict:
        stats = super().statistics()
        decoder = self._decoder
        return {**stats, "frames_decoded": self.frames_decoded, "tap_dropped": self._tap_dropped(),
                "decoder": decoder.codec_name if decoder else self._decoder_name,
                "decode_errors": decoder.errors if decoder else 0,
                "keyframes_only": self._clocks.monotonic_us() < self._keyframes_only_until_us,
                "keyframes_only_spells": self.keyframes_only_spells}

    def _run(self) -> None:
        with self._live.subscribe(max_items=64) as subscription:
            self._tap_dropped = lambda: subscription.dropped  # packets the tap dropped while we were behind
            while not self._stop.is_set():
                item = subscription.get(timeout_s=self._wait_s())
                if isinstance(item, RunStarted):
                    self._decoder = H264Decoder(item.info, codec_name=self._decoder_name)
                    self._pending, self._skipping = None, False
                elif isinstance(item, EncodedPacket) and item.track == "video" and self._decoder is not None:
                    self._take(item)
                self._scale_pending()

    def _wait_s(self) -> float:
        if self._pending is None:
            return POLL_S
        return min(POLL_S, max(0.0, (self._next_scale_us - self._clocks.monotonic_us()) / 1e6))

    def _take(self, packet: EncodedPacket) -> None:
        now_us = self._clocks.monotonic_us()
        late = packet.arrival_us and now_us - packet.arrival_us > self._max_lag_us
        if late and not packet.keyframe and not self._skipping:
            self._skipping = True  # a frame too old to show: drop to the next keyframe instead of catching up
            self._note_fall_behind(now_us)
        if self._skipping or now_us < self._keyframes_only_until_us:
            if not packet.keyframe:
                self.frames_dropped += 1
                return
            self._skipping = False
        frames = self._decoder.decode(packet)
        if frames:
            self.frames_in += 1
            self.frames_decoded += len(frames)
            self.last_frame_us = self._clocks.monotonic_us()
            self._pending = frames[-1]

    def _note_fall_behind(self, now_us: int) -> None:
        """Falling behind again and again means this CPU cannot decode the stream in full: decode
        keyframes only for a while (a picture every keyframe interval instead of a frozen tile)."""
        self._behind_us = [at for at in self._behind_us if now_us - at < BEHIND_WINDOW_S * 1e6] + [now_us]
        if len(self._behind_us) >= BEHIND_LIMIT:
            self._behind_us = []
            self._keyframes_only_until_us = now_us + int(KEYFRAMES_ONLY_S * 1e6)
            self.keyframes_only_spells += 1
            log.info("channel %d: decoding keyframes only for %.0f s (fell behind %d times)", self.channel,
                     KEYFRAMES_ONLY_S, BEHIND_LIMIT)

    def _scale_pending(self) -> None:
        if self._pending is not None and self._due():
            frame, self._pending = self._pending, None
            self._store(lambda w, h: self._scaler.rgb(frame, w, h))
