"""Retention: keeps the data disk under its bounds by deleting the oldest unlocked segments first.

Bounds, in the order they are applied:
1. age: unlocked segments that ended more than `max_age_days` ago go (and those of a channel older than
   its own quota's `max_age_days`); locked (event) segments older than `events_max_age_days` (the
   channel's, else the disk's) go too: events are kept by their own age, not forever;
2. channel quotas: while a channel's unlocked segments (all its streams) hold more than its
   `max_bytes`, that channel's oldest unlocked segments go. Locked segments do not count against a
   quota and are never deleted for one: they outlive it, bounded by their own age and the disk;
3. space: while the disk is over `max_used_percent` or under `min_free_bytes`, the oldest unlocked
   segments (all channels together) go;
4. the floor: locked segments are kept until free space drops under `locked_floor_bytes`, i.e. the
   disk would otherwise fill and stop all recording; then the oldest locked ones go, and that raises
   the `retention_locked` alarm. If the disk stays over its bound with nothing left to delete,
   `disk_full` is raised.
Deletion order is DESIGN.md §3's: mark the row, unlink the file, sync the directory, drop the row.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from base.clock import Clocks
from hal.storage import DiskUsage, disk_usage, fsync_dir
from recorder.faults import FaultSink
from recorder.errors import DiskFull
from recorder.index import Index, Segment

log = logging.getLogger("nvr.retention")

BATCH = 16


DAY_US = 86_400_000_000


@dataclass(frozen=True, slots=True)
class ChannelQuota:
    """One channel's own bounds, on top of the disk's. None: no bound of that kind for this channel
    (`events_max_age_days` None: the disk's `events_max_age_days` applies)."""

    max_bytes: int | None = None
    max_age_days: float | None = None
    events_max_age_days: float | None = None


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    max_used_percent: float = 90.0
    min_free_bytes: int = 1 << 30
    max_age_days: float | None = None
    locked_floor_bytes: int = 64 << 20
    events_max_age_days: float | None = None  # locked (event) segments older than this go; None: kept
    channels: Mapping[int, ChannelQuota] = field(default_factory=dict)

    def events_age_days(self, channel: int) -> float | None:
        """How long a channel's locked segments are kept: its quota's value, else the disk's."""
        quota = self.channels.get(channel)
        if quota is not None and quota.events_max_age_days is not None:
            return quota.events_max_age_days
        return self.events_max_age_days


@dataclass
class RetentionStats:
    passes: int = 0
    deleted_segments: int = 0
    deleted_bytes: int = 0
    deleted_locked: int = 0
    deleted_for_quota: int = 0
    deleted_events_by_age: int = 0
    last_usage: DiskUsage | None = None
    last_error: str | None = None


class Retention:
    """Applies a RetentionPolicy to one data root. Thread-safe; `enforce` may be called from any
    thread (segmenters call it when a write hits a full disk) besides the periodic loop.

    With several disks there is one Retention per disk: `disk` (its uuid, '' for the data root) limits
    the space bounds and the floor to that disk's segments, measured at `measure_at` (its folder); the
    data root's also applies the ages and quotas (`ages=True`) to the disks `present()` names (a disk
    that is away keeps its recordings until it is back). Paths are always taken from `root`."""

    def __init__(self, *, root: Path, index: Index, clocks: Clocks, faults: FaultSink, policy: RetentionPolicy,
                 interval_s: float = 10.0, usage: Callable[[Path], DiskUsage] = disk_usage, sync: bool = True,
                 disk: str | None = None, measure_at: Path | None = None, ages: bool = True,
                 present: Callable[[], Collection[str]] | None = None, label: str | None = None):
        self._root, self._index, self._clocks, self._faults = root, index, clocks, faults
        self.policy, self._interval_s, self._usage, self._sync = policy, interval_s, usage, sync
        self.disk, self._measure_at, self._ages, self._present = disk, measure_at or root, ages, present
        self._label = label  # the disk's label in its faults (several disks), else None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = RetentionStats()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.enforce()
            self._stop.wait(self._interval_s)

    def enforce(self) -> None:
        """One pass over all bounds. Errors are reported as the `disk_error` alarm, never raised."""
        with self._lock:
            try:
                self._enforce()
                self.stats.last_error = None
            except OSError as exc:
                self.stats.last_error = str(exc)
                self._faults.raise_fault("disk_error", f"retention cannot work on {self._measure_at}: {exc}",
                                         disk=self._label)
            self.stats.passes += 1

    def _enforce(self) -> None:
        if self.disk and self._present is not None and self.disk not in self._present():
            return  # away or failed: its folder may be an empty mount point on another filesystem
        if self._ages:
            present = self._present() if self._present is not None else None
            self._apply_ages(present)
            self._apply_quotas(present)
        on_disk = None if self.disk is None else [self.disk]
        while (need := self._bytes_over_bound()) > 0 and \
                (batch := self._index.oldest(limit=BATCH, locked=False, disks=on_disk)):
            self._delete(_covering(batch, need))
        while (need := self._bytes_under_floor()) > 0 and \
                (batch := self._index.oldest(limit=BATCH, locked=True, disks=on_disk)):
            batch = _covering(batch, need)
            self._delete(batch)
            self.stats.deleted_locked += len(batch)
            self._faults.raise_fault(
                "retention_locked",
                f"the disk is nearly full with only locked recordings left; deleted locked segments from {batch[0].path}",
                disk=self._label,
            )
        self._report_bound()

    def _apply_ages(self, present) -> None:
        """Unlocked segments past the disk's or their channel's age; locked ones past their events age."""
        now_us = self._clocks.utc_now_us()
        self._delete_older(now_us, self.policy.max_age_days, locked=False, channel=None, disks=present)
        for channel, quota in self.policy.channels.items():
            self._delete_older(now_us, quota.max_age_days, locked=False, channel=channel, disks=present)
        for channel in self._index.channels():
            self.stats.deleted_events_by_age += self._delete_older(
                now_us, self.policy.events_age_days(channel), locked=True, channel=channel, disks=present)

    def _delete_older(self, now_us: int, age_days: float | None, *, locked: bool, channel: int | None,
                      disks) -> int:
        if age_days is None:
            return 0
        cutoff, deleted = now_us - round(age_days * DAY_US), 0
        while batch := self._index.older_than(before_us=cutoff, limit=BATCH, locked=locked, channel=channel,
                                              disks=disks):
            self._delete(batch)
            deleted += len(batch)
        return deleted

    def _apply_quotas(self, present) -> None:
        """Each channel with `max_bytes` down to it, its own oldest unlocked segments first (on the disks
        present: a disk that is away holds what it holds until it is back)."""
        for channel, quota in self.policy.channels.items():
            if quota.max_bytes is None:
                continue
            while (need := self._index.channel_bytes(channel, disks=present) - quota.max_bytes) > 0 and \
                    (batch := self._index.oldest(limit=BATCH, locked=False, channel=channel, disks=present)):
                batch = _covering(batch, need)
                self._delete(batch)
                self.stats.deleted_for_quota += len(batch)

    def _bytes_over_bound(self) -> int:
        """How many bytes must go to meet both space bounds (<= 0: none)."""
        usage = self._measure()
        allowed_used = self.policy.max_used_percent / 100 * (usage.used_bytes + usage.free_bytes)
        return max(int(usage.used_bytes - allowed_used) + 1, self.policy.min_free_bytes - usage.free_bytes)

    def _bytes_under_floor(self) -> int:
        return self.policy.locked_floor_bytes - self._measure().free_bytes

    def _measure(self) -> DiskUsage:
        self.stats.last_usage = self._usage(self._measure_at)
        return self.stats.last_usage

    def _report_bound(self) -> None:
        if self._bytes_over_bound() > 0:
            usage = self.stats.last_usage
            self._faults.raise_fault(
                "disk_full",
                f"{self._measure_at} is {usage.used_percent:.1f}% used with {usage.free_bytes} bytes free and no unlocked "
                "recordings left to delete; add a disk, unlock events or lower the bounds",
                disk=self._label,
            )
        else:
            self._faults.clear_fault("disk_full", disk=self._label)
            self._faults.clear_fault("retention_locked", disk=self._label)

    def _delete(self, batch: list[Segment]) -> None:
        ids = [seg.id for seg in batch]
        try:
            self._index.mark_deleting(ids)
        except DiskFull:
            # The index itself cannot grow on a disk this full, so the rows cannot be marked first.
            # Unlinking first is safe: the recovery pass drops rows whose files are gone.
            log.warning("retention: the disk is too full to mark rows; deleting %d file(s) before their rows", len(ids))
        folders = set()
        for seg in batch:
            path = self._root / seg.path
            path.unlink(missing_ok=True)
            folders.add(path.parent)
            self.stats.deleted_bytes += seg.bytes
        if self._sync:
            for folder in folders:
                fsync_dir(folder)
        self._index.delete_rows(ids)
        self.stats.deleted_segments += len(batch)
        log.info("retention: deleted %d segment(s), oldest %s", len(batch), batch[0].path)

    def statistics(self) -> dict:
        usage = self.stats.last_usage
        return {
            "passes": self.stats.passes, "deleted_segments": self.stats.deleted_segments,
            "deleted_bytes": self.stats.deleted_bytes, "deleted_locked": self.stats.deleted_locked,
            "deleted_for_quota": self.stats.deleted_for_quota,
            "deleted_events_by_age": self.stats.deleted_events_by_age,
            "used_percent": round(usage.used_percent, 2) if usage else None,
            "free_bytes": usage.free_bytes if usage else None, "last_error": self.stats.last_error,
        }


def _covering(batch: list[Segment], need_bytes: int) -> list[Segment]:
    """The shortest oldest-first prefix of `batch` whose files add up to `need_bytes` (at least one)."""
    total = 0
    for count, seg in enumerate(batch, 1):
        total += seg.bytes
        if total >= need_bytes:
            return batch[:count]
    return batch
