"""What the health page shows of the storage: retention's counters and the preview of days held."""
from __future__ import annotations

import errno

from appliance.config.model import parse_config
from appliance.disks import disk_row, make_disk_health, retention_policy
from appliance.supervisor import Supervisor
from appliance.web.api import disk_metrics
from base.clock import SimulatedClocks
from recorder.faults import FaultBoard
from recorder.index import Segment
from support.fake_smartctl import install

HOUR_US = 3_600_000_000


def test_the_health_status_carries_the_retention_preview_of_the_disk_and_each_channel(tmp_path):
    config = parse_config(f"storage: {{path: '{tmp_path}'}}\nchannels:\n"
                          "  - {id: 1, enabled: false, source: {type: test-pattern}, retention: {max_bytes: 1GiB}}\n")
    clocks = SimulatedClocks()
    sup = Supervisor(config, clocks=clocks, sync=False)
    sup.start()
    try:
        assert "not enough recorded yet" in sup.status()["disks"][0]["retention_preview"]["sentence"]
        now_us = clocks.utc_now_us()
        run = sup.index.begin_run(channel=1, stream="main", start_us=now_us - HOUR_US, clock_source="arrival",
                                  codec="avc1", width=352, height=288, timescale=90_000)
        sup.index.add_segments(Segment(0, run.id, 1, "main", seq, now_us - HOUR_US + seq * 60_000_000,
                                       now_us - HOUR_US + (seq + 1) * 60_000_000, seq * 5_400_000, f"x/{seq}.mp4",
                                       1 << 20, 1500) for seq in range(60))  # 60 MiB an hour
        disk = sup.status()["disks"][0]
        assert disk["role"] == "recordings" and disk["path"] == str(tmp_path) and disk["ok"]
        found = disk["retention_preview"]
        assert found["bytes_per_day"] == 24 * 60 << 20
        assert found["days"] > 0 and found["sentence"].startswith("at today's rate this disk holds")
        channel = found["channels"]["1"]
        assert channel["days"] == min(found["days"], 0.7)  # 1 GiB at 1440 MiB a day, unless the disk holds less
    finally:
        sup.stop()


def test_metrics_show_each_disks_space_writes_errors_and_smart_readings(tmp_path, monkeypatch):
    smartctl = install(tmp_path, monkeypatch)
    smartctl.serve("scrutiny-smart-fail2.json")
    config = parse_config(f"storage: {{path: '{tmp_path}', health: {{device: /dev/sdz}}}}\n")
    clocks = SimulatedClocks()
    watch = make_disk_health(config, tmp_path, faults=FaultBoard(clocks=clocks), clocks=clocks)
    watch.poll()
    watch.note_io_error(OSError(errno.EIO, "Input/output error"))
    row = disk_row(watch, index=None, policy=retention_policy(config), now_us=clocks.utc_now_us())
    text = "\n".join(disk_metrics([row]))
    labels = f'{{path="{tmp_path}",device="/dev/sdz"}}'
    for line in (f"nvr_disk_temperature_celsius{labels} 25", f"nvr_disk_pending_sectors{labels} 8",
                 f"nvr_disk_reallocated_sectors{labels} 1975", f"nvr_disk_io_errors_total{labels} 1",
                 f"nvr_disk_healthy{labels} 0", f"nvr_disk_power_on_hours{labels} 65592",
                 "# TYPE nvr_disk_io_errors_total counter"):
        assert line in text, line
    assert f"nvr_disk_free_bytes{labels} " in text
