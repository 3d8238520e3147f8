"""storage.require_mount: without the recordings disk nothing is written, the disk alarm is up, live view
goes on, and the appliance asks to be restarted when the disk comes (or goes)."""
from __future__ import annotations

import os
import threading

import pytest

import appliance.alarms.health_watch as health_watch
from appliance.config.model import parse_config
from appliance.supervisor import Supervisor
from base.clock import RealClocks
from support.waiting import DEFAULT_TIMEOUT_S, wait_for


def config_for(path) -> str:
    return (f"storage: {{path: '{path}', segment_seconds: 2, require_mount: true}}\n"
            "channels:\n  - {id: 1, source: {type: test-pattern, width: 160, height: 120, fps: 10}}\n"
            "alarms: {temperature: {thermal_zones: false}}\n"
            f"web: {{state_dir: '{path.parent / 'web'}'}}\n")


@pytest.fixture
def mounts(monkeypatch):
    """Paths that os.path.ismount calls mounted (a test cannot mount a disk here)."""
    mounted: set[str] = set()
    real = os.path.ismount
    monkeypatch.setattr(os.path, "ismount", lambda p: str(p) in mounted or real(p))
    monkeypatch.setattr(health_watch, "DISK_CHECK_S", 0.1)
    return mounted


def test_without_the_disk_nothing_is_written_the_alarm_is_up_and_live_view_goes_on(tmp_path, mounts):
    disk = tmp_path / "srv-nvr"
    disk.mkdir()
    supervisor = Supervisor(parse_config(config_for(disk)), clocks=RealClocks(), sync=False)
    changed = threading.Event()
    supervisor.on_disk_change = changed.set
    supervisor.start()
    try:
        live = supervisor.live.stream(1, "main")
        wait_for(lambda: supervisor.status()["streams"][0]["packets"] > 20)  # the source runs and feeds live view
        assert live.info is not None and live.info.codec == "h264"
        status = supervisor.status()
        assert status["recording"] is False and status["streams"][0]["frames_recorded"] == 0
        alarms = {a["kind"]: a["message"] for a in status["alarms"]}
        assert "no disk is mounted on" in alarms["disk_missing"] and str(disk) in alarms["disk_missing"]
        assert list(disk.iterdir()) == []  # nothing onto the system disk (on the image: the RAM overlay)
        assert not changed.is_set()

        mounts.add(str(disk))  # the installer plugs the disk in
        assert changed.wait(DEFAULT_TIMEOUT_S), "the appliance did not ask to restart onto the disk"
    finally:
        scratch = supervisor.root
        supervisor.stop()
    assert not scratch.exists()  # the scratch index in RAM is removed


def test_with_the_disk_mounted_it_records_there_and_asks_to_restart_when_the_disk_goes(tmp_path, mounts):
    disk = tmp_path / "srv-nvr"
    disk.mkdir()
    mounts.add(str(disk))
    supervisor = Supervisor(parse_config(config_for(disk)), clocks=RealClocks(), sync=False)
    changed = threading.Event()
    supervisor.on_disk_change = changed.set
    supervisor.start()
    try:
        assert supervisor.root == disk and supervisor.status()["recording"] is True
        wait_for(lambda: supervisor.status()["streams"][0]["frames_recorded"] > 0)
        assert "disk_missing" not in {a["kind"] for a in supervisor.status()["alarms"]}
        mounts.discard(str(disk))  # the disk is pulled
        assert changed.wait(DEFAULT_TIMEOUT_S), "the appliance did not ask to restart off the vanished disk"
        wait_for(lambda: "disk_missing" in {a["kind"] for a in supervisor.status()["alarms"]})
    finally:
        supervisor.stop()


def test_require_mount_is_off_by_default_so_a_plain_folder_records():
    config = parse_config("storage: {path: /tmp/nvr-anywhere}\nchannels: []\n")
    assert config.storage.require_mount is False


def test_require_mount_without_a_web_state_dir_is_refused_at_load_naming_the_key():
    from appliance.config.model import ConfigError

    with pytest.raises(ConfigError, match=r"web\.state_dir.*required with storage\.require_mount"):
        parse_config("storage: {path: /srv/nvr, require_mount: true}\nchannels: []\n")


def test_a_disk_mounted_between_the_start_and_the_first_health_check_still_restarts_onto_it(tmp_path, mounts):
    disk = tmp_path / "srv-nvr"
    disk.mkdir()
    supervisor = Supervisor(parse_config(config_for(disk)), clocks=RealClocks(), sync=False)
    assert supervisor.disk_absent
    mounts.add(str(disk))  # before the watch ever looked
    changed = threading.Event()
    supervisor.on_disk_change = changed.set
    supervisor.start()
    try:
        assert changed.wait(DEFAULT_TIMEOUT_S), "the appliance stayed without recording on a mounted disk"
    finally:
        supervisor.stop()
