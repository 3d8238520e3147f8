"""The start-up recovery pass reconciles segment files and index rows in both directions."""
from __future__ import annotations

import os

import pytest

from recorder.fmp4 import read_segment
from recorder.index import Index
from recorder.recovery import recover
from support.recording import decoded_frames, make_segmenter, record


@pytest.fixture
def recorded(tmp_path, clocks):
    """A data root with 3 segments of 4 s (100 frames each at 25 fps)."""
    index = Index(tmp_path)
    record(make_segmenter(tmp_path, index, clocks), clocks, seconds=11.9)
    yield tmp_path, index
    index.close()


def _unindex(index, row):
    index.delete_rows([row.id])


def test_a_clean_data_root_needs_no_repair(recorded):
    root, index = recorded
    report = recover(root, index, sync=False)
    assert not report.repaired and report.rows_checked == 3


def test_an_unindexed_segment_cut_mid_fragment_keeps_its_playable_part_with_its_true_end(recorded):
    root, index = recorded
    last = index.segments()[-1]
    _unindex(index, last)
    path = root / last.path
    full = read_segment(path)
    os.truncate(path, full.file_bytes - 700)  # a power cut in the middle of the last fragment
    report = recover(root, index, sync=False)
    assert report.recovered == [last.path] and report.cut_bytes > 0
    row = index.segments()[-1]
    kept = read_segment(path)
    assert row.recovered and row.frames == len(kept.samples) < last.frames
    assert row.start_us == last.start_us
    assert row.end_us == last.start_us + kept.duration_ticks * 1_000_000 // 90_000
    assert path.stat().st_size == kept.usable_bytes == row.bytes
    assert decoded_frames(path) == row.frames


def test_a_file_with_only_its_init_part_is_removed(recorded):
    root, index = recorded
    last = index.segments()[-1]
    _unindex(index, last)
    path = root / last.path
    os.truncate(path, read_segment(path).samples[0].offset - 100)  # ftyp+moov and a cut first fragment
    report = recover(root, index, sync=False)
    assert report.removed_files == [last.path] and not path.exists()


def test_an_empty_file_is_removed(recorded):
    root, index = recorded
    run_id = index.segments()[0].run_id
    stray = root / f"ch01/main/{run_id:08d}-00099.mp4"
    stray.write_bytes(b"")
    report = recover(root, index, sync=False)
    assert report.removed_files == [stray.relative_to(root).as_posix()]


def test_a_row_whose_file_vanished_is_dropped(recorded):
    root, index = recorded
    first = index.segments()[0]
    (root / first.path).unlink()
    report = recover(root, index, sync=False)
    assert report.removed_rows == [first.path]
    assert first.path not in [r.path for r in index.segments()]


def test_a_deletion_interrupted_after_marking_is_finished(recorded):
    root, index = recorded
    first = index.segments()[0]
    index.mark_deleting([first.id])  # the power went before the unlink
    report = recover(root, index, sync=False)
    assert report.finished_deletions == 1
    assert not (root / first.path).exists()
    assert first.path not in index.all_paths()


def test_a_file_of_no_known_run_is_quarantined_not_deleted(recorded):
    root, index = recorded
    first = index.segments()[0]
    stranger = root / "ch01/main/00009999-00000.mp4"
    stranger.write_bytes((root / first.path).read_bytes())
    report = recover(root, index, sync=False)
    assert report.quarantined == ["ch01/main/00009999-00000.mp4"]
    assert (root / "lost+found" / "ch01_main_00009999-00000.mp4").exists()


def test_a_row_with_a_shortened_file_is_replaced_by_what_the_file_still_holds(recorded):
    root, index = recorded
    first = index.segments()[0]
    os.truncate(root / first.path, first.bytes - 500)
    report = recover(root, index, sync=False)
    assert report.removed_rows == [first.path] and report.recovered == [first.path]
    row = next(r for r in index.segments() if r.path == first.path)
    assert row.frames < first.frames and decoded_frames(root / row.path) == row.frames


def test_recovery_is_idempotent(recorded):
    root, index = recorded
    last = index.segments()[-1]
    _unindex(index, last)
    os.truncate(root / last.path, read_segment(root / last.path).file_bytes - 300)
    recover(root, index, sync=False)
    assert not recover(root, index, sync=False).repaired
