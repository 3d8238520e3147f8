"""Test-pattern channels feeding a LiveHub (raw frames like analog inputs, or really encoded H.264), and
reference signatures of each channel's pattern for checking what a wall tile shows."""
from __future__ import annotations

import threading

import numpy as np

from base.clock import Clocks
from base.media import RawFrame
from hal.video.simulated import TestPatternCapture
from recorder.encode import EncodedCapture
from recorder.live import LiveHub

from appliance.monitor.decode import Scaler
from support.screens import signature


class PatternChannels:
    """Runs one thread per channel: `raw` channels publish captured frames (as an analog input's
    frame tap does); the others are encoded with libx264 and published as packets on `stream`."""

    def __init__(self, hub: LiveHub, *, clocks: Clocks, width: int = 352, height: int = 288, fps: float = 10):
        self.hub, self.clocks, self.size, self.fps = hub, clocks, (width, height), fps
        self._captures: list[TestPatternCapture] = []
        self._threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def add(self, channel: int, *, raw: bool, stream: str = "main") -> None:
        capture = TestPatternCapture(width=self.size[0], height=self.size[1], fps=self.fps, channel_id=channel,
                                     label=f"CH{channel}", clocks=self.clocks)
        self._captures.append(capture)
        target = self._raw if raw else self._encoded
        thread = threading.Thread(target=self._guard, args=(target, capture, channel, stream), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _guard(self, target, *args) -> None:
        try:
            target(*args)
        except BaseException as exc:  # surfaced by the test through .errors
            self.errors.append(exc)

    def _raw(self, capture: TestPatternCapture, channel: int, stream: str) -> None:
        capture.open()
        live = self.hub.stream(channel, "main")
        for frame in capture.frames():
            live.publish_frame(frame)

    def _encoded(self, capture: TestPatternCapture, channel: int, stream: str) -> None:
        encoder = EncodedCapture(capture, name=f"ch{channel}", clocks=self.clocks, bitrate=400_000,
                                 keyframe_interval_s=1.0, preset="ultrafast")
        live = self.hub.stream(channel, stream)
        live.publish_run(encoder.open())
        for packet in encoder.packets():
            live.publish(packet)

    def stop(self) -> None:
        for capture in self._captures:
            capture.close()
        for thread in self._threads:
            thread.join(timeout=5)


def pattern_of(channel: int) -> str:
    """The test pattern a channel draws with pattern 'auto'."""
    return TestPatternCapture(width=64, height=64, fps=10, channel_id=channel, clocks=None).pattern


def pattern_signatures(width: int, height: int, *, source=(352, 288)) -> dict[str, np.ndarray]:
    """Pattern name -> signature of that test pattern as a tile of width x height shows it."""
    scaler, found = Scaler(), {}
    for channel in range(1, 6):  # 'auto' gives channels 1-5 the five different patterns
        capture = TestPatternCapture(width=source[0], height=source[1], fps=10, channel_id=channel,
                                     clocks=None)  # render() needs no clock
        data = capture.render(7, 0)
        frame = RawFrame(data, "yuv420p", source[0], source[1], 0, 7)
        found[capture.pattern] = signature(scaler.rgb_from_raw(frame, width, height))
    return found


def region(frame: np.ndarray, rect, *, left: float = 0, top: float = 0, right: float = 1, bottom: float = 1):
    """The part of a tile rect given as fractions of its size."""
    x0, y0 = rect.x + int(rect.width * left), rect.y + int(rect.height * top)
    x1, y1 = rect.x + int(rect.width * right), rect.y + int(rect.height * bottom)
    return frame[y0:y1, x0:x1]


def colour_fraction(pixels: np.ndarray, colour) -> float:
    return float(np.all(pixels == np.asarray(colour, dtype=np.uint8), axis=-1).mean())
