"""storage.require_mount: without the recordings disk nothing is written, the disk alarm is up, live view
goes on, and the appliance asks to be restarted when the disk comes (or goes)."""
from __future__ import annotations

import os

import pytest

import appliance.alarms.health_watch as health_watch
from appliance.config.model import parse_config
from appliance.app import Appliance
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
    nvr = Appliance(parse_config(config_for(disk)), clocks=RealClocks(), sync=False)
    changed = nvr.disk_changed
    nvr.start()
    try:
        live = nvr.live.stream(1, "main")
        wait_for(lambda: nvr.status()["streams"][0]["packets"] > 20)  # the source runs and feeds live view
        assert live.info is not None and live.info.codec == "h264"
        status = nvr.status()
        assert status["recording"] is False and status["streams"][0]["frames_recorded"] == 0
        faults = {a["kind"]: a["message"] for a in status["alarms"]}
        assert "no disk is mounted on" in faults["disk_missing"] and str(disk) in faults["disk_missing"]
        assert list(disk.iterdir()) == []  # nothing onto the system disk (on the image: the RAM overlay)
        assert not changed.is_set() and not nvr.stop_requested.is_set()

        mounts.add(str(disk))  # the installer plugs the disk in
        assert changed.wait(DEFAULT_TIMEOUT_S), "the appliance did not ask to restart onto the disk"
        assert nvr.wait(0)  # `nvr run` stops waiting, stops, and exits 75 (tests/appliance/test_cli.py)
    finally:
        scratch = nvr.root
        nvr.stop()
    assert not scratch.exists()  # the scratch index in RAM is removed


def test_with_the_disk_mounted_it_records_there_and_asks_to_restart_when_the_disk_goes(tmp_path, mounts):
    disk = tmp_path / "srv-nvr"
    disk.mkdir()
    mounts.add(str(disk))
    nvr = Appliance(parse_config(config_for(disk)), clocks=RealClocks(), sync=False)
    changed = nvr.disk_changed
    nvr.start()
    try:
        assert nvr.root == disk and nvr.status()["recording"] is True
        wait_for(lambda: nvr.status()["streams"][0]["frames_recorded"] > 0)
        assert "disk_missing" not in {a["kind"] for a in nvr.status()["alarms"]}
        mounts.discard(str(disk))  # the disk is pulled
        assert changed.wait(DEFAULT_TIMEOUT_S), "the appliance did not ask to restart off the vanished disk"
        wait_for(lambda: "disk_missing" in {a["kind"] for a in nvr.status()["alarms"]})
    finally:
        nvr.stop()


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
    nvr = Appliance(parse_config(config_for(disk)), clocks=RealClocks(), sync=False)
    assert nvr.supervisor.disk_absent
    mounts.add(str(disk))  # before the watch ever looked
    changed = nvr.disk_changed
    nvr.start()
    try:
        assert changed.wait(DEFAULT_TIMEOUT_S), "the appliance stayed without recording on a mounted disk"
    finally:
        nvr.stop()


def test_nvr_run_exits_75_to_be_started_again_when_the_disk_comes(tmp_path, mounts, monkeypatch):
    """`nvr run` in this process, its disk plugged in once every part runs: it stops and exits with
    EXIT_RESTART, which systemd's Restart=always turns into a fresh start onto the disk."""
    import signal

    from appliance import cli
    from appliance.app import Appliance
    from support.web import free_port

    disk = tmp_path / "srv-nvr"
    disk.mkdir()
    config_file = tmp_path / "nvr.yaml"
    config_file.write_text(config_for(disk))
    start = Appliance.start

    def start_then_plug_the_disk_in(self):
        start(self)
        mounts.add(str(disk))

    monkeypatch.setattr(Appliance, "start", start_then_plug_the_disk_in)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        assert cli.main(["run", "--config", str(config_file), "--listen", f"127.0.0.1:{free_port()}"]) == cli.EXIT_RESTART
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert list(disk.iterdir()) == []  # it stopped before writing anything: the next start records there
