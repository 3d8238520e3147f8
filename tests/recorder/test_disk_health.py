"""The disk health watch: S.M.A.R.T. read through a fake smartctl on the PATH (serving real devices'
reports, tests/hal/data/smartctl), polled on simulated clocks, and the faults it raises and clears."""
from __future__ import annotations

import errno

import pytest

from hal.smart import probe
from recorder.disk_health import DiskHealthWatch
from recorder.disk_set import RETRY_S
from recorder.faults import FaultBoard
from support.fake_smartctl import install
from support.waiting import wait_for

@pytest.fixture
def smartctl(tmp_path, monkeypatch):
    return install(tmp_path, monkeypatch)


def watch_for(tmp_path, clocks, **options):
    faults = FaultBoard(clocks=clocks)
    watch = DiskHealthWatch(root=tmp_path, faults=faults, clocks=clocks, read=probe, device="/dev/sdz", **options)
    return watch, faults


def kinds(faults: FaultBoard) -> set[str]:
    return {f.kind for f in faults.active()}


def test_a_healthy_disk_raises_nothing_and_shows_what_it_is(tmp_path, clocks, smartctl):
    watch, faults = watch_for(tmp_path, clocks)
    watch.poll()
    assert kinds(faults) == set()
    stats = watch.statistics()
    assert (stats["model"], stats["serial"], stats["health"], stats["temperature_c"]) == (
        "WDC WD140EDFZ-11A0VA0", "9RK1XXXX", "passed", 32)
    assert stats["device"] == "/dev/sdz" and stats["free_bytes"] > 0 and stats["io_errors"] == 0
    assert smartctl.calls == ["--json -a -n standby /dev/sdz"]  # never wakes a sleeping disk


def test_a_failing_disk_raises_disk_failing_and_disk_errors_and_a_recovered_reading_clears_failing(
        tmp_path, clocks, smartctl):
    watch, faults = watch_for(tmp_path, clocks)
    watch.poll()
    smartctl.serve("scrutiny-smart-fail2.json")
    watch.poll()
    assert kinds(faults) == {"disk_failing", "disk_errors"}
    messages = {f.kind: f.message for f in faults.active()}
    assert "overall health FAILED" in messages["disk_failing"] and "Hitachi HDS721050DLE630" in messages["disk_failing"]
    assert "8 sector(s) pending" in messages["disk_errors"] and "1975 sector(s) reallocated" in messages["disk_errors"]
    smartctl.serve("scrutiny-smart-ata.json")
    watch.poll()
    assert kinds(faults) == set()


def test_reallocated_sectors_count_as_errors_only_when_they_grow(tmp_path, clocks, smartctl):
    smartctl.serve("scrutiny-smart-scsi.json")  # 56 grown defects, long before this recorder started
    watch, faults = watch_for(tmp_path, clocks)
    watch.poll()
    assert kinds(faults) == set()
    smartctl.serve("scrutiny-smart-scsi.json", scsi_grown_defect_list=60)
    watch.poll()
    assert kinds(faults) == {"disk_errors"} and "4 sector(s) reallocated" in faults.active()[0].message


def test_disk_hot_is_raised_at_the_limit_and_cleared_three_degrees_below(tmp_path, clocks, smartctl):
    watch, faults = watch_for(tmp_path, clocks, max_temperature_c=50)
    for temperature, hot in ((49, False), (50, True), (48, True), (47, False)):
        smartctl.serve("scrutiny-smart-ata.json", temperature={"current": temperature})
        watch.poll()
        assert ("disk_hot" in kinds(faults)) is hot, temperature


def test_a_sleeping_disk_is_left_alone_and_keeps_its_last_reading(tmp_path, clocks, smartctl):
    watch, faults = watch_for(tmp_path, clocks)
    watch.poll()
    smartctl.serve_standby()
    watch.poll()
    stats = watch.statistics()
    assert stats["asleep"] and stats["health"] == "passed (standby now)" and stats["temperature_c"] == 32
    assert kinds(faults) == set() and watch.polls == 2


def test_a_disk_without_smart_or_without_smartctl_raises_nothing_and_says_why(tmp_path, clocks, smartctl, monkeypatch):
    smartctl.serve("debian-smartctl73-virtio-vda.json")
    watch, faults = watch_for(tmp_path, clocks)
    watch.poll()
    assert kinds(faults) == set() and "Unable to detect device type" in watch.statistics()["smart_error"]
    assert len(smartctl.calls) == 2 and smartctl.calls[1].endswith("-d sat /dev/sdz")  # the USB bridge retry
    monkeypatch.setenv("PATH", "/nonexistent")
    watch.poll()
    assert kinds(faults) == set() and "install smartmontools" in watch.statistics()["smart_error"]


def test_io_errors_from_the_writer_raise_disk_errors_until_restart_and_a_full_disk_does_not(tmp_path, clocks, smartctl):
    watch, faults = watch_for(tmp_path, clocks)
    watch.note_io_error(OSError(errno.ENOSPC, "No space left on device"))
    assert kinds(faults) == set() and watch.io_errors == 0
    watch.note_io_error(OSError(errno.EIO, "Input/output error"))
    assert kinds(faults) == {"disk_errors"} and "1 I/O error(s)" in faults.active()[0].message
    watch.poll()  # a clean S.M.A.R.T. reading does not make the I/O error go away
    assert kinds(faults) == {"disk_errors"} and watch.statistics()["io_errors"] == 1


def test_io_errors_stop_raising_disk_errors_once_the_disk_is_back_and_written_but_bad_sectors_do_not(
        tmp_path, clocks, smartctl):
    watch, faults = watch_for(tmp_path, clocks, label="Bay 1")
    watch.poll()
    watch.note_io_error(OSError(errno.EIO, "Input/output error"))
    [fault] = faults.active()
    assert (fault.kind, fault.disk) == ("disk_errors", "Bay 1")
    assert fault.message.startswith("Bay 1 (/dev/sdz, WDC WD140EDFZ-11A0VA0 9RK1XXXX): 1 I/O error(s)")
    watch.io_recovered()
    assert kinds(faults) == set() and watch.statistics()["io_errors"] == 1  # still counted
    watch.note_io_error(OSError(errno.EROFS, "Read-only file system"))  # a new error raises it again
    assert "1 I/O error(s)" in faults.active()[0].message
    watch.io_recovered()
    smartctl.serve("scrutiny-smart-fail2.json")  # pending sectors: not the writer's errors, they stay
    watch.poll()
    watch.io_recovered()
    [errors] = [f for f in faults.active() if f.kind == "disk_errors"]
    assert "sector(s) pending" in errors.message and "I/O error" not in errors.message


def test_the_watch_polls_on_its_own_thread_at_its_interval_of_the_injected_clock(tmp_path, clocks, smartctl):
    watch, faults = watch_for(tmp_path, clocks, interval_s=1800)
    watch.start()
    try:
        wait_for(lambda: watch.polls == 1, what="the first reading at start")
        smartctl.serve("scrutiny-smart-fail2.json")
        clocks.advance(1799)
        clocks.advance(1)
        wait_for(lambda: "disk_failing" in kinds(faults), what="the second reading, half an hour later")
        assert watch.polls == 2 and len(smartctl.calls) == 2
    finally:
        watch.stop()


def test_with_one_disk_a_synced_write_after_retry_s_clears_the_io_errors_and_a_failing_one_keeps_them(
        tmp_path, clocks, smartctl):
    disk = tmp_path / "disk"
    disk.mkdir()
    watch, faults = watch_for(disk, clocks)
    assert watch.recheck_writes() is False and watch.write_checks == 0  # nothing standing: nothing written
    watch.note_io_error(OSError(errno.EIO, "Input/output error"))
    assert watch.recheck_writes() is False and watch.write_checks == 0  # not before RETRY_S
    clocks.advance(RETRY_S)
    assert watch.recheck_writes() is True and kinds(faults) == set() and watch.write_checks == 1
    assert list(disk.iterdir()) == []  # the test block is removed
    assert watch.statistics()["io_errors"] == 1  # still counted

    gone = tmp_path / "unplugged"  # a disk that still cannot be written
    watch, faults = watch_for(gone, clocks)
    watch.note_io_error(OSError(errno.EROFS, "Read-only file system"))
    clocks.advance(RETRY_S)
    assert watch.recheck_writes() is False and kinds(faults) == {"disk_errors"} and watch.write_checks == 1
    clocks.advance(RETRY_S / 2)
    assert watch.recheck_writes() is False and watch.write_checks == 1  # the next try RETRY_S after the failed one
    gone.mkdir()  # it works again
    clocks.advance(RETRY_S / 2)
    assert watch.recheck_writes() is True and kinds(faults) == set() and watch.write_checks == 2
