"""Alarms the recorder raises (disk full, disk error, source lost) and the sink that takes them."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from base.clock import Clocks

log = logging.getLogger("nvr.alarm")


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str  # 'disk_full', 'disk_error', 'retention_locked', 'source_lost', ...
    channel: int | None
    message: str
    since_us: int
    disk: str | None = None  # which recording disk (its label), when there are several


FaultListener = Callable[[Fault, bool], None]


class FaultSink(Protocol):
    """Where alarms go. `raise_alarm` is idempotent while the alarm is active; `clear_alarm` ends it."""

    def raise_fault(self, kind: str, message: str, *, channel: int | None = None, disk: str | None = None) -> None: ...

    def clear_fault(self, kind: str, *, channel: int | None = None, disk: str | None = None) -> None: ...


class FaultBoard:
    """The active alarms, logged when they start and end, and optionally recorded by a callback.

    Thread-safe. The appliance hands the same board to every channel and to retention, and the
    health page reads `active()`.
    """

    def __init__(self, *, clocks: Clocks, record=None):
        self._clocks = clocks
        self._record = record
        self._lock = threading.Lock()
        self._active: dict[tuple[str, int | None, str | None], Fault] = {}
        self._listeners: list[FaultListener] = []

    def subscribe(self, listener: FaultListener) -> Callable[[], None]:
        """Call `listener(alarm, active)` after each alarm starts (True) or ends (False), on the thread
        that raised or cleared it; keep it quick (hand work to a queue). Returns the unsubscribe call."""
        with self._lock:
            self._listeners = [*self._listeners, listener]

        def unsubscribe() -> None:
            with self._lock:
                self._listeners = [known for known in self._listeners if known is not listener]
        return unsubscribe

    def _notify(self, alarm: Fault, active: bool) -> None:
        for listener in self._listeners:
            try:
                listener(alarm, active)
            except Exception:  # one broken listener must not stop the others or the raiser
                log.exception("alarm listener %r failed on %s", listener, alarm.kind)

    def raise_fault(self, kind: str, message: str, *, channel: int | None = None, disk: str | None = None) -> None:
        """Raise `kind` for a channel, a disk (several recording disks: each its own), or the box."""
        with self._lock:
            if (kind, channel, disk) in self._active:
                return
            alarm = Fault(kind, channel, message, self._clocks.utc_now_us(), disk)
            self._active[(kind, channel, disk)] = alarm
        where = f" (channel {channel})" if channel is not None else f" (disk {disk})" if disk is not None else ""
        log.error("ALARM %s%s: %s", kind, where, message)
        if self._record is not None:
            try:
                self._record(alarm)
            except Exception:  # the alarm is logged already; a failing record must not hide it
                log.exception("could not record alarm %s", kind)
        self._notify(alarm, True)

    def clear_fault(self, kind: str, *, channel: int | None = None, disk: str | None = None) -> None:
        with self._lock:
            alarm = self._active.pop((kind, channel, disk), None)
        if alarm is not None:
            where = f" (channel {channel})" if channel is not None else f" (disk {disk})" if disk is not None else ""
            log.warning("alarm %s%s cleared", kind, where)
            self._notify(alarm, False)

    def active(self) -> list[Fault]:
        with self._lock:
            return sorted(self._active.values(), key=lambda a: a.since_us)
