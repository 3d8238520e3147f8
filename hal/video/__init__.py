"""The video capture seam: one Protocol that the V4L2 backend and the simulated test pattern both meet.

Exceptions:

    CaptureError (RuntimeError)   the device failed, or is misconfigured; the caller retries later
    ├── NoSignal                  the input has no picture (status: no signal/sync/lock, or no frame
    │                             for the no-frame timeout); the device itself is fine
    └── DeviceGone                the device vanished (USB unplug: ENODEV/EIO, the node is gone)

Both `NoSignal` and `DeviceGone` are video loss: the recorder ends the run, raises `video_loss` and
opens the capture again until the picture is back (recorder.video_loss).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Protocol

from base.media import CaptureFormat, RawFrame


class CaptureError(RuntimeError):
    """A capture device failed or vanished; the caller retries later."""


class NoSignal(CaptureError):
    """The selected input has no picture: no camera, no sync, or no frame for the no-frame timeout."""


class DeviceGone(CaptureError):
    """The capture device is gone (unplugged, or failing with ENODEV/EIO); it is retried."""


class VideoCapture(Protocol):
    """A source of raw frames.

    `open` negotiates and returns the format (`DeviceGone` if the device is missing); `frames`
    yields frames paced at the device's rate (blocking between them) until `close` is called from
    another thread, or raises: `NoSignal` when the input has no picture (at once when a picture
    that was there goes; after a short lock grace when there was none from the start; after the
    no-frame timeout when frames stop), `DeviceGone` when the device goes, `CaptureError` otherwise.
    After any of them, `close` and `open` again to wait for the picture.
    """

    def open(self) -> CaptureFormat: ...

    def frames(self) -> Iterator[RawFrame]: ...

    def close(self) -> None: ...

    def signal_present(self) -> bool: ...

    def statistics(self) -> dict[str, object]: ...


class FpsMeter:
    """Frames per second actually delivered, over the last `window_s` of frame timestamps."""

    def __init__(self, *, window_s: float = 2.0):
        self._window_us = round(window_s * 1_000_000)
        self._stamps: deque[int] = deque()

    def frame(self, timestamp_us: int) -> None:
        """Count a frame captured at `timestamp_us` (monotonic)."""
        stamps = self._stamps
        stamps.append(timestamp_us)
        while stamps[0] < timestamp_us - self._window_us:
            stamps.popleft()

    def reset(self) -> None:
        """The stream stopped: nothing is delivered until the next frame."""
        self._stamps.clear()

    def fps(self) -> float:
        """Frames per second between the oldest and newest frame in the window; 0 with fewer than two."""
        stamps = self._stamps
        try:  # read from other threads (the status page) while the capture thread appends
            count, first, last = len(stamps), stamps[0], stamps[-1]
        except IndexError:
            return 0.0
        if count < 2 or last <= first:
            return 0.0
        return round((count - 1) * 1_000_000 / (last - first), 2)
