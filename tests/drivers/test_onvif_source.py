"""OnvifRtspCamera: the stream URI is asked of the camera at every open, credentials go into it, and a
changed URI replaces the RTSP client (scripted resolver and clients; the real device is in
tests/e2e/test_onvif_recording.py)."""
from __future__ import annotations

import pytest

from base.clock import SimulatedClocks
from drivers.onvif.camera import StreamUris
from drivers.onvif.discovery import DiscoveredDevice
from drivers.onvif.errors import CameraUnreachable, WrongCredentials
from drivers.onvif.source import REDISCOVER_EVERY_S, OnvifRtspCamera, with_credentials

IDENTITY = ("Acme", "Dome 5", "SN-0001")


class FakeClient:
    def __init__(self, url: str):
        self.url, self.opened, self.closed = url, 0, 0

    def open(self):
        self.opened += 1
        return f"info of {self.url}"

    def packets(self):
        yield from ()

    def close(self):
        self.closed += 1

    def statistics(self):
        return {"packets": 0}


class ScriptedCamera:
    """A resolver answering with the URIs (or errors) given, one per call; an answer may be a pair
    (URI, identity)."""

    def __init__(self, *answers):
        self.answers, self.calls = list(answers), []

    def __call__(self, url, *, username, password, profile, sub_profile, timeout_s):
        self.calls.append((url, profile, sub_profile))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        uri, identity = answer if isinstance(answer, tuple) else (answer, IDENTITY)
        return StreamUris(profile or "Profile_1", uri, identity=identity)


def source(resolve, *, stream="main", profile=None, username="admin", password="p@ss:w/rd", rediscover=None,
           clocks=None):
    clients: list[FakeClient] = []

    def make(url):
        clients.append(FakeClient(url))
        return clients[-1]

    camera = OnvifRtspCamera("http://10.0.0.5", username=username, password=password, profile=profile, stream=stream,
                             name="door main", make_camera=make, resolve=resolve, rediscover=rediscover, clocks=clocks)
    return camera, clients


def test_credentials_go_into_the_uri_percent_encoded_replacing_any_there():
    assert with_credentials("rtsp://10.0.0.5:554/main", "admin", "p@ss:w/rd") == \
        "rtsp://admin:p%40ss%3Aw%2Frd@10.0.0.5:554/main"
    assert with_credentials("rtsp://old:pw@10.0.0.5/main", "admin", "") == "rtsp://admin@10.0.0.5/main"
    assert with_credentials("rtsp://10.0.0.5/main", None, "x") == "rtsp://10.0.0.5/main"


def test_every_open_asks_the_camera_and_keeps_the_client_while_the_uri_stays():
    resolve = ScriptedCamera("rtsp://10.0.0.5/main", "rtsp://10.0.0.5/main")
    camera, clients = source(resolve)

    camera.open()
    camera.close()
    camera.open()

    assert resolve.calls == [("http://10.0.0.5/onvif/device_service", None, None)] * 2
    assert len(clients) == 1 and clients[0].opened == 2
    assert camera.stream_url == "rtsp://admin:***@10.0.0.5/main" and camera.uri_changes == 0


def test_a_camera_that_comes_back_with_another_uri_gets_a_new_client_and_the_old_one_closed():
    resolve = ScriptedCamera("rtsp://10.0.0.5/main", "rtsp://10.0.0.5:8554/main")
    camera, clients = source(resolve)

    camera.open()
    camera.open()

    assert [c.url for c in clients] == ["rtsp://admin:p%40ss%3Aw%2Frd@10.0.0.5/main",
                                        "rtsp://admin:p%40ss%3Aw%2Frd@10.0.0.5:8554/main"]
    assert clients[0].closed == 1 and camera.uri_changes == 1
    assert camera.statistics()["stream_url"] == "rtsp://admin:***@10.0.0.5:8554/main"


def test_the_sub_stream_asks_for_its_own_profile():
    resolve = ScriptedCamera("rtsp://10.0.0.5/sub")
    camera, clients = source(resolve, stream="sub", profile="Profile_2")

    camera.open()

    assert resolve.calls[0][1:] == ("Profile_2", None)
    assert clients[0].url.endswith("/sub")


def device_at(ip: str) -> DiscoveredDevice:
    return DiscoveredDevice(endpoint=f"urn:uuid:{ip}", xaddrs=(f"http://{ip}/onvif/device_service",))


def test_a_camera_that_moved_is_found_by_its_identity_and_used_from_then_on():
    down = CameraUnreachable("10.0.0.5 did not answer")
    resolve = ScriptedCamera("rtsp://10.0.0.5/main", down, ("rtsp://10.0.0.7/main", ("Other", "Cam", "SN-9")),
                             "rtsp://10.0.0.9/main", "rtsp://10.0.0.9/main")
    searches = []

    def rediscover(*, timeout_s):
        searches.append(timeout_s)
        return [device_at("10.0.0.5"), device_at("10.0.0.7"), device_at("10.0.0.9")]

    camera, clients = source(resolve, rediscover=rediscover, clocks=SimulatedClocks())
    camera.open()
    camera.open()
    camera.open()

    assert [call[0] for call in resolve.calls] == [
        "http://10.0.0.5/onvif/device_service", "http://10.0.0.5/onvif/device_service",
        "http://10.0.0.7/onvif/device_service", "http://10.0.0.9/onvif/device_service",
        "http://10.0.0.9/onvif/device_service"]  # the old address is not asked twice; another camera is not taken
    assert camera.url == "http://10.0.0.9/onvif/device_service" and camera.moves == 1 and len(searches) == 1
    assert clients[-1].url.endswith("@10.0.0.9/main")


def test_searches_for_a_moved_camera_are_rate_limited_and_need_a_camera_seen_before():
    down = CameraUnreachable("10.0.0.5 did not answer")
    clocks = SimulatedClocks()
    searches = []

    def rediscover(*, timeout_s):
        searches.append(clocks.monotonic_us())
        return []

    never_seen, _ = source(ScriptedCamera(down), rediscover=rediscover, clocks=clocks)
    with pytest.raises(CameraUnreachable):
        never_seen.open()
    assert searches == []  # nothing to recognise it by

    camera, _ = source(ScriptedCamera("rtsp://10.0.0.5/main", down, down, down), rediscover=rediscover, clocks=clocks)
    camera.open()
    for advance_s in (0, 1, REDISCOVER_EVERY_S):
        clocks.advance(advance_s)
        with pytest.raises(CameraUnreachable, match="did not answer"):
            camera.open()

    assert len(searches) == 2


def test_a_refusal_reaches_the_recorder_as_refused_and_is_shown_in_statistics():
    camera, clients = source(ScriptedCamera(WrongCredentials("10.0.0.5 refused: check the user name")))

    with pytest.raises(WrongCredentials) as caught:
        camera.open()

    assert caught.value.refused and clients == []
    assert "check the user name" in camera.statistics()["onvif_error"]


def test_closed_while_asking_the_camera_opens_no_stream():
    camera = None

    def resolve(*args, **kwargs):
        camera.close()  # the recorder stopping meanwhile
        return StreamUris("Profile_1", "rtsp://10.0.0.5/main")

    camera, clients = source(resolve)
    with pytest.raises(ConnectionError, match="closed while asking"):
        camera.open()

    assert clients[0].opened == 0


def test_probe_is_a_tcp_connect_to_the_device_service():
    camera, _ = source(ScriptedCamera())
    camera.url = "http://127.0.0.1:1/onvif/device_service"

    assert camera.probe() is False
