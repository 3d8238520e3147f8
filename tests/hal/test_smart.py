"""S.M.A.R.T. through smartctl's JSON: real devices' reports parsed, hostile output refused clearly,
and smartctl run as a child (a fake one on the PATH: this VM has no disk that answers S.M.A.R.T.)."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from hal.smart import (MAX_JSON_DEPTH, MAX_OUTPUT_BYTES, SmartParseError, SmartUnavailable, parse_smartctl_json,
                       probe, read_smart, smartctl_command)
from hal.storage import block_device_of, mount_of, whole_disk

SAMPLES = Path(__file__).parent / "data" / "smartctl"  # where each came from: README.md there


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_a_healthy_sata_disk_behind_a_sat_bridge():
    report = parse_smartctl_json(sample("scrutiny-smart-ata.json"))
    assert (report.model, report.serial, report.capacity_bytes) == ("WDC WD140EDFZ-11A0VA0", "9RK1XXXX", 14000519643136)
    assert (report.device, report.device_type, report.protocol) == ("/dev/sdb", "sat", "ATA")
    assert (report.health, report.temperature_c, report.power_on_hours) == ("passed", 32, 1730)
    assert (report.reallocated_sectors, report.pending_sectors, report.uncorrectable_sectors) == (0, 0, 0)
    assert not report.failing and report.has_data


def test_a_failing_disk_in_a_usb_enclosure_says_so_with_its_bad_sectors():
    report = parse_smartctl_json(sample("scrutiny-smart-fail2.json"))
    assert report.health == "failing" and report.passed is False and report.exit_status == 216
    assert (report.reallocated_sectors, report.pending_sectors, report.uncorrectable_sectors) == (1975, 8, 0)
    assert (report.temperature_c, report.power_on_hours, report.device_type) == (25, 65592, "usbjmicron")


def test_vendor_packed_raw_values_are_read_as_smartctl_decodes_them():
    report = parse_smartctl_json(sample("scrutiny-smart-sat.json"))
    assert report.temperature_c == 29  # attribute 194's raw value is 77309411357, packed min/max
    assert report.power_on_hours is None  # attribute 9 is vendor-packed; without power_on_time it is not guessed
    assert (report.reallocated_sectors, report.pending_sectors, report.uncorrectable_sectors) == (0, 0, 0)
    assert report.health == "unknown"  # -A only: no overall verdict


def test_an_nvme_disk_reports_media_errors_as_uncorrectable():
    report = parse_smartctl_json(sample("scrutiny-smart-nvme.json"))
    assert (report.model, report.health, report.temperature_c, report.power_on_hours) == (
        "INTEL SSDPEKNW010T8", "passed", 36, 2401)
    assert (report.uncorrectable_sectors, report.pending_sectors) == (0, None)


def test_a_sas_disk_reports_its_grown_defects_and_uncorrected_errors():
    report = parse_smartctl_json(sample("scrutiny-smart-scsi.json"))
    assert report.model == "SEAGATE ST4000NM0043" and report.health == "passed" and report.temperature_c == 34
    assert report.reallocated_sectors == 56 and report.uncorrectable_sectors == 0  # grown defects; read+write uncorrected


def test_a_device_smartctl_cannot_identify_is_a_report_without_data_not_an_error():
    report = parse_smartctl_json(sample("debian-smartctl73-virtio-vda.json"), device="/dev/vda")
    assert report.device == "/dev/vda" and not report.has_data and report.health == "unknown"
    assert report.messages == ("/dev/vda: Unable to detect device type",) and report.exit_status == 1
    silent = parse_smartctl_json(sample("debian-smartctl73-loop-sat.json"))
    assert (silent.device_type, silent.exit_status, silent.has_data) == ("sat", 2, False)


def test_a_sleeping_disk_is_reported_asleep():
    out = {"smartctl": {"exit_status": 2, "messages": [{"string": "Device is in STANDBY mode, exit(2)",
                                                        "severity": "information"}]}}
    report = parse_smartctl_json(json.dumps(out).encode(), device="/dev/sda")
    assert report.asleep and report.health == "standby" and not report.failing


@pytest.mark.parametrize("data, says", [
    (b"", "empty output"),
    (b'{"smartctl": {"exit_status": 0}, "device": {"na', "not JSON"),
    (sample("scrutiny-smart-ata.json")[:5000], "not JSON"),
    (b"\xff\xfe garbage", "not UTF-8"),
    (b"[1, 2]", "a list, expected an object"),
    (b'{"model_name": "x"}', "neither a smartctl nor a device object"),
    (b'{"smartctl": 3, "device": []}', "neither a smartctl nor a device object"),
    (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "nests deeper"),
    (b"[" * 100_000, "nests deeper"),
    (b'{"smartctl": {"exit_status": ' + b"9" * 5000 + b"}}", "not JSON"),
    (b" " * (MAX_OUTPUT_BYTES + 1), "more than the"),
])
def test_truncated_huge_or_garbage_output_is_a_clear_error(data, says):
    with pytest.raises(SmartParseError, match=says):
        parse_smartctl_json(data)


def test_fields_of_the_wrong_type_or_out_of_range_are_absent_not_trusted():
    out = {"smartctl": {"exit_status": 0, "messages": "x"}, "model_name": 7, "serial_number": "A\x00B",
           "smart_status": {"passed": "yes"}, "temperature": {"current": 900}, "power_on_time": {"hours": -5},
           "ata_smart_attributes": {"table": [{"id": 5, "raw": {"value": -1, "string": "x"}}, "junk",
                                              {"id": 197, "raw": {"string": "3 (pending)"}}]}}
    report = parse_smartctl_json(json.dumps(out).encode())
    assert (report.model, report.serial, report.passed, report.temperature_c, report.power_on_hours) == (
        None, "A?B", None, None, None)
    assert (report.reallocated_sectors, report.pending_sectors, report.messages) == (None, 3, ())


def test_strings_holding_brackets_do_not_count_as_nesting():
    out = {"smartctl": {"exit_status": 0}, "model_name": "[" * 100 + "{" * 100}
    assert parse_smartctl_json(json.dumps(out).encode()).model == ("[" * 100 + "{" * 100)[:200]


# --- running smartctl: a fake one on the PATH ---------------------------------------------------------


def fake_smartctl(folder: Path, script: str) -> str:
    path = folder / "smartctl"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_the_command_asks_for_json_and_never_wakes_a_sleeping_disk():
    assert smartctl_command("/dev/sda") == ["smartctl", "--json", "-a", "-n", "standby", "/dev/sda"]
    assert smartctl_command("/dev/sdb", device_type="sat")[-3:] == ["-d", "sat", "/dev/sdb"]
    with pytest.raises(ValueError, match="unknown smartctl device type"):
        smartctl_command("/dev/sda", device_type="sat; reboot")


def test_read_smart_runs_smartctl_and_keeps_its_exit_status_in_the_report(tmp_path):
    exe = fake_smartctl(tmp_path, f'echo "$@" > {tmp_path}/argv\ncat {SAMPLES}/scrutiny-smart-fail2.json\nexit 216\n')
    report = read_smart("/dev/sdc", smartctl=exe)
    assert report.health == "failing"
    assert (tmp_path / "argv").read_text().split() == ["--json", "-a", "-n", "standby", "/dev/sdc"]


def test_a_usb_bridge_that_needs_sat_gets_a_second_try_with_it(tmp_path):
    exe = fake_smartctl(tmp_path, f'echo "$@" >> {tmp_path}/calls\n'
                                  f'case "$*" in *"-d sat"*) cat {SAMPLES}/scrutiny-smart-ata.json ;;\n'
                                  f'*) cat {SAMPLES}/debian-smartctl73-virtio-vda.json; exit 1 ;; esac\n')
    report = probe("/dev/sdb", smartctl=exe)
    assert report.model == "WDC WD140EDFZ-11A0VA0"
    assert [line.split()[-3:] for line in (tmp_path / "calls").read_text().splitlines()] == [
        ["-n", "standby", "/dev/sdb"], ["-d", "sat", "/dev/sdb"]]


def test_a_missing_hung_or_flooding_smartctl_is_a_clear_error(tmp_path):
    with pytest.raises(SmartUnavailable, match="install smartmontools"):
        read_smart("/dev/sda", smartctl=str(tmp_path / "no-such-smartctl"))
    hung = fake_smartctl(tmp_path, "exec sleep 30\n")
    with pytest.raises(SmartUnavailable, match="did not finish within 0.5 s"):
        read_smart("/dev/sda", smartctl=hung, timeout_s=0.5)
    flood = fake_smartctl(tmp_path, "exec yes\n")
    with pytest.raises(SmartParseError, match="more than the"):
        read_smart("/dev/sda", smartctl=flood)


def test_real_smartctl_on_this_machine_gives_a_report_or_a_clear_error():
    """Debian's smartctl (TEST_DEBS) on the disk holding this tree: a VM's virtio disk answers no
    S.M.A.R.T., which must come back as a report without data."""
    device = block_device_of(__file__)
    if device is None or not os.path.exists("/usr/sbin/smartctl"):
        pytest.skip("no block device under this tree, or smartmontools is not installed (./dev installs it)")
    report = read_smart(device, smartctl="/usr/sbin/smartctl")
    assert report.device == device and (report.has_data or report.messages)


# --- which disk holds a folder ------------------------------------------------------------------------


def test_the_mount_table_names_the_longest_mount_point_and_its_device(tmp_path):
    table = tmp_path / "mountinfo"
    table.write_text("22 1 254:0 / / rw - ext4 /dev/vda rw\n"
                     "40 22 8:17 / /srv/nvr\\040data rw - ext4 /dev/sdb1 rw\n"
                     "41 22 0:50 / /srv/nvr rw - tmpfs tmpfs rw\n")
    assert mount_of("/srv/nvr data/ch01", mountinfo=table) == ("/srv/nvr data", "8:17")
    assert mount_of("/srv/nvr/x", mountinfo=table) == ("/srv/nvr", "0:50")
    assert mount_of("/srv/nvrx", mountinfo=table) == ("/", "254:0")


def test_a_partition_resolves_to_its_whole_disk_through_sysfs(tmp_path):
    disk = tmp_path / "devices" / "sdb"
    (disk / "sdb1").mkdir(parents=True)
    (disk / "sdb1" / "partition").write_text("1\n")
    links = tmp_path / "dev-block"
    links.mkdir()
    (links / "8:17").symlink_to(disk / "sdb1")
    (links / "8:16").symlink_to(disk)
    assert whole_disk("8:17", sys_dev_block=links) == "/dev/sdb"
    assert whole_disk("8:16", sys_dev_block=links) == "/dev/sdb"
    assert whole_disk("0:50", sys_dev_block=links) is None
