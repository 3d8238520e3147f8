"""Several recording disks (folders here; loop-mounted filesystems in tests/appliance/test_several_disks.py):
identity files, where segments go, a disk that goes away or fails and comes back, per-disk retention and
recovery, with real segments, a real SQLite index and simulated clocks."""
from __future__ import annotations

import errno
import json
import shutil
import threading

import pytest

from hal.storage import DiskUsage
from recorder.disk_set import (AWAY, FAILED, FOREIGN, IDENTITY_FILE, OK, RETRY_S, DiskSet, read_identity,
                               write_identity)
from recorder.errors import DiskFull
from recorder.faults import FaultBoard
from recorder.index import Index
from recorder.recovery import recover
from recorder.retention import Retention, RetentionPolicy
from recorder.segmenter import Segmenter
from support.recording import decoded_frames, record
from support.waiting import wait_for


class Space:
    """Free bytes per folder, as the test sets them."""

    def __init__(self):
        self.free = {}

    def __call__(self, path):
        free = self.free.get(str(path), 10**12)
        return DiskUsage(10**12, 10**12 - free, free)


@pytest.fixture
def rig(tmp_path, clocks):
    root, a, b = tmp_path / "root", tmp_path / "a", tmp_path / "b"
    for folder in (root, a, b):
        folder.mkdir()
    index = Index(root)
    faults = FaultBoard(clocks=clocks)
    space = Space()
    disks = DiskSet(root=root, disks=[(a, "disk A"), (b, "disk B")], index=index, clocks=clocks, faults=faults,
                    usage=space)
    disks.open()
    yield root, a, b, index, faults, space, disks
    index.close()


def _usage_of(folder, *, total_bytes, other_bytes):
    used = other_bytes + sum(p.stat().st_size for p in folder.glob("ch*/*/*.mp4"))
    return DiskUsage(total_bytes, used, total_bytes - used)


def offline(faults):
    return {f.disk: f.message for f in faults.active() if f.kind == "disk_offline"}


def test_new_disks_get_an_identity_a_link_and_a_row_and_segments_go_to_the_freest(rig):
    root, a, b, index, faults, space, disks = rig
    ids = [read_identity(a), read_identity(b)]
    assert all(ids) and ids[0].uuid != ids[1].uuid and [i.label for i in ids] == ["disk A", "disk B"]
    assert [row.uuid for row in index.disks()] == [i.uuid for i in ids]
    assert (root / "disks" / ids[0].uuid).resolve() == a.resolve()
    space.free = {str(a): 5 * 10**9, str(b): 7 * 10**9}
    assert disks.place().disk == ids[1].uuid
    space.free = {str(a): 9 * 10**9, str(b): 7 * 10**9}
    chosen = disks.place()
    assert (chosen.disk, chosen.prefix, chosen.root) == (ids[0].uuid, f"disks/{ids[0].uuid}/", root / "disks" / ids[0].uuid)
    assert offline(faults) == {} and disks.present() == ["", ids[0].uuid, ids[1].uuid]


def test_an_unmounted_disk_is_never_written_and_comes_back_with_its_identity(rig, clocks):
    root, a, b, index, faults, space, disks = rig
    space.free = {str(a): 9 * 10**9, str(b): 1 * 10**9}
    uuid_a = read_identity(a).uuid
    shutil.move(a, a.with_name("a-unplugged"))
    a.mkdir()  # the empty mount point left behind
    assert disks.place().disk == read_identity(b).uuid
    assert list(a.iterdir()) == [] and disks.disks[0].state == AWAY
    assert "disk A" in offline(faults) and "unmounted or pulled" in offline(faults)["disk A"]
    assert disks.present() == ["", read_identity(b).uuid]
    a.rmdir()
    shutil.move(a.with_name("a-unplugged"), a)  # plugged in again
    assert disks.place().disk != uuid_a  # not looked at again before RETRY_S
    clocks.advance(RETRY_S)
    assert disks.place().disk == uuid_a and disks.disks[0].state == OK and offline(faults) == {}


def test_a_disk_whose_writes_fail_is_passed_over_until_retried_and_a_full_one_is_not(rig, clocks):
    root, a, b, index, faults, space, disks = rig
    space.free = {str(a): 9 * 10**9, str(b): 1 * 10**9}
    on_a = disks.place()
    disks.failed(on_a, DiskFull(errno.ENOSPC, "full"))
    assert disks.place() == on_a
    disks.failed(on_a, OSError(errno.EIO, "Input/output error"))
    assert disks.disks[0].state == FAILED and "Input/output error" in offline(faults)["disk A"]
    assert disks.place().disk == read_identity(b).uuid
    clocks.advance(RETRY_S)
    assert disks.place() == on_a and offline(faults) == {}


def test_a_failed_disk_is_taken_back_only_after_a_write_and_its_return_is_told_once(tmp_path, clocks):
    root, a = tmp_path / "root", tmp_path / "a"
    root.mkdir(), a.mkdir()
    index, faults, back = Index(root), FaultBoard(clocks=clocks), []
    disks = DiskSet(root=root, disks=[(a, "disk A")], index=index, clocks=clocks, faults=faults, on_back=back.append)
    disks.open()
    try:
        on_a = disks.place()
        disks.failed(on_a, OSError(errno.EIO, "Input/output error"))
        assert disks.place() is None
        clocks.advance(RETRY_S)
        assert disks.place() == on_a and disks.place() == on_a
        assert [d.label for d in back] == ["disk A"]  # once, by the writer that took it back
        assert sorted(p.name for p in a.iterdir()) == [IDENTITY_FILE]  # the write check left nothing
    finally:
        index.close()


def test_a_foreign_disk_and_a_known_disk_missing_at_start_are_not_written(tmp_path, clocks, rig):
    root, a, b, index, faults, space, disks = rig
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / IDENTITY_FILE).write_text(json.dumps({"uuid": "0b2d6c1e-9b7e-4c1a-8f3e-2a5d4c3b2a10", "label": "x"}))
    shutil.move(a, a.with_name("a-away"))
    a.mkdir()
    again = DiskSet(root=root, disks=[(a, "disk A"), (b, "disk B"), (foreign, "other")], index=index, clocks=clocks,
                    faults=faults, usage=space)
    again.open()
    assert [d.state for d in again.disks] == [AWAY, OK, FOREIGN]
    assert again.disks[0].uuid == read_identity(a.with_name("a-away")).uuid  # known by where it was
    assert list(a.iterdir()) == [] and not (root / "disks" / "0b2d6c1e-9b7e-4c1a-8f3e-2a5d4c3b2a10").exists()
    assert "never used" in offline(faults)["other"]
    for _ in range(3):
        assert again.place().disk == read_identity(b).uuid


def test_a_disk_made_by_disks_init_is_adopted_but_one_holding_another_recorders_files_stays_foreign(
        tmp_path, clocks, rig):
    root, a, b, index, faults, space, disks = rig
    blank, used, by_recorder = tmp_path / "blank", tmp_path / "used", tmp_path / "by-recorder"
    for folder in (blank, used, by_recorder):
        folder.mkdir()
    (blank / "lost+found").mkdir()  # as mkfs.ext4 leaves it
    made = write_identity(blank, "new", initialised=True)  # initialised elsewhere: this index never saw it
    write_identity(used, "theirs", initialised=True)
    (used / "ch01" / "main").mkdir(parents=True)
    (used / "ch01" / "main" / "20261207-101500.mp4").write_bytes(b"not ours")
    write_identity(by_recorder, "theirs too")  # a recorder's first use wrote it: another recorder's disk
    again = DiskSet(root=root, disks=[(b, "disk B"), (blank, "new"), (used, "used"), (by_recorder, "other")],
                    index=index, clocks=clocks, faults=faults, usage=space)
    again.open()
    assert [d.state for d in again.disks] == [OK, OK, FOREIGN, FOREIGN]
    assert again.disks[1].uuid == made.uuid and made.uuid in {row.uuid for row in index.disks()}
    assert (root / "disks" / made.uuid).resolve() == blank.resolve()
    assert "holds files ('ch01')" in offline(faults)["used"]
    assert "not by `nvr disks init`" in offline(faults)["other"]
    assert not (root / "disks" / read_identity(used).uuid).exists()
    space.free[str(b)] = 1  # the adopted disk is the freest: the next segment goes there
    assert again.place().disk == made.uuid
    assert sorted(p.name for p in used.iterdir()) == [IDENTITY_FILE, "ch01"]  # the foreign one untouched


def test_segments_spread_over_the_disks_play_from_the_root_and_each_disks_retention_keeps_to_its_disk(rig, clocks):
    root, a, b, index, faults, space, disks = rig
    uuid_a, uuid_b = read_identity(a).uuid, read_identity(b).uuid
    asked = {"a": 0}

    def alternating(path):  # a little more room on one disk, then on the other: segments alternate
        if str(path) == str(a):
            asked["a"] += 1
            return DiskUsage(10**12, 0, 10**12 - asked["a"] % 2)
        return DiskUsage(10**12, 0, 10**12 - 1 + asked["a"] % 2)
    disks._usage = alternating
    writer = Segmenter(channel=1, stream="main", root=root, index=index, clocks=clocks, faults=faults,
                       segment_seconds=2, sync=False, placer=disks)
    record(writer, clocks, seconds=20)
    rows = index.segments()
    assert {s.disk for s in rows} == {uuid_a, uuid_b}
    for seg in rows:
        assert seg.path.startswith(f"disks/{seg.disk}/ch01/main/")
        assert decoded_frames(root / seg.path) == seg.frames
    on_a = [s for s in rows if s.disk == uuid_a]
    used_a = sum(s.bytes for s in on_a)
    retention_a = Retention(root=root, index=index, clocks=clocks, faults=faults, sync=False, disk=uuid_a,
                            measure_at=a, ages=False, present=disks.present, label="disk A",
                            policy=RetentionPolicy(min_free_bytes=0, max_used_percent=50, locked_floor_bytes=0),
                            usage=lambda path: _usage_of(a, total_bytes=2 * used_a, other_bytes=used_a // 2))
    retention_a.enforce()
    after = index.segments()
    assert {s.path for s in rows if s.disk == uuid_b} <= {s.path for s in after}  # disk B untouched
    assert 0 < retention_a.stats.deleted_segments < len(on_a)
    assert all(not (root / s.path).exists() for s in on_a if s.path not in {x.path for x in after})


def test_recovery_keeps_an_away_disks_rows_and_adopts_cut_files_on_the_disks_present(rig, clocks):
    root, a, b, index, faults, space, disks = rig
    uuid_a, uuid_b = read_identity(a).uuid, read_identity(b).uuid
    space.free = {str(a): 9 * 10**9, str(b): 1 * 10**9}
    writer = Segmenter(channel=1, stream="main", root=root, index=index, clocks=clocks, faults=faults,
                       segment_seconds=2, sync=False, placer=disks)
    record(writer, clocks, seconds=6)
    space.free = {str(a): 1 * 10**9, str(b): 9 * 10**9}
    record(writer, clocks, seconds=6)
    rows = index.segments()
    on_a = [s for s in rows if s.disk == uuid_a]
    on_b = [s for s in rows if s.disk == uuid_b]
    assert on_a and on_b
    index.delete_rows([on_b[-1].id])  # as if the power went before its row was committed
    shutil.move(a, a.with_name("a-away"))  # and disk A is not there at the next start
    a.mkdir()
    report = recover(root, index, sync=False, disks=["", uuid_b])
    assert report.removed_rows == [] and report.recovered == [on_b[-1].path]
    assert {s.path for s in index.segments()} == {s.path for s in rows}
    assert [s.disk for s in index.segments() if s.path == on_b[-1].path] == [uuid_b]


def test_a_pinned_channel_records_only_onto_its_group_and_the_others_only_onto_disks_in_no_group(tmp_path, clocks):
    root, a, b = tmp_path / "root", tmp_path / "a", tmp_path / "b"
    for folder in (root, a, b):
        folder.mkdir()
    index = Index(root)
    faults = FaultBoard(clocks=clocks)
    disks = DiskSet(root=root, disks=[(a, "disk A"), (b, "disk B")], index=index, clocks=clocks, faults=faults,
                    groups={"disk A": "outdoor"}, pinned={1: "outdoor"})
    disks.open()
    try:
        for channel in (1, 2):
            writer = Segmenter(channel=channel, stream="main", root=root, index=index, clocks=clocks, faults=faults,
                               segment_seconds=2, sync=False, placer=disks)
            record(writer, clocks, seconds=6, channel=channel)
        assert {s.disk for s in index.segments(channel=1)} == {read_identity(a).uuid}
        assert {s.disk for s in index.segments(channel=2)} == {read_identity(b).uuid}
        shutil.move(a, a.with_name("a-away"))
        a.mkdir()
        assert disks.place(1) is None and disks.place(2).disk == read_identity(b).uuid  # no fallback for pinned
        writer = Segmenter(channel=1, stream="main", root=root, index=index, clocks=clocks, faults=faults,
                           segment_seconds=2, sync=False, placer=disks)
        record(writer, clocks, seconds=2, channel=1)
        assert writer.stats.frames_recorded == 0 and list(a.iterdir()) == []
        assert "none of its recording disks is usable" in {f.kind: f.message for f in faults.active()
                                                            if f.channel == 1}["disk_error"]
    finally:
        index.close()


def test_a_disk_taken_back_gets_its_own_recovery_pass_first_leaving_the_files_still_being_written(rig, clocks):
    root, a, b, index, faults, space, disks = rig
    uuid_a, uuid_b = read_identity(a).uuid, read_identity(b).uuid
    space.free = {str(a): 9 * 10**9, str(b): 1 * 10**9}
    writer = Segmenter(channel=1, stream="main", root=root, index=index, clocks=clocks, faults=faults,
                       segment_seconds=2, sync=False, placer=disks)
    record(writer, clocks, seconds=6)
    rows = index.segments()
    cut, still_open = rows[-1], rows[-2]  # as if one was cut short by the failure, one still being written
    index.delete_rows([cut.id, still_open.id])
    size_open = (root / still_open.path).stat().st_size
    passes = []

    def recover_disk(uuid):
        passes.append(uuid)
        recover(root, index, sync=False, disks=[uuid], open_paths=[still_open.path])
    disks._recover = recover_disk
    disks.failed(disks.place(), OSError(errno.EIO, "Input/output error"))
    clocks.advance(RETRY_S)
    assert disks.place().disk == uuid_b  # its pass runs first, on its own thread
    wait_for(lambda: not disks.recovering(), what="the returning disk's recovery pass")
    assert passes == [uuid_a] and disks.disks[0].state == OK and disks.place().disk == uuid_a
    paths = {s.path for s in index.segments()}
    assert cut.path in paths and still_open.path not in paths
    assert (root / still_open.path).stat().st_size == size_open
    assert offline(faults) == {}


def test_a_disk_whose_recovery_pass_fails_stays_failed_and_is_tried_again(rig, clocks):
    root, a, b, index, faults, space, disks = rig
    space.free = {str(a): 9 * 10**9, str(b): 1 * 10**9}

    def broken(uuid):
        raise OSError(errno.EIO, "Input/output error")
    disks._recover = broken
    disks.failed(disks.place(), OSError(errno.EIO, "Input/output error"))
    clocks.advance(RETRY_S)
    disks.place()
    wait_for(lambda: not disks.recovering(), what="the returning disk's recovery pass")
    assert disks.disks[0].state == FAILED and "recovery pass failed" in disks.statistics()[0]["reason"]
    assert "disk A" in offline(faults) and disks.place().disk == read_identity(b).uuid
    disks._recover = lambda uuid: None
    clocks.advance(RETRY_S)
    disks.place()
    wait_for(lambda: not disks.recovering(), what="the second recovery pass")
    assert disks.disks[0].state == OK and offline(faults) == {}


def test_a_disk_that_must_be_mounted_gets_no_identity_on_its_empty_mount_point_and_is_adopted_once_mounted(
        tmp_path, clocks):
    root, a, b = tmp_path / "root", tmp_path / "a", tmp_path / "b"
    for folder in (root, a, b):
        folder.mkdir()
    mounted = {b}
    index = Index(root)
    try:
        faults = FaultBoard(clocks=clocks)
        disks = DiskSet(root=root, disks=[(a, "disk A"), (b, "disk B")], index=index, clocks=clocks, faults=faults,
                        usage=Space(), must_mount=[a, b], is_mount=lambda path: path in mounted)
        disks.open()
        assert list(a.iterdir()) == [] and disks.disks[0].state == AWAY and disks.disks[0].uuid == ""
        assert offline(faults) == {"disk A": f"not mounted: nothing is written to {a} until a disk is mounted there "
                                             "(the disk 'disk A')"}
        uuid_b = read_identity(b).uuid
        assert disks.place().disk == uuid_b and list(a.iterdir()) == []
        mounted.add(a)  # a disk is mounted there
        assert disks.place().disk == uuid_b and list(a.iterdir()) == []  # looked at again only after RETRY_S
        clocks.advance(RETRY_S)
        disks.place()
        uuid_a = read_identity(a).uuid
        assert disks.disks[0].uuid == uuid_a and disks.disks[0].state == OK and offline(faults) == {}
        assert (root / "disks" / uuid_a).resolve() == a.resolve() and uuid_a in [r.uuid for r in index.disks()]
        assert uuid_a in disks.present()
        mounted.discard(a)  # unmounted while its identity file stays readable (a bind or a lazy umount)
        assert disks.place().disk == uuid_b and disks.disks[0].state == AWAY
        assert "not mounted" in offline(faults)["disk A"]
    finally:
        index.close()


def test_a_plain_folder_that_need_not_be_mounted_is_used_as_it_is(tmp_path, clocks):
    root, a = tmp_path / "root", tmp_path / "a"
    for folder in (root, a):
        folder.mkdir()
    index = Index(root)
    try:
        disks = DiskSet(root=root, disks=[(a, "disk A")], index=index, clocks=clocks, faults=FaultBoard(clocks=clocks),
                        usage=Space(), must_mount=[], is_mount=lambda path: False)
        disks.open()
        assert disks.place().disk == read_identity(a).uuid
    finally:
        index.close()


def test_an_unmounted_disk_is_remounted_through_the_hook_and_looked_at_again_at_once(tmp_path, clocks):
    root, a = tmp_path / "root", tmp_path / "a"
    for folder in (root, a):
        folder.mkdir()
    mounted, asked = set(), []

    def remount(path):
        asked.append(path)
        mounted.add(path)
        return True
    index = Index(root)
    try:
        faults = FaultBoard(clocks=clocks)
        disks = DiskSet(root=root, disks=[(a, "disk A")], index=index, clocks=clocks, faults=faults, usage=Space(),
                        must_mount=[a], is_mount=lambda path: path in mounted, remount=remount)
        disks.open()
        assert disks.place() is None and asked == []  # not before RETRY_S
        clocks.advance(RETRY_S)
        assert disks.place() is None  # the remount runs on its own thread
        wait_for(lambda: asked == [a] and not disks.remounting(), what="the remount")
        placed = disks.place()  # at once, not another RETRY_S later
        assert placed is not None and placed.disk == read_identity(a).uuid and offline(faults) == {}
    finally:
        index.close()


def test_a_remount_that_fails_leaves_the_disk_away_until_the_next_retry(tmp_path, clocks):
    root, a = tmp_path / "root", tmp_path / "a"
    for folder in (root, a):
        folder.mkdir()
    asked = []
    index = Index(root)
    try:
        faults = FaultBoard(clocks=clocks)
        disks = DiskSet(root=root, disks=[(a, "disk A")], index=index, clocks=clocks, faults=faults, usage=Space(),
                        must_mount=[a], is_mount=lambda path: False,
                        remount=lambda path: asked.append(path) or False)
        disks.open()
        clocks.advance(RETRY_S)
        disks.place()
        wait_for(lambda: asked == [a] and not disks.remounting(), what="the remount")
        assert disks.place() is None and asked == [a]  # not asked again before RETRY_S
        assert list(a.iterdir()) == [] and "not mounted" in offline(faults)["disk A"]
        clocks.advance(RETRY_S)
        disks.place()
        wait_for(lambda: asked == [a, a] and not disks.remounting(), what="the second remount")
    finally:
        index.close()


def test_writers_finding_a_newly_mounted_disk_at_once_give_it_one_identity_and_none_fails_it(tmp_path, clocks,
                                                                                             caplog):
    root, a = tmp_path / "root", tmp_path / "a"
    for folder in (root, a):
        folder.mkdir()
    mounted = set()
    together = threading.Barrier(8, timeout=1.0)  # holds the writers at the mount test, to let them race

    def is_mount(path):
        if path in mounted:
            try:
                together.wait()
            except threading.BrokenBarrierError:  # fewer got here (they were kept out): go on
                pass
        return path in mounted
    index = Index(root)
    try:
        faults = FaultBoard(clocks=clocks)
        disks = DiskSet(root=root, disks=[(a, "disk A")], index=index, clocks=clocks, faults=faults, usage=Space(),
                        must_mount=[a], is_mount=is_mount)
        disks.open()
        mounted.add(a)
        clocks.advance(RETRY_S)
        start = threading.Barrier(8)
        placed = []

        def writer():
            start.wait()
            placed.append(disks.place())
        threads = [threading.Thread(target=writer) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [p.name for p in a.iterdir()] == [IDENTITY_FILE] and disks.disks[0].state == OK
        assert {p.disk for p in placed if p is not None} == {read_identity(a).uuid}
        assert [row.uuid for row in index.disks()] == [read_identity(a).uuid]
        assert [r.message for r in caplog.records if "cannot be used" in r.message] == []  # never marked failed
    finally:
        index.close()
