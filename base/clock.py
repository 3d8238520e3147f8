"""Clocks: wall-clock UTC and a monotonic pacing clock, real or simulated, injected everywhere.

A board without a real-time clock boots in 1970 (or at the fake-hwclock time) and jumps when NTP
syncs; recordings are ordered by the monotonic clock and only labelled with wall time, so tests drive
such jumps through `SimulatedClocks` and never sleep.
"""
from __future__ import annotations

import threading
import time
from typing import Protocol


class Clocks(Protocol):
    """The two clocks every long-running unit reads, plus a sleep that respects them."""

    def utc_now_us(self) -> int:
        """Wall-clock time as microseconds since the Unix epoch, UTC. May jump either way."""

    def monotonic_us(self) -> int:
        """Microseconds on a clock that never goes backwards (origin unspecified)."""

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` of monotonic time."""


class RealClocks:
    """The operating system's clocks."""

    def utc_now_us(self) -> int:
        return time.time_ns() // 1000

    def monotonic_us(self) -> int:
        return time.monotonic_ns() // 1000

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class SimulatedClocks:
    """Clocks under a test's control: `sleep` advances time instantly; `jump_wall` moves only wall time.

    Thread-safe, so a recorder thread and the test can share one.
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
