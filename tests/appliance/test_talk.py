"""Push-to-talk through the appliance's WebSocket (/api/talk/CHANNEL): an operator's tone heard at a
GStreamer ONVIF camera's back channel and at the box's AUDIO OUT (a simulated speaker here; the vivid VM's
snd-aloop proves the ALSA side), one talker per output, viewers refused, hostile frames and floods bounded."""
from __future__ import annotations

import json

import pytest

from appliance.talk.frames import BURST_S, MAX_FRAME_BYTES, RATE_MARGIN, build_talk_frame
from hal.audio_out import SimulatedAudioPlayback
from support.talk import appliance_with_talking_camera, backchannel_available, dominant_frequency, tone
from support.waiting import wait_for
from support.web import PASSWORDS

pytestmark = pytest.mark.rtsp

CAMERA, ANALOG, QUIET = 7, 1, 8


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    ok, reason = backchannel_available()
    if not ok:
        pytest.skip(reason)
    quiet = f"  - id: {QUIET}\n    name: Shed\n    source: {{type: test-pattern, width: 160, height: 120}}\n" \
            "    talk: {output: off}\n"
    speaker = SimulatedAudioPlayback()  # the AUDIO OUT, behind the appliance's shared outputs
    with appliance_with_talking_camera(tmp_path_factory.mktemp("talk"), channel=CAMERA, name="Door",
                                       more_channels=quiet, channels=1, past_seconds=0,
                                       extra_top="audio_out:\n  device: simulated\n",
                                       audio_playback=lambda device: speaker) as (app, camera):
        yield app, camera, speaker


@pytest.fixture(autouse=True)
def idle_after(rig):
    """Each test leaves the outputs free: a session ends after its sound had time to play."""
    yield
    hub = rig[0].nvr.web_context.talk
    wait_for(lambda: hub.statistics()["talking"] == [], what="every talk session to end")


def cookie(app, role: str) -> str:
    import httpx

    client = httpx.Client(base_url=app.url)
    client.post("/api/login", json={"username": role, "password": PASSWORDS[role]}).raise_for_status()
    return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


def talk(app, channel: int, role: str = "operator"):
    from websockets.sync.client import connect

    return connect(app.url.replace("http", "ws") + f"/api/talk/{channel}",
                   additional_headers={"Cookie": cookie(app, role)}, open_timeout=5)


def send_tone(ws, frequency_hz: float, seconds: float) -> None:
    sound = tone(frequency_hz, seconds)
    for number, at in enumerate(range(0, len(sound), 160)):
        ws.send(build_talk_frame(number, sound[at:at + 160]))


def test_an_operators_tone_is_heard_by_the_cameras_speaker_at_its_pitch(rig):
    app, camera, _ = rig
    before = len(camera.heard())
    with talk(app, CAMERA) as ws:
        ready = json.loads(ws.recv(timeout=15))
        assert ready == {"type": "ready", "sample_rate": 8000, "max_frame_samples": 800,
                         "output": "camera speaker (PCMU)"}
        send_tone(ws, 900, 1.0)  # within the burst allowance: nothing dropped
        import httpx

        health = httpx.get(app.url + "/api/health", headers={"Cookie": cookie(app, "viewer")}).json()
        assert health["talk"]["talking"] == [{"user": "operator", "channel": CAMERA}]
        wait_for(lambda: len(camera.heard()) - before >= 7600, what="the camera to hear the second of tone",
                 details=lambda: len(camera.heard()) - before)
    heard = camera.heard()[before:]
    assert abs(dominant_frequency(heard, 8000) - 900) < 10
    audit = app.users.audit_entries(limit=20)
    assert any(e["action"] == "talk" and e["user"] == "operator" and f'"channel": {CAMERA}' in e["detail"] for e in audit)


def test_an_analog_channels_talk_is_played_on_the_audio_out_at_48khz_over_an_alarm_sound(rig):
    """Talk opens the AUDIO OUT through the appliance's shared outputs at TALK priority: an alarm sound
    playing there (ALARM) is muted while the operator talks, and the card is opened once for both."""
    import numpy as np

    from appliance.sound.output import ALARM

    app, _, speaker = rig
    assert app.nvr.web_context.talk is app.nvr.talk  # one hub: the web's push-to-talk and the rules' sounds
    shared = app.nvr.audio_outputs.output("simulated")
    alarm = shared.source("alarm sounds", ALARM)
    alarm.open(sample_rate=48000, channels=2)
    opens = speaker.opens
    before = len(speaker.played())
    try:
        with talk(app, ANALOG, role="admin") as ws:
            assert json.loads(ws.recv(timeout=15))["output"] == "AUDIO OUT simulated"
            assert shared.heard() == "talk" and shared.statistics()["sources"] == ["alarm sounds", "talk"]
            alarm.write(np.full((4800, 2), 9000, np.int16))  # muted: talk is heard
            send_tone(ws, 600, 1.0)
            wait_for(lambda: len(speaker.played()) - before >= 47000, what="the AUDIO OUT to play the tone")
    finally:
        alarm.close()
    played = speaker.played()[before:, 0]
    assert speaker.sample_rate == 48000 and abs(dominant_frequency(played, 48000) - 600) < 3
    assert alarm.frames_muted == 4800 and 9000 not in played and speaker.opens == opens


def test_a_second_talker_on_the_same_output_is_told_who_is_busy_talking(rig):
    from websockets.exceptions import ConnectionClosed

    app, _, _ = rig
    with talk(app, CAMERA, role="admin") as first:
        assert json.loads(first.recv(timeout=15))["type"] == "ready"
        with talk(app, CAMERA) as second:
            busy = json.loads(second.recv(timeout=5))
            assert busy["type"] == "busy" and busy["user"] == "admin" and "admin is talking" in busy["message"]
            with pytest.raises(ConnectionClosed) as closed:
                second.recv(timeout=5)
            assert closed.value.rcvd.code == 1013  # try again later
    hub = app.nvr.web_context.talk
    wait_for(lambda: hub.statistics()["talking"] == [], what="the first talker's session to end")
    with talk(app, CAMERA) as again:  # let go: the output is free
        assert json.loads(again.recv(timeout=15))["type"] == "ready"


@pytest.mark.parametrize(("role", "channel", "says"), [
    ("viewer", CAMERA, "operator role"),
    ("operator", QUIET, "no talk output"),
    ("operator", 99, "no talk output"),
])
def test_talk_is_refused_with_a_reason_to_viewers_and_on_channels_without_output(rig, role, channel, says):
    app, _, _ = rig
    with talk(app, channel, role=role) as ws:
        answer = json.loads(ws.recv(timeout=5))
    assert answer["type"] == "error" and says in answer["message"]


def test_without_a_session_the_talk_socket_is_not_opened(rig):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    app, _, _ = rig
    with pytest.raises(InvalidStatus):
        connect(app.url.replace("http", "ws") + f"/api/talk/{CAMERA}", open_timeout=5)


def test_malformed_frames_are_refused_and_a_page_that_keeps_sending_them_is_closed(rig):
    from websockets.exceptions import ConnectionClosed

    app, _, speaker = rig
    before = len(speaker.played())
    with talk(app, ANALOG) as ws:
        assert json.loads(ws.recv(timeout=15))["type"] == "ready"
        ws.send(b"\x07" * (MAX_FRAME_BYTES + 1))
        ws.send(b"\x02\x00\x00\x00\x00\x00")
        send_tone(ws, 500, 0.2)  # good frames between bad ones still play
        wait_for(lambda: len(speaker.played()) - before >= 0.19 * 48000, what="the good frames to play")
        for _ in range(8):
            ws.send(b"\x01\x00\x00\x00\x00")
        answer = json.loads(ws.recv(timeout=5))
        assert answer["type"] == "error" and "10 malformed talk frames" in answer["message"]
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd.code == 1003


def test_a_flood_of_sound_is_cut_to_the_burst_allowance(rig):
    """Ten seconds sent at once: the box lets through the burst and what its rate allows over the time it
    took to read them, by its own clock (how long that is depends on the machine's load, not the verdict)."""
    app, _, speaker = rig
    before = len(speaker.played())
    hub = app.nvr.web_context.talk
    ended_before = len(hub.ended)
    with talk(app, ANALOG) as ws:
        assert json.loads(ws.recv(timeout=15))["type"] == "ready"
        send_tone(ws, 500, 10.0)  # ten seconds at once
        wait_for(lambda: len(speaker.played()) - before >= 1.4 * 48000, what="the burst to be played")
    wait_for(lambda: hub.statistics()["talking"] == [] and len(hub.ended) > ended_before, what="the session to end")
    figures = hub.ended[-1]
    print(f"\nflood: {figures}")
    assert figures["over_budget_frames"] > 0 and figures["frames"] + figures["over_budget_frames"] <= 500
    assert figures["admitted_s"] <= BURST_S + figures["span_s"] * RATE_MARGIN + 0.02  # one frame of rounding
    assert figures["admitted_s"] < 10.0
    assert len(speaker.played()) - before <= (figures["admitted_s"] + 0.05) * 48000  # nothing else reached the card


def test_the_channel_list_says_where_talk_is_possible(rig):
    import httpx

    app, _, _ = rig
    client = httpx.Client(base_url=app.url, headers={"Cookie": cookie(app, "viewer")})
    talk_flags = {c["id"]: c["talk"] for c in client.get("/api/channels").json()}
    assert talk_flags == {CAMERA: True, QUIET: False, ANALOG: True}
