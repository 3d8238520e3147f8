"""The Disks page in real headless Chromium (Debian's, driven by Playwright): the administrator sees the
disks table with S.M.A.R.T. health and temperature, ejects a recording disk and is told it is safe to
unplug, and initialises a blank disk; a viewer has no Disks entry. Two loop-mounted ext4 disks and a blank
loop device (root needed; skipped without), a fake smartctl on the PATH for the readings a loop device
lacks. A screenshot goes to test-artifacts/."""
from __future__ import annotations

import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

import recorder.disk_set as disk_set
from appliance.app import Appliance
from appliance.config.model import parse_config
from base.clock import RealClocks
from support.fake_smartctl import install
from support.loop_disk import LoopDisk, blank_loop_device
from support.waiting import wait_for
from support.web import PASSWORDS, free_port

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync"]

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (./dev installs the test extras)")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"{CHROMIUM} is missing (./dev test installs Debian's chromium)", allow_module_level=True)


@pytest.fixture
def rig(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch)
    monkeypatch.setattr(disk_set, "RETRY_S", 1.0)
    a, b = LoopDisk(tmp_path, "a"), LoopDisk(tmp_path, "b")
    a.plug(), b.plug()
    source = "{type: test-pattern, width: 160, height: 120, fps: 10, keyframe_interval_s: 0.5}"
    config = parse_config(
        f"storage:\n  path: '{tmp_path / 'root'}'\n  segment_seconds: 30\n  health: {{interval_s: 3600}}\n"
        f"  retention: {{max_used_percent: 99, min_free_bytes: 0, locked_floor_bytes: 0}}\n"
        f"  disks: [{{path: '{a.mount}', label: A}}, {{path: '{b.mount}', label: B}}]\n"
        f"channels:\n  - {{id: 1, source: {source}}}\n"
        "alarms: {temperature: {thermal_zones: false}}\n"
        f"web: {{state_dir: '{tmp_path / 'web'}'}}\n")
    port = free_port()
    nvr = Appliance(config, clocks=RealClocks(), listen=("127.0.0.1", port), sync=False)
    for role, password in PASSWORDS.items():
        nvr.users.add_user(role, password, role, replace=True)
    nvr.start()
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(url), what=f"the web server at {url}")
    yield nvr, url, a
    nvr.stop()
    a.unplug(), b.unplug()


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url + "/api/ping", timeout=5).read()
        return True
    except OSError:
        return False


@pytest.fixture
def blank_loop(tmp_path):
    yield from blank_loop_device(tmp_path)


@pytest.fixture
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def logged_in(browser, url: str, role: str):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/#/disks")
    page.fill("#username", role)
    page.fill("#password", PASSWORDS[role])
    page.click("#login-button")
    page.wait_for_selector("#top:not([hidden])")
    return context, page, errors


def test_the_admin_sees_health_and_temperature_ejects_a_disk_and_initialises_a_blank_one(rig, blank_loop, browser):
    nvr, url, a = rig
    context, page, errors = logged_in(browser, url, "admin")
    row_a = page.locator('#disks tr[data-disk="A"]')
    row_a.wait_for()
    assert row_a.locator("td.health").inner_text() == "passed"
    assert row_a.locator("td.temperature").inner_text().endswith("°C")
    assert row_a.locator("td.state").inner_text() == "recording"
    page.wait_for_selector(f'#disk-devices tr[data-device="{blank_loop}"]')
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "disks.png"), full_page=True)

    row_a.locator("button[data-eject]").click()
    page.wait_for_selector("#disks-status:has-text('safe to unplug')", timeout=60_000)
    page.wait_for_selector('#disks tr[data-disk="A"] td.state:has-text("ejected · safe to unplug")')
    assert not os.path.ismount(a.mount)
    assert page.locator('#disks tr[data-disk="B"] td.state').inner_text() == "recording"

    form = page.locator(f'#disk-devices form[data-device="{blank_loop}"]')
    form.locator("input[name=label]").fill("Bay 3")
    assert form.locator("input[name=serial]").count() == 0  # blank: nothing to confirm
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#init-message:has-text('is now the recordings disk')", timeout=120_000)
    fs = subprocess.run(["blkid", "-o", "value", "-s", "LABEL", blank_loop], capture_output=True, text=True).stdout.strip()
    assert fs == "Bay 3"
    actions = [e["action"] for e in nvr.users.audit_entries(limit=20)]
    assert "disk_eject" in actions and "disk_init" in actions
    context.close()
    assert not errors, errors


def test_a_viewer_has_no_disks_entry_and_is_refused_the_page(rig, browser):
    nvr, url, _ = rig
    context, page, errors = logged_in(browser, url, "viewer")
    assert page.locator('#nav a[data-page="disks"]').is_hidden()
    page.wait_for_selector("#page .error:has-text('needs the admin role')")
    context.close()
    assert not errors, errors
