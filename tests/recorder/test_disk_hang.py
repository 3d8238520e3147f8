"""A recording disk whose writes hang in the kernel (a dying USB disk, a bridge that stops answering) rather than
fail: a real hung block device (tests/support/hanging_disk.py; root needed, skipped without). The writes wait on
an I/O thread, not on the channel's: after the stall bound the disk is failed with the reason, every channel goes
on on the other disk at once from the keyframe its unwritten frames depend on, and when the device answers again
the disk comes back through its retry and its cut segments are indexed and play. Real segments, syncs, SQLite and
FFmpeg; simulated media clocks (the stall bound is real time)."""
from __future__ import annotations

import threading
import time

import pytest

from base.clock import SimulatedClocks
from recorder.disk_set import FAILED, OK, RETRY_S, DiskSet, read_identity
from recorder.export import export
from recorder.faults import FaultBoard
from recorder.fmp4 import TIMESCALE
from recorder.index import Index
from recorder.segmenter import Segmenter
from support.disk_rig import open_disk_set, prefer
from support.hanging_disk import HangingDisk
from support.loop_disk import LoopDisk
from support.open_files import files_open_under
from support.recording import assert_each_moment_once, decoded_frames, record, video_packets
from support.waiting import wait_for

FPS = 25
KEYFRAME_S = 2.0
HANG_AT_PACKET = 5 * FPS + 12  # 5.48 s: the next fragment (5-6 s) starts mid-GOP (keyframes at 4 s and 6 s)
# The stall bound for the test (WRITE_STALL_S is 10 s): long enough that a loaded machine's fsync is not a hang.
STALL_S = 4.0
CHANNELS = (1, 2)


@pytest.fixture
def disks_ab(tmp_path):
    a = HangingDisk(tmp_path, "a")
    try:
        b = LoopDisk(tmp_path, "b")
        b.plug()
        try:
            yield a, b
        finally:
            a.resume()  # before anything else: a hung device under a mounted filesystem hangs the unmount
            b.unplug()
    finally:
        a.close()


def test_a_disk_whose_writes_hang_is_failed_and_every_channel_goes_on_on_the_other_then_it_comes_back(
        tmp_path, disks_ab, clocks):
    a, b = disks_ab
    print(f"\nhanging the disk with {a.how}")
    root = tmp_path / "root"
    root.mkdir()
    index = Index(root)
    try:
        faults, disks = open_disk_set(root, index, clocks, [(a.mount, "A"), (b.mount, "B")],
                                      usage=prefer(a.mount), write_stall_s=STALL_S)
        uuid_a, uuid_b = read_identity(a.mount).uuid, read_identity(b.mount).uuid
        # Each channel on its own thread and its own media clock, as in the appliance; both reach the hang together.
        writers = {channel: Segmenter(channel=channel, stream="main", root=root, index=index, clocks=SimulatedClocks(),
                                      faults=faults, segment_seconds=60, sync=True, placer=disks,
                                      write_stall_s=STALL_S) for channel in CHANNELS}
        together = threading.Barrier(len(CHANNELS), action=a.hang)
        held_s, errors, failed_over_while_recording = {}, [], {}

        def channel_thread(channel):
            writer, own_clocks = writers[channel], writer_clocks[channel]
            last = [time.monotonic()]
            held_s[channel] = 0.0

            def hang_mid_segment(count, packet):
                if count == HANG_AT_PACKET:
                    together.wait(timeout=60)
                    last[0] = time.monotonic()
                if count > HANG_AT_PACKET:
                    time.sleep(1 / FPS)  # from the hang on, packets come at a camera's pace (the stall bound is real time)
                now = time.monotonic()  # the longest the channel thread went without taking a packet
                held_s[channel], last[0] = max(held_s[channel], now - last[0]), now
                failed_over_while_recording[channel] = writer.stats.failovers
            try:
                record(writer, own_clocks, seconds=12, keyframe_interval_s=KEYFRAME_S, on_packet=hang_mid_segment)
            except BaseException as exc:  # noqa: BLE001 - handed to the test
                errors.append(exc)

        writer_clocks = {channel: writers[channel]._clocks for channel in CHANNELS}
        threads = [threading.Thread(target=channel_thread, args=(channel,), daemon=True) for channel in CHANNELS]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors and not any(thread.is_alive() for thread in threads), errors
        assert a.hung  # still hung: every channel finished its recording without it

        for channel, writer in writers.items():
            assert writer.stats.failovers == 1 and writer.stats.frames_lost == 0, writer.stats
            assert failed_over_while_recording[channel] == 1  # on the other disk before the recording ended
            assert held_s[channel] < STALL_S  # the channel thread never waited for the hung disk
        assert disks.disks[0].state == FAILED
        assert f"writes hang: no write finished in {STALL_S:.0f} s" in disks.disks[0].reason
        assert any(f.kind == "disk_offline" and f.disk == "A" for f in faults.active())
        first_on_b = {}
        for channel in CHANNELS:
            rows = index.segments(channel=channel)
            assert [s.disk for s in rows] == [uuid_b]  # A's cut segment waits for A
            first_on_b[channel] = rows[0]
            hung_at_ticks = HANG_AT_PACKET * TIMESCALE // FPS
            assert rows[0].media_start_ticks <= hung_at_ticks - hung_at_ticks % round(KEYFRAME_S * TIMESCALE)
            assert decoded_frames(root / rows[0].path) == rows[0].frames

        clocks.advance(RETRY_S)  # still hung: its write check hangs too, and it stays failed
        assert disks.place().disk == uuid_b and disks.disks[0].state == FAILED
        assert "writes hang" in disks.disks[0].reason

        a.resume()
        wait_for(lambda: not files_open_under(a.mount), what="the threads stuck on the hung disk to let go of its files",
                 details=lambda: files_open_under(a.mount))
        clocks.advance(RETRY_S)
        wait_for(lambda: disks.place() is not None and not disks.recovering() and disks.disks[0].state == OK,
                 timeout_s=60, what="the resumed disk to pass its write check and recovery pass",
                 details=disks.statistics)
        assert not any(f.kind == "disk_offline" for f in faults.active())
        for channel in CHANNELS:
            on_a = [s for s in index.segments(channel=channel) if s.disk == uuid_a]
            assert len(on_a) == 1 and on_a[0].recovered
            assert decoded_frames(root / on_a[0].path) == on_a[0].frames
            gap_us = first_on_b[channel].start_us - on_a[0].end_us
            print(f"channel {channel}: unrecorded across the hang {max(gap_us, 0) / 1e6:.3f} s "
                  f"(B starts {-gap_us / 1e6:.3f} s before A's durable end; A durable to "
                  f"{(on_a[0].end_us - on_a[0].start_us) / 1e6:.2f} s, hung at {HANG_AT_PACKET / FPS:.2f} s, "
                  f"B from {first_on_b[channel].media_start_ticks / TIMESCALE:.2f} s); the channel thread went "
                  f"{held_s[channel]:.1f} s (real time) at most without taking a packet")
            assert gap_us <= 2_000_000  # at most 2 s unrecorded (none, when A kept what it had synced)
            # The hung write finished on A after all: the two overlap; the clip holds each moment once, and
            # the writer counted each frame once.
            clip = export(index, root, channel=channel, start_us=on_a[0].start_us, end_us=first_on_b[channel].end_us,
                          out=tmp_path / f"clip{channel}.mp4")
            assert_each_moment_once(video_packets(clip.path), f"channel {channel}'s export", fps=FPS)
            assert clip.frames == writers[channel].stats.frames_recorded
    finally:
        index.close()


@pytest.fixture
def hanging(tmp_path):
    disk = HangingDisk(tmp_path, "a")
    try:
        yield disk
    finally:
        disk.close()  # resumes first


def test_with_no_other_disk_a_hang_loses_only_what_it_holds_and_the_writer_still_finishes_within_the_bound(
        tmp_path, hanging, clocks):
    root = tmp_path / "root"
    root.mkdir()
    index = Index(root)
    try:
        faults = FaultBoard(clocks=clocks)
        disks = DiskSet(root=root, disks=[(hanging.mount, "A")], index=index, clocks=clocks, faults=faults,
                        write_stall_s=STALL_S)
        disks.open()
        writer = Segmenter(channel=1, stream="main", root=root, index=index, clocks=clocks, faults=faults,
                           segment_seconds=60, sync=True, placer=disks, write_stall_s=STALL_S)
        record(writer, clocks, seconds=8, keyframe_interval_s=KEYFRAME_S,
               on_packet=lambda count, packet: hanging.hang() if count == HANG_AT_PACKET else None)
        # record() ended with finish(): it waited for the queued writes at most the stall bound, then gave up on them.
        assert hanging.hung
        assert writer.stats.failovers == 0 and writer.stats.frames_lost > 0
        assert disks.disks[0].state == FAILED and "writes hang" in disks.disks[0].reason
        assert {f.kind for f in faults.active()} >= {"disk_error", "disk_offline"}
        stuck = [t for t in threading.enumerate() if t.name.startswith("io channel 1 main")]
        assert stuck and all(t.daemon for t in stuck)  # left in the kernel; they do not hold up the process's exit
        hanging.resume()
        wait_for(lambda: not files_open_under(hanging.mount), what="the stuck thread to let go of the segment",
                 details=lambda: files_open_under(hanging.mount))
        wait_for(lambda: not any(t.is_alive() for t in stuck), what="the stuck thread to end once its write returned")
    finally:
        index.close()
