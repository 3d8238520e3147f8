"""The LINE IN intercom: the simulated microphone heard on the simulated AUDIO OUT while held (by the
monitor's T key or the web's hold-to-talk lease), closed when the lease runs out, never lagging."""
from __future__ import annotations

import numpy as np
import pytest

from appliance.config.model import ConfigError, parse_config
from appliance.sound.intercom import MAX_BACKLOG_S, MAX_HOLDERS, Intercom, IntercomBusy
from appliance.sound.output import ALARM, TALK, AudioOutputs
from base.clock import SimulatedClocks
from hal.audio import SimulatedAudioCapture
from hal.audio_out import SimulatedAudioPlayback
from support.tones import pitch_hz
from support.waiting import wait_for
from support.web import login, start_intercom_box

RATE = 48_000


@pytest.fixture
def rig():
    clocks, speaker = SimulatedClocks(), SimulatedAudioPlayback()
    outputs = AudioOutputs(playback=lambda device: speaker)
    intercom = Intercom(microphone=lambda: SimulatedAudioCapture(sample_rate=RATE, clocks=clocks),
                        speaker=outputs.speaker("simulated", name="intercom", priority=TALK), clocks=clocks)
    intercom.start()
    yield intercom, clocks, speaker, outputs
    intercom.close()


def talk_for(intercom: Intercom, clocks: SimulatedClocks, seconds: float, *, step_s: float = 0.01) -> None:
    """Let `seconds` pass in steps, each read by the intercom before the next (as real time would)."""
    for _ in range(round(seconds / step_s)):
        done = intercom.frames_played + intercom.frames_dropped
        clocks.advance(step_s)
        wait_for(lambda: intercom.frames_played + intercom.frames_dropped > done or not intercom.is_open,
                 what="the intercom to pass the microphone's sound on")


def test_the_line_in_is_heard_on_the_audio_out_while_held_and_not_after_the_lease(rig):
    intercom, clocks, speaker, _ = rig
    assert not speaker.is_open
    assert intercom.hold("web:operator", 0.5) is True
    wait_for(lambda: intercom.is_open, what="the intercom to open")
    talk_for(intercom, clocks, 0.4)
    assert intercom.hold("web:operator", 0.5) is False  # a renewal
    talk_for(intercom, clocks, 0.4)  # 0.8 s in: held by the renewal
    assert intercom.is_open and intercom.held()
    clocks.advance(0.2)  # the lease ends without a renewal: a browser gone away
    wait_for(lambda: not intercom.is_open and not speaker.is_open, what="the intercom to close by itself")
    played = speaker.played()
    assert 0.7 * RATE < len(played) <= 1.0 * RATE and intercom.frames_dropped == 0
    quiet = played[np.abs(played[:, 0]) < 5000, 0]  # the simulated microphone's 440 Hz between its beeps
    assert abs(pitch_hz(quiet[: RATE // 4], RATE) - 440) < 8
    assert intercom.statistics()["held_by"] == []


def test_a_release_closes_at_once_and_two_holders_keep_it_open_until_both_let_go(rig):
    intercom, clocks, speaker, _ = rig
    intercom.hold("monitor", 5)
    intercom.hold("web:operator", 5)
    wait_for(lambda: intercom.is_open, what="the intercom to open")
    intercom.release("monitor")
    talk_for(intercom, clocks, 0.05)
    assert intercom.is_open
    intercom.release("web:operator")
    wait_for(lambda: not speaker.is_open, what="the intercom to close on release")


def test_sound_that_waited_too_long_is_skipped_so_the_intercom_never_lags(rig):
    intercom, clocks, speaker, _ = rig
    intercom.hold("monitor", 10)
    wait_for(lambda: intercom.is_open, what="the intercom to open")
    clocks.advance(1.0)  # the thread saw none of that second (a busy machine)
    wait_for(lambda: intercom.frames_played + intercom.frames_dropped >= 0.99 * RATE, what="the backlog read")
    assert intercom.frames_played <= MAX_BACKLOG_S * RATE + 480 and intercom.frames_dropped > 0.85 * RATE


def test_the_intercom_interrupts_an_alarm_sound_on_the_same_output(rig):
    intercom, clocks, speaker, outputs = rig
    alarm = outputs.output("simulated").source("alarm", ALARM)
    alarm.open(sample_rate=RATE, channels=2)
    intercom.hold("monitor", 5)
    wait_for(lambda: outputs.output("simulated").heard() == "intercom", what="the intercom to take the output")
    alarm.write(np.full((480, 2), 1234, np.int16))
    assert alarm.frames_muted == 480
    intercom.release("monitor")
    wait_for(lambda: outputs.output("simulated").heard() == "alarm", what="the alarm to be heard again")
    alarm.close()


def test_holders_are_bounded(rig):
    intercom, *_ = rig
    for n in range(MAX_HOLDERS):
        intercom.hold(f"web:user{n}", 5)
    with pytest.raises(IntercomBusy, match=str(MAX_HOLDERS)):
        intercom.hold("web:one-more", 5)
    intercom.hold("web:user0", 5)  # a renewal is never refused


def test_the_monitors_t_key_holds_the_intercom_and_its_autorepeat_keeps_it(rig):
    from appliance.config.monitor import MonitorConfig
    from appliance.monitor.control import TALK_HOLD_S
    from appliance.monitor.monitor import ChannelInfo, Monitor
    from hal.display import InputEvent
    from recorder.live import LiveHub

    intercom, clocks, speaker, _ = rig
    monitor = Monitor(MonitorConfig(backend="offscreen"), channels=[ChannelInfo(1, "Door", raw=True)], live=LiveHub(),
                      clocks=clocks, open_display=lambda: None, intercom=intercom)
    monitor.controls.handle(InputEvent("key", "t"))
    assert intercom.statistics()["held_by"] == ["monitor"] and monitor.message[0] == "TALKING (HOLD T)"
    for _ in range(10):  # autorepeat every 33 ms for a third of a second
        clocks.advance(0.033)
        monitor.controls.handle(InputEvent("key", "t"))
    assert intercom.held()
    clocks.advance(TALK_HOLD_S + 0.01)  # let go: no more repeats
    assert not intercom.held()
    bare = Monitor(MonitorConfig(backend="offscreen"), channels=[], live=LiveHub(), clocks=clocks,
                   open_display=lambda: None)
    bare.controls.handle(InputEvent("key", "t"))
    assert bare.message[0].startswith("NO INTERCOM")


def test_the_kernel_repeats_the_t_key_while_it_is_held():
    from hal.input_evdev import EV_KEY, KEY_REPEAT, key_for_code

    assert key_for_code(EV_KEY, 20, KEY_REPEAT) == "t"  # KEY_T


def test_a_line_in_without_an_audio_out_is_a_config_error_at_its_key():
    with pytest.raises(ConfigError) as caught:
        parse_config("line_in:\n  device: plughw:CARD=Device,DEV=0\n", source="nvr.yaml")
    assert str(caught.value).startswith("nvr.yaml:2: line_in.device: ") and "audio_out.device" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        parse_config("audio_out: {device: simulated}\nline_in:\n  device: /dev/dsp\n", source="nvr.yaml")
    assert str(caught.value).startswith("nvr.yaml:3: line_in.device: ") and "arecord -L" in str(caught.value)


def test_the_web_hold_to_talk_needs_an_operator_and_closes_when_the_browser_stops_renewing(tmp_path):
    speaker = SimulatedAudioPlayback()
    app = start_intercom_box(tmp_path, speaker, lease_s=0.5)
    nvr = app.nvr
    try:
        clients = {role: login(app, role) for role in ("viewer", "operator")}
        assert clients["viewer"].get("/api/intercom").json()["available"] is True
        assert clients["viewer"].post("/api/intercom/hold").status_code == 403
        held = clients["operator"].post("/api/intercom/hold")
        assert held.status_code == 200 and held.json()["lease_s"] == 0.5, held.text
        wait_for(lambda: len(speaker.played()) > RATE // 10, what="the LINE IN on the AUDIO OUT")
        assert clients["operator"].get("/api/intercom").json()["held_by"] == ["web:operator"]
        wait_for(lambda: not nvr.intercom.is_open and not speaker.is_open,
                 what="the lease to run out without renewals")
        clients["operator"].post("/api/intercom/hold")
        wait_for(lambda: nvr.intercom.is_open, what="the intercom to open again")
        assert clients["operator"].post("/api/intercom/release").json() == {"held": False}
        wait_for(lambda: not nvr.intercom.is_open, what="the release to close it")
        assert nvr.status()["sound"]["intercom"]["opened"] == 2
    finally:
        nvr.stop()


# --- line_in.channel: the LINE IN on a camera's speaker, through its ONVIF back channel -------------------

def test_an_intercom_on_a_channel_without_a_talk_output_is_a_config_error_at_its_key():
    channels = ("channels:\n  - {id: 1, source: {type: test-pattern, width: 160, height: 120}, talk: {output: off}}\n"
                "  - {id: 2, source: {type: rtsp, url: 'rtsp://127.0.0.1:1/cam'}}\n")
    with pytest.raises(ConfigError) as caught:
        parse_config(channels + "line_in:\n  device: simulated\n  channel: 9\n", source="nvr.yaml")
    assert str(caught.value).startswith("nvr.yaml:6: line_in.channel: unknown channel 9")
    with pytest.raises(ConfigError) as caught:
        parse_config(channels + "line_in:\n  device: simulated\n  channel: 1\n", source="nvr.yaml")
    assert str(caught.value).startswith("nvr.yaml:6: line_in.channel: channel 1 has no talk output")
    config = parse_config(channels + "line_in:\n  device: simulated\n  channel: 2\n")  # no AUDIO OUT needed
    assert config.line_in.channel == 2


def test_the_line_in_is_heard_at_a_cameras_back_channel_at_its_pitch_one_talker_at_a_time(tmp_path):
    """The simulated LINE IN (48 kHz: a quiet 440 Hz, a loud 1 kHz beep each second) held from the web,
    resampled to 8 kHz and sent as G.711 to the GStreamer ONVIF camera's back channel; while it holds the
    camera an operator's push-to-talk there is `busy` with its name, and the other way round."""
    import json

    from websockets.sync.client import connect

    from support.talk import appliance_with_talking_camera, backchannel_available, dominant_frequency

    ok, reason = backchannel_available()
    if not ok:
        pytest.skip(reason)
    line_in_on_7 = "line_in: {device: simulated, channel: 7, lease_s: 2}\n"
    with appliance_with_talking_camera(tmp_path, channel=7, name="Gate", channels=0, past_seconds=0,
                                       extra_top=line_in_on_7) as (app, camera):
        operator = login(app, "operator")
        assert operator.get("/api/intercom").json()["output"] == "channel 7's camera speaker"
        assert operator.post("/api/intercom/hold").status_code == 200
        wait_for(lambda: len(camera.heard()) >= 8000 * 1.5, timeout_s=30, what="1.5 s of the LINE IN at the camera")
        cookie = "; ".join(f"{k}={v}" for k, v in operator.cookies.items())
        with connect(app.url.replace("http", "ws") + "/api/talk/7", additional_headers={"Cookie": cookie},
                     open_timeout=5) as ws:
            busy = json.loads(ws.recv(timeout=15))
        assert busy["type"] == "busy" and busy["user"] == "intercom (LINE IN)", busy
        operator.post("/api/intercom/release")
        hub = app.nvr.talk
        wait_for(lambda: hub.talking() == [], what="the intercom to give the camera's speaker back")
        heard = camera.heard().astype(np.int32)
        quiet = heard[np.abs(heard) < 3000]  # the 440 Hz between the beeps
        assert abs(dominant_frequency(quiet[-4000:], 8000) - 440) < 10
        loud = heard[np.abs(heard) > 8000]
        assert len(loud) > 100  # the beeps came through too (1 kHz, 50 ms each second)
        audit = app.nvr.users.audit_entries(limit=10)
        assert any(e["action"] == "intercom_hold" and "channel 7's camera speaker" in e["detail"] for e in audit)
        with connect(app.url.replace("http", "ws") + "/api/talk/7", additional_headers={"Cookie": cookie},
                     open_timeout=5) as ws:
            assert json.loads(ws.recv(timeout=15))["type"] == "ready"
            refused = operator.post("/api/intercom/hold")
            assert refused.status_code == 409 and "operator is talking on channel 7" in refused.json()["detail"]
        assert not app.nvr.intercom.is_open
