"""Acceptance of issue 16's client side in real headless Chromium: the "Add camera" page finds a device
nobody here wrote (ipycam) by WS-Discovery inside network namespaces, reads it with its credentials,
adds it as a channel through the config page's save and restart path, and the channel records the
device's RTSP stream (the GStreamer test server at the address and port the device names).

Topology (tests/support/onvif_device.NetNamespacePair with host_link): the camera namespace holds
ipycam's ONVIF service and the RTSP server on 10.77.0.2; the client namespace runs the probe (`nvr
discover --json`, injected as the web context's `discover`); the appliance under test, here, reaches
10.77.0.2 by unicast over a third veth. No probe is sent on the host's own network."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.waiting import wait_for
from support.web import PASSWORDS, start_appliance, wait_recording
from tests.support.onvif_device import (NamespacedRtspServer, NetNamespacePair, NoLanDiscovery, OnvifDevice,
                                        ipycam_available, netns_available)
from tests.support.rtsp import rtsp_available

pytestmark = pytest.mark.rtsp
CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync"]
MOUNTS = {"/video_main": "live:320x240@10,bitrate=300,gop=10", "/video_sub": "live:160x120@10,bitrate=100,gop=10"}

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytest.importorskip("onvif", reason="onvif-zeep-async is not installed")
for ok, why in (ipycam_available(), netns_available(), rtsp_available(),
                (os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing")):
    if not ok:
        pytest.skip(why, allow_module_level=True)


def discover_in(pair: NetNamespacePair):
    """The web page's probe, run as `nvr discover --json` inside the client namespace."""

    def discover(timeout_s: float) -> list[dict]:
        done = subprocess.run(pair.prefix(pair.client) + [sys.executable, "-m", "appliance.cli", "discover", "--json",
                                                           "--timeout", str(timeout_s)],
                              capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              timeout=60)
        return json.loads(done.stdout or "[]")

    return discover


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    with NoLanDiscovery(), NetNamespacePair(f"w{os.getpid() % 10000}", host_link=True) as pair:
        with NamespacedRtspServer(namespace=pair.camera, address=pair.CAMERA_IP, port=8554, mounts=MOUNTS), \
                OnvifDevice(ip=pair.CAMERA_IP, onvif_port=8080, namespace=pair.camera, name="Gate",
                            user="onvif", password="cam-pass"):
            app = start_appliance(tmp_path_factory.mktemp("add-camera"), channels=1, past_seconds=0)
            try:
                app.nvr.web_context.discover = discover_in(pair)
                wait_recording(app)
                yield app, pair
            finally:
                app.stop()


@pytest.fixture
def page(rig):
    app, _ = rig
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        pg = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
        errors = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(app.url + "/#/cameras")
        pg.fill("#username", "admin")
        pg.fill("#password", PASSWORDS["admin"])
        pg.click("#login-button")
        pg.wait_for_selector("#cam-discover")
        yield pg
        browser.close()
        assert not errors, errors


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_the_add_camera_page_finds_reads_and_adds_the_camera_and_the_channel_records(page, rig):
    app, pair = rig
    page.click("#cam-discover")
    page.wait_for_selector("#cam-found .cam-use")
    assert "Gate" in page.inner_text("#cam-found")
    page.click("#cam-found .cam-use")
    assert page.input_value("#cam-url") == f"http://{pair.CAMERA_IP}:8080/onvif/device_service"

    page.fill("#cam-user", "onvif")
    page.fill("#cam-password", "wrong")
    page.click("#cam-read")
    page.wait_for_function("() => document.getElementById('cam-read-message').textContent.includes('check the user')")
    page.fill("#cam-password", "cam-pass")
    page.click("#cam-read")
    page.wait_for_selector("#cam-details:not([hidden])")
    assert "VirtualCam-1" in page.inner_text("#cam-read-message")
    assert page.input_value("#cam-main") == "Profile_Main" and page.input_value("#cam-sub") == "Profile_Sub"
    page.fill("#cam-name", "Gate camera")
    shot(page, "add-camera")
    page.click("#cam-add")
    page.wait_for_function("() => document.getElementById('cam-add-message').textContent.includes('Channel 2 added')")

    config = app.config_file.read_text()
    assert '- {id: 2, name: "Gate camera", source: {type: "onvif", url: "http://10.77.0.2:8080/onvif/device_service"' \
        in config and 'password: "cam-pass"' in config
    sup = app.supervisor
    wait_for(lambda: {(r.segmenter.channel, r.segmenter.stream) for r in sup.recorders if r.connected
                      and r.statistics()["packets"] > 5} >= {(1, "main"), (2, "main"), (2, "sub")},
             timeout_s=60, what="the new channel recording main and sub",
             details=lambda: [(r.segmenter.channel, r.segmenter.stream, r.last_error) for r in sup.recorders])
    wait_for(lambda: sup.index.segments(channel=2, stream="main"), timeout_s=60, what="a segment of the new channel")
    info = next(r for r in sup.recorders if r.segmenter.channel == 2 and r.segmenter.stream == "main")
    assert info.source.stream_url == f"rtsp://onvif:***@{pair.CAMERA_IP}:8554/video_main"
