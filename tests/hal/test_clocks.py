"""The injected clocks' two waits: `sleep` (a unit pacing itself) and `wait` (for an event, with a timeout)."""
from __future__ import annotations

import threading

from base.clock import RealClocks, SimulatedClocks


def test_a_simulated_sleep_moves_both_clocks_at_once():
    clocks = SimulatedClocks()
    mono_us, utc_us = clocks.monotonic_us(), clocks.utc_now_us()
    clocks.sleep(2.5)
    assert (clocks.monotonic_us() - mono_us, clocks.utc_now_us() - utc_us) == (2_500_000, 2_500_000)


def test_a_simulated_wait_for_a_set_event_returns_at_once_without_moving_time():
    clocks, event = SimulatedClocks(), threading.Event()
    event.set()
    before_us = clocks.monotonic_us()
    assert clocks.wait(event, 30) is True
    assert clocks.monotonic_us() == before_us


def test_a_simulated_wait_with_no_time_left_returns_false_at_once():
    assert SimulatedClocks().wait(threading.Event(), 0) is False


def _waiting(clocks, event, timeout_s):
    """Start `clocks.wait(event, timeout_s)` on a thread; the result lands in the returned list."""
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(clocks.wait(event, timeout_s)), daemon=True)
    thread.start()
    return thread, result


def test_a_simulated_wait_times_out_only_once_the_clock_has_passed_its_timeout():
    clocks, event = SimulatedClocks(), threading.Event()
    thread, result = _waiting(clocks, event, 10)
    clocks.advance(9.9)
    thread.join(0.2)  # real time passing is not simulated time passing: it is still waiting
    assert thread.is_alive() and result == []
    clocks.advance(0.1)
    thread.join(5)
    assert result == [False]


def test_a_simulated_wait_returns_true_as_soon_as_the_event_is_set():
    clocks, event = SimulatedClocks(), threading.Event()
    thread, result = _waiting(clocks, event, 10)
    event.set()
    thread.join(5)
    assert result == [True]


def test_another_threads_sleep_moves_the_clock_a_wait_is_timed_on():
    clocks, event = SimulatedClocks(), threading.Event()
    thread, result = _waiting(clocks, event, 1)
    for _ in range(4):
        clocks.sleep(0.25)  # e.g. a simulated source pacing itself at 4 fps
    thread.join(5)
    assert result == [False]


def test_the_real_wait_is_the_events_own():
    clocks, event = RealClocks(), threading.Event()
    assert clocks.wait(event, 0.01) is False
    event.set()
    assert clocks.wait(event, 10) is True
