"""The simulated display: composed frames kept in memory for tests and benchmarks; input and failures injectable."""
from __future__ import annotations

import threading

import numpy as np

from hal.display import DisplayError, DisplayLost, DisplayMode, InputEvent


class OffscreenDisplay:
    """A `Display` with no screen. Test instruments: `last_frame`, `frames_shown`, `push_event`,
    `fail_next` (the next `show` raises, as an unplugged monitor would), `wait_for_frames`.

    `show` and the instruments may be used from different threads.
    """

    name = "offscreen"

    def __init__(self, *, width: int, height: int, refresh_hz: float = 25.0):
        if width < 16 or height < 16:
            raise ValueError(f"display size must be at least 16x16, not {width}x{height}")
        self.mode = DisplayMode(width, height, refresh_hz)
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._events: list[InputEvent] = []
        self._failure: DisplayError | None = None
        self.frames_shown = 0
        self.closed = False

    def show(self, frame: np.ndarray) -> None:
        expected = (self.mode.height, self.mode.width, 3)
        if frame.shape != expected or frame.dtype != np.uint8:
            raise ValueError(f"frame must be {expected} uint8, not {frame.shape} {frame.dtype}")
        with self._cond:
            self._raise_pending()
            self._frame = frame.copy()
            self.frames_shown += 1
            self._cond.notify_all()

    def poll_events(self) -> list[InputEvent]:
        with self._cond:
            self._raise_pending()
            events, self._events = self._events, []
        return events

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    # --- instruments ---

    def last_frame(self) -> np.ndarray | None:
        with self._cond:
            return self._frame

    def push_event(self, event: InputEvent) -> None:
        with self._cond:
            self._events.append(event)

    def fail_next(self, error: DisplayError | None = None) -> None:
        """Make the next `show` or `poll_events` raise `error` (default: DisplayLost, as on unplugging)."""
        with self._cond:
            self._failure = error or DisplayLost("offscreen display failure injected by a test")

    def wait_for_frames(self, count: int, timeout_s: float = 10.0) -> bool:
        """Wait until `frames_shown` reaches `count`; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self.frames_shown >= count, timeout_s)

    def _raise_pending(self) -> None:
        if self.closed:
            raise DisplayLost("offscreen display is closed")
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
