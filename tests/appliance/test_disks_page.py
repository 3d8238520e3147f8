"""The Disks page's API (admin only): the disks with health, temperature, write rate and shown state;
initialising a whole disk as `nvr disks init` does (refused without the serial when anything is on it,
always when mounted; a job with steps; audit-logged); ejecting with "safe to unplug". Through FastAPI's
TestClient over a real running appliance. Loop devices and loop-mounted ext4 disks need root (skipped
without); a fake smartctl on the PATH gives the serial and S.M.A.R.T. readings a loop device lacks."""
from __future__ import annotations

import json
import subprocess

import pytest
from fastapi.testclient import TestClient

import recorder.disk_set as disk_set
from appliance.app import Appliance
from appliance.config.model import parse_config
from appliance.web.server import create_app
from base.clock import RealClocks
from recorder.disk_set import read_identity
from support.fake_smartctl import install
from support.loop_disk import LoopDisk, blank_loop_device
from support.waiting import wait_for
from support.web import PASSWORDS, free_port, start_appliance

SERIAL = "9RK1XXXX"  # the fake smartctl's healthy WD disk


def login(app, role: str) -> TestClient:
    client = TestClient(app, base_url="http://127.0.0.1")
    r = client.post("/api/login", json={"username": role, "password": PASSWORDS[role]})
    assert r.status_code == 200, r.text
    client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return client


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """An appliance on one disk (no storage.disks): no root needed."""
    rig = start_appliance(tmp_path_factory.mktemp("disks-page"), channels=1, past_seconds=0)
    yield create_app(rig.nvr, users=rig.users)
    rig.stop()


@pytest.fixture
def loop(tmp_path):
    """A 64 MiB loop device, not mounted."""
    yield from blank_loop_device(tmp_path)


@pytest.fixture
def two_disks(tmp_path, monkeypatch):
    """A recording appliance on two loop-mounted disks A and B, S.M.A.R.T. from the fake smartctl."""
    install(tmp_path, monkeypatch)
    monkeypatch.setattr(disk_set, "RETRY_S", 1.0)
    a, b = LoopDisk(tmp_path, "a"), LoopDisk(tmp_path, "b")
    a.plug(), b.plug()
    source = "{type: test-pattern, width: 160, height: 120, fps: 10, keyframe_interval_s: 0.5}"
    config = parse_config(
        f"storage:\n  path: '{tmp_path / 'root'}'\n  segment_seconds: 30\n  health: {{interval_s: 3600}}\n"
        f"  retention: {{max_used_percent: 99, min_free_bytes: 0, locked_floor_bytes: 0}}\n"
        f"  disks: [{{path: '{a.mount}', label: A}}, {{path: '{b.mount}', label: B, group: spare}}]\n"
        f"channels:\n  - {{id: 1, source: {source}}}\n"
        "alarms: {temperature: {thermal_zones: false}}\n"
        f"web: {{state_dir: '{tmp_path / 'web'}'}}\n")
    nvr = Appliance(config, clocks=RealClocks(), listen=("127.0.0.1", free_port()), sync=False)
    for role, password in PASSWORDS.items():
        nvr.users.add_user(role, password, role, replace=True)
    nvr.start()
    yield nvr, create_app(nvr, users=nvr.users), a
    nvr.stop()
    a.unplug(), b.unplug()


def wait_done(admin: TestClient, job: dict) -> dict:
    return wait_for(lambda: (j := admin.get(f"/api/disks/init/{job['id']}").json())["state"] != "running" and j,
                    timeout_s=120, what="the initialisation to end")


def audit_of(app, prefix: str) -> list[tuple[str, str | None, dict]]:
    entries = app.state.ctx.users.audit_entries(limit=50)
    return [(e["action"], e["user"], json.loads(e["detail"])) for e in reversed(entries) if e["action"].startswith(prefix)]


def filesystems(device: str) -> list[dict]:
    out = subprocess.run(["wipefs", "--no-act", "--json", device], capture_output=True, text=True, check=True).stdout
    return json.loads(out or '{"signatures": []}')["signatures"]


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/disks"), ("GET", "/api/disks/devices"), ("POST", "/api/disks/init"),
    ("GET", "/api/disks/init/0123456789abcdef"), ("POST", "/api/disks/A/eject"),
])
@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_an_admin_may_see_or_change_the_disks(plain, role, method, path):
    body = {"device": "/dev/loop0", "label": "X"} if method == "POST" else None
    r = login(plain, role).request(method, path, json=body)
    assert r.status_code == 403 and "needs the admin role" in r.json()["detail"]


def test_a_change_without_the_csrf_token_is_refused(plain):
    admin = login(plain, "admin")
    del admin.headers["X-CSRF-Token"]
    assert admin.post("/api/disks/init", json={"device": "/dev/loop0", "label": "X"}).status_code == 403
    assert admin.post("/api/disks/A/eject").status_code == 403


def test_the_one_disk_is_shown_recording_and_bad_requests_are_refused_clearly(plain):
    admin = login(plain, "admin")
    [disk] = admin.get("/api/disks").json()
    assert disk["shown_state"] == "recording" and disk["role"] == "recordings" and disk["free_bytes"] > 0
    assert "write_rate_bytes_per_s" in disk
    r = admin.post("/api/disks/init", json={"device": "/dev/loop0", "label": "a/b"})
    assert r.status_code == 422 and "label: expected 1-32 letters" in r.json()["detail"]
    r = admin.post("/api/disks/init", json={"device": "/dev/null", "label": "Bay 1"})
    assert r.status_code == 404 and "not a whole disk of this machine" in r.json()["detail"]
    assert admin.post("/api/disks/init", json={"device": "/etc/passwd", "label": "x"}).status_code == 422
    r = admin.post("/api/disks/A/eject")
    assert r.status_code == 404 and "no recording disk is labelled 'A'" in r.json()["detail"]
    assert admin.get("/api/disks/init/nothing").status_code == 404
    assert [a for a, _, _ in audit_of(plain, "disk_")] == ["disk_eject_refused"]


def test_a_blank_disk_is_listed_blank_and_initialised_with_steps_and_an_audit_entry(plain, loop, tmp_path, monkeypatch):
    install(tmp_path, monkeypatch)
    admin = login(plain, "admin")
    [listed] = [d for d in admin.get("/api/disks/devices").json() if d["device"] == loop]
    assert listed["contents"] == [] and listed["mounted"] == [] and listed["size_bytes"] == 64 << 20
    assert listed["serial"] == SERIAL
    r = admin.post("/api/disks/init", json={"device": loop, "label": "Bay 1"})
    assert r.status_code == 202, r.text
    assert r.json()["steps_total"] == 3
    job = wait_done(admin, r.json())
    assert job["state"] == "done", job
    assert job["steps_done"] == job["steps_total"] and job["result"]["erased"] == []
    assert [(f["type"], f["label"]) for f in filesystems(loop)] == [("ext4", "Bay 1")]
    mount = tmp_path / "mnt"
    mount.mkdir()
    subprocess.run(["mount", "-o", "ro", loop, str(mount)], check=True)
    try:
        assert read_identity(mount).uuid == job["result"]["uuid"]
    finally:
        subprocess.run(["umount", str(mount)], check=True)
    [(action, user, detail)] = audit_of(plain, "disk_init")
    assert (action, user, detail["uuid"], detail["serial"]) == ("disk_init", "admin", job["result"]["uuid"], SERIAL)
    [listed] = [d for d in admin.get("/api/disks/devices").json() if d["device"] == loop]
    assert [c["kind"] for c in listed["contents"]] == ["ext4"]


def test_a_disk_with_a_filesystem_is_erased_only_when_its_serial_is_typed(plain, loop, tmp_path, monkeypatch):
    install(tmp_path, monkeypatch)
    subprocess.run(["mkfs.ext4", "-q", "-L", "holiday", loop], check=True)
    admin = login(plain, "admin")
    r = admin.post("/api/disks/init", json={"device": loop, "label": "Bay 2"})
    assert r.status_code == 409 and "is not blank (ext4 'holiday'" in r.json()["detail"]
    assert "serial number field" in r.json()["detail"]
    r = admin.post("/api/disks/init", json={"device": loop, "label": "Bay 2", "confirm_serial": "NOTIT"})
    assert r.status_code == 409 and "you typed 'NOTIT'" in r.json()["detail"]
    assert [f["label"] for f in filesystems(loop)] == ["holiday"]  # untouched
    r = admin.post("/api/disks/init", json={"device": loop, "label": "Bay 2", "confirm_serial": SERIAL})
    assert r.status_code == 202, r.text
    job = wait_done(admin, r.json())
    assert job["state"] == "done" and job["result"]["erased"] == [f"ext4 on {loop}"], job
    assert [f["label"] for f in filesystems(loop)] == ["Bay 2"]
    assert [(a, u) for a, u, _ in audit_of(plain, "disk_init")][-3:] == [
        ("disk_init_refused", "admin"), ("disk_init_refused", "admin"), ("disk_init", "admin")]


def test_a_mounted_disk_is_refused_even_with_its_serial(plain, loop, tmp_path, monkeypatch):
    install(tmp_path, monkeypatch)
    subprocess.run(["mkfs.ext4", "-q", loop], check=True)
    (tmp_path / "mnt").mkdir()
    subprocess.run(["mount", loop, str(tmp_path / "mnt")], check=True)
    try:
        admin = login(plain, "admin")
        [listed] = [d for d in admin.get("/api/disks/devices").json() if d["device"] == loop]
        assert listed["mounted"] == [str(tmp_path / "mnt")] and listed["contents"] is None
        r = admin.post("/api/disks/init", json={"device": loop, "label": "x", "confirm_serial": SERIAL})
        assert r.status_code == 409 and "is in use (mounted on" in r.json()["detail"]
    finally:
        subprocess.run(["umount", str(tmp_path / "mnt")], check=True)


def test_the_disks_show_smart_readings_write_rate_and_are_safe_to_unplug_after_eject(two_disks):
    nvr, app, a = two_disks
    admin = login(app, "admin")
    rows = {d.get("label") or d["role"]: d for d in admin.get("/api/disks").json()}
    assert set(rows) == {"index", "A", "B"} and rows["B"]["group"] == "spare"
    for label in ("A", "B"):
        row = rows[label]
        assert row["shown_state"] == "recording" and row["health"] == "passed", row
        assert row["temperature_c"] is not None and row["power_on_hours"] is not None and row["serial"] == SERIAL
    wait_for(lambda: all(d["write_rate_bytes_per_s"] is not None for d in admin.get("/api/disks").json()
                         if d.get("label")), what="a write rate for both disks (two looks half a second apart)")
    r = admin.post("/api/disks/A/eject")
    assert r.status_code == 200 and r.json()["safe_to_unplug"] is True, r.text
    rows = {d.get("label"): d for d in admin.get("/api/disks").json()}
    assert rows["A"]["shown_state"] == "ejected" and rows["B"]["shown_state"] == "recording"
    assert [(act, user) for act, user, _ in audit_of(app, "disk_eject")] == [("disk_eject", "admin")]
    a.plug()  # back: recording again, no longer "ejected"
    wait_for(lambda: {d.get("label"): d["shown_state"] for d in admin.get("/api/disks").json()}.get("A") == "recording",
             timeout_s=60, what="disk A taken back after being plugged in again")
