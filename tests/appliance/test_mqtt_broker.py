"""MQTT against the real thing: Debian's mosquitto on a loopback port, a running appliance (MockFactory pins, one
synthetic channel recording) and an independent subscriber.

One appliance and one broker serve the module; the outage test stops and restarts the broker and runs
last. Tests wait for what they need, never sleep-then-assert.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.app import Appliance
from appliance.config.model import parse_config
from appliance.mqtt.client import Message
from base.clock import RealClocks
from hal.gpio import GpiozeroGpio
from support.alarm_rig import ContactPin, installed_mock_pins
from support.mosquitto import MISSING, Broker, Subscriber, make_test_ca
from support.scene_appliance import scene_config, start_scene_appliance
from support.waiting import wait_for

pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")

ROOT = Path(__file__).resolve().parents[2]
DOOR, SIREN = 17, 22
PREFIX = "nvr/test"
OUTBOX_MAX = 200

CONFIG = f"""
channels:
  - id: 1
    source: {{type: test-pattern, width: 160, height: 120, fps: 10, keyframe_interval_s: 0.5}}
alarms:
  inputs: [{{id: door, pin: {DOOR}, contact: "NO", debounce_ms: 0}}]
  outputs: [{{id: siren, pin: {SIREN}, mode: latch}}]
  temperature: {{thermal_zones: false}}
rules:
  - name: Door opened
    when: {{alarm_input: door}}
    do: [{{record: {{channels: [1], pre_s: 1, post_s: 0}}}}]
mqtt:
  enabled: true
  url: URL
  client_id: nvr-test
  topic_prefix: {PREFIX}
  commands: [output, record]
  outbox_max: {OUTBOX_MAX}
  reconnect_max_s: 1
  state_interval_s: 1
"""


def appliance_config(data: Path, url: str, **replace: str):
    text = CONFIG.replace("URL", url)
    for old, new in replace.items():
        text = text.replace(old, new)
    return scene_config(data, text)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Broker(tmp_path_factory.mktemp("mosquitto")).start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def pins():
    with installed_mock_pins() as factory:
        factory.pin(DOOR, pin_class=ContactPin)
        yield factory


@pytest.fixture(scope="module")
def subscriber(broker):
    sub = Subscriber(broker, [f"{PREFIX}/#", "homeassistant/#"])
    yield sub
    sub.close()


@pytest.fixture(scope="module")
def appliance(broker, pins, subscriber, tmp_path_factory):
    # A retained config of a channel this box no longer has, as an earlier config would have left it.
    subscriber.publish("homeassistant/binary_sensor/nvr_test/ch9_motion/config", b'{"name": "gone"}', retain=True)
    app = start_scene_appliance(appliance_config(tmp_path_factory.mktemp("mqtt-data"), broker.url()), pins=pins)
    wait_for(lambda: app.status()["mqtt"]["connected"], what="the appliance to connect to the broker",
             details=lambda: app.status()["mqtt"])
    yield app
    app.stop()


def test_the_box_announces_itself_online_retained(appliance, broker, subscriber):
    online = subscriber.wait(f"{PREFIX}/availability", lambda m: m.payload == b"online")
    late = Subscriber(broker, [f"{PREFIX}/availability"], client_id="late-subscriber")
    try:  # a subscriber that comes later still learns it (retained)
        assert late.wait(f"{PREFIX}/availability").payload == b"online" and online.payload == b"online"
    finally:
        late.close()


def test_an_alarm_input_edge_arrives_on_the_broker_with_the_time_of_the_edge(appliance, pins, subscriber):
    door = pins.pin(DOOR)
    before_us = RealClocks().utc_now_us()
    door.drive_low()  # NO contact closes: alarm
    state = subscriber.wait(f"{PREFIX}/alarm_input/door", lambda m: m.json()["state"] == "ON")
    assert before_us <= state.json()["at_us"] <= RealClocks().utc_now_us()
    event = subscriber.wait(f"{PREFIX}/events", lambda m: m.json()["key"] == "door" and m.json()["state"] == "ON")
    assert event.json()["at_us"] == state.json()["at_us"] and not event.retain
    rule = subscriber.wait(f"{PREFIX}/rule/door_opened", lambda m: m.json()["state"] == "ON")
    assert rule.json()["channels"] == [1] and rule.json()["playback"]["1"].startswith("/#/export/1/")
    assert rule.json()["start_us"] == state.json()["at_us"] - 1_000_000
    door.drive_high()
    subscriber.wait(f"{PREFIX}/alarm_input/door", lambda m: m.json()["state"] == "OFF")
    subscriber.wait(f"{PREFIX}/rule/door_opened", lambda m: m.json()["state"] == "OFF")


def test_an_output_switched_over_mqtt_changes_the_pin_and_its_state(appliance, pins, subscriber):
    siren = pins.pin(SIREN)
    subscriber.publish(f"{PREFIX}/output/siren/set", "ON")
    wait_for(lambda: siren.state, what="the siren pin to be driven")
    subscriber.wait(f"{PREFIX}/output/siren", lambda m: m.json()["state"] == "ON")
    subscriber.publish(f"{PREFIX}/output/siren/set", "off")
    wait_for(lambda: not siren.state, what="the siren pin to be released")
    subscriber.wait(f"{PREFIX}/output/siren", lambda m: m.json()["state"] == "OFF")


def test_malformed_and_refused_commands_are_counted_and_change_nothing(appliance, pins, subscriber):
    commands = lambda: appliance.status()["mqtt"]["commands"]  # noqa: E731
    before = commands()
    subscriber.publish(f"{PREFIX}/output/siren/set", b"\xff\xfe maybe")
    subscriber.publish(f"{PREFIX}/output/siren/set", "ON" * 200)
    subscriber.publish(f"{PREFIX}/channel/1/record/set", '{"duration_s": 1e999}')
    subscriber.publish(f"{PREFIX}/alarm_input/door/armed/set", "OFF")  # well formed, but `arm` is not allowed
    wait_for(lambda: commands()["rejected"] >= before["rejected"] + 3 and commands()["refused"] >= before["refused"] + 1,
             what="the bad commands to be counted", details=commands)
    assert not pins.pin(SIREN).state
    assert appliance.alarm_io.contacts["door"].armed  # the refused disarm did nothing
    subscriber.publish(f"{PREFIX}/output/siren/set", "ON")  # and the box still takes good ones
    wait_for(lambda: pins.pin(SIREN).state, what="a good command after the bad ones")
    appliance.alarm_io.clear_output("siren")


def test_a_record_command_makes_a_locked_event_on_the_channel(appliance, subscriber):
    subscriber.publish(f"{PREFIX}/channel/1/record/set", "5")
    event = wait_for(lambda: [e for e in appliance.index.events() if e.source == "mqtt"], what="the manual event")[0]
    assert list(event.channels) == [1] and event.locked


def test_discovery_publishes_each_entity_and_empties_a_removed_channels_config(appliance, subscriber):
    motion_gone = "homeassistant/binary_sensor/nvr_test/ch9_motion/config"
    subscriber.wait(motion_gone, lambda m: m.payload == b"", what="the stale config to be emptied")
    siren = subscriber.wait("homeassistant/switch/nvr_test/output_siren/config").json()
    assert siren["command_topic"] == f"{PREFIX}/output/siren/set" and siren["state_topic"] == f"{PREFIX}/output/siren"
    assert siren["availability_topic"] == f"{PREFIX}/availability"
    camera = subscriber.wait("homeassistant/camera/nvr_test/ch1_snapshot/config").json()
    assert camera["topic"] == f"{PREFIX}/channel/1/snapshot"
    assert camera["device"]["identifiers"] == ["nvr_test_ch1"] and camera["device"]["via_device"] == "nvr_test"
    subscriber.wait("homeassistant/button/nvr_test/ch1_record/config")
    subscriber.wait("homeassistant/sensor/nvr_test/disk_free/config")
    disk = subscriber.wait(f"{PREFIX}/disk").json()
    assert disk["free_bytes"] > 0 and disk["total_bytes"] >= disk["free_bytes"]
    subscriber.wait(f"{PREFIX}/channel/1/recording", lambda m: m.json()["state"] == "ON")


def test_a_snapshot_is_published_as_jpeg_when_a_rule_recording_the_channel_fires(appliance, pins, subscriber):
    pins.pin(DOOR).drive_low()
    jpeg = subscriber.wait(f"{PREFIX}/channel/1/snapshot").payload
    pins.pin(DOOR).drive_high()
    subscriber.wait(f"{PREFIX}/alarm_input/door", lambda m: m.json()["state"] == "OFF")
    assert jpeg[:3] == b"\xff\xd8\xff" and jpeg[-2:] == b"\xff\xd9"


def test_events_during_a_broker_outage_all_arrive_in_order_afterwards_and_recording_goes_on(
        appliance, broker, pins, subscriber):
    door, edges = pins.pin(DOOR), 40
    segments_before = len(appliance.index.segments(channel=1))
    seen_before = len(subscriber.on(f"{PREFIX}/events"))
    broker.stop()
    wait_for(lambda: not appliance.status()["mqtt"]["connected"], what="the box to see the broker gone")
    outage_us = RealClocks().utc_now_us()  # what earlier tests sent may still trickle in: count from here
    fired = []
    for n in range(edges):
        (door.drive_low if n % 2 == 0 else door.drive_high)()
        wait_for(lambda: appliance.alarm_io.contacts["door"].active == (n % 2 == 0), what=f"edge {n}")
        fired.append(n)
    wait_for(lambda: appliance.status()["mqtt"]["outbox"] >= edges, what="the events to wait in the outbox",
             details=lambda: appliance.status()["mqtt"])
    wait_for(lambda: len(appliance.index.segments(channel=1)) > segments_before + 1,
             what="recording to go on while the broker is down")
    assert appliance.status()["mqtt"]["last_error"]
    broker.start()
    events = lambda: [m.json() for m in subscriber.on(f"{PREFIX}/events")[seen_before:]  # noqa: E731
                      if m.json()["key"] == "door" and m.json()["at_us"] >= outage_us]
    wait_for(lambda: len(events()) >= edges, timeout_s=30, what=f"all {edges} door events after the outage",
             details=lambda: (len(events()), appliance.status()["mqtt"]))
    got = events()
    assert [e["state"] for e in got[:edges]] == ["ON" if n % 2 == 0 else "OFF" for n in range(edges)]
    assert [e["at_us"] for e in got] == sorted(e["at_us"] for e in got)  # in order, each with its own time
    assert appliance.status()["mqtt"]["dropped"] == 0


def test_an_outage_longer_than_the_outbox_keeps_the_newest_events_in_order_and_counts_the_rest(
        appliance, broker, pins, subscriber):
    door, edges = pins.pin(DOOR), OUTBOX_MAX  # each edge makes 2-3 messages: more than the outbox holds
    seen_before = len(subscriber.on(f"{PREFIX}/events"))
    broker.stop()
    wait_for(lambda: not appliance.status()["mqtt"]["connected"], what="the box to see the broker gone")
    outage_us = RealClocks().utc_now_us()
    for n in range(edges):
        (door.drive_low if n % 2 == 0 else door.drive_high)()
        wait_for(lambda: appliance.alarm_io.contacts["door"].active == (n % 2 == 0), what=f"edge {n}")
    wait_for(lambda: appliance.status()["mqtt"]["dropped"] > 0, what="the outbox to overflow",
             details=lambda: appliance.status()["mqtt"])
    assert appliance.status()["mqtt"]["outbox"] <= OUTBOX_MAX
    broker.start()
    door_events = lambda: [m.json() for m in subscriber.on(f"{PREFIX}/events")[seen_before:]  # noqa: E731
                           if m.json()["key"] == "door" and m.json()["at_us"] >= outage_us]
    wait_for(lambda: door_events() and door_events()[-1]["state"] == "OFF" and appliance.status()["mqtt"]["outbox"] == 0,
             what="the outbox to drain after the outage", details=lambda: appliance.status()["mqtt"])
    got = door_events()
    states = [e["state"] for e in got]
    expected = ["ON" if n % 2 == 0 else "OFF" for n in range(edges)]
    assert 0 < len(got) < edges and states == expected[-len(got):]  # the newest ones, none missing between
    assert [e["at_us"] for e in got] == sorted(e["at_us"] for e in got)


def test_the_outbox_drops_the_oldest_beyond_its_bound_and_counts_them(appliance):
    client = appliance.mqtt.client
    dropped = client.outbox.dropped
    outbox = type(client.outbox)(3)
    for n in range(5):
        outbox.put(Message(f"t/{n}", b""))
    assert [m and m.topic for m in (outbox.take() for _ in range(4))] == ["t/2", "t/3", "t/4", None]
    assert outbox.dropped == 2
    assert client.outbox.dropped == dropped


@pytest.fixture
def secure_broker(tmp_path):
    acl = "user nvr\ntopic readwrite nvr/#\ntopic readwrite homeassistant/#\n\nuser watcher\ntopic read #\n"
    b = Broker(tmp_path / "broker", users={"nvr": "right pass", "watcher": "w"}, acl=acl).start()
    yield b
    b.stop()


def test_wrong_credentials_are_a_clear_error_in_health_and_recording_goes_on(secure_broker, pins, tmp_path):
    app = start_scene_appliance(appliance_config(tmp_path / "data", secure_broker.url("nvr", "wrong"),
                                                 **{"client_id: nvr-test": "client_id: nvr-wrong"}), pins=pins)
    try:
        error = wait_for(lambda: app.status()["mqtt"]["last_error"], what="the refusal in the health page")
        assert "user and password" in error and "wrong" not in error
        wait_for(lambda: app.index.segments(channel=1), what="recording without the broker")
        assert not app.status()["mqtt"]["connected"]
    finally:
        app.stop()


def test_right_credentials_and_the_acl_let_the_box_publish(secure_broker, pins, tmp_path):
    watcher = Subscriber(secure_broker, [f"{PREFIX}/availability"], user="watcher", password="w", client_id="watcher")
    app = start_scene_appliance(appliance_config(tmp_path / "data", secure_broker.url("nvr", "right%20pass")),
                                pins=pins)
    try:
        watcher.wait(f"{PREFIX}/availability", lambda m: m.payload == b"online")
        assert app.status()["mqtt"]["last_error"] is None
    finally:
        app.stop()
        watcher.wait(f"{PREFIX}/availability", lambda m: m.payload == b"offline", what="offline on a clean stop")
        watcher.close()


CHILD = """
import sys, threading
from base.clock import RealClocks
from appliance.config.mqtt import MqttTlsConfig
from appliance.mqtt.client import MqttClient
client = MqttClient(url=sys.argv[1], client_id="child", availability_topic="child/availability",
                    clocks=RealClocks(), tls=MqttTlsConfig())
client.start()
while not client.connected:
    RealClocks().sleep(0.02)
print("connected", flush=True)
threading.Event().wait()
"""


def test_the_last_will_says_offline_when_the_process_is_killed(broker):
    watcher = Subscriber(broker, ["child/availability"], client_id="will-watcher")
    child = subprocess.Popen([sys.executable, "-c", CHILD, broker.url()], stdout=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    try:
        assert child.stdout.readline() == b"connected\n"
        watcher.wait("child/availability", lambda m: m.payload == b"online")
        child.send_signal(signal.SIGKILL)
        watcher.wait("child/availability", lambda m: m.payload == b"offline", what="the last will")
        # and it stays: a newcomer learns the box is offline
        late = Subscriber(broker, ["child/availability"], client_id="will-late")
        assert late.wait("child/availability").payload == b"offline"
        late.close()
    finally:
        child.kill()
        child.wait()
        watcher.close()


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    b = Broker(folder / "broker", tls=make_test_ca(folder / "ca")).start()
    yield b
    b.stop()


def test_tls_with_the_test_ca_connects_and_without_it_says_the_certificate_was_refused(tls_broker, tmp_path):
    from appliance.config.mqtt import MqttTlsConfig
    from appliance.mqtt.client import MqttError, check_connection
    assert check_connection(url=tls_broker.url(), client_id="tls-ok", clocks=RealClocks(),
                            tls=MqttTlsConfig(ca_file=tls_broker.tls.ca)) == f"127.0.0.1:{tls_broker.port}"
    with pytest.raises(MqttError, match="certificate was not accepted"):
        check_connection(url=tls_broker.url(), client_id="tls-bad", clocks=RealClocks(), tls=MqttTlsConfig())


def test_nvr_mqtt_test_reports_the_broker_and_prints_what_it_would_publish(broker, tmp_path):
    config = tmp_path / "nvr.yaml"
    config.write_text(CONFIG.replace("DATA", str(tmp_path / "data")).replace("URL", broker.url()))
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    ok = subprocess.run([sys.executable, "-m", "appliance.cli", "mqtt", "test", "--config", str(config)],
                        capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert f"connected to 127.0.0.1:{broker.port}" in ok.stdout
    assert "homeassistant/switch/nvr_test/output_siren/config" in ok.stdout and f"{PREFIX}/availability" in ok.stdout
    config.write_text(CONFIG.replace("DATA", str(tmp_path / "data")).replace("URL", "mqtt://127.0.0.1:1"))
    down = subprocess.run([sys.executable, "-m", "appliance.cli", "mqtt", "test", "--config", str(config)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert down.returncode == 1 and "refused the connection" in down.stderr


def test_preset_and_arming_commands_reach_the_dome_and_the_input(broker, pins, tmp_path):
    from drivers.pelco.protocol import Preset
    from support.ptz import DomeRig

    rig = DomeRig("pelco-d")
    config = parse_config(f"""
storage: {{path: {tmp_path / 'data'}}}
channels: [{{id: 3, enabled: false, source: {{type: test-pattern}}, ptz: {{port: bus1, address: 1}}}}]
ptz: {{ports: [{{id: bus1, url: {rig.path}, protocol: pelco-d, baud: 9600}}]}}
alarms: {{inputs: [{{id: gate, pin: 5}}], temperature: {{thermal_zones: false}}}}
mqtt: {{enabled: true, url: "{broker.url()}", client_id: nvr-ptz, topic_prefix: nvr/ptz, commands: [ptz_preset, arm],
        ptz_preset_buttons: 2}}
""")
    app = Appliance(config, clocks=RealClocks(), gpio=GpiozeroGpio(pin_factory=pins))
    sub = Subscriber(broker, ["nvr/ptz/#", "homeassistant/button/nvr_ptz/#", "homeassistant/switch/nvr_ptz/#"],
                     client_id="ptz-subscriber")
    try:
        app.start()
        button = sub.wait("homeassistant/button/nvr_ptz/ch3_preset_2/config").json()
        sub.publish(button["command_topic"], button["payload_press"])  # what Home Assistant sends on a press
        rig.wait_commands(1)
        assert rig.dome().commands[-1] == Preset("go", 2)
        sub.publish("nvr/ptz/alarm_input/gate/armed/set", "OFF")
        wait_for(lambda: not app.alarm_io.contacts["gate"].armed, what="the input to be disarmed")
        sub.wait("nvr/ptz/alarm_input/gate/armed", lambda m: m.json()["state"] == "OFF")
        switch = sub.wait("homeassistant/switch/nvr_ptz/schedule_gate/config").json()  # allowed by `arm` too
        sub.publish(switch["command_topic"], switch["payload_off"])
        wait_for(lambda: not app.alarm_io.contacts["gate"].follows_schedule, what="the schedule set aside")
        sub.wait(switch["state_topic"], lambda m: m.json()["state"] == "OFF")
    finally:
        app.stop()
        sub.close()
        rig.close()


LONG_OUTAGE_S = float(os.environ.get("NVR_MQTT_OUTAGE_S", "600"))  # the ten minutes; shorter to try it
EDGE_EVERY_S = float(os.environ.get("NVR_MQTT_EDGE_S", "5"))


@pytest.mark.slow
def test_a_ten_minute_broker_outage_while_alarms_fire_loses_nothing_within_the_outbox(tmp_path, pins):
    """The broker down for LONG_OUTAGE_S with the door opening and closing every 5 s: every event arrives
    afterwards, in order, each with its own time, and recording never stops. The box's reconnect backoff
    runs up to its ceiling (60 s here, the default) during the outage, so it must come back by itself."""
    broker = Broker(tmp_path / "mosquitto").start()
    sub = Subscriber(broker, [f"{PREFIX}/#"])
    app = start_scene_appliance(appliance_config(tmp_path / "data", broker.url(),
                                                 **{f"outbox_max: {OUTBOX_MAX}": "outbox_max: 5000",
                                                    "reconnect_max_s: 1": "reconnect_max_s: 60"}), pins=pins)
    clocks = RealClocks()
    try:
        wait_for(lambda: app.status()["mqtt"]["connected"], what="the appliance to connect")
        door = pins.pin(DOOR)
        broker.stop()
        wait_for(lambda: not app.status()["mqtt"]["connected"], what="the box to see the broker gone")
        began_us = clocks.utc_now_us()
        segments_before = len(app.index.segments(channel=1))
        edges = 0
        while clocks.utc_now_us() - began_us < LONG_OUTAGE_S * 1e6:
            (door.drive_low if edges % 2 == 0 else door.drive_high)()
            n = edges
            wait_for(lambda: app.alarm_io.contacts["door"].active == (n % 2 == 0), what=f"edge {n}")
            edges += 1
            clocks.sleep(EDGE_EVERY_S)
        assert len(app.index.segments(channel=1)) > segments_before + LONG_OUTAGE_S / 2 / 2  # 2 s segments, half at least
        assert app.status()["mqtt"]["dropped"] == 0
        broker.start()
        events = lambda: [m.json() for m in sub.on(f"{PREFIX}/events")  # noqa: E731
                          if m.json()["key"] == "door" and m.json()["at_us"] >= began_us]
        wait_for(lambda: len(events()) >= edges, timeout_s=120, what=f"all {edges} door events after the outage",
                 details=lambda: (len(events()), [(e["state"], e["at_us"] - began_us) for e in events()],
                                  app.status()["mqtt"], broker._log()[-1500:]))
        got = events()
        assert [e["state"] for e in got] == ["ON" if n % 2 == 0 else "OFF" for n in range(edges)]
        assert [e["at_us"] for e in got] == sorted(e["at_us"] for e in got)
        assert app.status()["mqtt"]["dropped"] == 0
    finally:
        app.stop()
        sub.close()
        broker.stop()
