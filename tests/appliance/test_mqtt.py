"""MQTT without a broker: the config section, the command parser, the discovery payloads against Home
Assistant's documented schema, the publisher's messages, the outbox and the error texts."""
from __future__ import annotations

import json
import socket
import ssl
from unittest.mock import ANY

import pytest

from appliance.alarms.rules import Firing, Signal
from appliance.config.model import ConfigError, parse_config
from appliance.config.mqtt import broker_address
from appliance.mqtt.client import Message, Outbox, describe_connect_error, describe_refusal
from appliance.mqtt.commands import Command, CommandError, CommandRunner, parse_command
from appliance.mqtt.discovery import REQUIRED, discovery_configs, stale
from appliance.mqtt.publish import Publisher
from appliance.mqtt.topics import Topics

PREFIX = "nvr/box"
CONFIG = """
channels:
  - {id: 1, name: Yard, source: {type: test-pattern}, motion: {}}
  - {id: 2, source: {type: test-pattern}, ptz: {port: bus, address: 1}}
ptz: {ports: [{id: bus, url: "loop://"}]}
alarms:
  inputs: [{id: door, name: Front door, pin: 17}]
  outputs: [{id: siren, pin: 22}]
  temperature: {thermal_zones: false}
rules: [{name: Door opened, when: {alarm_input: door}, do: [{record: {channels: [1]}}]}]
mqtt: {enabled: true, topic_prefix: nvr/box, commands: COMMANDS, ptz_preset_buttons: 2}
"""


def config(commands: str = "[output, arm, ptz_preset, record]"):
    return parse_config(CONFIG.replace("COMMANDS", commands))


# --- config ---------------------------------------------------------------------------------------

def test_a_bad_broker_url_is_reported_at_its_key_path_with_the_password_masked():
    with pytest.raises(ConfigError) as caught:
        parse_config("mqtt:\n  url: \"http://nvr:hunter2@broker\"\n  commands: [output, reboot]\n")
    text = str(caught.value)
    assert "<embedded>:2: mqtt.url: expected mqtt://" in text and "hunter2" not in text and "nvr:***@broker" in text
    assert "mqtt.commands[1]" in text


@pytest.mark.parametrize(("url", "expected"), [
    ("mqtt://broker", (False, "broker", 1883, None, None)),
    ("mqtts://u:p%40ss@10.0.0.2", (True, "10.0.0.2", 8883, "u", "p@ss")),
    ("mqtt://u:pw@[::1]:1999", (False, "::1", 1999, "u", "pw")),
])
def test_broker_urls_give_host_port_and_credentials(url, expected):
    a = broker_address(url)
    assert (a.tls, a.host, a.port, a.username, a.password) == expected
    assert "pw" not in repr(a) or a.password is None


@pytest.mark.parametrize("prefix", ["a/+/b", "a//b", "/a", "a b", "x" * 129])
def test_a_topic_prefix_with_wildcards_or_empty_levels_is_refused(prefix):
    with pytest.raises(ConfigError, match="mqtt.topic_prefix"):
        parse_config(f"mqtt: {{topic_prefix: {json.dumps(prefix)}}}")


# --- commands ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("topic", "payload", "command"), [
    ("output/siren/set", b"ON", Command("output", "siren", True)),
    ("output/siren/set", b" off\n", Command("output", "siren", False)),
    ("alarm_input/door/armed/set", b"false", Command("arm", "door", False)),
    ("alarm_input/door/schedule/set", b"OFF", Command("schedule", "door", False)),
    ("channel/2/ptz_preset/set", b"17", Command("ptz_preset", 2, 17)),
    ("channel/1/record/set", b"PRESS", Command("record", 1, None)),
    ("channel/1/record/set", b"", Command("record", 1, None)),
    ("channel/1/record/set", b"90", Command("record", 1, 90.0)),
    ("channel/1/record/set", b'{"duration_s": 12.5}', Command("record", 1, 12.5)),
])
def test_commands_are_parsed(topic, payload, command):
    assert parse_command(PREFIX, f"{PREFIX}/{topic}", payload) == command


@pytest.mark.parametrize(("topic", "payload", "message"), [
    ("output/siren/set", b"MAYBE", "expected ON or OFF"),
    ("output/sir en/set", b"ON", "expected an id"),
    ("output/../set", b"ON", "expected an id"),
    ("output/siren/set", b"\xff", "not UTF-8"),
    ("output/siren/set", b"O" * 257, "at most 256"),
    ("channel/0/record/set", b"", "channel number"),
    ("channel/257/ptz_preset/set", b"1", "channel number"),
    ("channel/01234/ptz_preset/set", b"1", "channel number"),
    ("channel/1/ptz_preset/set", b"256", "preset number"),
    ("channel/1/ptz_preset/set", b"-1", "preset number"),
    ("channel/1/record/set", b"1e999", "duration"),
    ("channel/1/record/set", b"nan", "duration"),
    ("channel/1/record/set", b'{"duration_s": true}', "duration"),
    ("channel/1/record/set", b'{"duration_s": 5, "x": 1}', "nothing else"),
    ("channel/1/record/set", b"{", "expected PRESS"),
    ("channel/1/reboot/set", b"", "unknown command topic"),
    ("output/siren/set/more", b"ON", "unknown command topic"),
])
def test_malformed_commands_are_errors_that_say_what_was_expected(topic, payload, message):
    with pytest.raises(CommandError, match=message):
        parse_command(PREFIX, f"{PREFIX}/{topic}", payload)


class FakeBox:
    def __init__(self, cfg):
        self.config, self.calls = cfg, []
        self.inputs, self.outputs, self.recording = {"door": (False, True)}, {"siren": False}, {1: True, 2: False}
        self.signals: list[tuple[str, str]] = [("disk", "full")]

    def subscribe_alarms(self, listener):
        return lambda: None

    def input_states(self):
        return dict(self.inputs)

    def schedule_states(self):
        return {"door": True}

    def output_states(self):
        return dict(self.outputs)

    def active_signals(self):
        return list(self.signals)

    def recording_states(self):
        return dict(self.recording)

    def disk_space(self):
        return 40_000_000_000, 100_000_000_000

    def snapshot_jpeg(self, channel, *, max_width):
        return b"\xff\xd8jpeg\xff\xd9"

    def ptz_channels(self):
        return [2]

    def set_output(self, output_id, on):
        if output_id not in self.outputs:
            raise KeyError(output_id)
        self.calls.append(("output", output_id, on))

    def set_armed(self, input_id, armed):
        self.calls.append(("arm", input_id, armed))

    def set_schedule(self, input_id, follow):
        self.calls.append(("schedule", input_id, follow))

    def preset_go(self, channel, preset):
        self.calls.append(("preset", channel, preset))

    def record_event(self, channel, duration_s):
        self.calls.append(("record", channel, duration_s))


def test_only_allowed_commands_run_and_a_failing_one_is_counted_not_raised():
    box = FakeBox(config("[output]"))
    runner = CommandRunner(box, prefix=PREFIX, allowed=["output"], manual_record_s=30)
    runner.start()
    try:
        runner.received(f"{PREFIX}/output/siren/set", b"ON")
        runner.received(f"{PREFIX}/output/horn/set", b"ON")  # no such output
        runner.received(f"{PREFIX}/channel/1/record/set", b"")  # not allowed
        runner.received(f"{PREFIX}/output/siren/set", b"\x00")  # malformed
        assert runner.worker.join()
    finally:
        runner.stop()
    assert box.calls == [("output", "siren", True)]
    assert (runner.done, runner.failed, runner.refused, runner.rejected) == (1, 1, 1, 1)


# --- discovery --------------------------------------------------------------------------------------

# Home Assistant's MQTT discovery: the keys each component documents (a subset: the ones a payload may
# use here), the availability and device keys every entity may carry, and the required key per component.
COMMON_KEYS = {"name", "unique_id", "availability_topic", "payload_available", "payload_not_available", "device",
               "qos", "device_class", "value_template"}
COMPONENT_KEYS = {
    "binary_sensor": {"state_topic", "payload_on", "payload_off"},
    "sensor": {"state_topic", "unit_of_measurement", "state_class"},
    "switch": {"state_topic", "command_topic", "payload_on", "payload_off", "state_on", "state_off"},
    "button": {"command_topic", "payload_press"},
    "camera": {"topic"},
}
DEVICE_KEYS = {"identifiers", "name", "model", "manufacturer", "sw_version", "via_device"}
DEVICE_CLASSES = {"binary_sensor": {"safety", "power", "problem", "heat", "motion", "running"},
                  "sensor": {"data_size"}}


def test_discovery_payloads_use_home_assistants_field_names_and_required_keys():
    cfg = config()
    configs = discovery_configs(cfg, Topics(PREFIX), node="nvr_box", sw_version="1.0", box_name="NVR box",
                                ptz_channels=[2])
    unique_ids = [payload["unique_id"] for payload in configs.values()]
    assert len(unique_ids) == len(set(unique_ids))
    for topic, payload in configs.items():
        prefix, component, node, object_id, last = topic.split("/")
        assert (prefix, node, last) == ("homeassistant", "nvr_box", "config") and object_id.replace("_", "").isalnum()
        assert REQUIRED[component] in payload, topic
        assert set(payload) <= COMMON_KEYS | COMPONENT_KEYS[component], (topic, set(payload) - COMMON_KEYS - COMPONENT_KEYS[component])
        assert set(payload["device"]) <= DEVICE_KEYS and payload["device"]["identifiers"]
        assert payload.get("device_class") is None or payload["device_class"] in DEVICE_CLASSES[component]
        for key in ("state_topic", "command_topic", "topic", "availability_topic"):
            assert key not in payload or payload[key].startswith(PREFIX + "/")
    kinds = {topic.split("/")[1] + ":" + topic.split("/")[3] for topic in configs}
    assert {"binary_sensor:disk_failing", "binary_sensor:disk_hot", "binary_sensor:disk_errors"} <= kinds
    assert {"binary_sensor:input_door", "switch:output_siren", "switch:armed_door", "sensor:disk_free",
            "binary_sensor:rule_door_opened", "camera:ch1_snapshot", "binary_sensor:ch1_motion",
            "binary_sensor:ch2_video_loss", "binary_sensor:ch1_recording", "button:ch1_record",
            "button:ch2_preset_1", "button:ch2_preset_2"} <= kinds
    assert "binary_sensor:ch2_motion" not in kinds and "button:ch1_preset_1" not in kinds  # no motion / no dome
    channel_devices = {p["device"]["name"]: p["device"] for p in configs.values() if "via_device" in p["device"]}
    assert set(channel_devices) == {"Yard", "Channel 2"} and channel_devices["Yard"]["identifiers"] == ["nvr_box_ch1"]


def test_without_the_command_allowed_an_output_is_a_read_only_sensor():
    configs = discovery_configs(config("[]"), Topics(PREFIX), node="n", sw_version="1", box_name="b", ptz_channels=[2])
    kinds = {topic.split("/")[1] + ":" + topic.split("/")[3] for topic in configs}
    assert "binary_sensor:output_siren" in kinds and not any(k.startswith(("switch:", "button:")) for k in kinds)


def test_a_retained_config_of_this_node_that_is_no_longer_published_is_stale():
    current = {"homeassistant/binary_sensor/n/ch1_motion/config": {}}
    assert stale("homeassistant/binary_sensor/n/ch9_motion/config", b"{}", current=current,
                 discovery_prefix="homeassistant", node="n")
    assert not stale("homeassistant/binary_sensor/n/ch1_motion/config", b"{}", current=current,
                     discovery_prefix="homeassistant", node="n")
    assert not stale("homeassistant/binary_sensor/n/ch9_motion/config", b"", current=current,
                     discovery_prefix="homeassistant", node="n")  # already removed
    assert not stale("homeassistant/binary_sensor/other/ch9_motion/config", b"{}", current=current,
                     discovery_prefix="homeassistant", node="n")  # another box's


# --- publisher ----------------------------------------------------------------------------------------

class Sent(list):
    def __call__(self, topic, payload, *, retain=False, qos=1):
        self.append((topic, payload if isinstance(payload, bytes) else payload.encode(), retain))

    def on(self, topic):
        return [json.loads(payload) for t, payload, _ in self if t == topic]


def test_a_disk_faults_state_stays_on_while_any_disk_raises_it_and_each_disks_change_is_an_event(clocks):
    sent, box = Sent(), FakeBox(config())
    publisher = Publisher(box, topics=Topics(PREFIX), publish=sent, clocks=clocks)
    publisher.seed()
    topic = f"{PREFIX}/fault/disk_errors"
    for at_s, (disk, active) in enumerate([("A", True), ("B", True), ("A", False), ("B", False)], start=1):
        publisher.signal_changed(Signal("disk", "errors", active, at_s * 1_000_000, f"{disk}: I/O error", disk))
    assert [(e["state"], e["at_us"]) for e in sent.on(topic)] == [("OFF", ANY), ("ON", 1_000_000), ("OFF", 4_000_000)]
    assert [(e["disk"], e["state"]) for e in sent.on(f"{PREFIX}/events")] == [
        ("A", "ON"), ("B", "ON"), ("A", "OFF"), ("B", "OFF")]


def test_signals_rules_and_states_become_retained_states_and_ordered_events(clocks):
    sent, box = Sent(), FakeBox(config())
    publisher = Publisher(box, topics=Topics(PREFIX), publish=sent, clocks=clocks)
    publisher.seed()
    assert sent.on(f"{PREFIX}/fault/disk_full")[-1]["state"] == "ON"  # active before MQTT started
    assert sent.on(f"{PREFIX}/channel/1/recording")[-1]["state"] == "ON"
    publisher.signal_changed(Signal("alarm_input", "door", True, 1_000_000, "Front door"))
    publisher.signal_changed(Signal("alarm_input", "door", False, 2_000_000, "Front door"))
    assert [e["state"] for e in sent.on(f"{PREFIX}/alarm_input/door")][-2:] == ["ON", "OFF"]
    assert [(e["state"], e["at_us"]) for e in sent.on(f"{PREFIX}/events")] == [("ON", 1_000_000), ("OFF", 2_000_000)]
    assert all(retain for t, _, retain in sent if t != f"{PREFIX}/events")
    publisher.rule_fired(Firing("Door opened", Signal("alarm_input", "door", True, 5_000_000), 7, 0, (1,), 4_000_000))
    publisher.event_ended("Door opened", 7, 9_000_000)
    fired, ended = sent.on(f"{PREFIX}/rule/door_opened")[-2:]
    assert fired["state"] == "ON" and fired["event_id"] == 7 and fired["playback"] == {"1": "/#/export/1/4000000"}
    assert ended["state"] == "OFF" and ended["end_us"] == 9_000_000
    retained = {m.topic: m.payload for m in publisher.retained_states()}
    assert json.loads(retained[f"{PREFIX}/alarm_input/door"])["state"] == "OFF"
    box.outputs["siren"] = True
    before = len(sent)
    publisher.refresh()
    publisher.refresh()  # unchanged: nothing more
    assert [t for t, _, _ in sent[before:]] == [f"{PREFIX}/output/siren"]
    publisher.publish_disk_space()
    assert sent.on(f"{PREFIX}/disk")[-1]["free_gb"] == 40.0 and sent.on(f"{PREFIX}/disk")[-1]["used_percent"] == 60.0


# --- outbox and errors --------------------------------------------------------------------------------

def test_the_outbox_keeps_order_and_drops_the_oldest_when_full():
    outbox = Outbox(3)
    kept = [outbox.put(Message(f"t/{n}", b"")) for n in range(5)]
    assert kept == [True, True, True, False, False] and outbox.dropped == 2
    assert [outbox.take().topic for _ in range(3)] == ["t/2", "t/3", "t/4"] and outbox.take() is None


def test_a_waiting_state_is_replaced_by_its_newer_value_and_events_are_all_kept_in_order():
    outbox = Outbox(20)
    for n in range(1000):  # a state refreshed every second through a long outage, an event now and then
        outbox.put(Message("nvr/x/disk", str(n).encode(), retain=True))
        if n % 100 == 0:
            outbox.put(Message("nvr/x/events", str(n).encode()))
    assert len(outbox) == 11 and outbox.dropped == 0 and outbox.superseded == 999
    assert len(outbox._items) <= 2 * 20  # the replaced ones do not pile up
    taken = [outbox.take() for _ in range(11)]
    assert [m.payload for m in taken[:10]] == [str(n).encode() for n in range(0, 1000, 100)]
    assert (taken[10].topic, taken[10].payload) == ("nvr/x/disk", b"999") and outbox.take() is None


def test_a_full_outbox_drops_the_oldest_waiting_message_not_a_replaced_one():
    outbox = Outbox(2)
    outbox.put(Message("s", b"1", retain=True))
    outbox.put(Message("e", b"a"))
    outbox.put(Message("s", b"2", retain=True))  # replaces s=1: still two waiting
    assert outbox.dropped == 0
    outbox.put(Message("e", b"b"))  # three waiting: the oldest waiting one (e=a) goes
    assert outbox.dropped == 1
    assert [(m.topic, m.payload) for m in (outbox.take(), outbox.take())] == [("s", b"2"), ("e", b"b")]
    assert outbox.take() is None


def test_connection_errors_say_what_to_check():
    address = broker_address("mqtt://u:secret@broker:1883")
    assert "refused the connection" in describe_connect_error(ConnectionRefusedError(111, "refused"), address)
    assert "resolve" in describe_connect_error(socket.gaierror(-2, "Name or service not known"), address)
    cert = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cert.verify_message = "unable to get local issuer certificate"
    assert "mqtt.tls.ca_file" in describe_connect_error(cert, address)
    assert "user and password" in describe_refusal("Not authorized")
