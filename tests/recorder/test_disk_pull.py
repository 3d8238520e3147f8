"""A recording disk pulled in the middle of a segment (two loop-mounted ext4 filesystems, root needed; skipped
without): the writer goes on on the other disk at once from the keyframe the unwritten frames depend on, so
no more is lost than the pulled disk had not made durable, and when the disk comes back its cut-short
segment is recovered, indexed and playable without a restart. Real segments, syncs, SQLite and FFmpeg;
simulated clocks."""
from __future__ import annotations

import pytest

from recorder.disk_set import DiskSet, RETRY_S, read_identity
from recorder.export import export
from recorder.faults import FaultBoard
from recorder.fmp4 import TIMESCALE, read_segment
from recorder.index import Index
from recorder.playback import playback_chunk
from recorder.segmenter import Segmenter
from support.disk_rig import open_disk_set, prefer
from support.loop_disk import LoopDisk
from support.recording import assert_each_moment_once, decoded_frames, pattern_with_audio, record, video_packets
from support.waiting import wait_for

FPS = 25
KEYFRAME_S = 2.0  # as the smoke VM's channels
# 5.48 s: the failing fragment (5-6 s) starts mid-GOP (keyframes at 4 s and 6 s); 6.48 s: at a keyframe
PULLS_AT_PACKET = [5 * FPS + 12, 6 * FPS + 12]


@pytest.fixture
def data_root(tmp_path):
    """The data root (index and disk links) and its index, closed after the test."""
    root = tmp_path / "root"
    root.mkdir()
    index = Index(root)
    yield root, index
    index.close()


@pytest.fixture
def pair(tmp_path):
    disks = [LoopDisk(tmp_path, "a"), LoopDisk(tmp_path, "b")]
    for disk in disks:
        disk.plug()
    yield disks
    for disk in disks:
        disk.unplug()


def pull_after_writes(writer, disk) -> None:
    """Pull `disk` where a real pull finds the writer: the fragments it queued seconds ago written (the
    simulated clocks feed it faster than real time, and its writes run behind it on their own thread)."""
    writer.wait_written()
    disk.pull()


@pytest.mark.parametrize("pull_at_packet", PULLS_AT_PACKET)
def test_a_pulled_disk_costs_no_unwritten_frame_and_its_cut_segment_is_indexed_when_it_returns(data_root, pair, clocks,
                                                                                             pull_at_packet):
    a, b = pair
    root, index = data_root
    faults, disks = open_disk_set(root, index, clocks, [(a.mount, "A"), (b.mount, "B")],
                                  usage=prefer(a.mount))
    uuid_a, uuid_b = read_identity(a.mount).uuid, read_identity(b.mount).uuid
    writer = Segmenter(channel=1, stream="main", root=root, index=index, clocks=clocks, faults=faults,
                       segment_seconds=60, sync=True, placer=disks)

    def pull_mid_segment(count, packet):
        if count == pull_at_packet:
            pull_after_writes(writer, a)
    record(writer, clocks, seconds=12, keyframe_interval_s=KEYFRAME_S, on_packet=pull_mid_segment)

    assert writer.stats.failovers == 1 and writer.stats.frames_lost == 0
    on_b = index.segments(channel=1)
    assert [s.disk for s in on_b] == [uuid_b]  # the segment cut short on A is not indexed while A is away
    first_on_b = on_b[0]
    pulled_at_ticks = pull_at_packet * TIMESCALE // FPS
    # Without A back: B's segment starts at the keyframe before the pull, so at or before the first
    # frame A did not take (which came after the pull).
    assert first_on_b.media_start_ticks <= pulled_at_ticks - (pulled_at_ticks % round(KEYFRAME_S * TIMESCALE))
    assert decoded_frames(root / first_on_b.path) == first_on_b.frames
    assert list(a.mount.iterdir()) == []  # nothing written onto the empty mount point

    wait_for(lambda: not a.in_use(), timeout_s=30, what="the pulled filesystem to let go of its loop device")
    a.check()
    a.plug()  # back, without a restart
    clocks.advance(RETRY_S)
    assert disks.place().disk == uuid_b  # not written before its recovery pass is done
    wait_for(lambda: not disks.recovering(), timeout_s=30, what="the returning disk's recovery pass")
    assert disks.disks[0].state == "ok" and disks.place().disk == uuid_a

    on_a = [s for s in index.segments(channel=1) if s.disk == uuid_a]
    assert len(on_a) == 1 and on_a[0].recovered
    assert decoded_frames(root / on_a[0].path) == on_a[0].frames
    gap_us = first_on_b.start_us - on_a[0].end_us
    print(f"\nunrecorded gap across the pull: {max(gap_us, 0) / 1e6:.3f} s "
          f"(B starts {-gap_us / 1e6:.3f} s before A's durable end; "
          f"A durable to {(on_a[0].end_us - on_a[0].start_us) / 1e6:.2f} s, pulled at "
          f"{pull_at_packet / FPS:.2f} s, B from {first_on_b.media_start_ticks / TIMESCALE:.2f} s)")
    assert gap_us <= 0  # nothing unrecorded between what A kept and where B begins
    assert -gap_us <= KEYFRAME_S * 1e6  # written twice: at most the group of pictures before the failure


def test_the_sound_of_the_failed_write_goes_to_the_other_disk_with_its_pictures(data_root, pair, clocks):
    a, b = pair
    root, index = data_root
    faults, disks = open_disk_set(root, index, clocks, [(a.mount, "A"), (b.mount, "B")],
                                  usage=prefer(a.mount))
    uuid_a = read_identity(a.mount).uuid
    writer = Segmenter(channel=1, stream="main", root=root, index=index, clocks=clocks, faults=faults,
                       segment_seconds=60, sync=True, placer=disks)
    source = pattern_with_audio(clocks, keyframe_interval_s=KEYFRAME_S)
    writer.start_run(source.open())
    end_us = clocks.monotonic_us() + 12 * 1_000_000
    video = 0
    for packet in source.packets():
        if packet.track == "video":
            video += 1
            if video == PULLS_AT_PACKET[0]:
                pull_after_writes(writer, a)
        writer.push(packet)
        if clocks.monotonic_us() >= end_us:
            break
    writer.finish()
    source.close()
    assert writer.stats.failovers == 1 and writer.stats.frames_lost == 0

    wait_for(lambda: not a.in_use(), timeout_s=30, what="the pulled filesystem to let go of its loop device")
    a.check()
    a.plug()
    clocks.advance(RETRY_S)
    disks.place()
    wait_for(lambda: not disks.recovering(), timeout_s=30, what="the returning disk's recovery pass")
    rows = index.segments(channel=1)
    assert [s.disk == uuid_a for s in rows] == [True, False]
    on_a, on_b = (read_segment(root / s.path) for s in rows)
    rate = on_b.audio.timescale
    a_sound_end = on_a.audio_samples[-1].decode_time + on_a.audio_samples[-1].duration
    b_sound_start = on_b.audio_samples[0].decode_time
    assert b_sound_start <= a_sound_end + 1024  # at most one AAC frame between the disks' sound
    assert b_sound_start / rate <= on_a.duration_ticks / TIMESCALE + 0.1  # B's sound begins where A's pictures end
    for row in rows:
        assert decoded_frames(root / row.path) == row.frames


def test_with_no_other_disk_a_pull_loses_the_unwritten_frames_and_recording_waits_for_a_disk(data_root, pair, clocks):
    a, _ = pair
    root, index = data_root
    faults = FaultBoard(clocks=clocks)
    disks = DiskSet(root=root, disks=[(a.mount, "A")], index=index, clocks=clocks, faults=faults)
    disks.open()
    writer = Segmenter(channel=1, stream="main", root=root, index=index, clocks=clocks, faults=faults,
                       segment_seconds=60, sync=True, placer=disks)
    record(writer, clocks, seconds=8, keyframe_interval_s=KEYFRAME_S,
           on_packet=lambda count, packet: pull_after_writes(writer, a) if count == PULLS_AT_PACKET[0] else None)
    assert writer.stats.failovers == 0 and writer.stats.frames_lost > 0 and writer.stats.bad_packets == 0
    assert {(f.kind, f.channel or f.disk) for f in faults.active()} == {("disk_error", 1), ("disk_offline", "A")}
    assert index.segments() == [] and list(a.mount.iterdir()) == []


def test_across_a_switch_export_and_playback_show_each_moment_once_and_frames_recorded_counts_each_frame_once(
        data_root, tmp_path, pair, clocks):
    a, b = pair
    root, index = data_root
    faults, disks = open_disk_set(root, index, clocks, [(a.mount, "A"), (b.mount, "B")],
                                  usage=prefer(a.mount))
    writer = Segmenter(channel=1, stream="main", root=root, index=index, clocks=clocks, faults=faults,
                       segment_seconds=60, sync=True, placer=disks)
    record(writer, clocks, seconds=12, keyframe_interval_s=KEYFRAME_S,
           on_packet=lambda count, packet: pull_after_writes(writer, a) if count == PULLS_AT_PACKET[0] else None)
    assert writer.stats.failovers == 1 and writer.stats.frames_rewritten > 0
    wait_for(lambda: not a.in_use(), timeout_s=30, what="the pulled filesystem to let go of its loop device")
    a.check()
    a.plug()
    clocks.advance(RETRY_S)
    disks.place()
    wait_for(lambda: not disks.recovering(), timeout_s=30, what="the returning disk's recovery pass")
    on_a, on_b = index.segments(channel=1)
    assert on_b.start_us < on_a.end_us  # they overlap: the group of pictures before the failure is on both

    clip = export(index, root, channel=1, start_us=on_a.start_us, end_us=on_b.end_us, out=tmp_path / "clip.mp4")
    exported = video_packets(clip.path)
    assert_each_moment_once(exported, "the export", fps=FPS)
    assert clip.frames == len(exported) == writer.stats.frames_recorded  # each frame stored once, counted once
    assert clip.gaps == 0

    # 5 s chunks: the first one spans the switch (A's frames from 4 s and B's from 4 s are both in its range).
    base_us, at_us, played = on_a.start_us, on_a.start_us, []
    while at_us is not None and at_us < on_b.end_us:
        chunk = playback_chunk(index, root, channel=1, stream="main", start_us=at_us, duration_us=5_000_000,
                               base_us=base_us)
        assert chunk is not None
        (tmp_path / "chunk.mp4").write_bytes(b"".join(chunk.parts))
        played += video_packets(tmp_path / "chunk.mp4")  # media time: wall time minus base_us, one timeline
        at_us = chunk.next_us
    assert_each_moment_once(played, "playback", fps=FPS)
    assert len(played) == len(exported)
