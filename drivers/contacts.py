"""Dry-contact alarm inputs (NO/NC, debounced, armed by schedule) and relay outputs (latch or pulse).

Wiring: every input has the internal pull-up on and the contact between the pin and ground.
A normally-open (NO) contact is open at rest (line high) and alarms when it closes (line low); a
normally-closed (NC) contact is closed at rest (line low) and alarms when it opens (line high), so a
cut wire on an NC loop alarms too.

Debouncing is ours, not the pin factory's, and timed on the injected clock: after an edge the line
must stay put for `debounce_ms` before its new state counts. A burst of edges that ends where it
started (a flapping line, a bouncing reed switch, noise on a long cable) changes nothing and is
counted in `statistics()`. `debounce_ms: 0` takes every edge at once.

An input found alarmed when it is opened counts as an edge at that moment (debounced like any):
an NC loop that is open at boot alarms.

Every callback runs on one `Scheduler` thread: pin edges are handed to it from the backend's thread.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, time, timezone, tzinfo
from typing import Literal

from base.clock import Clocks
from hal.gpio import InputPin, OutputPin
from base.timers import Scheduler, Timer

log = logging.getLogger("nvr.contacts")

Contact = Literal["NO", "NC"]


@dataclass(frozen=True, slots=True)
class ArmingWindow:
    """Armed on `days` (0 = Monday) from `start` to `end` local time; an end at or before the start
    runs past midnight into the next day (22:00-06:00)."""

    days: frozenset[int]
    start: time
    end: time

    def contains(self, local: datetime) -> bool:
        now = local.time().replace(tzinfo=None)
        if self.start < self.end:
            return local.weekday() in self.days and self.start <= now < self.end
        if now >= self.start:  # evening part, on one of the days
            return local.weekday() in self.days
        return (local.weekday() - 1) % 7 in self.days and now < self.end  # morning part, day after


class Schedule:
    """Arming by weekday and time of day; no windows means always armed. `tz` None is local time."""

    def __init__(self, windows: Iterable[ArmingWindow] = (), *, tz: tzinfo | None = None):
        self.windows, self._tz = tuple(windows), tz

    def armed_at(self, utc_us: int) -> bool:
        if not self.windows:
            return True
        local = datetime.fromtimestamp(utc_us / 1e6, tz=timezone.utc).astimezone(self._tz)
        return any(window.contains(local) for window in self.windows)


CHATTER_US = 2_000_000  # edges for this long without the line settling: report a chattering line

ChangeCallback = Callable[["AlarmContact", bool, int], None]


class AlarmContact:
    """One alarm input. `on_change(contact, active, at_us)` is called on the scheduler thread when the
    debounced alarm state changes while armed (`at_us` UTC, the time of the edge that started it)."""

    def __init__(self, *, id: str, name: str, pin: InputPin, contact: Contact, debounce_ms: float,
                 clocks: Clocks, scheduler: Scheduler, on_change: ChangeCallback, schedule: Schedule | None = None):
        if contact not in ("NO", "NC"):
            raise ValueError(f"contact must be 'NO' or 'NC', got {contact!r}")
        self.id, self.name, self.contact = id, name, contact
        self._pin, self._clocks, self._scheduler, self._on_change = pin, clocks, scheduler, on_change
        self._debounce_s = max(0.0, debounce_ms / 1000.0)
        self.schedule = schedule or Schedule()
        self.armed = True  # disarmed by hand (web, MQTT): activations are ignored and counted, schedule or not
        self.follows_schedule = True  # False (by hand): armed at all hours while `armed`, its schedule set aside
        self.active = False
        self.reported = False  # an activation was passed on (so its end will be too)
        self._settle: Timer | None = None
        self._burst_edges = 0
        self._burst_start_us = 0
        self.edges = self.changes = self.flaps = self.ignored_edges = self.disarmed = self.chatter_bursts = 0
        self.chattering = False
        pin.when_changed = self._edge_from_pin
        if self._is_alarm(pin.is_high()):  # alarmed at start (an NC loop open at boot): an alarm like any
            self._edge_from_pin(pin.is_high())

    def _is_alarm(self, level_high: bool) -> bool:
        return (not level_high) if self.contact == "NO" else level_high

    def _edge_from_pin(self, level_high: bool) -> None:
        """Backend thread: note the time and hand over; never block the pin's thread."""
        self._scheduler.call_soon(self._edge, level_high, self._clocks.utc_now_us())

    def _edge(self, level_high: bool, at_us: int) -> None:
        self.edges += 1
        if self._burst_edges == 0:
            self._burst_start_us = at_us
        self._burst_edges += 1
        if not self.chattering and at_us - self._burst_start_us >= CHATTER_US:
            self.chattering = True  # a line that never settles is a wiring fault, not an alarm: say so once
            self.chatter_bursts += 1
            log.warning("input %s (%s): the line has changed %d times in %.1f s without settling; loose wire or "
                        "interference?", self.id, self.name, self._burst_edges, (at_us - self._burst_start_us) / 1e6)
        self._level_high = level_high
        if self._settle is not None:
            self._settle.cancel()
        if self._debounce_s == 0:
            self._settled()
        else:
            self._settle = self._scheduler.call_later(self._debounce_s, self._settled)

    def _settled(self) -> None:
        self._settle = None
        self.chattering = False
        active, edges, at_us = self._is_alarm(self._level_high), self._burst_edges, self._burst_start_us
        self._burst_edges = 0
        if active == self.active:
            self.flaps += 1
            self.ignored_edges += edges
            log.info("input %s: %d edge(s) within %.0f ms ended where they began; ignored",
                     self.id, edges, self._debounce_s * 1000)
            return
        self.ignored_edges += edges - 1
        self.active = active
        self.changes += 1
        self._report(active, at_us)

    def _report(self, active: bool, at_us: int) -> None:
        if active and not (self.armed and (not self.follows_schedule or self.schedule.armed_at(at_us))):
            self.disarmed += 1
            log.info("input %s (%s) alarmed while disarmed%s; ignored", self.id, self.name,
                     "" if self.armed else " by hand")
            return
        if not active and not self.reported:
            return
        self.reported = active
        self._on_change(self, active, at_us)

    def close(self) -> None:
        self._pin.when_changed = None
        if self._settle is not None:
            self._settle.cancel()
        self._pin.close()

    def statistics(self) -> dict:
        return {"id": self.id, "name": self.name, "contact": self.contact, "active": self.active, "armed": self.armed,
                "follows_schedule": self.follows_schedule,
                "edges": self.edges, "changes": self.changes, "flaps_ignored": self.flaps,
                "edges_ignored": self.ignored_edges, "ignored_disarmed": self.disarmed,
                "chattering": self.chattering, "chatter_bursts": self.chatter_bursts}


Mode = Literal["latch", "pulse"]


class Relay:
    """One relay (or open-collector) output, off at start and on close.

    `trigger(for_s)`: on for `for_s` seconds, or with no `for_s`, for `pulse_s` in pulse mode and
    until `clear()` in latch mode. A new trigger while on extends the time, never shortens it.
    Thread-safe; timing runs on the scheduler's clock.
    """

    def __init__(self, *, id: str, pin: OutputPin, mode: Mode, pulse_s: float, scheduler: Scheduler, clocks: Clocks):
        self.id, self.mode, self.pulse_s = id, mode, pulse_s
        self._pin, self._scheduler, self._clocks = pin, scheduler, clocks
        self._lock = threading.Lock()
        self._off_timer: Timer | None = None
        self._off_due_us: int | None = None  # when a timed "on" ends
        self._latched = False  # on until clear()
        self.triggers = self.failures = 0
        self._drive(False)  # the safe state, whatever the pin was left at

    @property
    def is_active(self) -> bool:
        return self._pin.is_active

    def trigger(self, for_s: float | None = None) -> None:
        duration_s = for_s if for_s is not None else (self.pulse_s if self.mode == "pulse" else None)
        with self._lock:
            self.triggers += 1
            self._drive(True)
            if duration_s is None:
                self._latched = True
                self._cancel_off()
                return
            due_us = self._clocks.monotonic_us() + round(duration_s * 1e6)
            if self._latched or (self._off_due_us is not None and self._off_due_us >= due_us):
                return  # already on at least that long
            self._cancel_off()
            self._off_due_us = due_us
            self._off_timer = self._scheduler.call_later(duration_s, self._timed_off, due_us)

    def clear(self) -> None:
        """Off now (manual reset of a latched output, or the end of an alarm)."""
        with self._lock:
            self._cancel_off()
            self._latched = False
            self._drive(False)

    def _timed_off(self, due_us: int) -> None:
        with self._lock:
            if self._off_due_us != due_us:
                return  # extended or cleared meanwhile
            self._off_timer, self._off_due_us = None, None
            self._drive(False)

    def _cancel_off(self) -> None:
        if self._off_timer is not None:
            self._off_timer.cancel()
        self._off_timer, self._off_due_us = None, None

    def _drive(self, active: bool) -> None:
        try:
            self._pin.set_active(active)
        except OSError:
            self.failures += 1
            log.exception("output %s: cannot drive it %s", self.id, "on" if active else "off")

    def close(self) -> None:
        """Back to the safe state (off) and release the pin."""
        self.clear()
        self._pin.close()

    def statistics(self) -> dict:
        return {"id": self.id, "mode": self.mode, "active": self.is_active, "triggers": self.triggers,
                "failures": self.failures}
