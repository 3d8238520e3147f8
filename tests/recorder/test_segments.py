"""Segments: cut at keyframes, durable fMP4 that FFmpeg decodes, contiguous times, bad input survived."""
from __future__ import annotations

import os

import pytest

from base.clock import SimulatedClocks
from base.media import EncodedPacket
from recorder.fmp4 import TIMESCALE, read_segment
from recorder.index import Index
from support.recording import decoded_frames, make_segmenter, record


def test_segments_are_cut_at_the_first_keyframe_after_segment_seconds(tmp_path, index, clocks):
    seg = make_segmenter(tmp_path, index, clocks, segment_seconds=2.5)
    record(seg, clocks, seconds=12, keyframe_interval_s=1.0)
    rows = index.segments()
    for row in rows[:-1]:
        assert row.end_us - row.start_us == 3_000_000  # 2.5 s rounded up to the next 1 s keyframe
    for row in rows:
        contents = read_segment(tmp_path / row.path)
        assert contents.samples[0].keyframe
        assert contents.usable_bytes == contents.file_bytes == row.bytes


def test_every_segment_decodes_to_its_last_frame_and_matches_its_row(tmp_path, index, clocks):
    seg = make_segmenter(tmp_path, index, clocks)
    pushed = record(seg, clocks, seconds=10)
    rows = index.segments()
    assert sum(r.frames for r in rows) == pushed
    for row in rows:
        assert decoded_frames(tmp_path / row.path) == row.frames


def test_segments_of_a_run_are_contiguous_and_ordered(tmp_path, index, clocks):
    seg = make_segmenter(tmp_path, index, clocks, segment_seconds=2)
    record(seg, clocks, seconds=11)
    rows = index.segments()
    assert len({r.run_id for r in rows}) == 1
    for a, b in zip(rows, rows[1:]):
        assert a.end_us == b.start_us
        assert b.media_start_ticks == a.media_start_ticks + (a.end_us - a.start_us) * TIMESCALE // 1_000_000


def test_fragments_are_about_one_second(tmp_path, index, clocks):
    seg = make_segmenter(tmp_path, index, clocks, segment_seconds=10)
    record(seg, clocks, seconds=10.5)
    contents = read_segment(tmp_path / index.segments()[0].path)
    assert contents.fragments == 10


def test_first_segment_is_shortened_by_the_stagger(tmp_path, index, clocks):
    seg = make_segmenter(tmp_path, index, clocks, segment_seconds=8, stagger_fraction=0.5)
    record(seg, clocks, seconds=20)
    durations = [(r.end_us - r.start_us) / 1e6 for r in index.segments()]
    assert durations[0] == 4 and durations[1] == 8


def test_file_names_come_from_run_and_sequence_not_wall_time(tmp_path, index, clocks):
    seg = make_segmenter(tmp_path, index, clocks, channel=3, stream="sub", segment_seconds=2)
    record(seg, clocks, seconds=5, channel=3)
    assert [r.path for r in index.segments()][:2] == ["ch03/sub/00000001-00000.mp4", "ch03/sub/00000001-00001.mp4"]


def test_recording_waits_for_the_first_keyframe(tmp_path, index, clocks):
    seg = make_segmenter(tmp_path, index, clocks)
    dropped = []

    def drop_first_keyframe(n, packet):
        if n == 0:
            packet.keyframe = False
            packet.data = packet.data.replace(b"\x00\x00\x01\x65", b"\x00\x00\x01\x41", 1)  # IDR -> non-IDR slice
            dropped.append(n)

    record(seg, clocks, seconds=3, on_packet=drop_first_keyframe)
    assert seg.stats.waiting_for_keyframe == 25  # the rest of the first 1 s GOP
    assert read_segment(tmp_path / index.segments()[0].path).samples[0].keyframe


def test_a_malformed_packet_is_counted_and_recording_resumes_at_the_next_keyframe(tmp_path, index, clocks):
    seg = make_segmenter(tmp_path, index, clocks, segment_seconds=4)

    def corrupt(n, packet):
        if n == 30:
            packet.data = b"\x00\x00\x00\x40garbage-not-h264"  # a length prefix running past the end

    record(seg, clocks, seconds=6, on_packet=corrupt)
    assert seg.stats.bad_packets == 1
    rows = index.segments()
    for row in rows:
        assert decoded_frames(tmp_path / row.path) == row.frames
    assert rows[0].frames == 30 and rows[1].start_us == rows[0].start_us + 2_000_000


def test_non_increasing_timestamps_are_repaired_and_counted(tmp_path, index, clocks):
    seg = make_segmenter(tmp_path, index, clocks)

    def repeat_timestamp(n, packet):
        if n == 40:
            packet.dts -= 3600 * 2  # two frames back in time (90 kHz)
            packet.pts = packet.dts

    record(seg, clocks, seconds=3, on_packet=repeat_timestamp)
    assert seg.stats.timestamp_fixes >= 1
    for row in index.segments():
        samples = read_segment(tmp_path / row.path).samples
        assert all(s.duration > 0 for s in samples)


def test_a_non_h264_stream_is_refused_with_a_clear_error(tmp_path, index, clocks):
    from fractions import Fraction

    from base.media import StreamInfo

    seg = make_segmenter(tmp_path, index, clocks)
    with pytest.raises(ValueError, match="only h264"):
        seg.start_run(StreamInfo("hevc", 640, 360, Fraction(1, 90000)))


def test_stop_mid_segment_closes_and_indexes_it(tmp_path, index, clocks):
    seg = make_segmenter(tmp_path, index, clocks, segment_seconds=60)
    pushed = record(seg, clocks, seconds=7.3)
    rows = index.segments()
    assert len(rows) == 1 and rows[0].frames == pushed
    assert not seg.stats.frames_lost


def test_parameter_sets_only_packet_is_not_a_frame(tmp_path, index, clocks):
    seg = make_segmenter(tmp_path, index, clocks)
    sps_only = {}

    def inject(n, packet):
        if n == 10:
            sps_only["packet"] = packet

    record(seg, clocks, seconds=1, on_packet=inject)
    before = seg.stats.frames_recorded
    seg.push(EncodedPacket(b"\x00\x00\x00\x01\x09\xf0", 0, 0, False))  # an access unit delimiter alone
    assert seg.stats.frames_recorded == before


def test_a_vanished_data_folder_raises_an_alarm_and_is_not_recreated(tmp_path, clocks):
    from recorder.faults import FaultBoard

    root = tmp_path / "disk"
    root.mkdir()
    index = Index(tmp_path)  # the index lives elsewhere here, as on the image's config partition
    faults = FaultBoard(clocks=clocks)
    seg = make_segmenter(root, index, clocks, faults=faults)
    root.rmdir()  # the disk went away
    record(seg, clocks, seconds=2)
    assert not root.exists()
    assert [a.kind for a in faults.active()] == ["disk_error"]
    assert index.segments() == []
    index.close()


def test_a_burst_after_the_cameras_probe_does_not_make_the_run_label_late(tmp_path, index):
    from support.recording import test_pattern_source

    source_clocks = SimulatedClocks()
    source = test_pattern_source(source_clocks)
    info = source.open()
    packets = []
    for packet in source.packets():
        packets.append(packet)
        if len(packets) == 150:
            break
    clocks = SimulatedClocks()
    seg = make_segmenter(tmp_path, index, clocks, segment_seconds=2)
    seg.start_run(info)
    true_start = clocks.utc_now_us()
    clocks.advance(1.0)  # the first second was buffered while the stream was probed...
    for n, packet in enumerate(packets):
        packet.arrival_us = clocks.monotonic_us()
        seg.push(packet)  # ...and arrives in one burst, then the rest live at 25 fps
        if n >= 25:
            clocks.advance(0.04)
    seg.finish()
    rows = index.segments()
    assert abs(rows[0].start_us - true_start) <= 40_000
    assert rows[-1].end_us - rows[0].start_us == 6_000_000


def test_a_segment_reserves_the_last_ones_size_and_gives_back_what_it_did_not_use(tmp_path, clocks, monkeypatch):
    """Disk-friendly layout (bench/disk_writes.py): blocks reserved at creation, the rest freed at close;
    a file cut short by a crash keeps them until the recovery pass truncates it."""
    from recorder.recovery import recover
    from recorder.segment_file import SegmentFile
    from hal.storage import reserve_space

    probe = os.open(tmp_path / "probe", os.O_WRONLY | os.O_CREAT)
    supported = reserve_space(probe, 1 << 20)
    os.close(probe)
    if not supported:
        pytest.skip("this filesystem cannot reserve blocks (fallocate KEEP_SIZE)")
    index = Index(tmp_path)
    seen = []
    real_init = SegmentFile.__init__

    def watching(self, path, init, *, sync=True, reserve_bytes=0):
        real_init(self, path, init, sync=sync, reserve_bytes=reserve_bytes)
        seen.append((reserve_bytes, os.fstat(self._fd).st_blocks * 512, os.fstat(self._fd).st_size))

    with monkeypatch.context() as patch:
        patch.setattr(SegmentFile, "__init__", watching)
        record(make_segmenter(tmp_path, index, clocks, segment_seconds=2), clocks, seconds=8)
    rows = index.segments()
    assert seen[0][0] == 0 and all(reserve == rows[n].bytes * 9 // 8 for n, (reserve, _, _) in enumerate(seen[1:]))
    assert all(blocks >= reserve > size for reserve, blocks, size in seen[1:])  # reserved, size unchanged
    for seg in rows:  # closed: nothing past the end is kept
        st = (tmp_path / seg.path).stat()
        assert st.st_size == seg.bytes and st.st_blocks * 512 < seg.bytes + 64 * 1024
        assert decoded_frames(tmp_path / seg.path) == seg.frames
    # A crash while a segment with reserved blocks is open: its blocks stay until recovery.
    cut = SegmentFile(tmp_path / "ch01" / "main" / f"{rows[-1].run_id:08d}-{rows[-1].seq + 1:05d}.mp4",
                      (tmp_path / rows[-1].path).read_bytes(), sync=False, reserve_bytes=8 << 20)
    os.close(cut._fd)  # the power goes: no close
    assert cut.path.stat().st_blocks * 512 >= 8 << 20
    report = recover(tmp_path, index, sync=False)
    assert report.recovered == [str(cut.path.relative_to(tmp_path))]
    assert cut.path.stat().st_blocks * 512 < cut.path.stat().st_size + 64 * 1024
    index.close()
