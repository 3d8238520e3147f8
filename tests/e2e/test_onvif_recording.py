"""A `type: onvif` channel records what the camera names: ipycam's ONVIF service (a device nobody here
wrote) gives the stream URIs, the GStreamer test RTSP server serves them, the whole Supervisor records;
and a camera that comes back from a reboot on another RTSP port is recorded again without a config edit."""
from __future__ import annotations


import pytest
from support.rtsp import RtspServer
from support.waiting import wait_for
from support.web import free_port

from tests.e2e.test_rtsp_recording import make_supervisor  # noqa: F401 - the fixture
from tests.support.onvif_device import NoLanDiscovery, OnvifDevice, ipycam_available

pytestmark = pytest.mark.rtsp
available, why = ipycam_available()
if not available:
    pytest.skip(why, allow_module_level=True)
pytest.importorskip("onvif", reason="onvif-zeep-async is not installed")

@pytest.fixture(autouse=True)
def no_lan_discovery():
    """The appliance runs on the host's network here: its search for a camera that stopped answering
    must not probe it (tests/drivers/test_onvif_discovery.py tests the search in namespaces)."""
    with NoLanDiscovery() as probes:
        yield probes


MOUNTS = {"/video_main": "live:320x240@10,bitrate=300,gop=10", "/video_sub": "live:160x120@10,bitrate=100,gop=10"}


def channel(onvif_port: int, *, sub: bool = True) -> str:
    sub_profile = ", sub_profile: Profile_Sub" if sub else ""
    return (f"  - id: 1\n    name: yard\n    source: {{type: onvif, url: 'http://127.0.0.1:{onvif_port}', "
            f"username: admin, password: 'pa:ss@1', profile: Profile_Main{sub_profile}, timeout_s: 3, "
            f"reconnect_max_s: 2}}\n")


def test_an_onvif_channel_records_main_and_sub_from_the_uris_the_camera_names(make_supervisor):  # noqa: F811
    with RtspServer() as rtsp:
        rtsp.start(MOUNTS)
        onvif_port = free_port()
        with OnvifDevice(onvif_port=onvif_port, rtsp_port=rtsp.port, password="pa:ss@1"):
            sup = make_supervisor(channel(onvif_port))
            wait_for(lambda: sup.index.segments(channel=1, stream="main") and sup.index.segments(channel=1, stream="sub"),
                     timeout_s=30, what="segments of both streams")
            main = sup.taps[(1, "main")].inner
            sup.stop()

    assert main.stream_url == f"rtsp://admin:***@127.0.0.1:{rtsp.port}/video_main"
    assert [s.opened[0].width for s in (sup.taps[(1, "main")], sup.taps[(1, "sub")])] == [320, 160]


def test_a_camera_back_from_a_reboot_on_another_rtsp_port_is_recorded_again(make_supervisor):  # noqa: F811
    onvif_port = free_port()
    with RtspServer() as before:
        before.start(MOUNTS)
        with OnvifDevice(onvif_port=onvif_port, rtsp_port=before.port, password="pa:ss@1"):
            sup = make_supervisor(channel(onvif_port, sub=False))
            wait_for(lambda: sup.index.segments(channel=1, stream="main"), timeout_s=30, what="the first segment")
    tap = sup.taps[(1, "main")]
    wait_for(lambda: not sup.recorders[0].connected, timeout_s=30, what="the recorder noticing the camera is gone")
    with RtspServer() as after:
        after.start(MOUNTS)
        assert after.port != before.port
        with OnvifDevice(onvif_port=onvif_port, rtsp_port=after.port, password="pa:ss@1"):
            wait_for(lambda: len(tap.opened) >= 2, timeout_s=30, what="the stream opened again at its new URI")
            wait_for(lambda: len({s.run_id for s in sup.index.segments(channel=1, stream="main")}) >= 2,
                     timeout_s=30, what="segments of a second run")
            sup.stop()

    assert tap.inner.uri_changes == 1 and tap.inner.moves == 0
    assert tap.inner.stream_url == f"rtsp://admin:***@127.0.0.1:{after.port}/video_main"
