"""Wall-clock steps (NTP sync on a board without RTC, a DST bug) never reorder, overlap or overwrite."""
from __future__ import annotations

import pytest

from support.recording import decoded_frames, make_segmenter, record


def _jump_at(clocks, packet_number, seconds):
    def hook(n, packet):
        if n == packet_number:
            clocks.jump_wall(seconds)
    return hook


def _assert_ordered_without_overlap(rows):
    for a, b in zip(rows, rows[1:]):
        assert a.start_us < a.end_us <= b.start_us, (a, b)


def test_a_backward_step_like_an_hour_long_dst_bug_starts_a_run_after_the_last_recording(tmp_path, index, clocks):
    seg = make_segmenter(tmp_path, index, clocks, segment_seconds=2)
    record(seg, clocks, seconds=10, on_packet=_jump_at(clocks, 120, -3600))
    rows = index.segments()
    assert len({r.run_id for r in rows}) == 2
    assert seg.stats.wall_jumps == 1
    _assert_ordered_without_overlap(rows)
    assert len({r.path for r in rows}) == len(rows)  # nothing overwritten
    for row in rows:
        assert decoded_frames(tmp_path / row.path) == row.frames


def test_a_forward_step_like_ntp_syncing_after_boot_leaves_a_gap_not_a_stretch(tmp_path, index, clocks):
    seg = make_segmenter(tmp_path, index, clocks, segment_seconds=2)
    record(seg, clocks, seconds=8, on_packet=_jump_at(clocks, 100, 3 * 365 * 86400))
    rows = index.segments()
    runs = sorted({r.run_id for r in rows})
    assert len(runs) == 2
    first, second = [r for r in rows if r.run_id == runs[0]], [r for r in rows if r.run_id == runs[1]]
    assert second[0].start_us - first[-1].end_us > 3 * 365 * 86400 * 1_000_000 - 2_000_000
    assert sum((r.end_us - r.start_us) for r in rows) == pytest.approx(8_000_000, abs=100_000)
    _assert_ordered_without_overlap(rows)


def test_restarting_with_the_clock_behind_the_last_recording_still_never_overlaps(tmp_path, index, clocks):
    seg = make_segmenter(tmp_path, index, clocks, segment_seconds=2)
    record(seg, clocks, seconds=5)
    clocks.jump_wall(-600)  # the board rebooted without RTC and believes it is earlier
    record(seg, clocks, seconds=5)
    rows = index.segments()
    _assert_ordered_without_overlap(rows)
    assert len({r.run_id for r in rows}) == 2


def test_small_clock_slews_do_not_split_runs(tmp_path, index, clocks):
    seg = make_segmenter(tmp_path, index, clocks, segment_seconds=2)

    def slew(n, packet):
        if n % 25 == 0:
            clocks.jump_wall(0.05)  # NTP slewing: far under the step threshold

    record(seg, clocks, seconds=10, on_packet=slew)
    assert len({r.run_id for r in index.segments()}) == 1
    assert seg.stats.wall_jumps == 0


def test_times_are_utc_whatever_the_local_time_zone(tmp_path, index, clocks, monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        seg = make_segmenter(tmp_path, index, clocks)
        start = clocks.utc_now_us()
        record(seg, clocks, seconds=3)
        assert abs(index.segments()[0].start_us - start) < 100_000
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
