"""Acceptance of push-to-talk (issue 15, part 3): a 1 kHz tone played into Chromium's fake microphone
(`--use-file-for-fake-audio-capture`) while an operator holds the Talk button of a camera's tile reaches
the camera's ONVIF back channel (GStreamer's RTSPOnvifServer), where it is decoded and found at 1 kHz.
The same button says who is busy talking, and a viewer has no button. The page is served over HTTPS with
the appliance's self-signed certificate, as the image serves it (getUserMedia needs a secure context)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from support.talk import (appliance_with_talking_camera, backchannel_available, dominant_frequency, level, tone,
                          write_wav)
from support.waiting import DEFAULT_TIMEOUT_S, wait_for
from support.web import PASSWORDS, wait_recording

pytestmark = pytest.mark.rtsp

CAMERA = 4
TONE_HZ = 1000


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    ok, reason = backchannel_available()
    if not ok:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("talk-browser")
    with appliance_with_talking_camera(tmp, channel=CAMERA, name="Gate", channels=0, past_seconds=0,
                                       tls=True) as (app, camera):
        wait_recording(app)
        yield app, camera, tmp


def open_live(browser, app, role: str):
    context = browser.new_context(viewport={"width": 900, "height": 600}, permissions=["microphone"],
                                  ignore_https_errors=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(app.url + "/")
    page.fill("#username", role)
    page.fill("#password", PASSWORDS[role])
    page.click("#login-button")
    page.wait_for_selector(f"#live-grid .tile[data-channel='{CAMERA}'] video")
    return context, page, errors


def test_a_tone_into_chromiums_microphone_reaches_the_cameras_back_channel_at_its_pitch(rig):
    from test_web_browser import CHROMIUM, FLAGS, shot

    playwright_api = pytest.importorskip("playwright.sync_api")
    app, camera, tmp = rig
    wav = write_wav(tmp / "mic.wav", tone(TONE_HZ, 2.0, rate=48000, amplitude=0.5), 48000)
    flags = FLAGS + ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                     f"--use-file-for-fake-audio-capture={wav}"]
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=flags)
        context, page, errors = open_live(browser, app, "operator")
        assert page.evaluate("location.protocol") == "https:" and page.evaluate("isSecureContext")
        button = page.locator(f"#live-grid .tile[data-channel='{CAMERA}'] button.talk")
        assert button.text_content() == "Talk"
        before = len(camera.heard())
        button.hover()
        page.mouse.down()
        wait_for(lambda: button.get_attribute("data-state") == "talking", timeout_s=DEFAULT_TIMEOUT_S,
                 what="the Talk button to say the box is listening",
                 details=lambda: (button.get_attribute("data-state"), button.get_attribute("title")))
        assert button.get_attribute("aria-pressed") == "true" and "PCMU" in button.get_attribute("title")
        shot(page, "talk-pressed")
        sent = "b => b.nvrTalk && {sent: b.nvrTalk.framesSent, waiting: b.nvrTalk.pending.length}"
        wait_for(lambda: len(camera.heard()) - before >= 2 * 8000, timeout_s=DEFAULT_TIMEOUT_S,
                 what="two seconds of the microphone at the camera",
                 details=lambda: (len(camera.heard()) - before, button.evaluate(sent), app.nvr.web_context.talk.statistics()))
        page.mouse.up()
        assert page.locator(f"#live-grid .tile[data-channel='{CAMERA}'] button.talk").text_content() == "Talk"
        assert page.locator(".tile.full").count() == 0  # pressing Talk did not open full screen
        heard = camera.heard()[before:]
        loud = heard[np.abs(heard) > 0][-16000:]  # the last two seconds the camera heard
        assert abs(dominant_frequency(loud, 8000) - TONE_HZ) < 15
        assert level(loud) > 0.05
        hub = app.nvr.web_context.talk
        wait_for(lambda: hub.statistics()["talking"] == [], what="the talk session to end with the button")

        # Someone else is talking: the button says who, and the camera's speaker stays theirs.
        from websockets.sync.client import connect

        cookie = "; ".join(f"{c['name']}={c['value']}" for c in context.cookies())
        import ssl

        unverified = ssl._create_unverified_context()
        with connect(app.url.replace("https", "wss") + f"/api/talk/{CAMERA}", additional_headers={"Cookie": cookie},
                     open_timeout=5, ssl=unverified) as other:
            assert json.loads(other.recv(timeout=15))["type"] == "ready"
            button.hover()
            page.mouse.down()
            wait_for(lambda: button.get_attribute("data-state") == "busy", what="the button to say busy")
            page.mouse.up()
            assert button.text_content() == "Busy" and "operator is talking" in button.get_attribute("title")
        page.click(f"#live-grid .tile[data-channel='{CAMERA}'] video")  # full screen has its own button
        page.wait_for_selector(".tile.full button.talk")
        shot(page, "talk-full-screen")
        context.close()
        assert not errors, errors

        # A viewer watches but has no button.
        context, page, errors = open_live(browser, app, "viewer")
        page.wait_for_function(f"() => document.querySelector(\"#live-grid .tile[data-channel='{CAMERA}'] video\")"
                               ".currentTime > 0.2", timeout=DEFAULT_TIMEOUT_S * 1000)
        assert page.locator("button.talk").count() == 0
        context.close()
        browser.close()
        assert not errors, errors
