"""Retention keeps the disk under its bounds, oldest unlocked first, and spares locked segments."""
from __future__ import annotations

import os
import subprocess

import pytest

from hal.storage import DiskUsage
from recorder.faults import FaultBoard
from recorder.index import Index
from recorder.retention import ChannelQuota, Retention, RetentionPolicy
from support.recording import decoded_frames, make_segmenter, record


class FakeDisk:
    """A disk of `total_bytes` whose use is the segment files under root plus `other_bytes`."""

    def __init__(self, root, total_bytes, other_bytes=0):
        self.root, self.total, self.other = root, total_bytes, other_bytes

    def __call__(self, _path):
        used = self.other + sum(p.stat().st_size for p in self.root.glob("ch*/*/*.mp4"))
        return DiskUsage(self.total, used, max(self.total - used, 0))


@pytest.fixture
def recorded(tmp_path, clocks):
    """Two channels, 5 segments each (4 s apiece), one run per channel."""
    index = Index(tmp_path)
    for channel in (1, 2):
        record(make_segmenter(tmp_path, index, clocks, channel=channel), clocks, seconds=19.9, channel=channel)
    yield tmp_path, index
    index.close()


def _retention(root, index, clocks, usage, **policy):
    faults = FaultBoard(clocks=clocks)
    r = Retention(root=root, index=index, clocks=clocks, faults=faults, policy=RetentionPolicy(**policy),
                  usage=usage, sync=False)
    return r, faults


def test_within_bounds_nothing_is_deleted(recorded, clocks):
    root, index = recorded
    r, _ = _retention(root, index, clocks, FakeDisk(root, 10**9), max_used_percent=90, min_free_bytes=0)
    r.enforce()
    assert len(index.segments()) == 10 and r.stats.deleted_segments == 0


def test_over_the_percentage_the_oldest_segments_of_all_channels_go_first(recorded, clocks):
    root, index = recorded
    before = index.segments()
    total = sum(s.bytes for s in before)
    disk = FakeDisk(root, total_bytes=total * 2, other_bytes=total // 2)  # 75 % used
    r, _ = _retention(root, index, clocks, disk, max_used_percent=60, min_free_bytes=0, locked_floor_bytes=0)
    r.enforce()
    after = index.segments()
    assert disk(root).used_percent <= 60
    gone = sorted({s.path for s in before} - {s.path for s in after})
    oldest_first = [s.path for s in sorted(before, key=lambda s: s.start_us)][: len(gone)]
    assert gone == sorted(oldest_first)
    assert all(not (root / p).exists() for p in gone)


def test_min_free_bytes_is_kept(recorded, clocks):
    root, index = recorded
    total = sum(s.bytes for s in index.segments())
    disk = FakeDisk(root, total_bytes=total + 1000)
    r, _ = _retention(root, index, clocks, disk, max_used_percent=99, min_free_bytes=total // 3, locked_floor_bytes=0)
    r.enforce()
    assert disk(root).free_bytes >= total // 3


def test_locked_segments_are_spared_while_the_disk_is_above_the_floor(recorded, clocks):
    root, index = recorded
    oldest = sorted(index.segments(), key=lambda s: s.start_us)[:3]
    index.set_locked([s.id for s in oldest], True)
    disk = FakeDisk(root, total_bytes=sum(s.bytes for s in index.segments()) * 10, other_bytes=0)
    disk.other = disk.total  # the disk is full of something else: every bound is broken
    r, faults = _retention(root, index, clocks, disk, max_used_percent=50, min_free_bytes=0, locked_floor_bytes=0)
    r.enforce()
    assert {s.path for s in index.segments()} == {s.path for s in oldest}
    assert all((root / s.path).exists() for s in oldest)
    assert [a.kind for a in faults.active()] == ["disk_full"]


def test_below_the_floor_the_oldest_locked_segment_goes_and_an_alarm_says_so(recorded, clocks):
    root, index = recorded
    segs = sorted(index.segments(), key=lambda s: s.start_us)
    index.set_locked([s.id for s in segs], True)
    files = sum(s.bytes for s in segs)
    disk = FakeDisk(root, total_bytes=files + 1000)
    r, faults = _retention(root, index, clocks, disk, max_used_percent=99, min_free_bytes=segs[0].bytes + 2000,
                           locked_floor_bytes=segs[0].bytes)
    r.enforce()
    remaining = index.segments()
    assert segs[0].path not in {s.path for s in remaining}
    assert len(remaining) == len(segs) - 1
    assert "retention_locked" in [a.kind for a in faults.active()]


def test_segments_older_than_max_age_go_even_with_free_space(recorded, clocks):
    root, index = recorded
    clocks.advance(86400 * 2)
    record(make_segmenter(root, index, clocks, channel=3), clocks, seconds=4.5, channel=3)
    r, _ = _retention(root, index, clocks, FakeDisk(root, 10**12), max_age_days=1.5, min_free_bytes=0)
    r.enforce()
    assert {s.channel for s in index.segments()} == {3}


def test_a_failing_disk_raises_an_alarm_instead_of_an_exception(recorded, clocks):
    root, index = recorded

    def broken(_path):
        raise OSError(5, "Input/output error")

    r, faults = _retention(root, index, clocks, broken)
    r.enforce()
    assert [a.kind for a in faults.active()] == ["disk_error"]


# A real full disk: a small tmpfs, filled to the last byte by a balloon file.


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_on_a_disk_filled_to_100_percent_by_recordings_recording_goes_on_and_locked_segments_survive(small_disk, clocks):
    index = Index(small_disk)
    faults = FaultBoard(clocks=clocks)
    # First fill the disk to the last byte with recordings, retention off; the first three segments are
    # locked on the way (once the disk is full to the last byte, even the index cannot change a row).
    filler = make_segmenter(small_disk, index, clocks, segment_seconds=2, faults=faults)
    record(filler, clocks, seconds=8)
    locked = index.segments()[:3]
    index.set_locked([s.id for s in locked], True)
    record(filler, clocks, seconds=400)
    assert os.statvfs(small_disk).f_bavail == 0 and filler.stats.frames_lost > 0
    locked = [s for s in index.segments() if s.id in {seg.id for seg in locked}]

    retention = Retention(root=small_disk, index=index, clocks=clocks, faults=faults, sync=True,
                          policy=RetentionPolicy(max_used_percent=95, min_free_bytes=100_000, locked_floor_bytes=20_000))
    seg = make_segmenter(small_disk, index, clocks, segment_seconds=2, faults=faults, free_space=retention.enforce)
    pushed = record(seg, clocks, seconds=60)

    rows = index.segments()
    assert all((small_disk / s.path).exists() for s in locked)
    assert {s.path for s in locked} <= {s.path for s in rows}
    assert retention.stats.deleted_segments > 0 and retention.stats.deleted_locked == 0
    assert rows[-1].end_us >= clocks.utc_now_us() - 2_500_000  # still recording at the end
    assert seg.stats.frames_lost == 0 and seg.stats.frames_recorded == pushed
    for row in rows:
        assert decoded_frames(small_disk / row.path) == row.frames
    index.close()


# Channel quotas and the events' own age (real SQLite, real segment files).


def _channel_file_bytes(root, channel):
    return sum(p.stat().st_size for p in root.glob(f"ch{channel:02d}/*/*.mp4"))


def test_a_channel_with_max_bytes_never_holds_more_than_its_quota_give_or_take_one_segment(tmp_path, clocks):
    index = Index(tmp_path)
    record(make_segmenter(tmp_path, index, clocks, channel=2, segment_seconds=2), clocks, seconds=20, channel=2)
    channel_2 = index.segments(channel=2)
    quota_bytes = 150_000  # about three 2-second segments of the 200 kbit/s pattern
    policy = RetentionPolicy(min_free_bytes=0, channels={1: ChannelQuota(max_bytes=quota_bytes)})
    r = Retention(root=tmp_path, index=index, clocks=clocks, faults=FaultBoard(clocks=clocks), policy=policy,
                  usage=FakeDisk(tmp_path, 10**12), sync=False)
    seen = []

    def retention_pass(count, _packet):  # a pass every second of recording, as the periodic loop would
        if count % 25 == 0:
            r.enforce()
            seen.append((_channel_file_bytes(tmp_path, 1), index.channel_bytes(1)))

    record(make_segmenter(tmp_path, index, clocks, channel=1, segment_seconds=2), clocks, seconds=60,
           on_packet=retention_pass)
    r.enforce()
    largest = max(s.bytes for s in index.segments(channel=1))
    assert r.stats.deleted_for_quota > 10
    assert all(indexed <= quota_bytes for _, indexed in seen)
    assert max(on_disk for on_disk, _ in seen) <= quota_bytes + largest  # the open segment on top
    assert _channel_file_bytes(tmp_path, 1) == index.channel_bytes(1) <= quota_bytes
    kept = index.segments(channel=1)
    assert kept[-1].end_us >= clocks.utc_now_us() - 2_500_000  # the newest are the ones kept
    assert index.segments(channel=2) == channel_2  # the other channel's recordings are untouched
    for seg in kept:
        assert decoded_frames(tmp_path / seg.path) == seg.frames
    index.close()


def test_locked_event_recordings_outlive_the_quota_and_go_at_their_own_age(tmp_path, clocks):
    index = Index(tmp_path)
    seg = make_segmenter(tmp_path, index, clocks, channel=1, segment_seconds=2)
    start_us = clocks.utc_now_us()
    event = index.add_event(start_us=start_us, trigger_us=start_us, source="alarm_input:door", channels=[1], locked=True)
    record(seg, clocks, seconds=6)
    index.end_event(event.id, end_us=clocks.utc_now_us())
    locked = index.segments(channel=1)
    assert locked and all(s.locked for s in locked)
    record(seg, clocks, seconds=20)
    policy = RetentionPolicy(min_free_bytes=0, events_max_age_days=30,
                             channels={1: ChannelQuota(max_bytes=100_000, events_max_age_days=2)})
    r = Retention(root=tmp_path, index=index, clocks=clocks, faults=FaultBoard(clocks=clocks), policy=policy,
                  usage=FakeDisk(tmp_path, 10**12), sync=False)
    r.enforce()
    assert index.channel_bytes(1) <= 100_000
    assert {s.path for s in locked} <= {s.path for s in index.segments(channel=1)}  # beyond the quota
    assert index.channel_bytes(1, locked=True) == sum(s.bytes for s in locked)
    clocks.advance(86_400 * 1.9)
    r.enforce()
    assert {s.path for s in locked} <= {s.path for s in index.segments(channel=1)}
    clocks.advance(86_400 * 0.2)  # past the channel's own events age (2 days), far short of the disk's 30
    r.enforce()
    assert not any(s.locked for s in index.segments(channel=1)) and r.stats.deleted_events_by_age == len(locked)
    assert all(not (tmp_path / s.path).exists() for s in locked)
    index.close()


def test_a_channels_own_max_age_applies_to_it_alone(tmp_path, clocks):
    index = Index(tmp_path)
    for channel in (1, 2):
        record(make_segmenter(tmp_path, index, clocks, channel=channel), clocks, seconds=8, channel=channel)
    clocks.advance(86_400 * 1.5)
    policy = RetentionPolicy(min_free_bytes=0, channels={1: ChannelQuota(max_age_days=1)})
    r = Retention(root=tmp_path, index=index, clocks=clocks, faults=FaultBoard(clocks=clocks), policy=policy,
                  usage=FakeDisk(tmp_path, 10**12), sync=False)
    r.enforce()
    assert {s.channel for s in index.segments()} == {2}
    index.close()
