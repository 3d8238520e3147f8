"""MQTT and Home Assistant: the box's alarms, motion, faults, recording state and disk space on the home's
message bus, discovery configs, and the allow-listed commands it takes (design/mqtt.md).

What the MQTT side needs of the running appliance is one narrow protocol, `MqttBox`, which
`appliance.mqtt.box.ApplianceBox` meets over the `Appliance`; tests give it fakes. The parts:
`client.py` (connection, outbox), `topics.py` (names), `publish.py` (alarm side -> messages),
`discovery.py` (Home Assistant configs), `commands.py` (parsing and running commands), `service.py`
(them together, as the Appliance starts and stops it).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from appliance.alarms.rules import AlarmListener
from appliance.config.model import Config


class MqttBox(Protocol):
    """What the MQTT side reads and drives of the appliance. Reads are quick and never wait on a disk
    write or the network, except `snapshot_jpeg` (called on a worker of its own)."""

    @property
    def config(self) -> Config: ...

    def subscribe_alarms(self, listener: AlarmListener) -> Callable[[], None]:
        """Signals, rule firings and event ends from the alarm side; returns the unsubscribe call."""

    def input_states(self) -> dict[str, tuple[bool, bool]]:
        """Alarm input id -> (active, armed)."""

    def schedule_states(self) -> dict[str, bool]:
        """Alarm input id -> it follows its arming schedule (False: set aside by hand)."""

    def output_states(self) -> dict[str, bool]:
        """Alarm output id -> on."""

    def active_signals(self) -> list[tuple[str, str]]:
        """(kind, key) of the board signals active now: ('disk', 'full'), ('video_loss', '2'), ..."""

    def recording_states(self) -> dict[int, bool]:
        """Channel -> its main stream is connected and recording."""

    def disk_space(self) -> tuple[int, int] | None:
        """(free bytes, total bytes) of the recordings disk; None when it is not there."""

    def snapshot_jpeg(self, channel: int, *, max_width: int) -> bytes | None:
        """The channel's picture now as JPEG (may block a few seconds); None without one."""

    def ptz_channels(self) -> list[int]:
        """Channels with a dome."""

    # commands (each allowed by mqtt.commands)
    def set_output(self, output_id: str, on: bool) -> None: ...

    def set_armed(self, input_id: str, armed: bool) -> None: ...

    def set_schedule(self, input_id: str, follow: bool) -> None: ...

    def preset_go(self, channel: int, preset: int) -> None: ...

    def record_event(self, channel: int, duration_s: float) -> None: ...
