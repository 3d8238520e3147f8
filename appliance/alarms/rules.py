"""The linkage rule engine: signals (alarm inputs, motion, video loss, disk, temperature) -> events and actions.

Every signal change is handled on the alarm scheduler's thread, in order. When a rule's signal
becomes active the rule *fires*: its outputs switch first, then an event row is committed, then its
PTZ preset and webhook are queued (never waited for) and its log line written. The event starts
`pre_s` before the alarm (recording is continuous, so those seconds are already on disk) and, if
`lock`, locks the segments it covers,
including the ones indexed later (see `Index.add_segment`). When the signal ends the event is closed
`post_s` later; a new activation before then extends the same event instead of starting another.

Every firing makes an event, with or without a `record` action (then it names no channels), so the
event list shows every alarm. Webhooks and PTZ go out when the rule fires, not when its signal ends.
A `play` sound is handed to the alarm sound player with the outputs, before the event row (a siren
must not wait for the disk), and stopped when the signal ends (unless it asked to play out).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from drivers.contacts import Relay
from base.clock import Clocks
from base.timers import Scheduler, Timer
from recorder.index import Index

from appliance.config.alarms import ActionConfig, RuleConfig
from appliance.alarms.webhooks import BoundedWorker, WebhookSender, fill_template
from appliance.presentation import iso_utc

log = logging.getLogger("nvr.rules")


class SoundPlayer(Protocol):
    """What the `play` action needs (appliance.sound.rule_sounds.RuleSounds meets it): both calls only
    hand the order over, they never block the alarm thread. `channel`: on that channel's talk output
    (its camera's speaker); None: on the AUDIO OUT."""

    def play(self, key: object, path: str, *, channel: int | None, times: int | None, volume: float,
             pause_s: float, stop_on_clear: bool) -> None: ...

    def stop(self, match: Callable[[object], bool], *, cleared: bool = True) -> None: ...


class PtzPresets(Protocol):
    """What the `ptz_preset` action needs from the PTZ service: go to a stored preset. It may block on the
    bus or return at once (a Future); either way it is called on a worker, never on the alarm path."""

    def preset_go(self, channel: int, preset: int, /) -> object: ...


@dataclass(frozen=True, slots=True)
class Signal:
    """A change of one signal: `kind` as in a rule's `when` ('alarm_input', 'motion', 'video_loss', 'disk',
    'temperature'), `key` its value there ('door', '1', 'full', 'out_of_range'), at `at_us` UTC.

    `disk`: which recording disk (its label) a disk signal is about, when there are several. A rule's
    `when: {disk: errors}` matches every disk's, and each disk is its own source: a second disk going
    bad fires the rule again while the first is still bad, and the rule is released once none is."""

    kind: str
    key: str
    active: bool
    at_us: int
    detail: str = ""
    disk: str | None = None

    @property
    def source(self) -> str:
        return f"{self.kind}:{self.key}"

    @property
    def described(self) -> str:
        """The source as a person reads it in a log line: 'disk:errors on disk 'Bay 1''."""
        return self.source if self.disk is None else f"{self.source} on disk {self.disk!r}"


@dataclass(frozen=True, slots=True)
class Firing:
    """What one rule firing did, for listeners (status page, benchmarks)."""

    rule: str
    signal: Signal
    event_id: int | None
    handled_us: int  # monotonic time when its outputs, event row and queued jobs were done
    channels: tuple[int, ...] = ()  # the channels its event records
    start_us: int | None = None  # the event's start (pre_s before the signal), UTC


class AlarmListener(Protocol):
    """What the alarm side tells a listener (MQTT, ...), on the alarm scheduler thread, in order: every
    signal change (whether or not a rule watches it), every rule firing, every event ending. Keep each
    call quick (enqueue only): the next alarm waits for it. A listener that raises is logged and skipped."""

    def signal_changed(self, signal: Signal, /) -> None: ...

    def rule_fired(self, firing: Firing, /) -> None: ...

    def event_ended(self, rule: str, event_id: int | None, end_us: int, /) -> None: ...


@dataclass(slots=True)
class _Plan:
    """A rule's record actions merged: the channels, the longest pre/post, locked if any asks."""

    channels: tuple[int, ...] = ()
    pre_s: float = 0.0
    post_s: float = 0.0
    lock: bool = False


@dataclass(slots=True)
class _OpenEvent:
    event_id: int | None
    signal_active: bool = True
    close_timer: Timer | None = None


@dataclass
class RuleStats:
    fired: int = 0
    events: int = 0
    extended: int = 0
    action_errors: int = 0
    ptz_missing: int = 0
    sounds_missing: int = 0
    max_handle_us: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)


class RuleEngine:
    """Runs `rules` against signals. `signal()` may be called from any thread."""

    def __init__(self, *, rules: list[RuleConfig], index: Index, relays: dict[str, Relay], scheduler: Scheduler,
                 clocks: Clocks, webhooks: WebhookSender, ptz: PtzPresets | None = None,
                 ptz_worker: BoundedWorker | None = None, on_fired: Callable[[Firing], None] | None = None,
                 sounds: SoundPlayer | None = None):
        self._rules = [(rule.name or f"rule {number}", rule) for number, rule in enumerate(rules, start=1)
                       if rule.enabled]
        self._plans = [_plan(rule.do) for _, rule in self._rules]
        self._index, self._relays, self._scheduler, self._clocks = index, relays, scheduler, clocks
        self._webhooks, self._ptz, self._ptz_worker = webhooks, ptz, ptz_worker
        self._sounds = sounds
        self.on_fired = on_fired
        self._open: dict[int, _OpenEvent] = {}
        self._holding: dict[int, set[str | None]] = {}  # rule -> the disks (None: the signal itself) holding it active
        self._listeners: list[AlarmListener] = []
        self.stats = RuleStats()

    def subscribe(self, listener: AlarmListener) -> Callable[[], None]:
        """Tell `listener` of every signal, firing and event end from now on; returns the unsubscribe call."""
        self._listeners = [*self._listeners, listener]

        def unsubscribe() -> None:
            self._listeners = [known for known in self._listeners if known is not listener]
        return unsubscribe

    def _tell(self, method: str, *args) -> None:
        for listener in self._listeners:
            try:
                getattr(listener, method)(*args)
            except Exception:  # a broken listener must not cost the alarm path
                log.exception("alarm listener %r failed in %s", listener, method)

    def signal(self, kind: str, key: str, active: bool, *, at_us: int | None = None, detail: str = "",
               disk: str | None = None) -> None:
        """Report a signal change (`disk`: which disk's, see Signal); handled on the scheduler thread (at
        once if called from it)."""
        sig = Signal(kind, str(key), active, self._clocks.utc_now_us() if at_us is None else at_us, detail, disk)
        if self._scheduler.on_thread:
            self._handle(sig)
        else:
            self._scheduler.call_soon(self._handle, sig)

    def _handle(self, sig: Signal) -> None:
        self._tell("signal_changed", sig)
        for number, (name, rule) in enumerate(self._rules):
            if rule.when.signal != (sig.kind, sig.key):
                continue
            holding = self._holding.setdefault(number, set())
            if sig.active:
                holding.add(sig.disk)
                self._fire(number, name, rule, sig)
            else:
                holding.discard(sig.disk)
                if not holding:  # another disk still bad keeps the rule's event (and sound) going
                    self._release(number, sig)

    # --- firing --------------------------------------------------------------------------------

    def _fire(self, number: int, name: str, rule: RuleConfig, sig: Signal) -> None:
        started = time.perf_counter_ns()
        self.stats.fired += 1
        self.stats.by_rule[name] = self.stats.by_rule.get(name, 0) + 1
        # Outputs first: a siren must not wait for the disk. Then the event row, then the rest.
        outputs = [action for action in rule.do if action.output is not None]
        for action in outputs:
            self._guarded(name, self._run, action, number, name, sig, None)
        for position, action in enumerate(rule.do):
            if action.play is not None:
                self._guarded(name, self._play, name, (number, position), action)
        event_id = self._guarded(name, self._open_event, number, name, sig)
        for action in rule.do:
            if action.output is None:
                self._guarded(name, self._run, action, number, name, sig, event_id)
        self.stats.max_handle_us = max(self.stats.max_handle_us, (time.perf_counter_ns() - started) // 1000)
        plan = self._plans[number]
        firing = Firing(name, sig, event_id, self._clocks.monotonic_us(), plan.channels,
                        sig.at_us - round(plan.pre_s * 1e6))
        if self.on_fired is not None:
            self.on_fired(firing)
        self._tell("rule_fired", firing)

    def _guarded(self, name: str, fn: Callable, *args):
        try:
            return fn(*args)
        except Exception:
            self.stats.action_errors += 1
            log.exception("%s: an action failed", name)
            return None

    def _run(self, action: ActionConfig, number: int, name: str, sig: Signal, event_id: int | None) -> None:
        if action.output is not None:
            self._relays[action.output.id].trigger(action.output.for_s)
        elif action.ptz_preset is not None:
            self._go_preset(name, action.ptz_preset.channel, action.ptz_preset.preset)
        elif action.webhook is not None:
            hook = action.webhook
            fields = {"rule": name, "source": sig.source, "active": sig.active, "at": iso_utc(sig.at_us),
                      "at_us": sig.at_us, "event_id": event_id, "detail": sig.detail,
                      "channels": list(self._plans[number].channels), "disk": sig.disk}
            self._webhooks.send(hook.url, fill_template(hook.body, fields) if hook.body is not None else fields,
                                timeout_s=hook.timeout_s)
        elif action.log is not None:
            log.warning("%s: %s (%s%s)", name, action.log, sig.described, f": {sig.detail}" if sig.detail else "")
        # record: handled by _open_event for the whole rule

    def _play(self, name: str, key: tuple[int, int], action: ActionConfig) -> None:
        play = action.play
        if self._sounds is None:
            self.stats.sounds_missing += 1
            log.error("%s: no sound player to play %s", name, play.file)
            return
        self._sounds.play(key, play.file, channel=play.channel, times=None if play.loop else play.repeat,
                          volume=play.volume_percent / 100, pause_s=play.pause_s, stop_on_clear=play.stop_on_clear)

    def _go_preset(self, name: str, channel: int, preset: int) -> None:
        if self._ptz is None:
            self.stats.ptz_missing += 1
            log.error("%s: no PTZ service to send channel %d to preset %d", name, channel, preset)
            return
        ptz = self._ptz
        job = lambda: ptz.preset_go(channel, preset)  # noqa: E731 - runs later on the PTZ worker
        if self._ptz_worker is None:
            job()
        else:
            self._ptz_worker.submit(job)

    def _open_event(self, number: int, name: str, sig: Signal) -> int | None:
        state = self._open.get(number)
        if state is not None:  # active again before the post-alarm time ran out: the same event goes on
            if state.close_timer is not None:
                state.close_timer.cancel()
            state.close_timer, state.signal_active = None, True
            self.stats.extended += 1
            return state.event_id
        plan = self._plans[number]
        event = self._index.add_event(start_us=sig.at_us - round(plan.pre_s * 1e6), trigger_us=sig.at_us,
                                      source=sig.source, rule=name, channels=plan.channels, locked=plan.lock)
        self.stats.events += 1
        self._open[number] = _OpenEvent(event.id)
        return event.id

    # --- releasing -----------------------------------------------------------------------------

    def _release(self, number: int, sig: Signal) -> None:
        if self._sounds is not None and any(action.play is not None for action in self._rules[number][1].do):
            self._sounds.stop(lambda key: key[0] == number)
        state = self._open.get(number)
        if state is None or not state.signal_active:
            return
        state.signal_active = False
        post_s = self._plans[number].post_s
        end_us = sig.at_us + round(post_s * 1e6)
        state.close_timer = self._scheduler.call_later(post_s, self._close, number, state, end_us)

    def _close(self, number: int, state: _OpenEvent, end_us: int) -> None:
        if self._open.get(number) is not state or state.signal_active:
            return
        del self._open[number]
        if state.event_id is not None:
            self._index.end_event(state.event_id, end_us=end_us)
        self._tell("event_ended", self._rules[number][0], state.event_id, end_us)

    def close_all(self) -> None:
        """End every open event now (shutdown); call on the scheduler thread or after it stopped."""
        now = self._clocks.utc_now_us()
        if self._sounds is not None:
            self._sounds.stop(lambda key: True, cleared=False)
        for number, state in list(self._open.items()):
            if state.close_timer is not None:
                state.close_timer.cancel()
            if state.event_id is not None:
                self._index.end_event(state.event_id, end_us=now)
            self._tell("event_ended", self._rules[number][0], state.event_id, now)
        self._open.clear()
        self._holding.clear()

    def statistics(self) -> dict:
        s = self.stats
        return {"rules": len(self._rules), "fired": s.fired, "events": s.events, "extended": s.extended,
                "open_events": len(self._open), "action_errors": s.action_errors, "ptz_missing": s.ptz_missing,
                "sounds_missing": s.sounds_missing,
                "max_handle_us": s.max_handle_us, "by_rule": dict(s.by_rule)}


def _plan(actions: list[ActionConfig]) -> _Plan:
    plan = _Plan()
    for action in actions:
        record = action.record
        if record is None:
            continue
        plan.channels = tuple(sorted(set(plan.channels) | set(record.channels)))
        plan.pre_s, plan.post_s = max(plan.pre_s, record.pre_s), max(plan.post_s, record.post_s)
        plan.lock = plan.lock or record.lock
    return plan
