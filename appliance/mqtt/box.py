"""`MqttBox` over the running `Appliance`: the one place that translates between the MQTT side and the
appliance's parts (alarm I/O, PTZ service, recorders, live taps), as `appliance/web/services.py` does for
the web. Without alarm I/O (not started) the alarm parts read as empty and commands raise LookupError.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from base.clock import Clocks
from hal.storage import disk_usage
from recorder.faults import FaultBoard
from recorder.live import LiveHub
from recorder.snapshot import SnapshotError, live_jpeg

from appliance.alarms.io import BOARD_SIGNALS, AlarmIO
from appliance.alarms.rules import AlarmListener
from appliance.config.model import Config
from appliance.ptz.service import PtzService

PRESET_TIMEOUT_S = 2.0  # a preset frame queued behind a busy bus


class _Appliance(Protocol):
    """The parts of `appliance.app.Appliance` this adapter reads."""

    clocks: Clocks
    alarm_io: AlarmIO | None
    ptz: PtzService

    @property
    def config(self) -> Config: ...

    @property
    def root(self) -> Path: ...

    @property
    def live(self) -> LiveHub: ...

    @property
    def faults(self) -> FaultBoard: ...

    def streams(self) -> list: ...


class ApplianceBox:
    """`appliance.mqtt.MqttBox` over an `Appliance`."""

    def __init__(self, appliance: _Appliance, *, disk_absent: Callable[[], bool] = lambda: False):
        self._app, self._disk_absent = appliance, disk_absent

    @property
    def config(self) -> Config:
        return self._app.config

    def _io(self) -> AlarmIO:
        if self._app.alarm_io is None:
            raise LookupError("the alarm I/O is not running")
        return self._app.alarm_io

    def subscribe_alarms(self, listener: AlarmListener) -> Callable[[], None]:
        return self._io().engine.subscribe(listener)

    def input_states(self) -> dict[str, tuple[bool, bool]]:
        io = self._app.alarm_io
        return {} if io is None else {cid: (c.active, c.armed) for cid, c in list(io.contacts.items())}

    def schedule_states(self) -> dict[str, bool]:
        io = self._app.alarm_io
        return {} if io is None else {cid: c.follows_schedule for cid, c in list(io.contacts.items())}

    def output_states(self) -> dict[str, bool]:
        io = self._app.alarm_io
        return {} if io is None else {rid: relay.is_active for rid, relay in list(io.relays.items())}

    def active_signals(self) -> list[tuple[str, str]]:
        signals = []
        for fault in self._app.faults.active():
            if fault.kind in BOARD_SIGNALS:
                kind, key = BOARD_SIGNALS[fault.kind]
                signals.append((kind, key if key is not None else str(fault.channel)))
        return signals

    def recording_states(self) -> dict[int, bool]:
        states = {channel.id: False for channel in self.config.channels if channel.enabled}
        for stream in self._app.streams():
            if stream.stream == "main" and stream.channel in states:
                states[stream.channel] = bool(stream.connected) and not self._disk_absent()
        return states

    def disk_space(self) -> tuple[int, int] | None:
        if self._disk_absent():
            return None
        try:
            usage = disk_usage(self._app.root)
        except OSError:
            return None
        return usage.free_bytes, usage.total_bytes

    def snapshot_jpeg(self, channel: int, *, max_width: int) -> bytes | None:
        try:
            return live_jpeg(self._app.live.stream(channel, "main"), clocks=self._app.clocks, max_width=max_width)
        except SnapshotError:
            return None

    def ptz_channels(self) -> list[int]:
        return list(self._app.ptz.channels())

    def set_output(self, output_id: str, on: bool) -> None:
        io = self._io()
        io.trigger_output(output_id) if on else io.clear_output(output_id)

    def set_armed(self, input_id: str, armed: bool) -> None:
        self._io().set_armed(input_id, armed)

    def set_schedule(self, input_id: str, follow: bool) -> None:
        self._io().set_schedule(input_id, follow)

    def preset_go(self, channel: int, preset: int) -> None:
        self._app.ptz.preset_go(channel, preset).result(timeout=PRESET_TIMEOUT_S)

    def record_event(self, channel: int, duration_s: float) -> None:
        if channel not in {c.id for c in self.config.channels}:
            raise LookupError(f"no channel {channel}")
        self._io().record_event(channel, duration_s=duration_s, source="mqtt")
