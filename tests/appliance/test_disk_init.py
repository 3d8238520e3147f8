"""`nvr disks init`: a blank disk becomes a recordings disk; a disk with anything on it is refused unless its
serial is confirmed; a mounted one always. Real loop devices (root needed; skipped without), the real
command, and a fake smartctl on the PATH for the serial a loop device does not have."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recorder.disk_set import read_identity
from support.fake_smartctl import install
from support.loop_disk import blank_loop_device


def nvr(*args, env_path: str | None = None) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("nvr")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "appliance.cli"]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def loop(tmp_path):
    yield from blank_loop_device(tmp_path)


@pytest.fixture
def setup(tmp_path, monkeypatch):
    smartctl = install(tmp_path, monkeypatch)  # serial 9RK1XXXX, model WDC WD140EDFZ
    config = tmp_path / "nvr.yaml"
    config.write_text(f"storage: {{path: '{tmp_path / 'data'}'}}\nweb: {{state_dir: '{tmp_path / 'web'}'}}\n")
    return smartctl, config, tmp_path


def filesystem_of(device: str) -> dict:
    out = subprocess.run(["wipefs", "--no-act", "--json", device], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["signatures"]


def identity_on(device: str, folder: Path):
    folder.mkdir(exist_ok=True)
    subprocess.run(["mount", "-o", "ro", device, str(folder)], check=True)
    try:
        return read_identity(folder)
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def audit(tmp_path: Path) -> list[tuple[str, dict]]:
    import sqlite3

    db = sqlite3.connect(tmp_path / "web" / "users.sqlite3")
    try:
        return [(action, json.loads(detail)) for action, detail in db.execute("SELECT action, detail FROM audit ORDER BY id")]
    finally:
        db.close()


def test_a_blank_disk_becomes_an_ext4_recordings_disk_with_an_identity(loop, setup):
    smartctl, config, tmp_path = setup
    done = nvr("disks", "init", loop, "--label", "Bay 1", "--config", config)
    assert done.returncode == 0, done.stderr
    [fs] = filesystem_of(loop)
    assert (fs["type"], fs["label"]) == ("ext4", "Bay 1")
    identity = identity_on(loop, tmp_path / "mnt")
    assert identity.label == "Bay 1" and identity.uuid in done.stdout
    [(action, detail)] = audit(tmp_path)
    assert action == "disk_init" and detail["uuid"] == identity.uuid and detail["erased"] == []


def test_a_disk_with_a_filesystem_is_refused_unless_its_serial_is_confirmed(loop, setup):
    smartctl, config, tmp_path = setup
    subprocess.run(["mkfs.ext4", "-q", "-L", "holiday", loop], check=True)
    refused = nvr("disks", "init", loop, "--label", "Bay 1", "--config", config)
    assert refused.returncode == 2 and "is not blank (ext4 'holiday'" in refused.stderr
    assert "--confirm-serial" in refused.stderr and "Traceback" not in refused.stderr
    wrong = nvr("disks", "init", loop, "--label", "Bay 1", "--confirm-serial", "NOTIT", "--config", config)
    assert wrong.returncode == 2 and "you typed 'NOTIT'" in wrong.stderr
    assert filesystem_of(loop)[0]["label"] == "holiday"  # untouched
    done = nvr("disks", "init", loop, "--label", "Bay 1", "--confirm-serial", "9RK1XXXX", "--config", config)
    assert done.returncode == 0, done.stderr
    assert [fs["label"] for fs in filesystem_of(loop)] == ["Bay 1"]
    assert [action for action, _ in audit(tmp_path)] == ["disk_init_refused", "disk_init_refused", "disk_init"]
    assert audit(tmp_path)[-1][1]["erased"] == [f"ext4 on {loop}"]


def test_a_mounted_disk_is_always_refused(loop, setup):
    smartctl, config, tmp_path = setup
    subprocess.run(["mkfs.ext4", "-q", loop], check=True)
    (tmp_path / "mnt").mkdir()
    subprocess.run(["mount", loop, str(tmp_path / "mnt")], check=True)
    try:
        done = nvr("disks", "init", loop, "--label", "x", "--confirm-serial", "9RK1XXXX", "--config", config)
        assert done.returncode == 2 and "is in use (mounted on" in done.stderr
    finally:
        subprocess.run(["umount", str(tmp_path / "mnt")], check=True)


def test_not_a_block_device_or_a_bad_label_is_a_usage_error(setup, tmp_path):
    smartctl, config, _ = setup
    done = nvr("disks", "init", str(tmp_path), "--label", "x", "--config", config)
    assert done.returncode == 2 and "is not a block device" in done.stderr
    done = nvr("disks", "init", "/dev/null", "--label", "a/b", "--config", config)
    assert done.returncode == 2 and "--label: expected" in done.stderr


def test_a_disk_made_by_init_and_listed_in_storage_disks_is_recorded_on_and_another_boxs_disk_is_not(
        loop, setup, monkeypatch):
    """The CLI's own advice ("mount it and list it in storage.disks") works: the appliance adopts the disk
    it has never seen because `nvr disks init` made it and it holds nothing; a disk holding another box's
    recordings, listed beside it, stays foreign and untouched."""
    from appliance.app import Appliance
    from appliance.config.model import parse_config
    from base.clock import RealClocks
    from support.loop_disk import LoopDisk
    from support.waiting import wait_for

    smartctl, _, tmp_path = setup
    source = "{type: test-pattern, width: 160, height: 120, fps: 10, keyframe_interval_s: 0.5}"

    def config(root: Path, disks: str):
        return parse_config(f"storage:\n  path: '{root}'\n  segment_seconds: 2\n  health: {{smart: false}}\n"
                            f"  retention: {{max_used_percent: 99, min_free_bytes: 0, locked_floor_bytes: 0}}\n"
                            f"  disks: [{disks}]\nchannels:\n  - {{id: 1, source: {source}}}\n"
                            "alarms: {temperature: {thermal_zones: false}}\n")

    theirs = LoopDisk(tmp_path, "theirs")
    theirs.plug()
    try:
        other_box = Appliance(config(tmp_path / "other-root", f"{{path: '{theirs.mount}', label: C}}"),
                              clocks=RealClocks(), sync=True)
        other_box.start()
        try:
            wait_for(lambda: len(other_box.supervisor.index.segments()) >= 1, timeout_s=60, what="the other box's segments")
        finally:
            other_box.stop()
        held = sorted(str(p.relative_to(theirs.mount)) for p in theirs.mount.rglob("*"))

        done = nvr("disks", "init", loop, "--label", "Bay 1", "--config", tmp_path / "nvr.yaml")
        assert done.returncode == 0, done.stderr
        assert "list it in storage.disks" in done.stdout
        mount = tmp_path / "bay1"
        mount.mkdir()
        subprocess.run(["mount", loop, str(mount)], check=True)
        made = read_identity(mount)
        box = Appliance(config(tmp_path / "data", f"{{path: '{mount}', label: Bay 1}}, {{path: '{theirs.mount}', label: C}}"),
                        clocks=RealClocks(), sync=True)
        box.start()
        try:
            assert [(d.label, d.state) for d in box.supervisor.disk_set.disks] == [("Bay 1", "ok"), ("C", "foreign")]
            wait_for(lambda: len([s for s in box.supervisor.index.segments() if s.disk == made.uuid]) >= 2,
                     timeout_s=60, what="segments on the initialised disk")
            assert ("disk_offline", "C") in {(f["kind"], f["disk"]) for f in box.status()["alarms"]}
            assert not any(f["kind"] == "disk_offline" and f["disk"] == "Bay 1" for f in box.status()["alarms"])
        finally:
            box.stop()
        assert any(mount.glob("ch01/main/*.mp4"))
        assert sorted(str(p.relative_to(theirs.mount)) for p in theirs.mount.rglob("*")) == held
    finally:
        theirs.unplug()
