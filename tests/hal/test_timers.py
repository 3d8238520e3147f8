"""The alarm scheduler: callbacks in order on one thread, timers on the injected clock, failures counted."""
from __future__ import annotations

import threading

from base.timers import Scheduler


def test_timers_fire_in_due_order_once_the_simulated_clock_passes_them(clocks):
    scheduler, fired = Scheduler(clocks=clocks), []
    scheduler.call_later(2.0, fired.append, "b")
    scheduler.call_later(1.0, fired.append, "a")
    cancelled = scheduler.call_later(1.5, fired.append, "never")
    cancelled.cancel()
    scheduler.run_pending()
    assert fired == []
    clocks.advance(1.0)
    scheduler.run_pending()
    assert fired == ["a"]
    clocks.advance(5)
    scheduler.run_pending()
    assert fired == ["a", "b"] and scheduler.statistics()["timers_pending"] == 0


def test_callbacks_run_on_the_scheduler_thread_in_order_and_a_failure_does_not_stop_it(clocks):
    scheduler, seen = Scheduler(clocks=clocks, name="t"), []
    scheduler.start()
    try:
        scheduler.call_soon(lambda: seen.append(threading.current_thread().name))
        scheduler.call_soon(lambda: 1 / 0)
        scheduler.call_soon(lambda: seen.append("after"))
        scheduler.call_later(3.0, seen.append, "timer")
        assert scheduler.wait_idle(2)
        assert seen == ["t", "after"] and scheduler.statistics()["errors"] == 1
        clocks.advance(3.0)
        assert scheduler.wait_idle(2)  # looks at the clock at once, without waiting for its next poll
        assert seen[-1] == "timer"
    finally:
        scheduler.stop()
