"""Disk health through the whole appliance: a real ext4 data disk (a loop device) that the kernel takes
read-only after an error, a fake smartctl on the PATH serving real devices' reports, and rules that
switch relays on `disk: errors` and `disk: failing`. Needs root for the loop mount (skipped without)."""
from __future__ import annotations

import errno
import subprocess
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

import appliance.alarms.health_watch as health_watch
import recorder.disk_set as disk_set
from appliance.app import Appliance
from appliance.config.model import parse_config
from base.clock import RealClocks
from hal.gpio import GpiozeroGpio
from support.fake_smartctl import install
from support.waiting import wait_for


ERRORS_RELAY, FAILING_RELAY = 22, 23

CONFIG = f"""
storage:
  path: DATA
  segment_seconds: 2
  retention: {{max_used_percent: 99, min_free_bytes: 0, locked_floor_bytes: 0}}
  health: {{interval_s: 3600}}
channels:
  - {{id: 1, source: {{type: test-pattern, width: 160, height: 120, fps: 10, keyframe_interval_s: 0.5}}}}
  - {{id: 2, source: {{type: test-pattern, width: 160, height: 120, fps: 10, keyframe_interval_s: 0.5}}}}
alarms:
  outputs:
    - {{id: disk-lamp, pin: {ERRORS_RELAY}, mode: latch}}
    - {{id: replace-lamp, pin: {FAILING_RELAY}, mode: latch}}
  temperature: {{thermal_zones: false}}
rules:
  - {{name: disk errors, when: {{disk: errors}}, do: [{{output: {{id: disk-lamp}}}}]}}
  - {{name: disk failing, when: {{disk: failing}}, do: [{{output: {{id: replace-lamp}}}}]}}
"""


@pytest.fixture
def ext4_disk(tmp_path):
    image, mount = tmp_path / "disk.img", tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["truncate", "-s", "64M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", str(image)], check=True)
    done = subprocess.run(["mount", "-o", "loop,errors=remount-ro", str(image), str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot loop-mount an ext4 image here (needs root): {done.stderr.strip()}")
    try:
        device = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(mount)], capture_output=True, text=True,
                                check=True).stdout.strip()
        trigger = Path("/sys/fs/ext4") / Path(device).name / "trigger_fs_error"
        if not trigger.exists():
            pytest.skip(f"this kernel has no {trigger} to make ext4 fail on purpose")
        yield mount, device, trigger
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def smartctl(tmp_path, monkeypatch):
    return install(tmp_path, monkeypatch)


def test_the_kernel_failing_the_data_disk_raises_disk_errors_and_its_rule_fires_and_smart_failing_fires_its_own(
        ext4_disk, smartctl):
    mount, device, trigger = ext4_disk
    previous, factory = Device.pin_factory, MockFactory()
    Device.pin_factory = factory
    nvr = Appliance(parse_config(CONFIG.replace("DATA", str(mount))), clocks=RealClocks(),
                    gpio=GpiozeroGpio(pin_factory=factory))
    nvr.start()
    try:
        wait_for(lambda: all(s["segments"] >= 1 for s in nvr.status()["streams"]), timeout_s=60,
                 what="a segment of each channel on the ext4 disk")
        disk = nvr.status()["disks"][0]
        assert (disk["device"], disk["model"], disk["health"]) == (device, "WDC WD140EDFZ-11A0VA0", "passed")
        assert smartctl.calls[0] == f"--json -a -n standby {device}"
        lamp = factory.pin(ERRORS_RELAY)
        assert not lamp.state

        trigger.write_text("1\n")  # ext4 meets an error, as on a disk returning bad sectors: read-only now
        wait_for(lambda: "disk_errors" in {a["kind"] for a in nvr.status()["alarms"]}, timeout_s=30,
                 what="disk_errors from the segment writer's I/O error")
        wait_for(lambda: lamp.state, what="the disk-errors rule switching its relay")
        disk = nvr.status()["disks"][0]
        # The write that meets the error gets EIO, those after it EROFS: which is last depends on timing.
        assert disk["io_errors"] >= 1 and any(text in disk["last_io_error"]
                                              for text in ("Read-only file system", "Input/output error"))

        smartctl.serve("scrutiny-smart-fail2.json")
        nvr.supervisor.disk_health.poll()  # the half-hourly reading, now
        wait_for(lambda: factory.pin(FAILING_RELAY).state, what="the disk-failing rule switching its relay")
        assert nvr.status()["disks"][0]["health"] == "failing"
    finally:
        nvr.stop()
        factory.reset()
        Device.pin_factory = previous



SINGLE_DISK = ("storage:\n  path: DATA\n  segment_seconds: 2\n  health: {smart: false}\n"
               "  retention: {max_used_percent: 99, min_free_bytes: 0, locked_floor_bytes: 0}\n"
               "channels:\n  - {id: 1, source: {type: test-pattern, width: 160, height: 120, fps: 10, "
               "keyframe_interval_s: 0.5}}\nalarms: {temperature: {thermal_zones: false}}\n")


@pytest.fixture
def quick_retry(monkeypatch):
    monkeypatch.setattr(disk_set, "RETRY_S", 1.0)
    monkeypatch.setattr(health_watch, "DISK_CHECK_S", 0.1)


def test_a_single_data_disk_that_stays_read_only_keeps_disk_errors(ext4_disk, quick_retry, monkeypatch):
    mount, _device, trigger = ext4_disk
    nvr = Appliance(parse_config(SINGLE_DISK.replace("DATA", str(mount))), clocks=RealClocks())
    nvr.start()
    try:
        wait_for(lambda: nvr.status()["segments"] >= 1, timeout_s=60, what="a segment on the ext4 disk")
        trigger.write_text("1\n")  # the kernel takes it read-only, for good
        wait_for(lambda: "disk_errors" in alarms_of(nvr), timeout_s=30, what="disk_errors from the writer")
        watch = nvr.supervisor.disk_health
        errors = watch.io_errors
        wait_for(lambda: watch.io_errors >= errors + 3, timeout_s=30, what="the writer meeting more errors")
        assert "disk_errors" in alarms_of(nvr)  # errors keep coming: nothing to check, not cleared
        monkeypatch.setattr(disk_set, "RETRY_S", 0.0)  # a check now, whatever the writer does
        assert watch.recheck_writes() is False and watch.write_checks >= 1  # EROFS: it still cannot be written
        assert "disk_errors" in alarms_of(nvr)
    finally:
        nvr.stop()


def test_a_single_data_disk_that_works_again_clears_disk_errors_without_a_restart(tmp_path, quick_retry):
    """The I/O error is reported as the segment writer reports it (this machine cannot make a disk fail and
    then work again: no device-mapper, and ext4 refuses rw after an error); the clearing is the real path:
    the health watch's disk check, RETRY_S, a synced write to the data folder."""
    data = tmp_path / "data"
    data.mkdir()
    nvr = Appliance(parse_config(SINGLE_DISK.replace("DATA", str(data))), clocks=RealClocks(), sync=False)
    nvr.start()
    try:
        wait_for(lambda: nvr.status()["segments"] >= 1, timeout_s=60, what="a segment in the data folder")
        nvr.supervisor._io_error(OSError(errno.EIO, "Input/output error"), "")  # the writer's report
        assert "disk_errors" in alarms_of(nvr)
        wait_for(lambda: "disk_errors" not in alarms_of(nvr), timeout_s=30, what="disk_errors cleared without a restart")
        assert nvr.supervisor.disk_health.write_checks == 1 and nvr.status()["disks"][0]["io_errors"] == 1
        assert not nvr.stop_requested.is_set()
    finally:
        nvr.stop()


def alarms_of(nvr) -> set[str]:
    return {a["kind"] for a in nvr.status()["alarms"]}
