"""Two recording disks through the whole appliance: two loop-mounted ext4 filesystems (root needed; skipped
without), two channels recording. Recording spreads over both; when one fails (the kernel takes it
read-only) every channel goes on on the other with at most 2 s lost; when it is back (mounted again) it is
taken back; after a restart its recordings are in the index and play."""
from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

import recorder.disk_set as disk_set
from appliance.app import Appliance
from appliance.config.model import parse_config
from base.clock import RealClocks
from recorder.index import Index
from support.loop_disk import LoopDisk
from support.recording import decoded_frames
from support.waiting import wait_for

S = 1_000_000


@pytest.fixture
def disks(tmp_path, monkeypatch):
    monkeypatch.setattr(disk_set, "RETRY_S", 1.0)
    pair = [LoopDisk(tmp_path, "a"), LoopDisk(tmp_path, "b")]
    for disk in pair:
        disk.plug()
    yield pair
    for disk in pair:
        disk.unplug()


def config_for(root: Path, a: Path, b: Path, *, keyframe_s: float = 0.5, segment_s: float = 2) -> str:
    source = f"{{type: test-pattern, width: 160, height: 120, fps: 10, keyframe_interval_s: {keyframe_s}}}"
    return (f"storage:\n  path: '{root}'\n  segment_seconds: {segment_s}\n  health: {{smart: false}}\n"
            f"  retention: {{max_used_percent: 99, min_free_bytes: 0, locked_floor_bytes: 0}}\n"
            f"  disks: [{{path: '{a}', label: A}}, {{path: '{b}', label: B}}]\n"
            f"channels:\n  - {{id: 1, source: {source}}}\n  - {{id: 2, source: {source}}}\n"
            "alarms: {temperature: {thermal_zones: false}}\n")


def segments_on(nvr, uuid: str) -> list:
    return [s for s in nvr.supervisor.index.segments() if s.disk == uuid]


def largest_gap_us(rows, after_us: int) -> int:
    """The longest stretch without recording of one stream, from `after_us` on."""
    rows = sorted((s for s in rows if s.end_us > after_us), key=lambda s: s.start_us)
    return max((b.start_us - a.end_us for a, b in zip(rows, rows[1:])), default=0)


def test_recording_spreads_survives_a_failing_disk_and_its_recordings_come_back(tmp_path, disks):
    a, b = disks
    root = tmp_path / "root"
    config = parse_config(config_for(root, a.mount, b.mount))
    nvr = Appliance(config, clocks=RealClocks(), sync=True)
    nvr.start()
    try:
        uuid_a, uuid_b = (d.uuid for d in nvr.supervisor.disk_set.disks)
        wait_for(lambda: len(segments_on(nvr, uuid_a)) >= 2 and len(segments_on(nvr, uuid_b)) >= 2, timeout_s=60,
                 what="segments on both disks")
        failed_at_us = nvr.clocks.utc_now_us()
        a.fail()
        wait_for(lambda: nvr.supervisor.disk_set.disks[0].state != "ok", what="disk A marked")
        wait_for(lambda: all(len([s for s in segments_on(nvr, uuid_b) if s.channel == ch and s.start_us > failed_at_us])
                             >= 3 for ch in (1, 2)), timeout_s=60, what="both channels going on on disk B")
        alarms = {(f["kind"], f["disk"]) for f in nvr.status()["alarms"]}
        assert ("disk_offline", "A") in alarms
        for channel in (1, 2):
            gap = largest_gap_us(nvr.supervisor.index.segments(channel=channel), failed_at_us - 4 * S)
            assert gap <= 2 * S, (channel, gap)
        rows_on_a = segments_on(nvr, uuid_a)
    finally:
        nvr.stop()
    a.unplug()  # the installer takes the disk out, checks it, and puts it back
    subprocess.run(["e2fsck", "-fy", str(a.image)], capture_output=True)
    a.plug()
    again = Appliance(config, clocks=RealClocks(), sync=True)
    again.start()
    try:
        wait_for(lambda: len([s for s in segments_on(again, uuid_a)
                              if s.start_us > rows_on_a[-1].end_us]) >= 2, timeout_s=60,
                 what="recording on disk A again")
        kept = {s.path for s in again.supervisor.index.segments()}
        assert {s.path for s in rows_on_a} <= kept | set(again.supervisor.recovery.removed_rows)
        assert all(d["state"] == "ok" for d in again.supervisor.disk_set.statistics())
    finally:
        again.stop()
    index = Index(root, create=False)
    try:
        for seg in index.segments():
            if seg.disk == uuid_a and seg.end_us < failed_at_us:
                assert decoded_frames(root / seg.path) == seg.frames
    finally:
        index.close()


def loop_devices_of(image: Path) -> str:
    return subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True).stdout.strip()


def test_a_disk_pulled_while_recording_is_left_alone_and_taken_back_when_it_returns(tmp_path, disks):
    a, b = disks
    root = tmp_path / "root"
    nvr = Appliance(parse_config(config_for(root, a.mount, b.mount)), clocks=RealClocks(), sync=True)
    nvr.start()
    try:
        uuid_a, uuid_b = (d.uuid for d in nvr.supervisor.disk_set.disks)
        wait_for(lambda: len(segments_on(nvr, uuid_a)) >= 2 and len(segments_on(nvr, uuid_b)) >= 2, timeout_s=60,
                 what="segments on both disks")
        pulled_at_us = nvr.clocks.utc_now_us()
        a.unplug()  # lazily: a segment open on it is written to the end on the detached filesystem
        wait_for(lambda: nvr.supervisor.disk_set.disks[0].state == "away", what="disk A seen as away")
        wait_for(lambda: all(len([s for s in segments_on(nvr, uuid_b) if s.channel == ch and s.start_us > pulled_at_us])
                             >= 3 for ch in (1, 2)), timeout_s=60, what="both channels going on on disk B")
        assert list(a.mount.iterdir()) == []  # nothing written onto the empty mount point
        for channel in (1, 2):
            assert largest_gap_us(nvr.supervisor.index.segments(channel=channel), pulled_at_us - 4 * S) <= 2 * S
        rows_on_a = segments_on(nvr, uuid_a)
        wait_for(lambda: loop_devices_of(a.image) == "", timeout_s=30,
                 what="the detached filesystem to let go of its last file and its loop device")
        a.plug()  # back
        wait_for(lambda: len([s for s in segments_on(nvr, uuid_a) if s.start_us > rows_on_a[-1].end_us]) >= 2,
                 timeout_s=60, what="recording on disk A again, without a restart")
        assert nvr.supervisor.disk_set.disks[0].state == "ok"
        assert not any(f["kind"] == "disk_offline" for f in nvr.status()["alarms"])
        for seg in rows_on_a:  # what it held, including the segment open when it was pulled, plays
            assert decoded_frames(root / seg.path) == seg.frames
    finally:
        nvr.stop()


def test_a_failed_disk_raises_its_own_disk_errors_named_by_its_label_cleared_once_it_is_back_and_written(
        tmp_path, disks, caplog):
    a, b = disks
    root = tmp_path / "root"
    rule = "rules:\n  - {name: bad disk, when: {disk: errors}, do: [{log: replace the disk}]}\n"
    nvr = Appliance(parse_config(config_for(root, a.mount, b.mount) + rule), clocks=RealClocks(), sync=True)
    caplog.set_level(logging.WARNING, logger="nvr.rules")
    nvr.start()
    try:
        uuid_a, uuid_b = (d.uuid for d in nvr.supervisor.disk_set.disks)
        wait_for(lambda: len(segments_on(nvr, uuid_a)) >= 1 and len(segments_on(nvr, uuid_b)) >= 1, timeout_s=60,
                 what="segments on both disks")
        a.fail()
        wait_for(lambda: ("disk_errors", "A") in {(f["kind"], f["disk"]) for f in nvr.status()["alarms"]},
                 timeout_s=30, what="disk_errors of disk A from the writer's I/O error")
        wait_for(lambda: any(r.name == "nvr.rules" for r in caplog.records), what="the rule's log line")
        [line] = {r.getMessage() for r in caplog.records if r.name == "nvr.rules"}
        assert line.startswith("bad disk: replace the disk (disk:errors on disk 'A': A (")
        a.unplug()  # the installer takes it out, checks it and plugs it back while the box records on B
        wait_for(lambda: loop_devices_of(a.image) == "", timeout_s=30, what="the failed filesystem to let go")
        subprocess.run(["e2fsck", "-fy", str(a.image)], capture_output=True)
        a.plug()
        wait_for(lambda: nvr.supervisor.disk_set.disks[0].state == "ok", timeout_s=30, what="disk A taken back")
        wait_for(lambda: not any(f["kind"] == "disk_errors" for f in nvr.status()["alarms"]), timeout_s=10,
                 what="disk_errors of disk A cleared once it is back and written to")
        wait_for(lambda: all(e.end_us is not None for e in nvr.supervisor.index.events()), timeout_s=10,
                 what="the rule's event ended")
        assert [d["io_errors"] for d in nvr.status()["disks"] if d.get("label") == "A"][0] >= 1  # still counted
    finally:
        nvr.stop()


def test_a_disk_pulled_mid_segment_costs_no_recording_and_its_cut_segment_is_back_without_a_restart(tmp_path, disks):
    """The smoke VM's case: keyframes every 2 s, a segment open on the disk when it goes, its open files
    failing (a USB disk yanked). The channel goes on on the other disk from the keyframe before what was not
    written; once the disk is back its cut segment is recovered, indexed and plays, with no hole before the
    other disk's segment."""
    a, b = disks
    root = tmp_path / "root"
    nvr = Appliance(parse_config(config_for(root, a.mount, b.mount, keyframe_s=2, segment_s=30)), clocks=RealClocks(),
                    sync=True)
    nvr.start()
    try:
        uuid_a = nvr.supervisor.disk_set.disks[0].uuid
        writers = [r.segmenter for r in nvr.supervisor.recorders]

        def on_a_for_a_while():
            rows = [(w, w.open_segment_row()) for w in writers if w.writing_to() == uuid_a]
            return next((w for w, row in rows if row is not None and row.end_us - row.start_us >= 3 * S), None)
        writer = wait_for(on_a_for_a_while, timeout_s=60, what="a segment open on disk A for 3 s")
        channel = writer.channel
        a.pull()
        wait_for(lambda: writer.stats.failovers >= 1, what="the writer going on on disk B")
        wait_for(lambda: len([s for s in nvr.supervisor.index.segments(channel=channel) if s.disk != uuid_a]) >= 1,
                 timeout_s=60, what="a segment of the channel on disk B")
        wait_for(lambda: not a.in_use(), timeout_s=30, what="the pulled filesystem to let go of its loop device")
        a.check()
        a.plug()  # back, without a restart
        wait_for(lambda: any(s.disk == uuid_a and s.recovered for s in nvr.supervisor.index.segments(channel=channel)),
                 timeout_s=60, what="the segment cut short on disk A recovered and indexed")
        rows = nvr.supervisor.index.segments(channel=channel)
        cut = next(s for s in rows if s.disk == uuid_a and s.recovered)
        following = next(s for s in rows if s.start_us > cut.start_us)
        gap_us = following.start_us - cut.end_us
        print(f"\nchannel {channel}: gap across the pull {max(gap_us, 0) / 1e6:.3f} s "
              f"(the other disk's segment starts {-gap_us / 1e6:.3f} s before the cut one's end)")
        assert gap_us <= 0 and writer.stats.frames_lost == 0
        assert decoded_frames(root / cut.path) == cut.frames
        for other in (1, 2):
            assert largest_gap_us(nvr.supervisor.index.segments(channel=other), cut.start_us) <= 2 * S
    finally:
        nvr.stop()
