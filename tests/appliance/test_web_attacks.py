"""The web UI attacked as issue 13 did it: login floods and lockout abuse, user-name probing, DNS
rebinding, config bombs and odd query values. Floods go to a real `nvr run` process, whose memory
is then its own (the 150 clients' is not counted); the rest to an appliance served in this process.
Clients on other addresses bind to 127.0.0.x source addresses (all loopback)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from base.clock import RealClocks, SimulatedClocks
from base.passwords import SCRYPT_N, SCRYPT_P, SCRYPT_R
from appliance.web.login_guard import ACCOUNT_FREE, ACCOUNT_MAX_DELAY_S, PAIR_FREE, LoginGuard
from appliance.web.hosts import HostCheck
from support.web import PASSWORDS, add_web_user, config_text, free_port, start_appliance
from test_config_limits import BOMB

MIB = 1 << 20


@pytest.fixture(scope="module")
def appliance(tmp_path_factory):
    app = start_appliance(tmp_path_factory.mktemp("web-attacks"), channels=1, past_seconds=6)
    yield app
    app.stop()


@pytest.fixture(scope="module")
def nvr_run(tmp_path_factory):
    """`nvr run` in a process of its own, recording one test-pattern channel, with an admin user."""
    folder = tmp_path_factory.mktemp("nvr-run")
    root = folder / "data"
    root.mkdir()
    add_web_user(root, "admin", PASSWORDS["admin"], "admin")
    config = folder / "nvr.yaml"
    config.write_text(config_text(root))
    url = f"http://127.0.0.1:{free_port()}"
    with open(folder / "nvr.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "run", "--config", str(config), "--listen",
                                 url.removeprefix("http://")], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (folder / "nvr.log").read_text()[-3000:]
            try:
                if httpx.get(url + "/api/ping", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "nvr run did not answer within 60 s"
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ctx_of(appliance):
    return appliance.nvr.web_context


@pytest.fixture
def guard(appliance):
    """A fresh login guard for each test (the real clock); tests that need time to stand still put their own."""
    ctx = ctx_of(appliance)
    old, ctx.logins = ctx.logins, LoginGuard(clocks=RealClocks())
    yield ctx
    ctx.logins.close()
    ctx.logins = old


def login_from(target, address: str, username: str, password: str) -> httpx.Response:
    """POST /api/login from source address `address` to `target` (an Appliance or a base URL)."""
    url = target if isinstance(target, str) else target.url
    with httpx.Client(base_url=url, timeout=60, transport=httpx.HTTPTransport(local_address=address)) as c:
        return c.post("/api/login", json={"username": username, "password": password})


def raw_login(url: str, address: str, username: str, password: str) -> tuple[int, dict[str, str], bytes]:
    """The same over a bare socket: (status, headers, body). A flood's 150 clients stay cheap this way."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"username": username, "password": password}).encode()
    request = (f"POST /api/login HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
    with socket.create_connection((host, int(port)), timeout=60, source_address=(address, 0)) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, content = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, content


def concurrently(count: int, fn) -> list:
    """`fn(i)` for i in range(count), all started together on threads of their own."""
    start = threading.Barrier(count)

    def run(i):
        start.wait()
        return fn(i)
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


_PINGER = """
import sys, time, urllib.request
url = sys.argv[1]
while True:
    t0 = time.perf_counter()
    urllib.request.urlopen(url + "/api/ping", timeout=30).read()
    print(time.perf_counter() - t0, flush=True)
    time.sleep(0.05)
"""


class Watch:
    """Samples a process's resident memory, and /api/ping's answer time from a process of its own (so
    the clients of a flood, in this process, do not slow the measurement), until stopped."""

    def __init__(self, url: str, pid: int | str = "self"):
        self.url, self.pid = url, pid
        self.rss = [rss_bytes(pid)]
        self.ping_s: list[float] = []
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample_rss)
        self._pinger: subprocess.Popen | None = None

    def __enter__(self):
        self._pinger = subprocess.Popen([sys.executable, "-c", _PINGER, self.url], stdout=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read_pings)
        self._reader.start()
        self._sampler.start()
        while not self.ping_s:  # the pinger is up: its first answer came
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._pinger.kill()
        self._pinger.wait()
        self._reader.join()
        self._sampler.join()

    def _sample_rss(self):
        while not self._stop.wait(0.01):
            self.rss.append(rss_bytes(self.pid))

    def _read_pings(self):
        for line in self._pinger.stdout:
            self.ping_s.append(float(line))


def rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


# --- logins -----------------------------------------------------------------------------------

def test_150_concurrent_logins_from_one_address_get_429s_and_leave_memory_and_ping_alone(nvr_run):
    url, pid = nvr_run
    with Watch(url, pid) as watch:
        answers = concurrently(150, lambda i: raw_login(url, "127.0.0.5", "admin", f"wrong-{i}"))
    statuses = [status for status, _, _ in answers]
    throttled = [headers for status, headers, _ in answers if status == 429]
    print(f"\n150 logins from one address: {statuses.count(401)} x 401, {len(throttled)} x 429; nvr run RSS "
          f"{watch.rss[0] / MIB:.0f} -> peak {max(watch.rss) / MIB:.0f} MB; /api/ping max {max(watch.ping_s):.3f} s "
          f"over {len(watch.ping_s)} pings")
    assert set(statuses) == {401, 429} and statuses.count(401) <= PAIR_FREE + 3  # waits of 1, 2, 4 s may end meanwhile
    assert all(int(headers["retry-after"]) >= 1 for headers in throttled)
    assert max(watch.rss) < 400 * MIB
    assert watch.ping_s and max(watch.ping_s) < 2.0


def test_150_concurrent_logins_from_150_addresses_wait_for_two_hash_slots_or_get_429(nvr_run):
    """Fresh addresses pass every throttle: the bounded check pool is what keeps the box alive."""
    url, pid = nvr_run
    with Watch(url, pid) as watch:
        answers = concurrently(150, lambda i: raw_login(url, f"127.0.3.{i + 1}", f"user{i}", "wrong-pass-1"))
    statuses = [status for status, _, _ in answers]
    print(f"\n150 logins from 150 addresses: {statuses.count(401)} x 401, {statuses.count(429)} x 429; nvr run RSS "
          f"{watch.rss[0] / MIB:.0f} -> peak {max(watch.rss) / MIB:.0f} MB; /api/ping max {max(watch.ping_s):.3f} s")
    assert set(statuses) <= {401, 429} and statuses.count(429) > 0
    assert all(b"busy" in body for status, _, body in answers if status == 429)
    assert max(watch.rss) < 400 * MIB
    assert max(watch.ping_s) < 2.0


def test_25_wrong_passwords_from_another_address_leave_the_admins_login_working(appliance, guard):
    assert login_from(appliance, "127.0.0.1", "admin", PASSWORDS["admin"]).status_code == 200
    statuses = [login_from(appliance, "127.0.0.2", "admin", f"guess-{i}").status_code for i in range(25)]
    # 5 free, then waits of 1 s, 2 s, 4 s ... of which a few may end while the 25 are sent
    assert statuses[:PAIR_FREE] == [401] * PAIR_FREE and statuses.count(429) >= 15
    assert login_from(appliance, "127.0.0.1", "admin", PASSWORDS["admin"]).status_code == 200


def test_a_spray_from_many_addresses_slows_new_addresses_but_never_the_admins_own(appliance, guard):
    """25 wrong passwords, each checked (time is moved past every wait), from 25 addresses: the account
    brake is on. The admin's usual address still logs in at once; a new one waits at most 30 s."""
    now = SimulatedClocks()
    guard.logins = LoginGuard(clocks=now)
    assert login_from(appliance, "127.0.0.1", "admin", PASSWORDS["admin"]).status_code == 200
    for i in range(25):
        r = login_from(appliance, f"127.0.4.{i + 1}", "admin", f"guess-{i}")
        if r.status_code == 429:
            now.advance(int(r.headers["Retry-After"]))
            r = login_from(appliance, f"127.0.4.{i + 1}", "admin", f"guess-{i}")
        assert r.status_code == 401
    assert login_from(appliance, "127.0.0.1", "admin", PASSWORDS["admin"]).status_code == 200
    r = login_from(appliance, "127.0.0.3", "admin", PASSWORDS["admin"])
    assert r.status_code == 429 and int(r.headers["Retry-After"]) <= ACCOUNT_MAX_DELAY_S
    now.advance(int(r.headers["Retry-After"]))
    assert login_from(appliance, "127.0.0.3", "admin", PASSWORDS["admin"]).status_code == 200


def test_existing_and_unknown_user_names_get_the_same_answers(appliance, guard, monkeypatch):
    """The same statuses, messages and waits, and the same scrypt work: the cost parameters of every hash
    computed are compared, not the seconds, which depend on what else the machine is doing."""
    import hashlib

    real_scrypt, costs = hashlib.scrypt, []

    def counted_scrypt(password, *, salt, n, r, p, maxmem=0, dklen=64):
        costs.append((n, r, p))
        return real_scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=dklen)

    def attempts(address: str, name: str) -> list[tuple[int, str, str | None, list]]:
        out = []
        for i in range(PAIR_FREE + 2):
            costs.clear()
            r = login_from(appliance, address, name, f"wrong-pass-{i}")
            out.append((r.status_code, r.json()["detail"], r.headers.get("retry-after"), list(costs)))
        return out
    guard.logins = LoginGuard(clocks=SimulatedClocks())  # no wait ends: the answers do not depend on speed
    login_from(appliance, "127.0.0.9", "warm-up", "wrong-pass")  # the first unknown name makes the dummy hash
    monkeypatch.setattr(hashlib, "scrypt", counted_scrypt)
    known = attempts("127.0.0.6", "viewer")
    unknown = attempts("127.0.0.7", "no-such-user")
    assert [a[:3] for a in known] == [a[:3] for a in unknown]
    assert [a[3] for a in known] == [a[3] for a in unknown]
    assert all(a[3] == [(SCRYPT_N, SCRYPT_R, SCRYPT_P)] for a in known[:PAIR_FREE])  # checked: one full scrypt each
    assert all(a[3] == [] for a in known[PAIR_FREE:])  # throttled: no check at all, for either name


@pytest.mark.parametrize("spread", ["one address", "100 addresses"])
def test_100_concurrent_wrong_logins_for_one_account_run_only_the_free_checks(appliance, guard, spread):
    """Time stands still, so no wait ever ends: exactly the free attempts may be checked, however the
    100 requests interleave (the count is taken before the check, under one lock)."""
    guard.logins = LoginGuard(clocks=SimulatedClocks(), max_queued=200)
    address = (lambda i: "127.0.0.8") if spread == "one address" else (lambda i: f"127.0.5.{i + 1}")
    answers = concurrently(100, lambda i: login_from(appliance, address(i), "operator", f"wrong-{i}"))
    statuses = [r.status_code for r in answers]
    allowed = PAIR_FREE if spread == "one address" else ACCOUNT_FREE
    assert guard.logins.checks_started == statuses.count(401) == allowed
    assert statuses.count(429) == 100 - allowed


def test_every_throttle_is_audited_with_its_reason(appliance, guard):
    for i in range(PAIR_FREE + 1):
        login_from(appliance, "127.0.0.10", "audited", f"wrong-{i}")
    entries = [e for e in appliance.users.audit_entries(limit=20) if e["client"] == "127.0.0.10"]
    throttled = [e for e in entries if e["action"] == "login_throttled"]
    assert len(throttled) == 1 and "this account from this address" in throttled[0]["detail"]


# --- Host and Origin --------------------------------------------------------------------------

def test_a_foreign_host_on_setup_and_login_is_refused(appliance, tmp_path):
    from appliance.web.users import UserStore
    from appliance.web.server import WebServer, create_app
    from support.web import free_port
    users = UserStore(tmp_path, clocks=appliance.supervisor.clocks)  # a fresh box: no administrator yet
    port = free_port()
    server = WebServer(create_app(appliance.nvr, users=users), host="127.0.0.1", port=port)
    server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=20) as c:
            for _ in range(100):
                try:
                    assert c.get("/api/ping").json()["setup_required"]
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            body = {"username": "evil", "password": "evil-pass-123"}
            for path in ("/api/setup", "/api/login"):
                r = c.post(path, json=body, headers={"Host": f"evil.example:{port}"})
                assert r.status_code == 403 and "web.allowed_hosts" in r.json()["detail"], r.text
                r = c.post(path, json=body, headers={"Origin": "http://evil.example"})
                assert r.status_code == 403 and "Origin" in r.json()["detail"]
            assert c.get("/api/ping").json()["setup_required"] is True  # nothing was created
            assert c.post("/api/setup", json={"username": "boss", "password": "boss-pass-123"},
                          headers={"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}).status_code == 200
    finally:
        server.stop()
        users.close()


def test_state_changing_routes_need_an_own_host_and_origin(appliance):
    with httpx.Client(base_url=appliance.url, timeout=20) as c:
        r = c.post("/api/login", json={"username": "operator", "password": PASSWORDS["operator"]})
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        assert c.post("/api/alarms/trigger", json={}, headers={"Host": "rebound.example"}).status_code == 403
        assert c.post("/api/alarms/trigger", json={}, headers={"Origin": "null"}).status_code == 403
        assert c.get("/api/channels", headers={"Host": "rebound.example"}).status_code == 200  # reads are not changed
        assert c.post("/api/alarms/clear", json={"kind": "manual"}).status_code == 200


def test_allowed_names_are_the_listen_address_hostname_mdns_addresses_and_the_config_list():
    check = HostCheck(listen_host="10.1.2.3", allowed_hosts=["nvr.example.com", "[2001:db8::7]"],
                      addresses=lambda: {"192.168.1.20", "fd00::2"}, hostname=lambda: "dvr-shop", clocks=SimulatedClocks())
    for host in ("10.1.2.3:8080", "dvr-shop", "dvr-shop.local:443", "DVR-SHOP.LOCAL.", "192.168.1.20",
                 "[fd00::2]:80", "nvr.example.com:8443", "[2001:db8::7]", "localhost:8080", "127.0.0.1"):
        assert check.refusal(host, None) is None, host
        assert check.refusal(host, f"https://{host}") is None, host
    for host in ("evil.example", "dvr-shop.evil.example", "192.168.1.21", "", "fd00::2"):
        assert check.refusal(host, None) is not None, host
    assert check.refusal("dvr-shop", "http://evil.example") is not None
    assert HostCheck(listen_host="0.0.0.0", addresses=set, hostname=lambda: "box", clocks=SimulatedClocks()).names() == {
        "localhost", "127.0.0.1", "::1", "box", "box.local"}


# --- config bombs and odd inputs over the web -------------------------------------------------

def test_a_config_alias_bomb_over_the_web_is_422_quickly_without_growing_the_process(appliance):
    with httpx.Client(base_url=appliance.url, timeout=10) as c:  # the acceptance bound: an answer within 10 s
        r = c.post("/api/login", json={"username": "admin", "password": PASSWORDS["admin"]})
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        with Watch(appliance.url) as watch:
            answers = [c.post("/api/config/validate", json={"yaml": BOMB}), c.put("/api/config", json={"yaml": BOMB})]
    growth = max(watch.rss) - watch.rss[0]
    print(f"\nconfig alias bomb over the web: {[r.status_code for r in answers]}, RSS growth {growth / MIB:.1f} MB")
    for r in answers:
        assert r.status_code == 422 and "expand this value" in r.json()["detail"]["problems"][0]["message"]
    assert growth < 100 * MIB


@pytest.mark.parametrize("yaml_text, says", [
    ("storage:\n  segment_seconds: " + "1" * 5000 + "\n", "storage.segment_seconds"),
    ("storage: " + "[" * 50_000 + "\n", "levels deep"),
    ("storage: " + "{a: " * 3000 + "\n", "levels deep"),
    ('storage:\n  path: "./d\\0x"\n', "NUL"),
])
def test_hostile_config_text_over_the_web_is_422_naming_the_problem(appliance, yaml_text, says):
    with httpx.Client(base_url=appliance.url, timeout=10) as c:
        r = c.post("/api/login", json={"username": "admin", "password": PASSWORDS["admin"]})
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        r = c.post("/api/config/validate", json={"yaml": yaml_text})
    assert r.status_code == 422 and says in r.json()["detail"]["problems"][0]["text"]


@pytest.mark.parametrize("path, params", [
    ("/api/recordings", {"start": "-99999999999999999999d"}),
    ("/api/timeline", {"channel": 1, "start": "-99999999999999999999d"}),
    ("/api/events", {"start": "-99999999999999999999d"}),
    ("/api/playback/1", {"start": "-99999999999999999999d"}),
    ("/api/playback/1", {"start": "now", "base": "-99999999999999999999d"}),
    ("/api/recordings", {"end": "99999999999999999999999"}),
    ("/api/events", {"start": "9999-12-31T23:59:59-14:00"}),
    ("/api/timeline", {"channel": 1, "start": "-1e308d"}),
])
def test_odd_times_are_422_with_a_message(appliance, path, params):
    with httpx.Client(base_url=appliance.url, timeout=20) as c:
        c.post("/api/login", json={"username": "viewer", "password": PASSWORDS["viewer"]})
        r = c.get(path, params=params)
    assert r.status_code == 422, (path, params, r.status_code, r.text)
    assert isinstance(r.json()["detail"], str) and r.json()["detail"]


@pytest.mark.parametrize("path", ["/static/%00", "/static/a%00b.js", "/static/%ff%fe", "/static/" + "a" * 5000])
def test_odd_static_names_are_404_without_a_login(appliance, path):
    with httpx.Client(base_url=appliance.url, timeout=20) as anon:
        assert anon.get(path).status_code == 404
