"""The retention preview: days the disk and each channel hold at today's rate (real SQLite index)."""
from __future__ import annotations

import pytest

from hal.storage import DiskUsage
from recorder.index import Index, Segment
from recorder.retention import ChannelQuota, RetentionPolicy
from recorder.retention_preview import preview, recording_capacity

GB = 10**9
HOUR_US = 3_600_000_000


def _fill(index: Index, channel: int, *, start_us: int, hours: float, bytes_per_hour: int) -> None:
    """Rows of one-minute segments (the preview reads only the index, so no files are needed)."""
    run = index.begin_run(channel=channel, stream="main", start_us=start_us, clock_source="arrival", codec="avc1",
                          width=352, height=288, timescale=90_000)
    minutes = round(hours * 60)
    index.add_segments(Segment(0, run.id, channel, "main", seq, start_us + seq * 60_000_000,
                               start_us + (seq + 1) * 60_000_000, seq * 5_400_000, f"ch{channel:02d}/main/{run.id}-{seq}.mp4",
                               bytes_per_hour // 60, 1500) for seq in range(minutes))


@pytest.fixture
def index(tmp_path):
    index = Index(tmp_path)
    yield index
    index.close()


def test_a_disk_recording_a_gigabyte_a_day_per_channel_holds_its_capacity_over_that(index):
    now_us = 10 * 24 * HOUR_US
    for channel in (1, 2):  # two channels, 2 hours each at 1 GB a day
        _fill(index, channel, start_us=now_us - 2 * HOUR_US, hours=2, bytes_per_hour=GB // 24)
    recorded = index.totals()[1]
    usage = DiskUsage(total_bytes=110 * GB, used_bytes=recorded + 10 * GB, free_bytes=100 * GB - recorded)
    policy = RetentionPolicy(max_used_percent=90, min_free_bytes=GB)
    found = preview(index, usage=usage, policy=policy, now_us=now_us)
    # 90 % of 110 GB is 99 GB, less 10 GB of other files: 89 GB for recordings at 2 GB a day.
    assert found.capacity_bytes == pytest.approx(89 * GB, rel=1e-6)
    assert found.disk.bytes_per_day == pytest.approx(2 * GB, rel=1e-3)
    assert found.disk.days == pytest.approx(44.5, rel=1e-3) and found.disk.limited_by == "space"
    assert found.sentence() == "at today's rate this disk holds 44.5 days (limited by space)"
    assert found.channels[1].days == pytest.approx(44.5, rel=1e-3)


def test_a_channel_quota_and_ages_cap_the_days(index):
    now_us = 10 * 24 * HOUR_US
    for channel in (1, 2, 3):
        _fill(index, channel, start_us=now_us - HOUR_US, hours=1, bytes_per_hour=GB // 24)
    usage = DiskUsage(total_bytes=1000 * GB, used_bytes=0, free_bytes=1000 * GB)
    policy = RetentionPolicy(min_free_bytes=0, max_age_days=60, channels={
        1: ChannelQuota(max_bytes=5 * GB), 2: ChannelQuota(max_age_days=3)})
    found = preview(index, usage=usage, policy=policy, now_us=now_us)
    assert (found.disk.days, found.disk.limited_by) == (60, "age")  # 900 GB at 3 GB a day is 300 days
    assert found.channels[1].days == pytest.approx(5.0, rel=1e-3) and found.channels[1].limited_by == "quota"
    assert (found.channels[2].days, found.channels[2].limited_by) == (3, "age")
    assert (found.channels[3].days, found.channels[3].limited_by) == (60, "age")


def test_under_ten_minutes_of_recordings_there_is_no_rate_to_quote(index):
    now_us = 10 * 24 * HOUR_US
    _fill(index, 1, start_us=now_us - 5 * 60_000_000, hours=5 / 60, bytes_per_hour=GB)
    found = preview(index, usage=DiskUsage(100 * GB, 0, 100 * GB), policy=RetentionPolicy(), now_us=now_us)
    assert found.disk.days is None and found.channels[1].limited_by == "no rate yet"
    assert "not enough recorded yet" in found.sentence()


def test_only_the_last_day_sets_the_rate(index):
    now_us = 10 * 24 * HOUR_US
    _fill(index, 1, start_us=now_us - 48 * HOUR_US, hours=24, bytes_per_hour=10 * GB)  # a busy day before
    _fill(index, 1, start_us=now_us - 24 * HOUR_US, hours=24, bytes_per_hour=GB // 24)
    found = preview(index, usage=DiskUsage(1000 * GB, 0, 1000 * GB), policy=RetentionPolicy(min_free_bytes=0),
                    now_us=now_us)
    assert found.disk.bytes_per_day == pytest.approx(GB, rel=1e-3)


def test_the_space_the_bounds_leave_is_the_tighter_of_percent_and_free_bytes():
    usage = DiskUsage(total_bytes=100 * GB, used_bytes=50 * GB, free_bytes=50 * GB)
    assert recording_capacity(usage, RetentionPolicy(max_used_percent=90, min_free_bytes=GB), 40 * GB) == 80 * GB
    assert recording_capacity(usage, RetentionPolicy(max_used_percent=99, min_free_bytes=20 * GB), 40 * GB) == 70 * GB
