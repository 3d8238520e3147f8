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


def nvr(*args, env_path: str | None = None) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("nvr")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "appliance.cli"]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def loop(tmp_path):
    image = tmp_path / "disk.img"
    subprocess.run(["truncate", "-s", "64M", str(image)], check=True)
    done = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot make a loop device here (needs root): {done.stderr.strip()}")
    device = done.stdout.strip()
    yield device
    subprocess.run(["umount", device], capture_output=True)
    subprocess.run(["losetup", "-d", device], check=False)


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
