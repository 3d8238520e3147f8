"""Alarm linkage through the whole appliance: MockFactory pins, a recording channel, motion, relays and events.

One appliance runs for the module (real clocks, a synthetic 160x120 camera encoded and recorded in
2 s segments). Each test fires one signal and checks that its event starts `pre_s` before the alarm,
that the recording it locks really reaches back that far, and that the siren pulsed, for at least `pulse_s`
and ending on its own while the signal was still held.
"""
from __future__ import annotations

import pytest

from appliance.app import Appliance
from appliance.config.model import parse_config
from base.clock import RealClocks
from hal.gpio import GpiozeroGpio
from support.alarm_rig import ContactPin, installed_mock_pins
from support.scene_appliance import recorded_s, scene_config, start_scene_appliance
from support.waiting import wait_for

DOOR, WINDOW, SIREN = 17, 27, 22
PRE_S, POST_S, PULSE_S = 1.5, 0.5, 0.5
S = 1_000_000

CONFIG = f"""
channels:
  - id: 1
    source: {{type: test-pattern, width: 160, height: 120, fps: 10, keyframe_interval_s: 0.5}}
    motion:
      fps: 5
      hold_s: 0.5
      zones: [{{name: yard, points: [[0.2, 0.3], [0.8, 0.3], [0.8, 0.7], [0.2, 0.7]]}}]
alarms:
  inputs:
    - {{id: door, pin: {DOOR}, contact: NC, debounce_ms: 30}}
    - {{id: window, pin: {WINDOW}, contact: NO, debounce_ms: 30}}
  outputs:
    - {{id: siren, pin: {SIREN}, mode: pulse, pulse_s: {PULSE_S}}}
  temperature: {{thermal_zones: false}}
rules:
  - name: door
    when: {{alarm_input: door}}
    do: &linkage
      - output: {{id: siren}}
      - record: {{channels: [1], pre_s: {PRE_S}, post_s: {POST_S}, lock: true}}
  - {{name: window, when: {{alarm_input: window}}, do: *linkage}}
  - {{name: yard motion, when: {{motion: 1}}, do: *linkage}}
"""


@pytest.fixture(scope="module")
def appliance(tmp_path_factory):
    with installed_mock_pins() as factory:
        door = factory.pin(DOOR, pin_class=ContactPin)
        door.contact_closed = True  # the door is shut: the NC loop is closed before the appliance starts
        scenes = {}
        sup = start_scene_appliance(scene_config(tmp_path_factory.mktemp("alarm-data"), CONFIG), pins=factory,
                                    scenes=scenes)
        sup.pins, sup.scenes = factory, scenes
        wait_for(lambda: recorded_s(sup) >= 4.5, timeout_s=60, what="4.5 s of recording before the first alarm")
        yield sup
        sup.stop()


def fire_and_check(sup, source: str, start, stop) -> None:
    siren = sup.pins.pin(SIREN)
    siren.clear_states()
    before_us = RealClocks().utc_now_us()
    start()
    event = wait_for(lambda: [e for e in sup.index.events() if e.source == source],
                     what=f"an event from {source}")[0]
    assert before_us <= event.trigger_us and event.start_us == event.trigger_us - round(PRE_S * S)
    # The signal is still held: a pulse ends on its own timer, not with the signal.
    wait_for(lambda: not siren.state and len(siren.states) >= 3, what="the siren pulse to end")
    stop()
    ended = wait_for(lambda: [e for e in sup.index.events() if e.id == event.id and e.end_us is not None],
                     what="the event to end")[0]
    wait_for(lambda: sup.index.segments(channel=1)[-1].end_us >= ended.end_us,
             what="the segment holding the event's end to be indexed")
    check_locked_recording(sup, ended)
    check_one_pulse(siren)


def check_locked_recording(sup, event) -> None:
    """The segments locked for the event cover [start, end] without a hole, from at least pre_s before the alarm."""
    locked = [s for s in sup.index.segments(channel=1) if s.locked and s.end_us > event.start_us
              and s.start_us < event.end_us]
    assert locked, "no segment was locked for the event"
    assert locked[0].start_us <= event.trigger_us - PRE_S * S  # the pre-alarm seconds are on disk, kept
    assert locked[-1].end_us >= event.end_us
    for earlier, later in zip(locked, locked[1:]):
        assert later.start_us - earlier.end_us < 0.2 * S
    first = sup.index.segments(channel=1)[0]
    assert first.end_us <= event.start_us and not first.locked  # what lies before the event stays unlocked


def check_one_pulse(siren) -> None:
    states = [state.state for state in siren.states]
    assert states[:3] == [False, True, False], states
    # Seconds from on to off as the mock pin stamped them, on the monotonic clock the relay's timer reads
    # (RealClocks): never shorter than pulse_s (but for the clock's microsecond rounding). How late the
    # off comes is the scheduler thread's wake-up, i.e. the machine's load: an upper bound here would
    # fail on a busy machine, so bench/alarm measures it, and tests/drivers/test_contacts.py proves on
    # simulated clocks that the pulse is timed by the injected clock, to the microsecond.
    assert siren.states[2].timestamp >= PULSE_S - 1e-5


def test_an_nc_contact_opening_records_an_event_from_pre_s_before_and_pulses_the_siren(appliance):
    door = appliance.pins.pin(DOOR)
    fire_and_check(appliance, "alarm_input:door", door.open_contact, door.close_contact)


def test_an_no_contact_closing_records_an_event_from_pre_s_before_and_pulses_the_siren(appliance):
    window = appliance.pins.pin(WINDOW)
    fire_and_check(appliance, "alarm_input:window", window.drive_low, window.drive_high)


def test_motion_in_a_zone_records_an_event_from_pre_s_before_and_pulses_the_siren(appliance):
    scene = appliance.scenes[1]
    assert [e for e in appliance.index.events() if e.source == "motion:1"] == []  # a still scene: no motion

    def walk_in():
        scene.intruder = True

    def walk_out():
        scene.intruder = False
    fire_and_check(appliance, "motion:1", walk_in, walk_out)
    stats = appliance.status()["alarm_io"]["motion"][0]
    assert stats["source"] == "frames" and stats["motion_starts"] >= 1


def test_the_status_counts_what_the_alarm_side_did(appliance):
    status = appliance.status()["alarm_io"]
    assert status["gpio"] == "gpiozero"
    assert {i["id"]: i["flaps_ignored"] for i in status["inputs"]} == {"door": 0, "window": 0}
    assert status["rules"]["action_errors"] == 0 and status["scheduler"]["errors"] == 0


@pytest.mark.rtsp
def test_motion_on_a_network_cameras_sub_stream_is_decoded_and_makes_an_event(rtsp_server, tmp_path, mock_pins):
    """GStreamer's moving ball on the sub stream of a real RTSP server: decoded, analysed, an event."""
    config = parse_config(f"""
storage: {{path: {tmp_path / 'data'}, segment_seconds: 2,
          retention: {{max_used_percent: 99, min_free_bytes: 0, locked_floor_bytes: 0}}}}
channels:
  - id: 1
    source: {{type: rtsp, url: "{rtsp_server.url('/cam1')}", sub_url: "{rtsp_server.url('/cam2')}"}}
    motion: {{fps: 5, sensitivity: 80}}
alarms: {{temperature: {{thermal_zones: false}}}}
rules:
  - {{name: ball, when: {{motion: 1}}, do: [{{record: {{channels: [1], pre_s: 2, post_s: 1}}}}]}}
""")
    sup = Appliance(config, clocks=RealClocks(), gpio=GpiozeroGpio(pin_factory=mock_pins))
    sup.start()
    try:
        event = wait_for(lambda: sup.index.events(), timeout_s=60, what="a motion event from the sub stream")[0]
        stats = sup.status()["alarm_io"]["motion"][0]
    finally:
        sup.stop()
    assert event.source == "motion:1" and event.channels == (1,)
    assert stats["source"] == "packets" and stats["decoded"] > 0 and stats["decode_errors"] == 0
    assert sup.live.stream(1, "sub").subscribers == 0  # the watcher let go of the tap when it stopped
