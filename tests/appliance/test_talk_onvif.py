"""Talk on a `type: onvif` channel without talk.url: the camera's speaker is dialled at the RTSP URL the
camera names at run time (the one its recorder learnt, else asked of the camera), with the ONVIF
credentials. The camera is ipycam's ONVIF device service (tests/support/onvif_device.py) naming
rtsp://127.0.0.1:PORT/video_main, served by the GStreamer ONVIF back-channel server
(tests/support/backchannel_server.py) or, for a camera without a back channel, the plain test RTSP server."""
from __future__ import annotations

import json
import socket
import textwrap

import numpy as np
import pytest

from appliance.config.model import parse_config
from appliance.sound.output import AudioOutputs
from appliance.sound.rule_sounds import RuleSounds
from appliance.talk.camera_urls import CameraUrls, TalkUrlError
from appliance.talk.frames import build_talk_frame
from appliance.talk.session import TalkHub
from appliance.talk.sinks import TalkSinkError, make_sink
from base.clock import RealClocks
from hal.audio_out import SimulatedAudioPlayback
from support.onvif_device import OnvifDevice, ipycam_available
from support.talk import BackChannelCamera, backchannel_available, dominant_frequency, tone, write_wav
from support.waiting import wait_for
from support.web import PASSWORDS, start_appliance

pytestmark = pytest.mark.rtsp

CHANNEL = 5
USER, PASSWORD = "admin", "s3cret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _needs_both() -> None:
    for ok, why in (ipycam_available(), backchannel_available()):
        if not ok:
            pytest.skip(why)


@pytest.fixture(scope="module")
def onvif_camera(tmp_path_factory):
    """(ipycam's ONVIF service, the back-channel camera it names as its stream)."""
    _needs_both()
    tmp = tmp_path_factory.mktemp("onvif-talk")
    with BackChannelCamera(tmp / "heard.raw", mount="/video_main") as camera, \
            OnvifDevice(onvif_port=_free_port(), rtsp_port=camera.port, user=USER, password=PASSWORD) as device:
        yield device, camera


def onvif_channel(device: OnvifDevice) -> str:
    return (f"  - id: {CHANNEL}\n    name: Porch\n    source: {{type: onvif, url: '{device.url}', "
            f"username: {USER}, password: {PASSWORD}}}\n")


def test_push_to_talk_and_the_intercom_on_an_onvif_channel_use_the_url_its_recorder_learnt(onvif_camera, tmp_path):
    from websockets.sync.client import connect
    import httpx

    device, camera = onvif_camera
    app = start_appliance(tmp_path, channels=0, past_seconds=0, extra_channels=onvif_channel(device),
                          extra_top=f"line_in: {{device: simulated, channel: {CHANNEL}}}\n")
    try:
        learnt = wait_for(lambda: app.nvr.supervisor.learnt_stream_url(CHANNEL), timeout_s=30,
                          what="the ONVIF channel's recorder to learn its stream URL")
        assert learnt == f"rtsp://{USER}:{PASSWORD}@127.0.0.1:{camera.port}/video_main"
        client = httpx.Client(base_url=app.url)
        client.post("/api/login", json={"username": "operator", "password": PASSWORDS["operator"]}).raise_for_status()
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        before = len(camera.heard())
        with connect(app.url.replace("http", "ws") + f"/api/talk/{CHANNEL}", additional_headers={"Cookie": cookie},
                     open_timeout=5) as ws:
            assert json.loads(ws.recv(timeout=15))["type"] == "ready"
            sound = tone(900, 1.0)
            for number, at in enumerate(range(0, len(sound), 160)):
                ws.send(build_talk_frame(number, sound[at:at + 160]))
            wait_for(lambda: len(camera.heard()) - before >= 7000, what="the operator's second at the camera")
        assert abs(dominant_frequency(camera.heard()[before:before + 7000], 8000) - 900) < 10
        hub = app.nvr.talk
        wait_for(lambda: hub.talking() == [], what="the talk session to end")
        before = len(camera.heard())
        app.nvr.intercom.hold("test", 5)
        wait_for(lambda: len(camera.heard()) - before >= 8000, what="a second of the LINE IN at the camera")
        app.nvr.intercom.release("test")
        heard = camera.heard()[before:].astype(np.int32)
        assert abs(dominant_frequency(heard[np.abs(heard) < 3000][-4000:], 8000) - 440) < 10
        assert app.nvr.talk.camera_url.asked == 0  # both dialled the URL the recorder had learnt
        wait_for(lambda: hub.talking() == [], what="the intercom to give the speaker back")
    finally:
        app.stop()


def test_a_rules_sound_on_an_onvif_channel_asks_the_camera_for_its_url_when_no_recorder_has_it(onvif_camera,
                                                                                                tmp_path):
    device, camera = onvif_camera
    beep = write_wav(tmp_path / "beep.wav", tone(700, 0.6, rate=16000), 16000)
    config = parse_config(textwrap.dedent(f"""\
        storage: {{path: {tmp_path / 'data'}}}
        channels:
        """) + onvif_channel(device) + textwrap.dedent(f"""\
        rules:
          - when: {{alarm_input: door}}
            do: [{{play: {{file: '{beep}', channel: {CHANNEL}}}}}]
        alarms: {{inputs: [{{id: door, pin: 17}}], temperature: {{thermal_zones: false}}}}
        """))
    urls = CameraUrls(lambda: config, learnt=lambda channel_id: None)  # no recorder runs here
    hub = TalkHub(camera_url=urls)
    clocks = RealClocks()
    sounds = RuleSounds(config, outputs=AudioOutputs(playback=lambda device: SimulatedAudioPlayback()), talk=hub,
                        clocks=clocks)
    assert sounds.preload() == []
    sounds.start()
    try:
        before = len(camera.heard())
        sounds.play("door", str(beep), channel=CHANNEL)
        wait_for(lambda: len(camera.heard()) - before >= 4500, what="the rule's sound at the camera")
        assert abs(dominant_frequency(camera.heard()[before:before + 4500], 8000) - 700) < 10
        assert urls.asked == 1
        wait_for(lambda: hub.talking() == [], what="the sound to end and the speaker to be given back")
    finally:
        sounds.close()


def test_an_onvif_camera_without_a_back_channel_is_a_clear_error(tmp_path):
    from support.rtsp import RtspServer

    _needs_both()
    with RtspServer() as plain:
        plain.start({"/video_main": "live:320x240@10"})
        with OnvifDevice(onvif_port=_free_port(), rtsp_port=plain.port, user=USER, password=PASSWORD) as device:
            config = parse_config(f"storage: {{path: {tmp_path / 'data'}}}\nchannels:\n" + onvif_channel(device))
            urls = CameraUrls(lambda: config, learnt=lambda channel_id: None)
            sink = make_sink("camera", device.url, clocks=RealClocks(), camera_url=urls)
            with pytest.raises(TalkSinkError, match="does not support the ONVIF back channel|offers no G.711"):
                sink.open()
            sink.close()
    unknown = CameraUrls(lambda: config, learnt=lambda channel_id: None)
    with pytest.raises(TalkUrlError, match="no ONVIF channel names"):
        unknown("http://127.0.0.1:1/onvif/device_service")


def test_an_onvif_channel_talks_to_its_camera_by_default_and_needs_no_talk_url():
    from appliance.config.talk import talk_target

    config = parse_config("audio_out: {device: simulated}\nchannels:\n"
                          "  - {id: 1, source: {type: onvif, url: 'http://192.0.2.7'}}\n"
                          "  - {id: 2, source: {type: onvif, url: 'http://192.0.2.8'}, talk: {output: camera}}\n"
                          "  - {id: 3, source: {type: onvif, url: 'http://192.0.2.9'},\n"
                          "     talk: {url: 'rtsp://192.0.2.9/speaker'}}\n")
    assert [talk_target(c, config.audio_out) for c in config.channels] == [
        ("camera", "http://192.0.2.7"), ("camera", "http://192.0.2.8"), ("camera", "rtsp://192.0.2.9/speaker")]
