"""A one-thread scheduler of callbacks timed on the injected clocks (debounce, relay pulses, post-alarm).

Everything that reacts to alarms runs its callbacks on one scheduler thread, in submission order, so
rule state needs no locks. Due times are read from `Clocks.monotonic_us()`: with `RealClocks` a timer
fires on time; with `SimulatedClocks` it fires once the test has advanced the clock past it (the
thread rechecks at least every `max_wait_s` of real time, and `wait_idle` makes it look at once).
Without a thread, `run_pending()` runs whatever is queued or due in the caller's thread.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from base.clock import Clocks

log = logging.getLogger("nvr.timers")


class Timer:
    """A callback due at `due_us` (monotonic); `cancel()` makes it never run."""

    __slots__ = ("due_us", "_fn", "_args", "cancelled")

    def __init__(self, due_us: int, fn: Callable, args: tuple):
        self.due_us, self._fn, self._args = due_us, fn, args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class SchedulerStats:
    callbacks: int = 0
    timers_fired: int = 0
    errors: int = 0
    max_late_us: int = 0  # how late the latest-running timer was, worst case


class Scheduler:
    """Runs callbacks on one thread: `call_soon` (any thread) and `call_later` (a Timer).

    A callback that raises is logged with its traceback and counted; the thread goes on.
    """

    def __init__(self, *, clocks: Clocks, name: str = "scheduler", max_wait_s: float = 0.5):
        self._clocks, self._name, self._max_wait_s = clocks, name, max_wait_s
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._timers: list[tuple[int, int, Timer]] = []
        self._timers_lock = threading.Lock()
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.stats = SchedulerStats()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread after what is queued now has run; timers not yet due are dropped."""
        if self._thread is None:
            return
        self._stop.set()
        self._queue.put(None)
        self._thread.join(timeout_s)
        self._thread = None

    @property
    def on_thread(self) -> bool:
        """True when called from the scheduler's own thread (or, with no thread, always)."""
        return self._thread is None or threading.current_thread() is self._thread

    def call_soon(self, fn: Callable, *args) -> None:
        """Run `fn(*args)` on the scheduler thread, after what is already queued."""
        self._queue.put((fn, args))

    def call_later(self, delay_s: float, fn: Callable, *args) -> Timer:
        """Run `fn(*args)` once `delay_s` of monotonic time has passed; returns the cancellable Timer."""
        timer = Timer(self._clocks.monotonic_us() + max(0, round(delay_s * 1e6)), fn, args)
        with self._timers_lock:
            heapq.heappush(self._timers, (timer.due_us, next(self._order), timer))
        self._queue.put(_WAKE)
        return timer

    def wait_idle(self, timeout_s: float = 5.0) -> bool:
        """Block until everything queued before this call and every timer already due has run."""
        if self._thread is None:
            self.run_pending()
            return True
        done = threading.Event()
        self._queue.put((done.set, ()))
        return done.wait(timeout_s)

    def run_pending(self) -> None:
        """Run queued callbacks and due timers in this thread (for use without `start`)."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            self._run_item(item)
        self._run_due()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=self._wait_s())
            except queue.Empty:
                item = _WAKE
            self._run_due()
            self._run_item(item)
        self.run_pending()

    def _wait_s(self) -> float:
        with self._timers_lock:
            due_us = self._timers[0][0] if self._timers else None
        if due_us is None:
            return self._max_wait_s
        return min(max(0.0, (due_us - self._clocks.monotonic_us()) / 1e6), self._max_wait_s)

    def _run_item(self, item) -> None:
        if item is None or item is _WAKE:
            return
        fn, args = item
        self._call(fn, args)
        self._run_due()

    def _run_due(self) -> None:
        while True:
            now = self._clocks.monotonic_us()
            with self._timers_lock:
                if not self._timers or self._timers[0][0] > now:
                    return
                _, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self.stats.timers_fired += 1
            self.stats.max_late_us = max(self.stats.max_late_us, now - timer.due_us)
            self._call(timer._fn, timer._args)

    def _call(self, fn: Callable, args: tuple) -> None:
        self.stats.callbacks += 1
        try:
            fn(*args)
        except Exception:
            self.stats.errors += 1
            log.exception("%s: callback %r failed", self._name, fn)

    def statistics(self) -> dict:
        with self._timers_lock:
            pending = sum(1 for _, _, t in self._timers if not t.cancelled)
        return {"callbacks": self.stats.callbacks, "timers_fired": self.stats.timers_fired,
                "timers_pending": pending, "errors": self.stats.errors, "max_late_us": self.stats.max_late_us}


_WAKE = object()
