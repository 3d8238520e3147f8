"""Events in the index: rows, segment locking (also of segments indexed later), durability, and the schema upgrade."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from recorder.index import INDEX_FILE, SCHEMA_VERSION, Index, Segment

S = 1_000_000
T0 = 1_767_225_600 * S


def seg(channel: int, number: int, *, run_id: int, length_s: int = 10) -> Segment:
    start = T0 + number * length_s * S
    return Segment(id=0, run_id=run_id, channel=channel, stream="main", seq=number, start_us=start,
                   end_us=start + length_s * S, media_start_ticks=number * length_s * 90_000,
                   path=f"ch{channel:02d}/main/{run_id:08d}-{number:05d}.mp4", bytes=1000, frames=250)


def add_run(index: Index, channel: int) -> int:
    return index.begin_run(channel=channel, stream="main", start_us=T0, clock_source="arrival", codec="h264",
                           width=320, height=240, timescale=90_000).id


def locked_numbers(index: Index, channel: int) -> list[int]:
    return [s.seq for s in index.segments(channel=channel) if s.locked]


def test_a_locked_event_locks_the_segments_it_covers_on_its_channels_only(index):
    run1, run2 = add_run(index, 1), add_run(index, 2)
    for number in range(6):  # 0-60 s on both channels
        index.add_segment(seg(1, number, run_id=run1))
        index.add_segment(seg(2, number, run_id=run2))
    event = index.add_event(start_us=T0 + 25 * S, trigger_us=T0 + 30 * S, source="alarm_input:door",
                            rule="door", channels=[1], locked=True)
    assert locked_numbers(index, 1) == [2, 3, 4, 5]  # open event: everything from its start on
    index.end_event(event.id, end_us=T0 + 41 * S)
    assert locked_numbers(index, 1) == [2, 3, 4, 5]
    assert locked_numbers(index, 2) == []
    [row] = index.events()
    assert (row.start_us, row.trigger_us, row.end_us, row.source, row.channels, row.locked) == \
           (T0 + 25 * S, T0 + 30 * S, T0 + 41 * S, "alarm_input:door", (1,), True)


def test_segments_indexed_after_a_locked_event_began_are_locked_when_they_overlap_it(index):
    run = add_run(index, 1)
    index.add_segment(seg(1, 0, run_id=run))
    event = index.add_event(start_us=T0 + 5 * S, trigger_us=T0 + 8 * S, source="motion:1", channels=[1], locked=True)
    index.add_segment(seg(1, 1, run_id=run))  # 10-20 s, closed while the event is open
    index.end_event(event.id, end_us=T0 + 25 * S)
    index.add_segment(seg(1, 2, run_id=run))  # 20-30 s: overlaps the event's end
    index.add_segment(seg(1, 3, run_id=run))  # 30-40 s: after it
    assert locked_numbers(index, 1) == [0, 1, 2]


def test_an_unlocked_event_locks_nothing_and_events_are_listed_newest_first(index):
    run = add_run(index, 1)
    index.add_segment(seg(1, 0, run_id=run))
    index.add_event(start_us=T0, trigger_us=T0 + S, source="disk:full")
    index.add_event(start_us=T0 + 2 * S, trigger_us=T0 + 3 * S, source="motion:1", channels=[1])
    assert locked_numbers(index, 1) == []
    assert [e.source for e in index.events()] == ["motion:1", "disk:full"]
    assert [e.source for e in index.events(channel=1)] == ["motion:1"]
    assert index.end_open_events(end_us=T0 + 9 * S) == 2
    assert all(e.end_us == T0 + 9 * S for e in index.events())


def test_an_index_of_schema_1_is_upgraded_in_place_and_keeps_its_rows(tmp_path):
    db = sqlite3.connect(tmp_path / INDEX_FILE)
    db.executescript("""
        CREATE TABLE runs (id INTEGER PRIMARY KEY, channel INTEGER NOT NULL, stream TEXT NOT NULL,
            start_us INTEGER NOT NULL, clock_source TEXT NOT NULL, codec TEXT NOT NULL, width INTEGER NOT NULL,
            height INTEGER NOT NULL, timescale INTEGER NOT NULL);
        INSERT INTO runs VALUES (1, 1, 'main', 0, 'arrival', 'h264', 320, 240, 90000);
        PRAGMA user_version=1;
    """)
    db.close()
    index = Index(tmp_path)
    try:
        assert index.run(1).width == 320
        event = index.add_event(start_us=0, trigger_us=5, source="alarm_input:x", channels=[1], locked=True)
        assert index.events()[0].id == event.id
        assert index._query("PRAGMA user_version")[0][0] == SCHEMA_VERSION == 3
    finally:
        index.close()


def test_nvr_events_lists_events_newest_first_as_a_table_and_as_json(tmp_path, capsys):
    import json

    from appliance.cli import main
    index = Index(tmp_path)
    index.add_event(start_us=T0, trigger_us=T0 + 10 * S, source="alarm_input:door", rule="door", channels=[1, 2],
                    locked=True)
    event = index.add_event(start_us=T0 + 60 * S, trigger_us=T0 + 60 * S, source="disk:full")
    index.end_event(event.id, end_us=T0 + 70 * S)
    index.close()
    assert main(["events", "--data", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "disk:full (-)" in lines[1] and "2026-01-01T00:01:10.000Z" in lines[1]
    assert "open" in lines[2] and "1,2" in lines[2] and "yes" in lines[2]
    assert main(["events", "--data", str(tmp_path), "--channel", "2", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["source"], row["channels"], row["start"], row["end"]) == (
        "alarm_input:door", [1, 2], "2026-01-01T00:00:00.000Z", None)


def test_an_event_commits_without_waiting_for_the_disk_and_is_synced_right_after(index, monkeypatch):
    import os
    synced_paths = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced_paths.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)))
    event = index.add_event(start_us=1, trigger_us=2, source="alarm_input:door", channels=[1], locked=True)
    assert index.wait_events_durable(timeout_s=5)
    assert any(p.endswith(INDEX_FILE + "-wal") for p in synced_paths), synced_paths
    index.end_event(event.id, end_us=3)
    assert index.wait_events_durable(timeout_s=5)
    assert index.events()[0].end_us == 3


def test_an_event_returned_by_add_event_survives_kill_9_of_the_process_at_once(tmp_path):
    import subprocess
    import sys
    child = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from recorder.index import Index\n"
        "index = Index(Path(sys.argv[1]))\n"
        "index.add_event(start_us=5, trigger_us=6, source='alarm_input:door', channels=[2])\n"
        "os.kill(os.getpid(), signal.SIGKILL)  # before the syncer could run, most likely\n"
    )
    done = subprocess.run([sys.executable, "-c", child, str(tmp_path)], cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == -9
    events = Index(tmp_path).events()
    assert [(e.start_us, e.trigger_us, e.source, e.channels) for e in events] == [(5, 6, "alarm_input:door", (2,))]


def test_an_index_of_schema_2_gets_the_disks_and_keeps_its_segments_on_the_data_root(tmp_path):
    db = sqlite3.connect(tmp_path / INDEX_FILE)
    db.executescript("""
        CREATE TABLE runs (id INTEGER PRIMARY KEY, channel INTEGER NOT NULL, stream TEXT NOT NULL,
            start_us INTEGER NOT NULL, clock_source TEXT NOT NULL, codec TEXT NOT NULL, width INTEGER NOT NULL,
            height INTEGER NOT NULL, timescale INTEGER NOT NULL);
        CREATE TABLE segments (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs (id),
            channel INTEGER NOT NULL, stream TEXT NOT NULL, seq INTEGER NOT NULL, start_us INTEGER NOT NULL,
            end_us INTEGER NOT NULL, media_start_ticks INTEGER NOT NULL, path TEXT NOT NULL UNIQUE,
            bytes INTEGER NOT NULL, frames INTEGER NOT NULL, locked INTEGER NOT NULL DEFAULT 0,
            deleting INTEGER NOT NULL DEFAULT 0, recovered INTEGER NOT NULL DEFAULT 0, UNIQUE (run_id, seq));
        INSERT INTO runs VALUES (1, 1, 'main', 0, 'arrival', 'h264', 320, 240, 90000);
        INSERT INTO segments (run_id, channel, stream, seq, start_us, end_us, media_start_ticks, path, bytes, frames)
            VALUES (1, 1, 'main', 0, 0, 60000000, 0, 'ch01/main/00000001-00000.mp4', 1000, 1500);
        PRAGMA user_version=2;
    """)
    db.close()
    index = Index(tmp_path)
    try:
        [seg] = index.segments()
        assert (seg.path, seg.disk, seg.bytes) == ("ch01/main/00000001-00000.mp4", "", 1000)
        assert index.disks() == [] and index.disk_bytes() == {"": 1000}
        assert index._query("PRAGMA user_version")[0][0] == SCHEMA_VERSION == 3
    finally:
        index.close()
