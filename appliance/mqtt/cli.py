"""`nvr mqtt test`: what the box would publish (discovery configs, topics and first states), then one
connection to the broker with the configured URL, TLS and credentials, and a clear verdict."""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TextIO

from base.clock import Clocks
from base.credentials import mask_credentials
from hal.storage import disk_usage

from appliance.alarms.rules import AlarmListener
from appliance.config.model import Config
from appliance.mqtt.client import MqttError, check_connection
from appliance.mqtt.publish import Publisher
from appliance.mqtt.service import client_id_of, topics_of
from appliance.mqtt.discovery import discovery_configs, node_id
from appliance.version import appliance_version

SHOWN_PAYLOAD_CHARS = 400


class ConfigOnlyBox:
    """`MqttBox` from the config alone (no running appliance): inputs quiet and armed, outputs off,
    nothing recording yet, the disk as it is now. Commands are not taken."""

    def __init__(self, config: Config):
        self.config = config

    def subscribe_alarms(self, listener: AlarmListener) -> Callable[[], None]:
        return lambda: None

    def input_states(self) -> dict[str, tuple[bool, bool]]:
        return {item.id: (False, True) for item in self.config.alarms.inputs}

    def schedule_states(self) -> dict[str, bool]:
        return {item.id: True for item in self.config.alarms.inputs}

    def output_states(self) -> dict[str, bool]:
        return {item.id: False for item in self.config.alarms.outputs}

    def active_signals(self) -> list[tuple[str, str]]:
        return []

    def recording_states(self) -> dict[int, bool]:
        return {channel.id: False for channel in self.config.channels if channel.enabled}

    def disk_space(self) -> tuple[int, int] | None:
        try:
            usage = disk_usage(self.config.storage.path)
        except OSError:
            return None
        return usage.free_bytes, usage.total_bytes

    def snapshot_jpeg(self, channel: int, *, max_width: int) -> bytes | None:
        return None

    def ptz_channels(self) -> list[int]:
        return [channel.id for channel in self.config.channels if channel.ptz is not None]

    def set_output(self, output_id: str, on: bool) -> None:
        raise LookupError("not running")

    set_armed = set_schedule = set_output

    def preset_go(self, channel: int, preset: int) -> None:
        raise LookupError("not running")

    def record_event(self, channel: int, duration_s: float) -> None:
        raise LookupError("not running")


def run_mqtt_test(config: Config, *, clocks: Clocks, out: TextIO = sys.stdout, timeout_s: float = 10.0) -> int:
    """Print what would be published, then connect once; 0 if the broker took us, else 1 (reason on stderr)."""
    mqtt, topics = config.mqtt, topics_of(config)
    box = ConfigOnlyBox(config)
    configs = discovery_configs(config, topics, node=node_id(client_id_of(config)), sw_version=appliance_version(),
                                box_name=f"NVR {topics.prefix.rsplit('/', 1)[-1]}", ptz_channels=box.ptz_channels())
    print(f"# Home Assistant discovery ({len(configs)} entities, retained)" if configs else
          "# Home Assistant discovery is off (mqtt.discovery: false)", file=out)
    for topic, payload in configs.items():
        print(f"{topic} {json.dumps(payload, separators=(',', ':'))}", file=out)
    states: list[tuple[str, bytes]] = [(topics.availability, b"online")]
    publisher = Publisher(box, topics=topics, publish=lambda t, p, **_: states.append((t, p)), clocks=clocks)
    publisher.seed()
    publisher.publish_disk_space()
    print("# states (retained; each change later also on events)", file=out)
    for topic, payload in states:
        text = payload.decode(errors="replace") if isinstance(payload, bytes) else payload
        print(f"{topic} {text[:SHOWN_PAYLOAD_CHARS]}", file=out)
    print(f"# commands accepted on {topics.prefix}/.../set: {', '.join(mqtt.commands) or 'none'}", file=out)
    if not mqtt.enabled:
        print("# note: mqtt.enabled is false; `nvr run` will not connect", file=out)
    try:
        where = check_connection(url=mqtt.url, client_id=f"{client_id_of(config)}-test", tls=mqtt.tls, clocks=clocks,
                                 timeout_s=timeout_s)
    except MqttError as exc:
        print(f"nvr: mqtt: {mask_credentials(mqtt.url)}: {exc}", file=sys.stderr)
        return 1
    print(f"connected to {where} ({mask_credentials(mqtt.url)}) as {client_id_of(config)}-test: the broker accepts "
          f"the box", file=out)
    return 0
