"""Web authentication against a running appliance: every route needs a session, roles, CSRF, login
throttling, first run, path traversal, cookies, and `nvr user add`. Attacks on logins, hosts and
inputs are in test_web_attacks.py."""
from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from appliance.web.login_guard import PAIR_FREE
from appliance.web.users import UserStore
from appliance.web.server import create_app
from support.waiting import wait_for
from support.web import PASSWORDS, login, start_appliance

PUBLIC = {("GET", "/api/ping"), ("POST", "/api/login"), ("POST", "/api/setup"), ("GET", "/"), ("GET", "/static/{name}")}


@pytest.fixture(scope="module")
def appliance(tmp_path_factory):
    app = start_appliance(tmp_path_factory.mktemp("web-auth"), channels=1, past_seconds=6)
    yield app
    app.stop()


def _routes(app) -> list[tuple[str, str]]:
    """(method, path) of every HTTP route, through included routers (FastAPI wraps them lazily)."""
    found = []
    for route in getattr(app, "routes", []):
        if hasattr(route, "original_router"):
            found += _routes(route.original_router)
        elif isinstance(route, APIRoute) or (hasattr(route, "methods") and route.methods):
            found += [(m, route.path) for m in route.methods if m != "HEAD"]
    return found


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_non_public_route_answers_401_without_a_session(appliance):
    fastapi_app = appliance.nvr.web_app
    routes = [r for r in _routes(fastapi_app) if r not in PUBLIC]
    assert len(routes) > 25  # the enumeration found the API, not an empty list
    with httpx.Client(base_url=appliance.url, timeout=20) as anon:
        for method, path in routes:
            r = anon.request(method, _concrete(path), json={})
            assert r.status_code == 401, (method, path, r.status_code, r.text)


def test_a_forged_session_cookie_is_401(appliance):
    with httpx.Client(base_url=appliance.url, cookies={"nvr_session": "forged"}) as c:
        assert c.get("/api/channels").status_code == 401
        assert c.get("/openapi.json").status_code == 401


def test_websocket_live_view_without_session_is_refused(appliance):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect
    with pytest.raises(InvalidStatus) as info:
        connect(appliance.url.replace("http", "ws") + "/api/live/1/main", open_timeout=5)
    assert info.value.response.status_code == 403


def test_public_routes_give_nothing_away(appliance):
    with httpx.Client(base_url=appliance.url) as anon:
        ping = anon.get("/api/ping").json()
        assert set(ping) == {"status", "streams", "recording", "setup_required"}
        assert anon.get("/").status_code == 200


def test_viewer_can_watch_but_cannot_move_ptz_export_or_trigger(appliance):
    viewer = login(appliance, "viewer")
    assert viewer.get("/api/channels").status_code == 200
    assert viewer.get("/api/timeline", params={"channel": 1}).status_code == 200
    assert viewer.post("/api/ptz/1", json={"action": "stop"}).status_code == 403
    assert viewer.get("/api/export", params={"channel": 1, "start": "-1m", "end": "now"}).status_code == 403
    assert viewer.post("/api/exports", json={"channel": 1, "start": "-1m", "end": "now"}).status_code == 403
    assert viewer.post("/api/alarms/trigger", json={}).status_code == 403
    assert viewer.get("/api/config").status_code == 403
    assert viewer.get("/api/users").status_code == 403


def test_operator_may_trigger_alarms_but_not_edit_config_or_users(appliance):
    operator = login(appliance, "operator")
    assert operator.post("/api/alarms/trigger", json={"message": "operator test"}).status_code == 200
    assert operator.get("/api/config").status_code == 403
    assert operator.post("/api/users", json={"username": "x1", "password": "password-1", "role": "admin"}).status_code == 403


def test_state_changing_requests_need_the_csrf_header(appliance):
    admin = login(appliance, "admin")
    token = admin.headers.pop("X-CSRF-Token")
    assert admin.post("/api/alarms/trigger", json={}).status_code == 403
    assert admin.post("/api/alarms/trigger", json={}, headers={"X-CSRF-Token": "wrong"}).status_code == 403
    assert admin.post("/api/alarms/clear", json={"kind": "manual"}, headers={"X-CSRF-Token": token}).status_code == 200


def test_session_cookie_is_httponly_and_samesite_strict(appliance):
    with httpx.Client(base_url=appliance.url) as c:
        r = c.post("/api/login", json={"username": "viewer", "password": PASSWORDS["viewer"]})
    cookies = r.headers.get_list("set-cookie")
    session = next(h for h in cookies if h.startswith("nvr_session="))
    assert "HttpOnly" in session and "SameSite=strict" in session.replace("Strict", "strict")
    csrf = next(h for h in cookies if h.startswith("nvr_csrf="))
    assert "HttpOnly" not in csrf  # the page reads it to send the header


def test_wrong_passwords_make_their_address_wait_and_are_audited_but_never_lock_the_account(appliance):
    appliance.users.add_user("victim", "victim-pass-1", "viewer", replace=True)
    with httpx.Client(base_url=appliance.url, timeout=30) as c:
        for _ in range(PAIR_FREE):
            assert c.post("/api/login", json={"username": "victim", "password": "wrong"}).status_code == 401
        r = c.post("/api/login", json={"username": "victim", "password": "victim-pass-1"})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1 and "wait" in r.json()["detail"]
    # Only that address waits: the account itself is not locked (the owner elsewhere logs in).
    assert appliance.users.login("victim", "victim-pass-1").user.name == "victim"
    actions = [e["action"] for e in appliance.users.audit_entries(limit=30) if e["user"] == "victim"]
    assert "login_throttled" in actions and actions.count("login_failed") == PAIR_FREE


def test_logout_ends_the_session(appliance):
    c = login(appliance, "viewer")
    assert c.post("/api/logout").status_code == 200
    assert c.get("/api/channels").status_code == 401


@pytest.mark.parametrize("path", [
    "/static/..%2f..%2fusers.py", "/static/%2e%2e/web.py", "/static/../../data/users.sqlite3",
    "/static/..%2F..%2F..%2Fetc%2Fpasswd", "/api/exports/..%2f..%2fusers.sqlite3/file",
])
def test_path_traversal_reaches_no_file(appliance, path):
    admin = login(appliance, "admin")
    r = admin.get(path)
    assert r.status_code in (404, 422), (path, r.status_code)
    assert b"SQLite" not in r.content and b"root:" not in r.content and b"import" not in r.content


def test_first_run_sets_the_administrator_once_and_there_is_no_default_login(appliance, tmp_path):
    users = UserStore(tmp_path, clocks=appliance.supervisor.clocks)
    with TestClient(create_app(appliance.nvr, users=users), base_url="http://127.0.0.1") as c:
        assert c.get("/api/ping").json()["setup_required"] is True
        for name, password in [("admin", "admin"), ("admin", ""), ("root", "root"), ("admin", "12345678")]:
            assert c.post("/api/login", json={"username": name, "password": password}).status_code in (401, 422)
        assert c.post("/api/setup", json={"username": "boss", "password": "short"}).status_code == 422
        r = c.post("/api/setup", json={"username": "boss", "password": "long-enough-1"})
        assert r.status_code == 200 and r.json()["role"] == "admin"
        assert c.get("/api/users").json() == [{"username": "boss", "role": "admin"}]
        assert c.post("/api/setup", json={"username": "evil", "password": "long-enough-2"}).status_code == 409
    users.close()


def test_passwords_are_stored_as_scrypt_hashes(appliance):
    rows = appliance.users._run("SELECT password_hash FROM users WHERE name = 'admin'")
    assert rows[0][0].startswith("scrypt$") and PASSWORDS["admin"] not in rows[0][0]


def test_nvr_user_add_reads_the_password_from_stdin(tmp_path):
    config = tmp_path / "nvr.yaml"
    config.write_text(f"storage:\n  path: {tmp_path / 'data'}\n")
    result = subprocess.run([sys.executable, "-m", "appliance.cli", "user", "add", "alice", "--role", "operator",
                             "--config", str(config)], input="alice-secret-1\n", capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    from base.clock import RealClocks
    store = UserStore(tmp_path / "data", clocks=RealClocks())
    try:
        assert store.login("alice", "alice-secret-1").user.role == "operator"
    finally:
        store.close()
    weak = subprocess.run([sys.executable, "-m", "appliance.cli", "user", "add", "bob", "--role", "viewer",
                           "--config", str(config)], input="short\n", capture_output=True, text=True, timeout=60)
    assert weak.returncode == 2 and "at least 8" in weak.stderr


def test_tls_with_a_self_signed_certificate_marks_cookies_secure(appliance, tmp_path):
    import shutil

    from appliance.web.tls import ensure_self_signed
    from appliance.web.server import WebServer
    from support.web import free_port
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = ensure_self_signed(tmp_path)
    assert ensure_self_signed(tmp_path) == (cert, key) and oct(key.stat().st_mode & 0o777) == "0o600"
    port = free_port()
    server = WebServer(create_app(appliance.nvr, users=appliance.users), host="127.0.0.1", port=port,
                       tls_cert=cert, tls_key=key)
    server.start()
    try:
        assert server.address.startswith("https://")
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=False, timeout=10) as c:
            def up() -> bool:
                try:
                    return c.get("/api/ping").status_code == 200
                except httpx.ConnectError:
                    return False
            wait_for(up, what="the TLS server to answer")
            r = c.post("/api/login", json={"username": "viewer", "password": PASSWORDS["viewer"]})
        session = next(h for h in r.headers.get_list("set-cookie") if h.startswith("nvr_session="))
        assert "Secure" in session
    finally:
        server.stop()


def test_run_with_half_a_tls_config_exits_2_and_starts_nothing(tmp_path):
    config = tmp_path / "nvr.yaml"
    config.write_text(f"storage:\n  path: {tmp_path / 'data'}\nweb:\n  tls_cert: {tmp_path / 'cert.pem'}\n")
    result = subprocess.run([sys.executable, "-m", "appliance.cli", "run", "--config", str(config)],
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and "tls_key" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_unknown_names_take_as_long_as_known_ones(appliance):
    import time as _time
    store = appliance.users
    # CPU time of this thread (scrypt runs in the caller), not wall time: what each login costs,
    # whatever else the machine is running meanwhile.
    t0 = _time.thread_time()
    with pytest.raises(Exception):
        store.login("nobody-at-all", "whatever-1")
    unknown = _time.thread_time() - t0
    t0 = _time.thread_time()
    with pytest.raises(Exception):
        store.login("viewer", "whatever-1")
    known = _time.thread_time() - t0
    assert unknown > known / 4  # both pay for scrypt; no fast path tells which names exist
