"""The LINE IN intercom's hold button in real headless Chromium: held, the box's (simulated) microphone is
heard on its (simulated) AUDIO OUT for longer than one lease (the page renews it); let go, it closes;
a viewer sees the button disabled."""
from __future__ import annotations

import os

import pytest

from hal.audio_out import SimulatedAudioPlayback
from support.waiting import wait_for
from support.web import PASSWORDS, start_intercom_box

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync"]
LEASE_S = 1.0

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (./dev installs the test extras)")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"{CHROMIUM} is missing (./dev test installs Debian's chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    speaker = SimulatedAudioPlayback()
    app = start_intercom_box(tmp_path_factory.mktemp("intercom-browser"), speaker, lease_s=LEASE_S)
    yield app.nvr, app.url, speaker
    app.stop()


def logged_in(browser, url: str, role: str):
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    page.goto(url + "/#/alarms")
    page.fill("#username", role)
    page.fill("#password", PASSWORDS[role])
    page.click("#login-button")
    page.wait_for_selector("#intercom-hold")
    return context, page


def test_holding_the_intercom_button_opens_the_line_in_beyond_one_lease_and_letting_go_closes_it(box):
    nvr, url, speaker = box
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            context, page = logged_in(browser, url, "viewer")
            assert page.is_disabled("#intercom-hold")
            context.close()
            context, page = logged_in(browser, url, "operator")
            page.hover("#intercom-hold")
            page.mouse.down()
            wait_for(lambda: nvr.intercom.is_open, what="the intercom to open while the button is held")
            opened_at = nvr.intercom.frames_played
            # Renewed every lease/3: four renewals are more than one lease, and it stayed open throughout.
            wait_for(lambda: nvr.intercom.renewals >= 4, what="the page to renew its hold")
            assert nvr.intercom.is_open and nvr.intercom.statistics()["held_by"] == ["web:operator"]
            wait_for(lambda: nvr.intercom.frames_played > opened_at + 48_000, what="a second of the LINE IN heard")
            page.mouse.up()
            wait_for(lambda: not nvr.intercom.is_open, what="the intercom to close when the button is let go")
            assert page.get_attribute("#intercom-hold", "aria-pressed") == "false"
            assert nvr.intercom.statistics()["opened"] == 1 and len(speaker.played()) > 48_000
            context.close()
        finally:
            browser.close()
