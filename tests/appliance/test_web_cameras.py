"""The add-camera routes against a running appliance and ipycam's ONVIF service on loopback: roles,
clear 422s, the channel written into the config file's text (comments kept) through the config page's
save path. Discovery itself runs in network namespaces (tests/e2e/test_web_add_camera.py); here the
web context's probe is a stand-in, so nothing is sent to the host's network."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

from support.web import login, start_appliance, wait_recording
from tests.support.onvif_device import NoLanDiscovery, OnvifDevice, ipycam_available

from appliance.config.model import parse_config
from appliance.web.cameras import insert_channel

ROOT = Path(__file__).resolve().parents[2]
CAMERA_CALL_TIMEOUT_S = 60  # reading or adding a camera asks its ONVIF service (ipycam) before answering
ITEM = '{id: 9, name: "New", source: {type: "onvif", url: "http://10.0.0.9", profile: "P1"}}'


def test_the_channel_goes_after_the_last_channel_line_and_the_comments_stay():
    template = (ROOT / "appliance" / "default.yaml").read_text()

    text = insert_channel(template, ITEM)

    assert [(c.id, c.source.type) for c in parse_config(text).channels] == [(1, "test-pattern"), (9, "onvif")]
    assert text.replace(f"  - {ITEM}\n", "") == template  # one line added, nothing else touched
    assert text.index(ITEM) < text.index("# A network camera.")


@pytest.mark.parametrize("before", [
    "storage: {path: /x}\n",
    "channels:\n- {id: 1, source: {type: test-pattern}}\nweb: {listen: '127.0.0.1:8080'}\n",
    "channels:   # cameras\n  - id: 1\n    source:\n      type: test-pattern\n# ptz:\n#   ports: []\nweb: {}\n",
], ids=["no-channels-key", "items-at-column-0", "block-then-commented-key"])
def test_the_channel_joins_any_block_style_channels_list(before):
    channels = parse_config(insert_channel(before, ITEM)).channels

    assert channels[-1].id == 9 and channels[-1].source.profile == "P1"


def test_a_flow_style_list_is_left_for_the_config_page():
    assert insert_channel("channels: [{id: 1, source: {type: test-pattern}}]\n", ITEM) == \
        "channels: [{id: 1, source: {type: test-pattern}}]\n"


ok, why = ipycam_available()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    if not ok:
        pytest.skip(why)
    pytest.importorskip("onvif", reason="onvif-zeep-async is not installed")
    with NoLanDiscovery(), OnvifDevice(onvif_port=_free_port(), rtsp_port=_free_port(), user="onvif",
                                       password="pw") as device:
        app = start_appliance(tmp_path_factory.mktemp("web-cameras"), channels=1, past_seconds=0)
        try:
            wait_recording(app)
            yield app, device
        finally:
            app.stop()


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_an_admin_may_look_for_read_or_add_cameras(rig, role):
    app, device = rig
    client = login(app, role, timeout_s=CAMERA_CALL_TIMEOUT_S)

    assert client.post("/api/cameras/discover", json={}).status_code == 403
    assert client.post("/api/cameras/read", json={"url": device.url}).status_code == 403
    assert client.post("/api/cameras", json={"url": device.url, "name": "x", "profile": "P"}).status_code == 403


def test_discover_answers_what_the_probe_found(rig):
    app, _ = rig
    app.nvr.web_context.discover = lambda timeout_s: [{"url": "http://10.0.0.7/onvif/device_service",
                                                       "name": f"probed for {timeout_s} s"}]

    found = login(app, timeout_s=CAMERA_CALL_TIMEOUT_S).post("/api/cameras/discover", json={"timeout_s": 1.5}).json()

    assert found == [{"url": "http://10.0.0.7/onvif/device_service", "name": "probed for 1.5 s"}]


def test_reading_a_camera_lists_its_profiles_or_says_what_to_fix(rig):
    app, device = rig
    admin = login(app, timeout_s=CAMERA_CALL_TIMEOUT_S)

    camera = admin.post("/api/cameras/read", json={"url": device.url, "username": "onvif", "password": "pw"}).json()
    wrong = admin.post("/api/cameras/read", json={"url": device.url, "username": "onvif", "password": "no"})
    bad_url = admin.post("/api/cameras/read", json={"url": "ftp://10.0.0.5", "username": "onvif", "password": "pw"})

    assert [p["token"] for p in camera["profiles"]] == ["Profile_Main", "Profile_Sub"]
    assert camera["profiles"][0]["stream_uri"] == f"rtsp://127.0.0.1:{device.rtsp_port}/video_main"
    assert wrong.status_code == 422 and "check the user name and password" in wrong.json()["detail"]
    assert bad_url.status_code == 422 and "http://HOST[:PORT]" in bad_url.json()["detail"]


def test_adding_writes_the_lowest_free_channel_and_restarts_only_it(rig):
    app, device = rig
    admin = login(app, timeout_s=CAMERA_CALL_TIMEOUT_S)
    before = app.config_file.read_text()
    channel_1 = next(r for r in app.supervisor.recorders if r.segmenter.channel == 1)

    answer = admin.post("/api/cameras", json={"url": device.url, "username": "onvif", "password": 'p"w: #1',
                                              "name": 'Gate "north": 1', "profile": "Profile_Main",
                                              "sub_profile": "Profile_Sub"}).json()

    assert answer["channel"] == 2 and answer["restarted_channels"] == [2], answer
    config = parse_config(app.config_file.read_text())
    added = config.channels[1].source
    assert (config.channels[1].name, added.password, added.sub_profile) == ('Gate "north": 1', 'p"w: #1', "Profile_Sub")
    after = app.config_file.read_text().split("\n")
    assert [line for line in after if not line.startswith("  - {id: 2, ")] == before.split("\n")  # one line added
    assert next(r for r in app.supervisor.recorders if r.segmenter.channel == 1) is channel_1
    audit = admin.get("/api/audit?limit=5").json()
    assert audit[0]["action"] == "camera_add"


def test_adding_to_a_config_whose_channels_are_a_flow_list_is_refused_with_the_item(rig):
    app, device = rig
    admin = login(app, timeout_s=CAMERA_CALL_TIMEOUT_S)
    original = app.config_file.read_text()
    config = parse_config(original)
    try:
        app.config_file.write_text(f"storage: {{path: {config.storage.path}, segment_seconds: 10}}\n"
                                   "channels: [{id: 1, name: Cam 1, source: {type: test-pattern, width: 320, "
                                   "height: 240, fps: 25, bitrate: 300000, keyframe_interval_s: 1}}]\n"
                                   "web: {listen: '127.0.0.1:8080'}\n")
        refused = admin.post("/api/cameras", json={"url": device.url, "name": "x", "profile": "Profile_Main"})
    finally:
        app.config_file.write_text(original)

    assert refused.status_code == 409 and "add it on the config page" in refused.json()["detail"]
