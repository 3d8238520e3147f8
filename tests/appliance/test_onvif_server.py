"""The box as an ONVIF device, asked by a client library nobody here wrote (onvif-zeep-async, what Home
Assistant uses), whose stream URIs FFmpeg then pulls, and whose snapshot URIs answer with HTTP Digest."""
from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from appliance.onvif_server.device import DEVICE_PATH
from support.box_rtsp import Box, start_box
from support.onvif_client import ask_onvif
from support.rtsp import rtsp_available
from support.web import free_port

pytest.importorskip("onvif", reason="needs onvif-zeep-async")  # support.onvif_client asks with it
zeep = pytest.importorskip("zeep")
pytestmark = pytest.mark.skipif(not rtsp_available()[0], reason=rtsp_available()[1])
REQUESTS = Path(__file__).parents[1] / "support" / "onvif_requests"


@pytest.fixture(scope="module")
def box(tmp_path_factory) -> Box:
    port = free_port()
    box = start_box(tmp_path_factory.mktemp("onvif"), channels=2,
                    extra=f"onvif_server: {{enabled: true, listen: 127.0.0.1:{port}, discovery: false, name: Gate box}}\n")
    box.onvif_port = port
    yield box
    box.nvr.stop()


def ask(box: Box, steps, password: str = "viewer-pass-1", *, digest: bool = False):
    """Run `steps(camera)` with onvif-zeep-async as the web user `viewer` (PasswordText unless `digest`)."""
    return ask_onvif(box.onvif_port, steps, "viewer", password, digest=digest)


async def streams_of(cam) -> list[tuple[str, str, str, int, int]]:
    media = await cam.create_media_service()
    out = []
    for profile in await media.GetProfiles():
        uri = await media.GetStreamUri({"ProfileToken": profile.token,
                                        "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}})
        snapshot = await media.GetSnapshotUri({"ProfileToken": profile.token})
        resolution = profile.VideoEncoderConfiguration.Resolution
        out.append((profile.token, uri.Uri, snapshot.Uri, resolution.Width, resolution.Height))
    return out


def test_onvif_zeep_async_lists_every_channel_with_its_stream_and_snapshot_uri(box):
    found = ask(box, streams_of)

    rtsp, http = f"rtsp://127.0.0.1:{box.rtsp_port}", f"http://127.0.0.1:{box.onvif_port}"
    assert found == [("ch1_main", f"{rtsp}/ch1/main", f"{http}/onvif/snapshot/1/main", 320, 240),
                     ("ch2_main", f"{rtsp}/ch2/main", f"{http}/onvif/snapshot/2/main", 320, 240)]


def test_device_information_and_scopes_name_the_box(box):
    async def steps(cam):
        device = await cam.create_devicemgmt_service()
        return await device.GetDeviceInformation(), await device.GetScopes()
    info, scopes = ask(box, steps)

    assert info.Model == "nvr hybrid recorder" and info.SerialNumber == str(box.nvr.onvif_server.device.uuid)
    assert "onvif://www.onvif.org/name/Gate%20box" in [s.ScopeItem for s in scopes]


def test_ffprobe_pulls_each_stream_uri_the_client_was_given_with_the_same_credentials(box):
    for _, uri, *_ in ask(box, streams_of):
        with_login = uri.replace("rtsp://", "rtsp://viewer:viewer-pass-1@")
        done = subprocess.run(["/usr/bin/ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v",
                               "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0", with_login],
                              capture_output=True, text=True, timeout=60)
        assert done.stdout.strip() == "h264,320,240", (uri, done.stderr)


def test_a_wrong_password_gets_not_authorized(box):
    async def steps(cam):
        return await (await cam.create_devicemgmt_service()).GetDeviceInformation()
    with pytest.raises(zeep.exceptions.Fault, match="wrong user name or password"):
        ask(box, steps, password="wrong-pass-1")


def test_password_digest_is_refused_saying_what_to_send_instead(box):
    async def steps(cam):
        return await (await cam.create_devicemgmt_service()).GetDeviceInformation()
    with pytest.raises(zeep.exceptions.Fault, match="PasswordText"):
        ask(box, steps, digest=True)


def test_http_digest_logs_in_to_the_soap_service_and_the_snapshots(box):
    body = (REQUESTS / "onvif-zeep-async-GetProfiles.xml").read_bytes()
    without_token = body.split(b"<soap-env:Header>")[0] + b"<soap-env:Body>" + body.split(b"<soap-env:Body>")[1]
    url = f"http://127.0.0.1:{box.onvif_port}"
    with httpx.Client(auth=httpx.DigestAuth("viewer", "viewer-pass-1"), timeout=30) as client:
        profiles = client.post(url + DEVICE_PATH, content=without_token, headers={"Content-Type": "application/soap+xml"})
        snapshot = client.get(url + "/onvif/snapshot/1/main")

    assert profiles.status_code == 200 and b"ch2_main" in profiles.content
    assert snapshot.status_code == 200 and snapshot.content[:2] == b"\xff\xd8"


def test_snapshots_without_or_with_wrong_credentials_are_refused(box):
    url = f"http://127.0.0.1:{box.onvif_port}/onvif/snapshot/1/main"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, auth=httpx.DigestAuth("viewer", "nope-nope-1")).status_code == 401
    assert httpx.get(url, auth=("viewer", "viewer-pass-1")).status_code == 200  # Basic, checked against scrypt


@pytest.mark.parametrize("body, status", [
    (b'<!DOCTYPE l [<!ENTITY a "aaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><l>&b;</l>', 400),
    (b"<a>" * 100 + b"</a>" * 100, 400),
    (b"\xff\xfe not xml", 400),
    (b"x" * (65 * 1024), 413),
])
def test_hostile_requests_get_a_clear_refusal_and_the_service_goes_on(box, body, status):
    url = f"http://127.0.0.1:{box.onvif_port}{DEVICE_PATH}"

    refused = httpx.post(url, content=body, timeout=30)

    assert refused.status_code == status
    assert ask(box, streams_of)[0][0] == "ch1_main"


def test_password_guessing_over_onvif_is_throttled_like_web_logins(tmp_path):
    from appliance.web.login_guard import PAIR_FREE
    port = free_port()
    box = start_box(tmp_path, extra=f"onvif_server: {{enabled: true, listen: 127.0.0.1:{port}, discovery: false}}\n")
    body = (REQUESTS / "onvif-zeep-async-GetProfiles.xml").read_bytes().replace(b"viewer-pass-1", b"guess-guess-1")
    url = f"http://127.0.0.1:{port}{DEVICE_PATH}"
    try:
        answers = [httpx.post(url, content=body, timeout=30) for _ in range(PAIR_FREE + 1)]

        assert [a.status_code for a in answers[:PAIR_FREE]] == [400] * PAIR_FREE
        assert answers[-1].status_code == 429 and int(answers[-1].headers["retry-after"]) >= 1
        assert b"too many login attempts" in answers[-1].content
    finally:
        box.nvr.stop()
