"""What the health page shows of the storage: retention's counters and the preview of days held."""
from __future__ import annotations

from appliance.config.model import parse_config
from appliance.supervisor import Supervisor
from base.clock import SimulatedClocks
from recorder.index import Segment

HOUR_US = 3_600_000_000


def test_the_health_status_carries_the_retention_preview_of_the_disk_and_each_channel(tmp_path):
    config = parse_config(f"storage: {{path: '{tmp_path}'}}\nchannels:\n"
                          "  - {id: 1, enabled: false, source: {type: test-pattern}, retention: {max_bytes: 1GiB}}\n")
    clocks = SimulatedClocks()
    sup = Supervisor(config, clocks=clocks, sync=False)
    sup.start()
    try:
        assert "not enough recorded yet" in sup.status()["retention"]["preview"]["sentence"]
        now_us = clocks.utc_now_us()
        run = sup.index.begin_run(channel=1, stream="main", start_us=now_us - HOUR_US, clock_source="arrival",
                                  codec="avc1", width=352, height=288, timescale=90_000)
        sup.index.add_segments(Segment(0, run.id, 1, "main", seq, now_us - HOUR_US + seq * 60_000_000,
                                       now_us - HOUR_US + (seq + 1) * 60_000_000, seq * 5_400_000, f"x/{seq}.mp4",
                                       1 << 20, 1500) for seq in range(60))  # 60 MiB an hour
        found = sup.status()["retention"]["preview"]
        assert found["bytes_per_day"] == 24 * 60 << 20
        assert found["days"] > 0 and found["sentence"].startswith("at today's rate this disk holds")
        channel = found["channels"]["1"]
        assert channel["days"] == min(found["days"], 0.7)  # 1 GiB at 1440 MiB a day, unless the disk holds less
    finally:
        sup.stop()
