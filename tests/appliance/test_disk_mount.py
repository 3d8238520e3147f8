"""storage.require_mount with storage.disks: a recording disk is used only while a disk is mounted on its
folder. An empty mount point gets no identity file and no segment (it is the system disk's folder), the disk
is away with disk_offline naming it, and a disk mounted there later is adopted and recorded on without a
restart. Loop-mounted ext4 (root needed; skipped without); storage.path stays a plain folder."""
from __future__ import annotations

import os

import pytest

import appliance.alarms.health_watch as health_watch
import recorder.disk_set as disk_set
from appliance.app import Appliance
from appliance.config.model import parse_config
from base.clock import RealClocks
from support.loop_disk import LoopDisk
from support.waiting import wait_for

SOURCE = "{type: test-pattern, width: 160, height: 120, fps: 10, keyframe_interval_s: 0.5}"


def config_text(tmp_path, disks: str) -> str:
    return (f"storage:\n  path: '{tmp_path / 'root'}'\n  segment_seconds: 2\n  require_mount: true\n"
            f"  health: {{smart: false}}\n"
            f"  retention: {{max_used_percent: 99, min_free_bytes: 0, locked_floor_bytes: 0}}\n"
            f"  disks: {disks}\n"
            f"channels:\n  - {{id: 1, source: {SOURCE}}}\n"
            "alarms: {temperature: {thermal_zones: false}}\n"
            f"web: {{state_dir: '{tmp_path / 'web'}'}}\n")


@pytest.fixture
def quick(monkeypatch):
    monkeypatch.setattr(disk_set, "RETRY_S", 1.0)
    monkeypatch.setattr(health_watch, "DISK_CHECK_S", 0.1)


def offline(nvr) -> dict:
    return {a["disk"]: a["message"] for a in nvr.status()["alarms"] if a["kind"] == "disk_offline"}


def test_an_unmounted_disk_gets_nothing_written_and_a_disk_mounted_there_is_adopted_and_recorded_on(tmp_path, quick):
    a = LoopDisk(tmp_path, "a")
    a.plug()  # only to learn here whether loop mounts are allowed (skips if not); the disk is not there yet
    a.unplug()
    assert not os.path.ismount(a.mount)
    nvr = Appliance(parse_config(config_text(tmp_path, f"[{{path: '{a.mount}', label: A}}]")), clocks=RealClocks(),
                    sync=True)
    nvr.start()
    try:
        sup = nvr.supervisor
        assert nvr.status()["recording"] is True  # storage.path keeps the index: a plain folder will do
        wait_for(lambda: nvr.status()["streams"][0]["packets"] > 30, what="the channel running")
        assert list(a.mount.iterdir()) == []  # no identity file, no segment on the empty mount point
        assert sup.disk_set.disks[0].state == "away"
        assert offline(nvr) == {"A": f"not mounted: nothing is written to {a.mount} until a disk is mounted there "
                                     f"(the disk 'A')"}
        assert sup.index.segments() == [] and "disk_missing" not in {x["kind"] for x in nvr.status()["alarms"]}

        a.plug()  # a blank ext4 disk is mounted there, while recording
        wait_for(lambda: sup.disk_set.disks[0].state == "ok", timeout_s=60, what="the disk adopted")
        uuid = disk_set.read_identity(a.mount).uuid
        assert sup.disk_set.disks[0].uuid == uuid and offline(nvr) == {}
        wait_for(lambda: [s for s in sup.index.segments(channel=1) if s.disk == uuid], timeout_s=60,
                 what="a segment recorded on the adopted disk")
        assert list(a.mount.glob("ch01/main/*.mp4"))
        assert uuid in sup.disk_watches and uuid in [r.disk for r in sup.retentions]  # its health and retention
        assert not nvr.disk_changed.is_set() and not nvr.stop_requested.is_set()  # no restart
    finally:
        nvr.stop()
        a.unplug()


def test_a_disk_that_need_not_be_mounted_records_into_its_plain_folder(tmp_path, quick):
    folder = tmp_path / "plain"
    folder.mkdir()
    text = config_text(tmp_path, f"[{{path: '{folder}', label: P, require_mount: false}}]")
    nvr = Appliance(parse_config(text), clocks=RealClocks(), sync=False)
    nvr.start()
    try:
        sup = nvr.supervisor
        uuid = disk_set.read_identity(folder).uuid
        wait_for(lambda: sup.index.segments(channel=1), timeout_s=60, what="a segment in the plain folder")
        assert {s.disk for s in sup.index.segments(channel=1)} == {uuid} and offline(nvr) == {}
    finally:
        nvr.stop()

