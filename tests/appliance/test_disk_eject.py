"""Ejecting a recording disk through the web API (admin): no new segments on it, the open ones ended at
their next keyframe and indexed, synced and unmounted, recording going on on the other disk; audit-logged.
Two loop-mounted ext4 disks (root needed; skipped without)."""
from __future__ import annotations

import os

import httpx
import pytest

import recorder.disk_set as disk_set
from appliance.app import Appliance
from appliance.config.model import parse_config
from base.clock import RealClocks
from support.loop_disk import LoopDisk
from support.recording import decoded_frames
from support.waiting import wait_for
from support.web import PASSWORDS, free_port


@pytest.fixture
def rig(tmp_path, monkeypatch):
    monkeypatch.setattr(disk_set, "RETRY_S", 1.0)
    a, b = LoopDisk(tmp_path, "a"), LoopDisk(tmp_path, "b")
    a.plug(), b.plug()
    source = "{type: test-pattern, width: 160, height: 120, fps: 10, keyframe_interval_s: 0.5}"
    config = parse_config(
        f"storage:\n  path: '{tmp_path / 'root'}'\n  segment_seconds: 30\n  health: {{smart: false}}\n"
        f"  retention: {{max_used_percent: 99, min_free_bytes: 0, locked_floor_bytes: 0}}\n"
        f"  disks: [{{path: '{a.mount}', label: A}}, {{path: '{b.mount}', label: B}}]\n"
        f"channels:\n  - {{id: 1, source: {source}}}\n  - {{id: 2, source: {source}}}\n"
        "alarms: {temperature: {thermal_zones: false}}\n"
        f"web: {{state_dir: '{tmp_path / 'web'}'}}\n")
    port = free_port()
    nvr = Appliance(config, clocks=RealClocks(), listen=("127.0.0.1", port), sync=True)
    for role, password in PASSWORDS.items():
        nvr.users.add_user(role, password, role, replace=True)
    nvr.start()
    yield nvr, f"http://127.0.0.1:{port}", a, b
    nvr.stop()
    a.unplug(), b.unplug()


def login(url: str, role: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=60)
    r = client.post("/api/login", json={"username": role, "password": PASSWORDS[role]})
    assert r.status_code == 200, r.text
    client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return client


def test_an_admin_ejects_a_disk_while_recording_and_nothing_on_it_is_lost(rig):
    nvr, url, a, b = rig
    sup = nvr.supervisor
    uuid_a = sup.disk_set.disks[0].uuid
    wait_for(lambda: any(r.segmenter.writing_to() == uuid_a for r in sup.recorders), timeout_s=60,
             what="a segment being written on disk A")  # 30 s segments: one is open on it when ejected
    assert login(url, "operator").post("/api/disks/A/eject").status_code == 403
    admin = login(url, "admin")
    assert admin.post("/api/disks/C/eject").status_code == 404
    r = admin.post("/api/disks/A/eject")
    assert r.status_code == 200, r.text
    assert r.json()["unmounted"] is True and not os.path.ismount(a.mount)
    rows_on_a = [s for s in sup.index.segments() if s.disk == uuid_a]
    assert rows_on_a  # the segment open at the eject was ended at a keyframe and indexed
    disks = {d.get("label"): d for d in admin.get("/api/disks").json()}
    assert disks["A"]["state"] == "away" and "ejected" in disks["A"]["reason"]
    uuid_b = sup.disk_set.disks[1].uuid
    wait_for(lambda: {r.segmenter.channel for r in sup.recorders if r.segmenter.writing_to() == uuid_b} == {1, 2},
             timeout_s=30, what="both channels recording on disk B")
    assert [e["action"] for e in admin.get("/api/audit").json() if e["action"].startswith("disk_eject")] == [
        "disk_eject", "disk_eject_refused"]
    a.plug()  # put back: what it held is there and plays
    for seg in rows_on_a:
        assert decoded_frames(a.mount.parent / "root" / seg.path) == seg.frames
