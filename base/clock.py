"""Clocks: wall-clock UTC and a monotonic pacing clock, real or simulated, injected everywhere.

A board without a real-time clock boots in 1970 (or at the fake-hwclock time) and jumps when NTP
syncs; recordings are ordered by the monotonic clock and only labelled with wall time, so tests drive
such jumps through `SimulatedClocks` and never sleep.

This is the one module that reads the operating system's clocks or sleeps (tests/test_layering.py
holds every other module of the appliance to that): everything else is given a `Clocks`. Not clocks
of the appliance, and so read directly where they are needed: the CPU time a unit spent
(`time.process_time`, `time.thread_time`, `time.perf_counter` for statistics), the kernel's own
timestamps (V4L2 buffers are stamped on CLOCK_MONOTONIC) and the timeouts handed to the kernel with a
single blocking call (`select`, a socket's or a serial port's read timeout).
"""
from __future__ import annotations

import threading
import time
from typing import Protocol


class Clocks(Protocol):
    """The two clocks every long-running unit reads, plus the two ways of waiting on them."""

    def utc_now_us(self) -> int:
        """Wall-clock time as microseconds since the Unix epoch, UTC. May jump either way."""

    def monotonic_us(self) -> int:
        """Microseconds on a clock that never goes backwards (origin unspecified)."""

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` of monotonic time (the caller's own pacing: nothing can cut it short)."""

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        """Wait until `event` is set or `timeout_s` of monotonic time has passed; True if it was set."""


class RealClocks:
    """The operating system's clocks."""

    def utc_now_us(self) -> int:
        return time.time_ns() // 1000

    def monotonic_us(self) -> int:
        return time.monotonic_ns() // 1000

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        return event.wait(max(0.0, timeout_s))


SIMULATED_WAIT_POLL_S = 0.005  # how often (real time) a simulated `wait` looks whether the clock has moved


class SimulatedClocks:
    """Clocks under a test's control: `sleep` advances time instantly; `jump_wall` moves only wall time.

    `sleep` is a unit pacing itself (a simulated source at its frame rate, a bus spacing its frames),
    so simulated time passes at once and the test runs as fast as the machine. `wait` is a thread
    waiting for something else to happen: it returns as soon as the event is set, and otherwise blocks
    until the test (or another thread's `sleep`) has moved the clock past its timeout; it never lets
    time pass by itself. Thread-safe, so a recorder thread and the test can share one.
    """

    def __init__(self, *, utc_start_us: int = 1_767_225_600_000_000, monotonic_start_us: int = 10**9):
        self._lock = threading.Lock()
        self._utc_us = utc_start_us
        self._mono_us = monotonic_start_us

    def utc_now_us(self) -> int:
        with self._lock:
            return self._utc_us

    def monotonic_us(self) -> int:
        with self._lock:
            return self._mono_us

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        deadline_us = self.monotonic_us() + max(0, round(timeout_s * 1_000_000))
        while not event.is_set():
            if self.monotonic_us() >= deadline_us:
                return event.is_set()
            event.wait(SIMULATED_WAIT_POLL_S)  # wakes at once when set; else looks at the clock again
        return True

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by `seconds`, as real time passing would."""
        step = max(0, round(seconds * 1_000_000))
        with self._lock:
            self._utc_us += step
            self._mono_us += step

    def jump_wall(self, seconds: float) -> None:
        """Step the wall clock by `seconds` (negative = backwards), as NTP or a DST bug would."""
        with self._lock:
            self._utc_us += round(seconds * 1_000_000)
