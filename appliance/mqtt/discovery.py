"""Home Assistant MQTT discovery: the retained config messages that make the box and each channel a device.

Topic: ``<discovery_prefix>/<component>/<node_id>/<object_id>/config``, one node id per box (the
client id made safe), object ids unique within it. Field names are Home Assistant's documented ones
(``state_topic``, ``command_topic``, ``availability_topic``, ``device{identifiers, name, model,
manufacturer, sw_version, via_device}``, ``unique_id``, ``device_class``, ``payload_on/off``,
``value_template``...); ``REQUIRED`` lists each component's mandatory key.

The box: alarm inputs (binary sensors), outputs (switches when `output` commands are allowed, else
binary sensors), arming (switches, with `arm`), faults (binary sensors), free disk space (sensor),
rules (binary sensors, on while their event is open). Each channel: a camera (the snapshot topic),
motion / video loss / recording (binary sensors), a record button (with `record`), preset buttons
(PTZ channels, with `ptz_preset`).

A channel or input that is no longer configured must disappear from Home Assistant: an empty retained
config removes an entity. The box subscribes to its own node's configs and empties every one that it
would no longer publish (`stale`), so removal needs no state of its own and survives a reinstall.
"""
from __future__ import annotations

from typing import Any

from appliance.config.model import Config
from appliance.mqtt.topics import OFF, ON, Topics, slug

MANUFACTURER = "nvr appliance project"
MODEL = "NVR appliance"
REQUIRED = {"binary_sensor": "state_topic", "sensor": "state_topic", "switch": "command_topic",
            "button": "command_topic", "camera": "topic"}
STATE_TEMPLATE = "{{ value_json.state }}"


def node_id(client_id: str) -> str:
    """Home Assistant's node id: letters, digits, '_' and '-' only."""
    return slug(client_id).replace("-", "_")


def config_topic(discovery_prefix: str, component: str, node: str, object_id: str) -> str:
    return f"{discovery_prefix}/{component}/{node}/{object_id}/config"


def own_configs_filter(discovery_prefix: str, node: str) -> str:
    return f"{discovery_prefix}/+/{node}/+/config"


class _Builder:
    def __init__(self, config: Config, topics: Topics, node: str, sw_version: str, box_name: str):
        self.config, self.topics, self.node = config, topics, node
        self.prefix = config.mqtt.discovery_prefix
        self.allowed = set(config.mqtt.commands)
        self.box = {"identifiers": [node], "name": box_name, "model": MODEL, "manufacturer": MANUFACTURER,
                    "sw_version": sw_version}
        self.out: dict[str, dict[str, Any]] = {}

    def channel_device(self, channel) -> dict:
        return {"identifiers": [f"{self.node}_ch{channel.id}"], "name": channel.name, "model": f"{MODEL} channel",
                "manufacturer": MANUFACTURER, "via_device": self.node}

    def add(self, component: str, object_id: str, name: str, device: dict, **fields) -> None:
        payload = {"name": name, "unique_id": f"{self.node}_{object_id}",
                   "availability_topic": self.topics.availability, "payload_available": "online",
                   "payload_not_available": "offline", "device": device, **fields}
        if component != "camera":
            payload["qos"] = 1
        self.out[config_topic(self.prefix, component, self.node, object_id)] = payload

    def binary(self, object_id: str, name: str, device: dict, state_topic: str, device_class: str | None) -> None:
        fields = {"state_topic": state_topic, "value_template": STATE_TEMPLATE, "payload_on": ON, "payload_off": OFF}
        if device_class is not None:
            fields["device_class"] = device_class
        self.add("binary_sensor", object_id, name, device, **fields)

    def switch(self, object_id: str, name: str, device: dict, state_topic: str) -> None:
        self.add("switch", object_id, name, device, state_topic=state_topic, value_template=STATE_TEMPLATE,
                 state_on=ON, state_off=OFF, command_topic=Topics.command(state_topic), payload_on=ON, payload_off=OFF)


def discovery_configs(config: Config, topics: Topics, *, node: str, sw_version: str, box_name: str,
                      ptz_channels: list[int]) -> dict[str, dict[str, Any]]:
    """Config topic -> payload for every entity of the box and its channels (empty when discovery is off)."""
    if not config.mqtt.discovery:
        return {}
    b = _Builder(config, topics, node, sw_version, box_name)
    _box_entities(b)
    for channel in config.channels:
        _channel_entities(b, channel, channel.id in ptz_channels)
    return b.out


# The disk signals of the rules (`when: {disk: KEY}`): (key, entity name, Home Assistant device class)
DISK_FAULTS = (("full", "Disk full", "problem"), ("error", "Disk error", "problem"),
               ("missing", "Disk missing", "problem"), ("failing", "Disk failing", "problem"),
               ("hot", "Disk hot", "heat"), ("errors", "Disk errors", "problem"))


def _box_entities(b: _Builder) -> None:
    box, t = b.box, b.topics
    for item in b.config.alarms.inputs:
        b.binary(f"input_{slug(item.id)}", item.name or item.id, box, t.alarm_input(item.id), "safety")
        if "arm" in b.allowed:
            b.switch(f"armed_{slug(item.id)}", f"{item.name or item.id} armed", box, t.armed(item.id))
            b.switch(f"schedule_{slug(item.id)}", f"{item.name or item.id} follows its schedule", box,
                     t.schedule(item.id))
    for output in b.config.alarms.outputs:
        if "output" in b.allowed:
            b.switch(f"output_{slug(output.id)}", output.name or output.id, box, t.output(output.id))
        else:
            b.binary(f"output_{slug(output.id)}", output.name or output.id, box, t.output(output.id), "power")
    for key, name, device_class in DISK_FAULTS:
        b.binary(f"disk_{key}", name, box, t.fault(f"disk_{key}"), device_class)
    b.binary("temperature", "Temperature out of range", box, t.fault("temperature"), "heat")
    b.add("sensor", "disk_free", "Free disk space", box, state_topic=t.disk, value_template="{{ value_json.free_gb }}",
          unit_of_measurement="GB", device_class="data_size", state_class="measurement")
    for number, rule in enumerate(b.config.rules, start=1):
        if rule.enabled:
            name = rule.name or f"rule {number}"
            b.binary(f"rule_{slug(name)}", f"Rule {name}", box, t.rule(name), None)


def _channel_entities(b: _Builder, channel, has_ptz: bool) -> None:
    device, t, ch = b.channel_device(channel), b.topics, channel.id
    if b.config.mqtt.snapshots:
        b.add("camera", f"ch{ch}_snapshot", "Snapshot", device, topic=t.channel(ch, "snapshot"))
    if channel.motion is not None and channel.motion.enabled:
        b.binary(f"ch{ch}_motion", "Motion", device, t.channel(ch, "motion"), "motion")
    b.binary(f"ch{ch}_video_loss", "Video loss", device, t.channel(ch, "video_loss"), "problem")
    b.binary(f"ch{ch}_recording", "Recording", device, t.channel(ch, "recording"), "running")
    if "record" in b.allowed:
        b.add("button", f"ch{ch}_record", "Record event", device,
              command_topic=Topics.command(t.channel(ch, "record")), payload_press="PRESS")
    if has_ptz and "ptz_preset" in b.allowed:
        for preset in range(1, b.config.mqtt.ptz_preset_buttons + 1):
            b.add("button", f"ch{ch}_preset_{preset}", f"Preset {preset}", device,
                  command_topic=Topics.command(t.channel(ch, "ptz_preset")), payload_press=str(preset))


def stale(topic: str, payload: bytes, *, current: dict[str, Any], discovery_prefix: str, node: str) -> bool:
    """A retained config of this node that the box no longer publishes (a removed channel, input or rule)."""
    parts = topic.split("/")
    prefix_levels = discovery_prefix.count("/") + 1
    return (bool(payload) and len(parts) == prefix_levels + 4 and "/".join(parts[:prefix_levels]) == discovery_prefix
            and parts[prefix_levels + 1] == node and parts[-1] == "config" and topic not in current)
