"""A network camera with a sub-stream in the browser: the grid plays the sub-stream, full screen the main one."""
from __future__ import annotations

import pytest

from support.web import PASSWORDS, start_appliance, wait_recording
from test_web_browser import CHROMIUM, FLAGS, shot

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.rtsp


@pytest.fixture
def camera_appliance(tmp_path, rtsp_server):
    extra = (f"  - id: 7\n    name: Gate\n    source: {{type: rtsp, url: '{rtsp_server.url('/cam1')}',"
             f" sub_url: '{rtsp_server.url('/cam2')}'}}\n")
    app = start_appliance(tmp_path, channels=0, past_seconds=0, extra_channels=extra)
    wait_recording(app)
    yield app
    app.stop()


def test_the_grid_plays_the_sub_stream_and_full_screen_the_main_stream(camera_appliance):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        sockets = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        page.goto(camera_appliance.url + "/")
        page.fill("#username", "viewer")
        page.fill("#password", PASSWORDS["viewer"])
        page.click("#login-button")
        page.wait_for_function("() => { const v = document.querySelector('#live-grid video'); return v && v.currentTime > 0.5 }",
                               timeout=20000)
        assert sockets[0].endswith("/api/live/7/sub")
        page.click("#live-grid .tile")
        page.wait_for_function("() => { const v = document.querySelector('.tile.full video'); return v && v.currentTime > 0.5 }",
                               timeout=20000)
        assert sockets[-1].endswith("/api/live/7/main")
        shot(page, "live-camera-full")
        browser.close()
