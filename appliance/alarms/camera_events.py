"""Camera events as alarm signals: one PullPoint subscription per ONVIF channel, its events turned into the
rule signals a commercial NVR user expects.

| camera event (drivers.onvif.events kind)   | rule signal (`when:`)              | key                  |
|--------------------------------------------|------------------------------------|----------------------|
| motion (CellMotionDetector, MotionAlarm)   | `motion: N`                        | the channel          |
| line crossing (LineDetector/Crossed, ...)  | `line_crossing: N`                 | the channel          |
| field detection (FieldDetector, intrusion) | `intrusion: N`                     | the channel          |
| tamper (TamperDetector, GlobalSceneChange, | `tamper: N`                        | the channel          |
|   ImageTooBlurry/Dark/Bright)              |                                    |                      |
| digital input (Device/Trigger/DigitalInput)| `alarm_input: chN:TOKEN`           | `ch` channel `:` the |
|                                            |                                    | camera's input token |

The camera's motion is the channel's motion: it feeds the same `motion: N` signal as the box's own motion
detection, which is active while either says so (`appliance.alarms.io.AlarmIO` merges the sources).
A camera's several rules or video sources for one kind are merged the same way.

Each answer to PullMessages is coalesced per source before it is handed to the alarm thread: a source
that went active and back within one answer gives one active and one inactive, so a camera flooding
messages costs its own loop time, not the alarm thread's. A line crossing has no end: it is an active
followed at once by an inactive (the rule's `post_s` makes the event). When the subscription is lost
(camera rebooting, unreachable) its active signals end and an `onvif_events` alarm is raised on the
channel until it is back; the camera then sends its current states again (PropertyOperation Initialized).
"""
from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future

from base.clock import Clocks
from drivers.onvif.events import (DIGITAL_INPUT, INTRUSION, LINE_CROSSING, MOTION, TAMPER, CameraEvent,
                                  PullPointSubscriber)
from recorder.faults import FaultSink

from appliance.onvif_cameras import OnvifCameras

log = logging.getLogger("nvr.camera_events")

SIGNAL_OF_KIND = {MOTION: "motion", LINE_CROSSING: "line_crossing", INTRUSION: "intrusion", TAMPER: "tamper"}
MAX_SOURCES = 64  # distinct (kind, source) a camera may report; more are counted and ignored
MAX_TOKEN_CHARS = 32
FAULT = "onvif_events"
STOP_TIMEOUT_S = 5.0
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")

# on_change(kind, key, source, active, detail): a signal source changed; called on the ONVIF loop thread.
SignalChange = Callable[[str, str, str, bool, str], None]


def camera_input_id(channel: int, token: str) -> str:
    """The `alarm_input` id of a camera's digital input: 'ch3:AlarmIn_0' (unsafe characters become '_')."""
    cleaned = _UNSAFE.sub("_", token)[:MAX_TOKEN_CHARS] or "input"
    return f"ch{channel}:{cleaned}"


def signal_of(channel: int, event: CameraEvent) -> tuple[str, str]:
    """(kind, key) of the rule signal a camera event feeds."""
    if event.kind == DIGITAL_INPUT:
        return "alarm_input", camera_input_id(channel, event.source)
    return SIGNAL_OF_KIND[event.kind], str(channel)


class CameraEvents:
    """The PullPoint subscribers of every ONVIF channel of `cameras`; `on_change` gets their signals."""

    def __init__(self, cameras: OnvifCameras, *, on_change: SignalChange, clocks: Clocks,
                 faults: FaultSink | None = None, subscriber_options: dict | None = None):
        self._cameras, self._on_change, self._faults, self._clocks = cameras, on_change, faults, clocks
        self._options = subscriber_options or {}
        self.subscribers: dict[int, PullPointSubscriber] = {}
        self._tasks: list[Future] = []
        self._active: dict[int, dict[tuple[str, str], bool]] = {}  # per channel: (kind, source) -> held active
        self._lock = threading.Lock()  # the loop thread writes _active, the health page reads it
        self.dropped_sources = 0

    def start(self) -> None:
        for channel in self._cameras.channels():
            subscriber = PullPointSubscriber(
                lambda channel=channel: self._cameras.camera(channel), name=f"channel {channel}", clocks=self._clocks,
                on_events=lambda events, channel=channel: self._events(channel, events),
                on_state=lambda ok, error, channel=channel: self._subscription(channel, ok, error),
                **self._options)
            self.subscribers[channel] = subscriber
            self._active[channel] = {}
            self._tasks.append(self._cameras.loop.spawn(subscriber.run(), name=f"onvif-events-{channel}"))

    def stop(self) -> None:
        """Cancel the subscribers (each unsubscribes, best effort) and end their active signals."""
        tasks, self._tasks = self._tasks, []
        for future in tasks:
            try:
                task = future.result(STOP_TIMEOUT_S)
                self._cameras.loop.loop.call_soon_threadsafe(task.cancel)
            except Exception as exc:  # the loop is gone already
                log.debug("stopping a camera event subscriber: %r", exc)
        async def release() -> None:  # on the loop thread, where the states live
            with self._lock:
                for channel in list(self._active):
                    self._release_all(channel)
        try:
            self._cameras.loop.submit(release(), timeout_s=STOP_TIMEOUT_S).result(STOP_TIMEOUT_S + 1)
        except Exception as exc:
            log.debug("ending the camera signals at stop: %r", exc)

    # --- on the loop thread --------------------------------------------------------------------------

    def _events(self, channel: int, events: list[CameraEvent]) -> None:
        with self._lock:
            self._coalesce(channel, events)

    def _coalesce(self, channel: int, events: list[CameraEvent]) -> None:
        last = self._active[channel]
        seen: dict[tuple[str, str], list[bool]] = {}  # identity -> [any active, final state]
        for event in events:
            identity = (event.kind, event.source)
            if identity not in last and identity not in seen and len(last) + len(seen) >= MAX_SOURCES:
                self.dropped_sources += 1
                continue
            if event.pulse:
                if identity not in seen:
                    self._tell(channel, event, True)
                    self._tell(channel, event, False)
                    seen[identity] = [False, False]
                continue
            state = seen.setdefault(identity, [False, event.active])
            state[0], state[1] = state[0] or event.active, event.active
        by_identity = {(e.kind, e.source): e for e in events}
        for identity, (any_active, final) in seen.items():
            event, was = by_identity[identity], last.get(identity, False)
            if any_active and not was:
                self._tell(channel, event, True)
                was = True
            if was and not final:
                self._tell(channel, event, False)
                was = False
            last[identity] = was

    def _tell(self, channel: int, event: CameraEvent, active: bool) -> None:
        kind, key = signal_of(channel, event)
        self._on_change(kind, key, f"onvif:{event.kind}:{event.source}", active,
                        f"camera {event.topic} {event.source}".strip())

    def _subscription(self, channel: int, ok: bool, error: str | None) -> None:
        if ok:
            if self._faults is not None:
                self._faults.clear_fault(FAULT, channel=channel)
            return
        with self._lock:
            self._release_all(channel)
        if self._faults is not None:
            self._faults.raise_fault(FAULT, f"the camera's events are not coming in: {error}", channel=channel)

    def _release_all(self, channel: int) -> None:
        """End every signal the camera holds active (its subscription is gone: its states are unknown)."""
        last = self._active.get(channel, {})
        for (kind, source), active in list(last.items()):
            if active:
                self._tell(channel, CameraEvent(kind, source, False, "subscription lost"), False)
        last.clear()

    def statistics(self) -> dict:
        """Per channel: the subscriber's counters, the camera inputs seen (their `alarm_input` ids) and
        the sources seen, each with whether it is active now."""
        with self._lock:
            seen = {channel: dict(states) for channel, states in self._active.items()}
        return {"channels": {channel: {
            **subscriber.statistics(),
            "inputs": sorted(camera_input_id(channel, source) for kind, source in seen.get(channel, {})
                             if kind == DIGITAL_INPUT),
            "sources": {f"{kind}:{source}": active for (kind, source), active in seen.get(channel, {}).items()},
        } for channel, subscriber in self.subscribers.items()}, "dropped_sources": self.dropped_sources}
