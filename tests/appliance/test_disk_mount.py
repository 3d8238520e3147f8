"""storage.require_mount with storage.disks: a recording disk is used only while a disk is mounted on its
folder. An empty mount point gets no identity file and no segment (it is the system disk's folder), the disk
is away with disk_offline naming it, and a disk mounted there later is adopted and recorded on without a
restart. Loop-mounted ext4 (root needed; skipped without); storage.path stays a plain folder."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import appliance.alarms.health_watch as health_watch
import recorder.disk_set as disk_set
from appliance.app import Appliance
from appliance.config.model import parse_config
from appliance.disk_mount import FstabRemount, plan_remount
from base.clock import RealClocks
from hal.fstab import parse_fstab
from recorder.disk_set import DiskSet
from recorder.faults import FaultBoard
from recorder.index import Index
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


# --- hot plug: an away disk whose folder is in fstab is mounted again once its device is back -----------

def fstab_of(tmp_path, text: str):
    path = tmp_path / "fstab"
    path.write_text(text)
    return path


def test_a_folder_is_mounted_again_only_from_an_automatic_fstab_entry_whose_device_is_there(tmp_path):
    dev = tmp_path / "dev"
    (dev / "disk" / "by-label").mkdir(parents=True)
    entries = parse_fstab("LABEL=nvr-a /srv/diska ext4 nofail 0 0\nLABEL=nvr-b /srv/diskb ext4 noauto 0 0\n"
                          "/srv/x /srv/bound none bind 0 0\nnas:/v /srv/nas nfs defaults 0 0\n"
                          "tmpfs /srv/ram tmpfs defaults 0 0\n")
    plan = plan_remount(Path("/srv/diska"), entries, dev=dev)
    assert not plan.mount and "LABEL=nvr-a" in plan.why and "is not plugged in" in plan.why
    (dev / "disk" / "by-label" / "nvr-a").symlink_to("/dev/null")
    plan = plan_remount(Path("/srv/diska"), entries, dev=dev)
    assert plan.mount and plan.device == dev / "disk/by-label/nvr-a"
    for folder, says in (("/srv/diskb", "noauto"), ("/srv/bound", "not a local disk"), ("/srv/nas", "not a local disk"),
                         ("/srv/ram", "not a local disk"), ("/srv/other", "is not in fstab")):
        plan = plan_remount(Path(folder), entries, dev=dev)
        assert not plan.mount and says in plan.why, folder


def test_the_remount_hook_mounts_only_when_the_plan_says_so_and_says_why_not_once(tmp_path, caplog):
    dev = tmp_path / "dev"
    (dev / "disk" / "by-label").mkdir(parents=True)
    fstab = fstab_of(tmp_path, "LABEL=nvr-a /srv/diska ext4 nofail 0 0\n")
    mounted, calls = set(), []

    def mount(folder, *, fstab):
        calls.append((folder, fstab))
        mounted.add(folder)
        return True, "mounted"
    remount = FstabRemount(fstab=fstab, dev=dev, mount=mount, is_mount=lambda p: p in mounted)
    with caplog.at_level("INFO", logger="nvr.disk_mount"):
        assert remount(Path("/srv/diska")) is False and remount(Path("/srv/diska")) is False
    assert calls == [] and sum("is not plugged in" in r.message for r in caplog.records) == 1
    (dev / "disk" / "by-label" / "nvr-a").symlink_to("/dev/null")
    assert remount(Path("/srv/diska")) is True and calls == [(Path("/srv/diska"), fstab)]
    assert remount.mounted == [Path("/srv/diska")]



def test_an_ejected_disk_still_plugged_in_is_not_mounted_again_until_it_is_unplugged_and_back(tmp_path):
    dev = tmp_path / "dev"
    (dev / "disk" / "by-label").mkdir(parents=True)
    link = dev / "disk" / "by-label" / "nvr-a"
    link.symlink_to("/dev/null")
    fstab = fstab_of(tmp_path, "LABEL=nvr-a /srv/diska ext4 nofail 0 0\n")
    mounted, calls = set(), []

    def mount(folder, *, fstab):
        calls.append(folder)
        mounted.add(folder)
        return True, "mounted"
    remount = FstabRemount(fstab=fstab, dev=dev, mount=mount, is_mount=lambda p: p in mounted)
    remount.hold(Path("/srv/diska"))  # ejected: the admin is about to unplug it
    assert remount(Path("/srv/diska")) is False and calls == []
    link.unlink()  # unplugged
    assert remount(Path("/srv/diska")) is False and calls == []
    link.symlink_to("/dev/null")  # plugged in again
    assert remount(Path("/srv/diska")) is True and calls == [Path("/srv/diska")]

def test_a_pulled_disk_is_mounted_again_from_fstab_and_taken_back_without_a_restart(tmp_path, clocks):
    """Real: a loop device and a temporary fstab naming it (the host's /etc/fstab is not touched), mount(8)."""
    a = LoopDisk(tmp_path, "a")  # its image, attached below as a device of its own (no autoclear on umount)
    attached = subprocess.run(["losetup", "--find", "--show", str(a.image)], capture_output=True, text=True)
    if attached.returncode != 0:
        pytest.skip(f"cannot make a loop device here (needs root): {attached.stderr.strip()}")
    device = attached.stdout.strip()
    try:
        subprocess.run(["mount", device, str(a.mount)], check=True)
        fstab = fstab_of(tmp_path, f"# a test fstab\n{device} {a.mount} ext4 nofail,noatime 0 0\n")
        _pulled_and_mounted_again(tmp_path, clocks, a.mount, fstab)
    finally:
        subprocess.run(["umount", str(a.mount)], capture_output=True)
        subprocess.run(["losetup", "-d", device], check=False)


def _pulled_and_mounted_again(tmp_path, clocks, folder, fstab):
    root = tmp_path / "root"
    root.mkdir()
    index = Index(root)
    remount = FstabRemount(fstab=fstab)
    try:
        faults = FaultBoard(clocks=clocks)
        disks = DiskSet(root=root, disks=[(folder, "A")], index=index, clocks=clocks, faults=faults,
                        must_mount=[folder], remount=remount)
        disks.open()
        uuid = disk_set.read_identity(folder).uuid
        assert disks.place().disk == uuid
        subprocess.run(["umount", str(folder)], check=True)  # gone, as systemd unmounts a pulled disk
        assert disks.place() is None and disks.disks[0].state == "away" and list(folder.iterdir()) == []
        clocks.advance(disk_set.RETRY_S)
        disks.place()  # looked at again: its fstab device is there, so it is mounted
        wait_for(lambda: remount.mounted and not disks.remounting(), timeout_s=60, what="the disk mounted again")
        assert os.path.ismount(folder)
        placed = disks.place()  # taken back at once, not another RETRY_S later
        assert placed is not None and placed.disk == uuid and disks.disks[0].state == "ok"
        assert not [f for f in faults.active() if f.kind == "disk_offline"]
    finally:
        index.close()
