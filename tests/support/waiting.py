"""Waiting in tests for something another thread or process does: one helper, deadlines generous enough
for a busy machine.

A test that sleeps a fixed time and then asserts passes or fails with the machine's load. A test waits
instead for the condition it needs (`wait_for`), with a deadline that only says "this is broken", never
"this is slow": a loaded 2-core machine may run the code under test ten times slower than a quiet one.
How fast something happens is measured in bench/, not asserted here.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 20.0  # real time; a step that takes this long under load is stuck, not slow
POLL_S = 0.02


def wait_for(condition: Callable[[], T], *, timeout_s: float = DEFAULT_TIMEOUT_S, what: str = "the condition",
             details: Callable[[], object] | None = None, poll_s: float = POLL_S) -> T:
    """Call `condition` until it returns something true and return that (so a finder can hand back
    what it found).

    On timeout raise AssertionError naming `what` and, if given, the state `details()` describes, so
    the failure says what was seen instead. Exceptions from `condition` are not caught: a condition
    that can fail while things come up (a connection refused) catches its own.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            seen = f"; saw {details()!r}" if details is not None else ""
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}{seen}")
        time.sleep(poll_s)
