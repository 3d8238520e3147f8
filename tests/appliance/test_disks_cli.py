"""`nvr disks [--json]` as an installer runs it: the real command in a subprocess, a fake smartctl on the
PATH serving real devices' reports, and an index with an hour of recordings for the preview."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recorder.index import Index, Segment
from support.fake_smartctl import install

HOUR_US = 3_600_000_000
MIB = 1 << 20


def nvr(*args: str | Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("nvr")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "appliance.cli"]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def setup(tmp_path, monkeypatch):
    smartctl = install(tmp_path, monkeypatch)
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "nvr.yaml"
    config.write_text(f"storage: {{path: '{data}', health: {{device: /dev/sdz}}}}\nchannels:\n"
                      "  - {id: 1, source: {type: test-pattern}, retention: {max_bytes: 1GiB}}\n"
                      "  - {id: 2, source: {type: test-pattern}}\n")
    return smartctl, data, config


def record_an_hour(data: Path) -> None:
    """An hour of two channels ending now (real time: the command reads the real clock), 60 MiB each."""
    now_us = time.time_ns() // 1000
    index = Index(data)
    try:
        for channel in (1, 2):
            run = index.begin_run(channel=channel, stream="main", start_us=now_us - HOUR_US, clock_source="arrival",
                                  codec="avc1", width=352, height=288, timescale=90_000)
            index.add_segments(Segment(0, run.id, channel, "main", seq, now_us - HOUR_US + seq * 60_000_000,
                                       now_us - HOUR_US + (seq + 1) * 60_000_000, seq * 5_400_000,
                                       f"ch{channel:02d}/main/{run.id}-{seq}.mp4", MIB, 1500) for seq in range(60))
    finally:
        index.close()


def test_disks_json_lists_model_serial_size_health_temperature_role_space_and_the_preview(setup):
    smartctl, data, config = setup
    record_an_hour(data)
    done = nvr("disks", "--json", "--config", config)
    assert done.returncode == 0, done.stderr
    disk = json.loads(done.stdout)["disks"][0]
    assert (disk["path"], disk["role"], disk["device"]) == (str(data), "recordings", "/dev/sdz")
    assert (disk["model"], disk["serial"], disk["capacity_bytes"]) == ("WDC WD140EDFZ-11A0VA0", "9RK1XXXX", 14000519643136)
    assert (disk["health"], disk["temperature_c"], disk["power_on_hours"]) == ("passed", 32, 1730)
    assert disk["free_bytes"] > 0 and disk["total_bytes"] >= disk["free_bytes"] and disk["io_errors"] == 0
    preview = disk["retention_preview"]
    assert preview["bytes_per_day"] == pytest.approx(2 * 60 * 24 * MIB, rel=0.01)
    assert preview["days"] > 0 and preview["sentence"].startswith("at today's rate this disk holds")
    assert preview["channels"]["1"]["days"] == min(preview["days"], round(1024 / (60 * 24), 1))
    assert smartctl.calls == ["--json -a -n standby /dev/sdz"]


def test_disks_text_is_for_people_and_a_failing_disk_exits_1(setup):
    smartctl, data, config = setup
    record_an_hour(data)
    done = nvr("disks", "--config", config)
    assert done.returncode == 0, done.stderr
    for words in ("(recordings)", "/dev/sdz  WDC WD140EDFZ-11A0VA0 9RK1XXXX", "health       passed",
                  "temperature  32 °C", "at today's rate this disk holds", "channel   1"):
        assert words in done.stdout, (words, done.stdout)
    smartctl.serve("scrutiny-smart-fail2.json")
    done = nvr("disks", "--config", config)
    assert done.returncode == 1 and "health       failing" in done.stdout
    assert "pending 8" in done.stdout and "reallocated 1975" in done.stdout


def test_a_disk_with_no_recordings_and_no_smart_is_listed_with_what_is_known(setup):
    smartctl, data, config = setup
    smartctl.serve("debian-smartctl73-virtio-vda.json")
    done = nvr("disks", "--config", config)
    assert done.returncode == 0, done.stderr
    assert "health       unknown  (/dev/vda: Unable to detect device type)" in done.stdout
    assert "no recordings indexed here yet" in done.stdout


def test_several_disks_are_listed_each_with_its_label_state_and_health_and_nothing_is_written(setup, tmp_path):
    from recorder.disk_set import write_identity

    smartctl, data, config = setup
    a, b = tmp_path / "bay1", tmp_path / "bay2"
    a.mkdir(), b.mkdir()
    identity = write_identity(a, "Bay 1")
    index = Index(data)
    index.add_disk(uuid=identity.uuid, label="Bay 1", path=str(a), added_us=0)
    index.close()
    config.write_text(f"storage:\n  path: '{data}'\n  disks: [{{path: '{a}', label: Bay 1}}, {{path: '{b}', label: Bay 2}}]\n")
    done = nvr("disks", "--json", "--config", config)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["disks"]
    assert [(r["role"], r.get("label"), r.get("state")) for r in rows] == [
        ("index", None, None), ("recordings", "Bay 1", "ok"), ("recordings", "Bay 2", "away")]
    assert rows[1]["uuid"] == identity.uuid and rows[1]["model"] == "WDC WD140EDFZ-11A0VA0"
    assert "not mounted" in rows[2]["error"] and list(b.iterdir()) == []  # `nvr disks` writes nothing
    text = nvr("disks", "--config", config).stdout
    assert f"Bay 2: {b}  (recordings)  [away]" in text


def test_a_disk_made_by_init_is_listed_as_usable_and_one_with_another_recorders_files_as_foreign(setup, tmp_path):
    from recorder.disk_set import write_identity

    smartctl, data, config = setup
    known, made, theirs = tmp_path / "known", tmp_path / "made", tmp_path / "theirs"
    for folder in (known, made, theirs):
        folder.mkdir()
    index = Index(data)
    index.add_disk(uuid=write_identity(known, "Known").uuid, label="Known", path=str(known), added_us=0)
    index.close()
    write_identity(made, "Made", initialised=True)
    write_identity(theirs, "Theirs", initialised=True)
    (theirs / "ch01").mkdir()
    config.write_text(f"storage:\n  path: '{data}'\n  disks: [{{path: '{known}', label: Known}}, "
                      f"{{path: '{made}', label: Made}}, {{path: '{theirs}', label: Theirs}}]\n")
    done = nvr("disks", "--json", "--config", config)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["disks"]
    assert [(r.get("label"), r.get("state")) for r in rows[1:]] == [("Known", "ok"), ("Made", "ok"), ("Theirs", "foreign")]
    assert "holds files ('ch01')" in rows[3]["error"]
