"""Shared fixtures: simulated clocks, an index in a temporary data root, and the GStreamer RTSP test
server (skipped, with the reason, where it cannot run)."""
from __future__ import annotations

import pytest

from base.clock import SimulatedClocks
from recorder.index import Index
from support.fake_rtsp import FakeCamera, Script
from support.rtsp import RtspServer, make_clip, rtsp_available
from support.vivid import in_vivid_vm


def pytest_collection_modifyitems(config, items):
    """Tests marked `vivid` need the kernel's vivid driver: skipped except inside the vivid VM."""
    if in_vivid_vm():
        return
    skip = pytest.mark.skip(reason="runs inside the vivid VM; see test_vivid_vm.py")
    for item in items:
        if item.get_closest_marker("vivid"):
            item.add_marker(skip)


@pytest.fixture
def clocks() -> SimulatedClocks:
    """Clocks that only move when the test (or a paced source under test) says so."""
    return SimulatedClocks()


@pytest.fixture
def index(tmp_path):
    """An empty index with `tmp_path` as its data root."""
    idx = Index(tmp_path)
    yield idx
    idx.close()

LIVE_MOUNTS = {
    "/cam1": "live:640x360@25,bitrate=800,gop=25",
    "/cam2": "live:640x360@25,bitrate=800,gop=50",
    "/h265": "live:320x240@25,codec=h265",
}


def _require_rtsp() -> None:
    ok, reason = rtsp_available()
    if not ok:
        pytest.skip(f"RTSP test server unavailable: {reason}")


@pytest.fixture(scope="session")
def rtsp_server():
    """One server for the whole session: live mounts /cam1, /cam2 (H.264 640x360@25), /h265."""
    _require_rtsp()
    with RtspServer() as server:
        yield server.start(LIVE_MOUNTS)


@pytest.fixture(scope="session")
def rtsp_clip_server(tmp_path_factory):
    """A server looping a pre-encoded 3 s 1080p25 H.264 clip (4 Mbit/s, GOP 50) on /clip, shared by
    all its clients, so many cameras cost one pipeline."""
    _require_rtsp()
    clip = make_clip(tmp_path_factory.mktemp("rtsp-clip") / "clip.h264", duration_s=3)
    with RtspServer() as server:
        yield server.start({"/clip": f"file:{clip}"})


@pytest.fixture
def make_rtsp_server():
    """Factory for a test's own server (to stop or restart it): `make_rtsp_server({"/cam": spec})`."""
    _require_rtsp()
    servers: list[RtspServer] = []

    def make(mounts: dict[str, str] | None = None) -> RtspServer:
        server = RtspServer().start(mounts or {"/cam1": LIVE_MOUNTS["/cam1"]})
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def mock_pins():
    """gpiozero's MockFactory, installed as the default pin factory for the test and reset after it;
    its pins are test instruments: `mock_pins.pin(17).drive_low()`, `.states`."""
    from support.alarm_rig import installed_mock_pins

    with installed_mock_pins() as factory:
        yield factory


@pytest.fixture
def fake_camera():
    """Makes scripted fake RTSP cameras (support.fake_rtsp) for one test and stops them after it."""
    cameras: list[FakeCamera] = []

    def make(**script) -> FakeCamera:
        cameras.append(FakeCamera(Script(**script)))
        return cameras[-1]

    yield make
    for camera in cameras:
        camera.stop()
