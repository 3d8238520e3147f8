"""The Users page's integration accounts in real headless Chromium (Debian's, driven by Playwright): the
administrator makes an account for Home Assistant, sees it listed (never its password), and removes it;
each change is in the audit log."""
from __future__ import annotations

import os

import pytest

from support.web import PASSWORDS, start_appliance

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync"]

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (./dev installs the test extras)")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"{CHROMIUM} is missing (./dev test installs Debian's chromium)", allow_module_level=True)


@pytest.fixture
def web(tmp_path):
    app = start_appliance(tmp_path, channels=1, past_seconds=2)
    yield app
    app.stop()


def test_the_administrator_makes_lists_and_removes_an_integration_account_on_the_users_page(web):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(web.url + "/#/users")
        page.fill("#username", "admin")
        page.fill("#password", PASSWORDS["admin"])
        page.click("#login-button")
        form = page.locator("#integration-form")
        form.wait_for()
        form.locator("input[name=name]").fill("hass")
        form.locator("input[name=password]").fill("hass-pass-123")
        form.locator("select[name=role]").select_option("operator")
        form.locator("button[type=submit]").click()
        row = page.locator('#integration-accounts tr[data-account="hass"]')
        row.wait_for()
        listed = row.inner_text()
        page_text = page.content()
        row.locator("button").click()
        row.wait_for(state="detached")
        browser.close()

    assert "operator" in listed and "hass-pass-123" not in page_text
    actions = [e["action"] for e in web.nvr.users.audit_entries(limit=20)]
    assert "integration_user_add" in actions and "integration_user_remove" in actions
    assert web.nvr.users.integration.accounts() == []
    assert not errors, errors
