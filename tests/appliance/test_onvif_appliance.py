"""ONVIF cameras through the whole appliance: their events fire linkage rules, their PTZ is steered by
the PTZ service the web page, the monitor and rules use, exactly as for an RS-485 dome.

One appliance runs for the module (real clocks, MockFactory pins, a synthetic camera recorded in 2 s
segments) with channel 1 an RTSP camera naming its ONVIF service: the SOAP responder of
tests/support/onvif_events.py, replaying a Hikvision camera's event and PTZ answers. Tests wait on
events (the responder's requests, rule firings, index rows), never on sleeps.
"""
from __future__ import annotations

import threading

import pytest

from appliance.config.model import ConfigError, parse_config
from appliance.web.services import web_ptz
from support import onvif_events as cams
from support.alarm_rig import installed_mock_pins
from support.onvif_events import PTZ_NS, OnvifResponder
from support.scene_appliance import recorded_s, scene_config, start_scene_appliance
from support.waiting import wait_for

SIREN = 22
PRE_S, POST_S, PULSE_S = 1.5, 0.5, 0.5
S = 1_000_000

CONFIG = f"""
channels:
  - id: 1
    source:
      type: rtsp
      url: rtsp://127.0.0.1:9/unused
      onvif: {{url: "CAMERA", username: admin, password: secret}}
alarms:
  outputs:
    - {{id: siren, pin: {SIREN}, mode: pulse, pulse_s: {PULSE_S}}}
  temperature: {{thermal_zones: false}}
rules:
  - name: camera motion
    when: {{motion: 1}}
    do:
      - output: {{id: siren}}
      - record: {{channels: [1], pre_s: {PRE_S}, post_s: {POST_S}, lock: true}}
  - name: camera input
    when: {{alarm_input: "ch1:AlarmIn_0"}}
    do: [{{ptz_preset: {{channel: 1, preset: 2}}}}]
  - name: tamper
    when: {{tamper: 1}}
    do: [{{log: camera tampered}}]
"""


class Firings:
    """An AlarmListener keeping every firing with the monotonic time it was handled."""

    def __init__(self):
        self.fired: list = []
        self._lock = threading.Lock()

    def signal_changed(self, signal) -> None:
        pass

    def rule_fired(self, firing) -> None:
        with self._lock:
            self.fired.append(firing)

    def event_ended(self, rule, event_id, end_us) -> None:
        pass

    def of(self, rule: str) -> list:
        with self._lock:
            return [f for f in self.fired if f.rule == rule]


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    with installed_mock_pins() as factory, OnvifResponder() as camera:
        config = scene_config(tmp_path_factory.mktemp("onvif-data"), CONFIG.replace("CAMERA", camera.base))
        sup = start_scene_appliance(config, pins=factory)
        firings = Firings()
        sup.alarm_io.engine.subscribe(firings)
        sup.pins, sup.camera, sup.firings = factory, camera, firings
        wait_for(lambda: recorded_s(sup) >= 4.5, timeout_s=60, what="4.5 s of recording before the first alarm")
        camera.wait_for("PullMessages")  # subscribed to the camera's events
        yield sup
        sup.stop()


def test_camera_motion_fires_the_rule_within_a_second_pulsing_the_siren_and_recording_from_pre_s_before(rig):
    siren = rig.pins.pin(SIREN)
    siren.clear_states()
    emitted_s = rig.camera.emit(cams.hikvision_motion(True))
    firing = wait_for(lambda: rig.firings.of("camera motion"), what="the camera motion rule to fire")[0]
    latency_s = firing.handled_us / S - emitted_s  # both on the monotonic clock (RealClocks)
    assert 0 <= latency_s < 1.0, f"the rule fired {latency_s:.3f} s after the camera sent its event"
    event = wait_for(lambda: [e for e in rig.index.events() if e.source == "motion:1"], what="the event row")[0]
    assert event.start_us == event.trigger_us - round(PRE_S * S)
    wait_for(lambda: not siren.state and len(siren.states) >= 3, what="the siren pulse to end")
    assert [state.state for state in siren.states][:3] == [False, True, False]
    rig.camera.emit(cams.hikvision_motion(False))
    ended = wait_for(lambda: [e for e in rig.index.events() if e.id == event.id and e.end_us is not None],
                     what="the event to end post_s after the camera's motion ended")[0]
    wait_for(lambda: rig.index.segments(channel=1)[-1].end_us >= ended.end_us, what="the event's end on disk")
    locked = [s for s in rig.index.segments(channel=1) if s.locked and s.end_us > ended.start_us
              and s.start_us < ended.end_us]
    assert locked and locked[0].start_us <= ended.trigger_us - PRE_S * S  # the pre-alarm seconds are kept
    assert locked[-1].end_us >= ended.end_us


def test_a_camera_digital_input_drives_a_ptz_preset_rule_on_the_same_camera(rig):
    before = len([r for r in rig.camera.requests if r.action == "GotoPreset"])
    rig.camera.emit(cams.digital_input("AlarmIn_0", True))
    goto = rig.camera.wait_for("GotoPreset", count=before + 1)[-1]
    assert goto.soap_body().findtext(f"{{{PTZ_NS}}}PresetToken") == "2"
    assert rig.firings.of("camera input")[0].signal.source == "alarm_input:ch1:AlarmIn_0"
    # The health page lists the camera's inputs by the id a rule names them with.
    assert "ch1:AlarmIn_0" in rig.status()["alarm_io"]["camera_events"]["channels"][1]["inputs"]
    rig.camera.emit(cams.digital_input("AlarmIn_0", False))


def test_the_web_ptz_adapter_steers_the_onvif_camera_like_a_dome(rig):
    wait_for(lambda: rig.ptz.channels() == [1], what="channel 1 to be listed as PTZ")
    web = web_ptz(rig.ptz)
    assert web is not None and web.has_channel(1)
    count = len(rig.camera.requests)
    web.move(1, pan=-1.0, tilt=0.5)
    web.stop(1)
    web.zoom(1, speed=1.0)
    web.stop(1)
    web.set_preset(1, 9)
    web.goto_preset(1, 9)
    sent = [(r.action, r.soap_body()) for r in rig.camera.requests[count:]
            if r.action in ("ContinuousMove", "Stop", "SetPreset", "GotoPreset")]
    assert [action for action, _ in sent] == ["ContinuousMove", "Stop", "ContinuousMove", "Stop", "SetPreset",
                                              "GotoPreset"]
    pan_tilt = sent[0][1].find(f"{{{PTZ_NS}}}Velocity/{{http://www.onvif.org/ver10/schema}}PanTilt")
    # The web sends one speed for both axes (the larger), as it does to a Pelco dome: full left, full up.
    assert (float(pan_tilt.get("x")), float(pan_tilt.get("y"))) == (-1.0, 1.0)
    zoom = sent[2][1].find(f"{{{PTZ_NS}}}Velocity/{{http://www.onvif.org/ver10/schema}}Zoom")
    assert float(zoom.get("x")) > 0
    assert sent[5][1].findtext(f"{{{PTZ_NS}}}PresetToken") == "9"
    assert rig.ptz.home(1).result(5) is None and rig.camera.actions()[-1] == "GotoHomePosition"
    assert web.state(1) == {"tour": None, "tours": []}


def test_a_preset_the_camera_lacks_fails_with_the_camera_presets_named(rig):
    with pytest.raises(LookupError, match="no preset 42"):
        rig.ptz.preset_go(1, 42).result(5)
    with pytest.raises(OSError, match="refused the command: the camera has no preset 42 .*store it first"):
        web_ptz(rig.ptz).goto_preset(1, 42)  # what the web page answers (502) with
    assert not [f for f in rig.supervisor.faults.active() if f.kind == "ptz_down"]  # the camera is fine


def test_a_camera_that_reboots_raises_an_alarm_ends_its_signals_and_is_subscribed_again(rig):
    rig.camera.emit(cams.hikvision_tamper(True))
    wait_for(lambda: rig.firings.of("tamper"), what="the tamper rule to fire")
    subscriptions = rig.camera.state.subscriptions
    rig.camera.set_broken(True)
    wait_for(lambda: [f for f in rig.supervisor.faults.active() if f.kind == "onvif_events" and f.channel == 1],
             timeout_s=30, what="the onvif_events alarm on channel 1")
    # The tamper signal the lost subscription held has ended: its open event closes post_s later.
    wait_for(lambda: not rig.alarm_io._signal_sources.get(("tamper", "1")), what="the tamper signal to end")
    rig.camera.set_broken(False)
    wait_for(lambda: rig.camera.state.subscriptions > subscriptions, timeout_s=30, what="a new subscription")
    wait_for(lambda: not [f for f in rig.supervisor.faults.active() if f.kind == "onvif_events"],
             what="the onvif_events alarm to clear")
    rig.camera.emit(cams.hikvision_motion(True))
    wait_for(lambda: len(rig.firings.of("camera motion")) >= 2, what="motion after the reboot to fire again")
    rig.camera.emit(cams.hikvision_motion(False))


def test_rules_on_camera_signals_need_an_onvif_channel(tmp_path):
    text = f"""
storage: {{path: {tmp_path}}}
channels:
  - {{id: 1, source: {{type: test-pattern}}}}
rules:
  - {{when: {{line_crossing: 1}}, do: [{{log: crossed}}]}}
  - {{when: {{alarm_input: "ch1:AlarmIn_0"}}, do: [{{log: input}}]}}
"""
    with pytest.raises(ConfigError) as error:
        parse_config(text)
    message = str(error.value)
    assert "channel 1 is not an ONVIF camera" in message and "'ch1:AlarmIn_0' names channel 1" in message
