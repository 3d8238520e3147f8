"""The SQLite index of runs and segments on a data root (WAL mode, one writer connection)."""
from __future__ import annotations

import errno
import sqlite3
import threading
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from recorder.errors import DiskFull, IndexCorrupt, StorageError
from recorder.wal_sync import WalSyncer

INDEX_FILE = "index.sqlite3"
SCHEMA_VERSION = 3  # 2: events and event_channels; 3: disks, segments.disk (older indexes are upgraded in place on open)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    channel INTEGER NOT NULL CHECK (channel >= 1),
    stream TEXT NOT NULL CHECK (stream IN ('main', 'sub')),
    start_us INTEGER NOT NULL,           -- UTC label of media time 0 of this run
    clock_source TEXT NOT NULL,          -- where start_us came from: 'arrival' (our wall clock)
    codec TEXT NOT NULL,
    width INTEGER NOT NULL CHECK (width > 0),
    height INTEGER NOT NULL CHECK (height > 0),
    timescale INTEGER NOT NULL CHECK (timescale > 0)
);
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs (id),
    channel INTEGER NOT NULL,
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL CHECK (seq >= 0),            -- position within its run
    start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL CHECK (end_us > start_us),
    media_start_ticks INTEGER NOT NULL CHECK (media_start_ticks >= 0),  -- tfdt of its first sample
    path TEXT NOT NULL UNIQUE,                        -- relative to the data root
    bytes INTEGER NOT NULL CHECK (bytes > 0),
    frames INTEGER NOT NULL CHECK (frames > 0),
    locked INTEGER NOT NULL DEFAULT 0 CHECK (locked IN (0, 1)),
    deleting INTEGER NOT NULL DEFAULT 0 CHECK (deleting IN (0, 1)),  -- row marked before unlink
    recovered INTEGER NOT NULL DEFAULT 0 CHECK (recovered IN (0, 1)),
    disk TEXT NOT NULL DEFAULT '',                    -- the disk's uuid ('': the data root itself)
    UNIQUE (run_id, seq)
);
CREATE INDEX IF NOT EXISTS segments_by_channel_time ON segments (channel, stream, start_us);
CREATE INDEX IF NOT EXISTS segments_by_time ON segments (start_us);
-- Retention's per-channel questions (a quota's bytes, a channel's oldest unlocked or locked segments)
-- answered from the index alone: bench/retention.py measured 7 ms a channel without it on a month of 16.
CREATE INDEX IF NOT EXISTS segments_for_retention ON segments (channel, locked, deleting, start_us, bytes);
CREATE TABLE IF NOT EXISTS alarms (
    id INTEGER PRIMARY KEY,
    at_us INTEGER NOT NULL,
    kind TEXT NOT NULL,
    channel INTEGER,
    message TEXT NOT NULL
);
"""

# Events (schema 2): a time span marked by an alarm, motion or a rule, over some channels. While a
# locked event is open or overlaps a segment, that segment is locked against retention, including
# segments indexed after the event was written (`add_segment` checks).
_EVENTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    start_us INTEGER NOT NULL,           -- UTC; pre-alarm seconds before the trigger
    trigger_us INTEGER NOT NULL,         -- UTC instant the signal became active
    end_us INTEGER,                      -- UTC; NULL while the event is still open
    source TEXT NOT NULL,                -- what fired: 'alarm_input:door', 'motion:1', 'disk:full', ...
    rule TEXT NOT NULL DEFAULT '',       -- the rule that made it
    locked INTEGER NOT NULL DEFAULT 0 CHECK (locked IN (0, 1)),
    CHECK (start_us <= trigger_us),
    CHECK (end_us IS NULL OR end_us >= trigger_us)
);
CREATE TABLE IF NOT EXISTS event_channels (
    event_id INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    channel INTEGER NOT NULL CHECK (channel >= 1),
    PRIMARY KEY (event_id, channel)
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (start_us);
CREATE INDEX IF NOT EXISTS event_channels_by_channel ON event_channels (channel, event_id);
"""

# Disks (schema 3): the recording disks besides the data root, each known by the uuid in its identity
# file. A segment on one has `disk` = that uuid and a path under `disks/UUID/` (a link in the data root
# to the disk's folder), so every reader finds it as `root / path`.
_DISKS_SCHEMA = """
CREATE TABLE IF NOT EXISTS disks (
    uuid TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    path TEXT NOT NULL,                  -- the folder it was last configured at
    added_us INTEGER NOT NULL
);
"""

# A segment overlapping a locked event on its channel is locked when indexed.
_LOCKED_BY_EVENT = (
    "EXISTS (SELECT 1 FROM event_channels c JOIN events e ON e.id = c.event_id WHERE c.channel = ?"
    " AND e.locked = 1 AND e.start_us < ? AND (e.end_us IS NULL OR e.end_us > ?))"
)


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    channel: int
    stream: str
    start_us: int
    clock_source: str
    codec: str
    width: int
    height: int
    timescale: int


@dataclass(frozen=True, slots=True)
class Segment:
    """One indexed segment. `path` is relative to the data root."""

    id: int
    run_id: int
    channel: int
    stream: str
    seq: int
    start_us: int
    end_us: int
    media_start_ticks: int
    path: str
    bytes: int
    frames: int
    locked: bool = False
    deleting: bool = False
    recovered: bool = False
    disk: str = ""  # the uuid of the disk it is on; '' for the data root


@dataclass(frozen=True, slots=True)
class DiskRow:
    uuid: str
    label: str
    path: str
    added_us: int


@dataclass(frozen=True, slots=True)
class Event:
    """One event: [start_us, end_us) UTC (end None while open); `trigger_us` is when its signal fired."""

    id: int
    start_us: int
    trigger_us: int
    end_us: int | None
    source: str
    rule: str
    locked: bool
    channels: tuple[int, ...]


_SEGMENT_COLUMNS = (
    "id, run_id, channel, stream, seq, start_us, end_us, media_start_ticks, path, bytes, frames, locked, deleting, recovered,"
    " disk"
)


class Index:
    """The index of one data root. Thread-safe: one connection behind a lock, every write committed.

    `synchronous=FULL` makes a commit durable before it returns, so a committed row always names a
    file that was synced before it (the order in DESIGN.md §3). Alarm events are the exception:
    `add_event` and `end_event` commit under `synchronous=NORMAL` (atomic, and safe from the process
    dying) and hand the fsync to a `WalSyncer` thread, so an alarm's rule never waits on the disk;
    they are safe from a power cut one fsync later (`wait_events_durable`).
    """

    def __init__(self, root: Path, *, create: bool = True, reader: bool = False):
        """`reader=True` opens a second, query-only connection to an existing index: under WAL its reads
        never wait for the recorder's writes nor hold them up (the web server reads through one)."""
        self.path = root / INDEX_FILE
        if (not create or reader) and not self.path.exists():
            raise FileNotFoundError(f"no index at {self.path}: nothing has been recorded under {root}")
        self._lock = threading.RLock()
        self._syncer: WalSyncer | None = None
        self._event_ticket = 0
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            if reader:
                self._db.execute("PRAGMA query_only=ON")
                return
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
            self._syncer = WalSyncer(self.path)
        except sqlite3.DatabaseError as exc:
            raise IndexCorrupt(
                f"the index {self.path} cannot be read ({exc}); move it aside and restart: "
                "the recovery pass rebuilds it from the segment files"
            ) from exc

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise IndexCorrupt(f"index {self.path} has schema {version}, newer than this recorder's {SCHEMA_VERSION}")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(segments)")}
        if "disk" not in columns:  # a version 1 or 2 index: every segment is on the data root
            self._db.execute("ALTER TABLE segments ADD COLUMN disk TEXT NOT NULL DEFAULT ''")
        self._db.executescript(_EVENTS_SCHEMA)
        self._db.executescript(_DISKS_SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            if self._syncer is not None:
                self._syncer.close()
            self._db.close()

    @contextmanager
    def _tx(self, *, synced: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction. A full or failing disk surfaces as DiskFull / StorageError, the
        same errors segment writes give, so callers handle both alike. `synced=False` commits
        without waiting for the fsync; the caller hands that to the syncer."""
        with self._lock:
            try:
                if not synced:
                    self._db.execute("PRAGMA synchronous=NORMAL")
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    try:
                        yield self._db
                        self._db.execute("COMMIT")
                    except BaseException:
                        if self._db.in_transaction:
                            self._db.execute("ROLLBACK")
                        raise
                finally:
                    if not synced:
                        self._db.execute("PRAGMA synchronous=FULL")
            except sqlite3.OperationalError as exc:
                raise _storage_error(exc, self.path) from exc

    @contextmanager
    def _event_tx(self) -> Iterator[sqlite3.Connection]:
        """An event's transaction: committed at once, made durable by the syncer right after."""
        with self._lock:
            with self._tx(synced=False) as db:
                yield db
            self._event_ticket = self._syncer.request()

    def wait_events_durable(self, timeout_s: float | None = None) -> bool:
        """Block until every event change committed so far is safe from a power cut; False on timeout."""
        with self._lock:
            ticket = self._event_ticket
        return self._syncer is None or self._syncer.wait(ticket, timeout_s)

    def _query(self, sql: str, args: Iterable = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    # runs

    def begin_run(self, *, channel: int, stream: str, start_us: int, clock_source: str,
                  codec: str, width: int, height: int, timescale: int) -> Run:
        """Commit a new run row and return it; its id names the run's segment files."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO runs (channel, stream, start_us, clock_source, codec, width, height, timescale)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (channel, stream, start_us, clock_source, codec, width, height, timescale),
            )
        return Run(cur.lastrowid, channel, stream, start_us, clock_source, codec, width, height, timescale)

    def relabel_run(self, run_id: int, start_us: int) -> None:
        """Set a run's wall-clock label; only before its first segment row is committed."""
        with self._tx() as db:
            db.execute("UPDATE runs SET start_us = ? WHERE id = ? AND id NOT IN (SELECT run_id FROM segments)",
                       (start_us, run_id))

    def run(self, run_id: int) -> Run | None:
        rows = self._query("SELECT * FROM runs WHERE id = ?", (run_id,))
        return Run(*rows[0]) if rows else None

    def last_end_us(self, channel: int, stream: str) -> int | None:
        """End of the latest indexed segment of a stream, the floor for any new run's start."""
        rows = self._query("SELECT MAX(end_us) FROM segments WHERE channel = ? AND stream = ?", (channel, stream))
        return rows[0][0]

    # segments

    def add_segment(self, seg: Segment) -> int:
        """Commit a segment row (its file must already be synced). Returns the row id.

        The row is locked if `seg.locked` or if a locked event on its channel overlaps it."""
        with self._tx() as db:
            cur = db.execute(_INSERT_SEGMENT, _segment_values(seg))
            db.execute(f"UPDATE segments SET locked = 1 WHERE id = ? AND locked = 0 AND {_LOCKED_BY_EVENT}",
                       (cur.lastrowid, seg.channel, seg.end_us, seg.start_us))
        return cur.lastrowid

    def add_segments(self, segs: Iterable[Segment]) -> None:
        """Commit many segment rows in one transaction (imports, benchmarks)."""
        with self._tx() as db:
            db.executemany(_INSERT_SEGMENT, map(_segment_values, segs))

    def segments(self, *, channel: int | None = None, stream: str | None = None,
                 start_us: int | None = None, end_us: int | None = None, include_deleting: bool = False) -> list[Segment]:
        """Segments overlapping [start_us, end_us), ordered by channel, stream and time.

        With a start, each stream is read from the segment covering that start onwards, so a query
        for one hour of a month-long index reads that hour's rows and not the month before it.
        """
        if start_us is None:
            return self._segments_between(channel, stream, None, end_us, include_deleting)
        found: list[Segment] = []
        for ch, st in self.streams(channel=channel, stream=stream):
            first = self._query("SELECT MAX(start_us) FROM segments WHERE channel = ? AND stream = ? AND start_us <= ?",
                                (ch, st, start_us))[0][0]
            found += [s for s in self._segments_between(ch, st, first if first is not None else start_us, end_us,
                                                        include_deleting) if s.end_us > start_us]
        return found

    def _segments_between(self, channel, stream, min_start_us, end_us, include_deleting) -> list[Segment]:
        where, args = ["1"], []
        for clause, value in (("channel = ?", channel), ("stream = ?", stream),
                              ("start_us >= ?", min_start_us), ("start_us < ?", end_us)):
            if value is not None:
                where.append(clause)
                args.append(value)
        if not include_deleting:
            where.append("deleting = 0")
        sql = f"SELECT {_SEGMENT_COLUMNS} FROM segments WHERE {' AND '.join(where)} ORDER BY channel, stream, start_us"
        return [_segment(r) for r in self._query(sql, args)]

    def streams(self, *, channel: int | None = None, stream: str | None = None) -> list[tuple[int, str]]:
        """The (channel, stream) pairs that have ever recorded, in order."""
        rows = self._query("SELECT DISTINCT channel, stream FROM runs ORDER BY channel, stream")
        return [(c, s) for c, s in rows if (channel is None or c == channel) and (stream is None or s == stream)]

    def covering(self, *, channel: int, stream: str, at_us: int) -> Segment | None:
        """The segment of a stream whose span holds the instant `at_us`, if any (one index probe)."""
        rows = self._query(
            f"SELECT {_SEGMENT_COLUMNS} FROM segments WHERE channel = ? AND stream = ? AND start_us <= ?"
            " AND deleting = 0 ORDER BY start_us DESC LIMIT 1",
            (channel, stream, at_us),
        )
        seg = _segment(rows[0]) if rows else None
        return seg if seg is not None and seg.end_us > at_us else None

    def next_segment(self, *, channel: int, stream: str, at_or_after_us: int) -> Segment | None:
        """The first segment of a stream starting at or after `at_or_after_us` (one index probe)."""
        rows = self._query(
            f"SELECT {_SEGMENT_COLUMNS} FROM segments WHERE channel = ? AND stream = ? AND start_us >= ?"
            " AND deleting = 0 ORDER BY start_us LIMIT 1",
            (channel, stream, at_or_after_us),
        )
        return _segment(rows[0]) if rows else None

    def oldest(self, *, limit: int, locked: bool, channel: int | None = None,
               disks: Collection[str] | None = None) -> list[Segment]:
        """The oldest segments (by start time; all channels, or one; all disks or those named) that are
        locked or not, for retention."""
        where, args = _retention_filter(locked, channel, disks)
        rows = self._query(f"SELECT {_SEGMENT_COLUMNS} FROM segments WHERE {where} ORDER BY start_us LIMIT ?",
                           (*args, limit))
        return [_segment(r) for r in rows]

    def older_than(self, *, before_us: int, limit: int, locked: bool = False, channel: int | None = None,
                   disks: Collection[str] | None = None) -> list[Segment]:
        """Segments (unlocked unless `locked`; all channels, or one; all disks or those named) that ended
        before `before_us`, oldest first."""
        where, args = _retention_filter(locked, channel, disks)
        rows = self._query(
            f"SELECT {_SEGMENT_COLUMNS} FROM segments WHERE {where} AND end_us < ? ORDER BY start_us LIMIT ?",
            (*args, before_us, limit),
        )
        return [_segment(r) for r in rows]

    def channel_bytes(self, channel: int, *, locked: bool = False, disks: Collection[str] | None = None) -> int:
        """Bytes of a channel's segments (all its streams; all disks or those named) that are locked or
        not; reads that channel's rows."""
        where, args = _retention_filter(locked, channel, disks)
        return self._query(f"SELECT COALESCE(SUM(bytes), 0) FROM segments WHERE {where}", args)[0][0]

    def recorded_since(self, since_us: int) -> dict[int, tuple[int, int]]:
        """channel -> (bytes, earliest start_us) of its segments starting at or after `since_us`: how fast
        recordings arrive (the retention preview). One pass over that span's rows."""
        rows = self._query("SELECT channel, SUM(bytes), MIN(start_us) FROM segments INDEXED BY segments_by_time"
                           " WHERE start_us >= ? AND deleting = 0 GROUP BY channel", (since_us,))
        return {channel: (size, first) for channel, size, first in rows}

    def disk_bytes(self) -> dict[str, int]:
        """disk uuid ('' the data root) -> bytes of its live segments."""
        return dict(self._query("SELECT disk, SUM(bytes) FROM segments WHERE deleting = 0 GROUP BY disk"))

    # disks

    def add_disk(self, *, uuid: str, label: str, path: str, added_us: int) -> None:
        """Remember a recording disk (or its new folder and label, if known already)."""
        with self._tx() as db:
            db.execute("INSERT INTO disks (uuid, label, path, added_us) VALUES (?, ?, ?, ?) ON CONFLICT (uuid)"
                       " DO UPDATE SET label = excluded.label, path = excluded.path", (uuid, label, path, added_us))

    def disks(self) -> list[DiskRow]:
        return [DiskRow(*row) for row in self._query("SELECT uuid, label, path, added_us FROM disks ORDER BY added_us")]

    def channels(self) -> list[int]:
        """Channels that have ever recorded, in order."""
        return [c for (c,) in self._query("SELECT DISTINCT channel FROM runs ORDER BY channel")]

    def mark_deleting(self, ids: list[int]) -> None:
        """First step of a deletion: the rows stop being listed before their files go."""
        with self._tx() as db:
            db.executemany("UPDATE segments SET deleting = 1 WHERE id = ?", [(i,) for i in ids])

    def delete_rows(self, ids: list[int]) -> None:
        with self._tx() as db:
            db.executemany("DELETE FROM segments WHERE id = ?", [(i,) for i in ids])

    def set_locked(self, ids: Iterable[int], locked: bool) -> None:
        with self._tx() as db:
            db.executemany("UPDATE segments SET locked = ? WHERE id = ?", [(int(locked), i) for i in ids])

    def all_paths(self) -> dict[str, Segment]:
        """Every row (deleting ones too) keyed by relative path, for the recovery pass."""
        rows = self._query(f"SELECT {_SEGMENT_COLUMNS} FROM segments")
        return {r[8]: _segment(r) for r in rows}

    def delete_empty_runs(self) -> int:
        """Drop runs that no segment refers to any more, except each stream's latest."""
        with self._tx() as db:
            cur = db.execute(
                "DELETE FROM runs WHERE id NOT IN (SELECT DISTINCT run_id FROM segments)"
                " AND id NOT IN (SELECT MAX(id) FROM runs GROUP BY channel, stream)"
            )
        return cur.rowcount

    # alarms

    def add_alarm(self, *, at_us: int, kind: str, channel: int | None, message: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO alarms (at_us, kind, channel, message) VALUES (?, ?, ?, ?)",
                       (at_us, kind, channel, message))

    def recent_alarms(self, limit: int = 50) -> list[tuple[int, str, int | None, str]]:
        return self._query("SELECT at_us, kind, channel, message FROM alarms ORDER BY id DESC LIMIT ?", (limit,))

    # events

    def add_event(self, *, start_us: int, trigger_us: int, source: str, rule: str = "",
                  channels: Iterable[int] = (), locked: bool = False) -> Event:
        """Commit an open event; if `locked`, lock the indexed segments of its channels from its start on."""
        channels = tuple(sorted(set(channels)))
        with self._event_tx() as db:
            cur = db.execute("INSERT INTO events (start_us, trigger_us, source, rule, locked) VALUES (?, ?, ?, ?, ?)",
                             (start_us, trigger_us, source, rule, int(locked)))
            db.executemany("INSERT INTO event_channels (event_id, channel) VALUES (?, ?)",
                           [(cur.lastrowid, ch) for ch in channels])
            if locked:
                self._lock_event_segments(db, channels, start_us, None)
        return Event(cur.lastrowid, start_us, trigger_us, None, source, rule, locked, channels)

    def end_event(self, event_id: int, *, end_us: int) -> None:
        """Close an event at `end_us` (never before its trigger) and lock what it covers, if locked."""
        with self._event_tx() as db:
            db.execute("UPDATE events SET end_us = MAX(?, trigger_us) WHERE id = ?", (end_us, event_id))
            row = db.execute("SELECT start_us, end_us, locked FROM events WHERE id = ?", (event_id,)).fetchone()
            if row is not None and row[2]:
                channels = [c for (c,) in db.execute("SELECT channel FROM event_channels WHERE event_id = ?",
                                                     (event_id,))]
                self._lock_event_segments(db, channels, row[0], row[1])

    def end_open_events(self, *, end_us: int) -> int:
        """Close every event still open (at shutdown, or at start-up after a crash)."""
        with self._event_tx() as db:
            cur = db.execute("UPDATE events SET end_us = MAX(?, trigger_us) WHERE end_us IS NULL", (end_us,))
        return cur.rowcount

    @staticmethod
    def _lock_event_segments(db: sqlite3.Connection, channels: Iterable[int], start_us: int, end_us: int | None) -> None:
        for channel in channels:
            db.execute("UPDATE segments SET locked = 1 WHERE channel = ? AND locked = 0 AND deleting = 0"
                       " AND end_us > ? AND (? IS NULL OR start_us < ?)", (channel, start_us, end_us, end_us))

    def events(self, *, start_us: int | None = None, end_us: int | None = None, channel: int | None = None,
               limit: int = 1000) -> list[Event]:
        """Events overlapping [start_us, end_us) (open events reach to now), newest first."""
        where, args = ["1"], []
        if start_us is not None:
            where.append("(e.end_us IS NULL OR e.end_us > ?)")
            args.append(start_us)
        if end_us is not None:
            where.append("e.start_us < ?")
            args.append(end_us)
        if channel is not None:
            where.append("e.id IN (SELECT event_id FROM event_channels WHERE channel = ?)")
            args.append(channel)
        rows = self._query(
            "SELECT e.id, e.start_us, e.trigger_us, e.end_us, e.source, e.rule, e.locked,"
            " (SELECT group_concat(channel) FROM event_channels WHERE event_id = e.id)"
            f" FROM events e WHERE {' AND '.join(where)} ORDER BY e.start_us DESC, e.id DESC LIMIT ?", (*args, limit))
        return [Event(*row[:6], bool(row[6]), tuple(sorted(int(c) for c in row[7].split(","))) if row[7] else ())
                for row in rows]

    def alarms_between(self, *, start_us: int, end_us: int, channel: int | None = None,
                       limit: int = 1000) -> list[tuple[int, str, int | None, str]]:
        """Recorded alarms in [start_us, end_us) as (at_us, kind, channel, message), oldest first;
        with a channel, that channel's and the appliance-wide ones (channel NULL)."""
        sql = "SELECT at_us, kind, channel, message FROM alarms WHERE at_us >= ? AND at_us < ?"
        args: list = [start_us, end_us]
        if channel is not None:
            sql += " AND (channel = ? OR channel IS NULL)"
            args.append(channel)
        return self._query(sql + " ORDER BY at_us LIMIT ?", (*args, limit))

    def totals(self) -> tuple[int, int]:
        """(segment count, bytes) over the whole index."""
        count, size = self._query("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM segments WHERE deleting = 0")[0]
        return count, size


_INSERT_SEGMENT = (
    "INSERT INTO segments (run_id, channel, stream, seq, start_us, end_us, media_start_ticks,"
    " path, bytes, frames, locked, recovered, disk) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _retention_filter(locked: bool, channel: int | None, disks: Collection[str] | None = None) -> tuple[str, list]:
    """WHERE clause and arguments for live (not deleting) segments, locked or not, of one channel or all,
    on the given disks or all. A disk that is away keeps its rows: retention passes them over."""
    where, args = ("deleting = 0 AND locked = ?", [int(locked)]) if channel is None else (
        "channel = ? AND deleting = 0 AND locked = ?", [channel, int(locked)])
    if disks is not None:
        where += f" AND disk IN ({', '.join('?' * len(disks))})" if disks else " AND 0"
        args += list(disks)
    return where, args


def _segment_values(s: Segment) -> tuple:
    return (s.run_id, s.channel, s.stream, s.seq, s.start_us, s.end_us, s.media_start_ticks, s.path, s.bytes,
            s.frames, int(s.locked), int(s.recovered), s.disk)


def _segment(row: tuple) -> Segment:
    *head, locked, deleting, recovered, disk = row
    return Segment(*head, locked=bool(locked), deleting=bool(deleting), recovered=bool(recovered), disk=disk)


def _storage_error(exc: sqlite3.OperationalError, path: Path) -> Exception:
    text = str(exc)
    if "full" in text:
        return DiskFull(errno.ENOSPC, f"the index {path} cannot grow: {text}")
    if "I/O" in text or "readonly" in text:
        return StorageError(errno.EIO, f"the index {path} cannot be written: {text}")
    return exc
