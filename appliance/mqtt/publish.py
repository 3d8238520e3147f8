"""From the appliance to the bus: alarm-side changes, outputs, arming, recording state, disk space, snapshots.

`Publisher` is an `AlarmListener` of the rule engine: its calls come on the alarm thread and only
enqueue (`MqttClient.publish` appends to the outbox). It remembers the last state of every retained
topic, which the client sends again first on each new connection. Outputs, arming and recording are
looked at every `POLL_S` (relays change on their own timers: pulse ends) and disk space every
`mqtt.state_interval_s`, on a thread of its own; each is published when it changes. Snapshots are
taken on a bounded worker of their own (a JPEG can take a keyframe's wait), never on the alarm thread.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

from base.clock import Clocks

from appliance.alarms.rules import Firing, Signal
from appliance.alarms.webhooks import BoundedWorker
from appliance.config.model import Config
from appliance.mqtt import MqttBox
from appliance.mqtt.discovery import DISK_FAULTS
from appliance.mqtt.client import Message
from appliance.mqtt.topics import OFF, ON, Topics, state_payload
from appliance.presentation import iso_utc

log = logging.getLogger("nvr.mqtt")

POLL_S = 1.0  # outputs, arming and recording state are looked at this often
SNAPSHOT_JOBS = 4  # snapshots waiting; more are dropped and counted (a burst of motion on every channel)

Publish = Callable[..., None]  # MqttClient.publish(topic, payload, *, retain, qos)


class Publisher:
    """Turns the appliance's changes into messages on `publish` (which must not block)."""

    def __init__(self, box: MqttBox, *, topics: Topics, publish: Publish, clocks: Clocks):
        self._box, self._topics, self._publish, self._clocks = box, topics, publish, clocks
        self._config: Config = box.config
        self._states: dict[str, bytes] = {}  # retained topic -> last payload
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.snapshots = BoundedWorker(name="mqtt-snapshots", max_jobs=SNAPSHOT_JOBS)
        self.events = self.snapshots_sent = 0
        self._last_disk_us = 0
        self._bad_disks: dict[str, set[str | None]] = {}  # a disk fault's state topic -> the disks raising it

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self.seed()
        self.snapshots.start()
        self._thread = threading.Thread(target=self._poll_loop, name="mqtt-state", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.snapshots.stop(timeout_s=2.0)

    def retained_states(self) -> list[Message]:
        """Every retained state as last known (sent first on each new connection)."""
        with self._lock:
            return [Message(topic, payload, retain=True) for topic, payload in self._states.items()]

    # --- AlarmListener (the alarm thread) ---------------------------------------------------------

    def signal_changed(self, signal: Signal) -> None:
        self.events += 1
        topic = self._topics.signal_topic(signal.kind, signal.key)
        if topic is not None and self._stands_changed(topic, signal):
            self._state(topic, state_payload(signal.active, signal.at_us, detail=signal.detail))
        event = {"kind": signal.kind, "key": signal.key, "state": ON if signal.active else OFF,
                 "at": iso_utc(signal.at_us), "at_us": signal.at_us, "detail": signal.detail,
                 **({"disk": signal.disk} if signal.disk is not None else {})}
        self._publish(self._topics.events, json.dumps(event, separators=(",", ":")), retain=False)
        if signal.kind == "motion" and signal.active:
            self._snapshot(int(signal.key))

    def _stands_changed(self, topic: str, signal: Signal) -> bool:
        """Whether a disk signal's state topic (one for all disks) should say this change: it is ON
        while any disk raises it; a disk clearing while another is still bad changes nothing there."""
        if signal.kind != "disk":
            return True
        bad = self._bad_disks.setdefault(topic, set())
        before = bool(bad)
        (bad.add if signal.active else bad.discard)(signal.disk)
        return bool(bad) != before or not bad  # OFF is always said once none is bad (the seed may have said ON)

    def rule_fired(self, firing: Firing) -> None:
        start_us = firing.start_us if firing.start_us is not None else firing.signal.at_us
        self._state(self._topics.rule(firing.rule), state_payload(
            True, firing.signal.at_us, rule=firing.rule, event_id=firing.event_id, source=firing.signal.source,
            start=iso_utc(start_us), start_us=start_us, channels=list(firing.channels),
            playback={str(ch): self._playback_link(ch, start_us) for ch in firing.channels}))
        if firing.signal.kind != "motion":  # motion already took its channel's picture
            for channel in firing.channels:
                self._snapshot(channel)

    def event_ended(self, rule: str, event_id: int | None, end_us: int) -> None:
        self._state(self._topics.rule(rule), state_payload(False, end_us, rule=rule, event_id=event_id,
                                                            end=iso_utc(end_us), end_us=end_us))

    # --- states ----------------------------------------------------------------------------------

    def _state(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self._states[topic] = payload
        self._publish(topic, payload, retain=True)

    def _state_if_changed(self, topic: str, payload: bytes, key: bytes) -> None:
        """Publish when the part of the state that matters (`key`) changed since the last one."""
        with self._lock:
            last = self._states.get(topic)
        if last is None or _state_of(last) != key:
            self._state(topic, payload)

    def seed(self) -> None:
        """The states at start: every entity has a retained state from the first connection on."""
        now = self._clocks.utc_now_us()
        cfg, active = self._config, set(self._box.active_signals())
        for item in cfg.alarms.inputs:
            self._state(self._topics.alarm_input(item.id), state_payload(False, now))
        for channel in cfg.channels:
            if channel.motion is not None and channel.motion.enabled:
                self._state(self._topics.channel(channel.id, "motion"), state_payload(False, now))
            self._state(self._topics.channel(channel.id, "video_loss"),
                        state_payload(("video_loss", str(channel.id)) in active, now))
        for key, _, _ in DISK_FAULTS:
            self._state(self._topics.fault(f"disk_{key}"), state_payload(("disk", key) in active, now))
        self._state(self._topics.fault("temperature"), state_payload(("temperature", "out_of_range") in active, now))
        for number, rule in enumerate(cfg.rules, start=1):
            if rule.enabled:
                self._state(self._topics.rule(rule.name or f"rule {number}"), state_payload(False, now))
        self.refresh()

    def refresh(self) -> None:
        """Publish outputs, arming and recording state that changed (also right after a command)."""
        now = self._clocks.utc_now_us()
        for output_id, on in self._box.output_states().items():
            self._state_if_changed(self._topics.output(output_id), state_payload(on, now), _key(on))
        for input_id, (_active, armed) in self._box.input_states().items():
            self._state_if_changed(self._topics.armed(input_id), state_payload(armed, now), _key(armed))
        for input_id, follows in self._box.schedule_states().items():
            self._state_if_changed(self._topics.schedule(input_id), state_payload(follows, now), _key(follows))
        for channel, recording in self._box.recording_states().items():
            self._state_if_changed(self._topics.channel(channel, "recording"), state_payload(recording, now),
                                   _key(recording))

    def publish_disk_space(self) -> None:
        space = self._box.disk_space()
        now = self._clocks.utc_now_us()
        if space is None:
            payload = {"free_bytes": None, "total_bytes": None, "free_gb": None, "used_percent": None}
        else:
            free, total = space
            payload = {"free_bytes": free, "total_bytes": total, "free_gb": round(free / 1e9, 2),
                       "used_percent": round(100 * (total - free) / total, 1) if total else None}
        self._state(self._topics.disk, json.dumps({**payload, "at": iso_utc(now), "at_us": now},
                                                  separators=(",", ":")).encode())

    def _poll_loop(self) -> None:
        interval_us = round(self._config.mqtt.state_interval_s * 1e6)
        while not self._stop.is_set():
            try:
                self.refresh()
                now = self._clocks.monotonic_us()
                if not self._last_disk_us or now - self._last_disk_us >= interval_us:
                    self._last_disk_us = now
                    self.publish_disk_space()
            except Exception:  # one bad look must not end the states
                log.exception("MQTT: reading the appliance's state failed")
            self._clocks.wait(self._stop, POLL_S)

    # --- snapshots and links ---------------------------------------------------------------------

    def _snapshot(self, channel: int) -> None:
        if self._config.mqtt.snapshots:
            self.snapshots.submit(lambda: self._take_snapshot(channel))

    def _take_snapshot(self, channel: int) -> None:
        jpeg = self._box.snapshot_jpeg(channel, max_width=self._config.mqtt.snapshot_max_width)
        if jpeg is None:
            log.info("MQTT: channel %d has no picture for a snapshot", channel)
            return
        self._publish(self._topics.channel(channel, "snapshot"), jpeg, retain=True)
        self.snapshots_sent += 1

    def _playback_link(self, channel: int, start_us: int) -> str:
        base = self._config.mqtt.web_url or ""
        return f"{base}/#/export/{channel}/{start_us}"

    def statistics(self) -> dict:
        return {"signals": self.events, "snapshots": self.snapshots_sent, "snapshot_worker": self.snapshots.statistics()}


def _key(on: bool) -> bytes:
    return (ON if on else OFF).encode()


def _state_of(payload: bytes) -> bytes:
    try:
        return str(json.loads(payload).get("state", "")).encode()
    except (ValueError, AttributeError):
        return b""
