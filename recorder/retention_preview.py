"""The retention preview: at today's recording rate, how many days the disk (and each channel) holds.

Pure arithmetic over what the index and the disk say now; nothing is deleted or written. The rate is
the bytes of segments that started in the last `RATE_WINDOW_US` (a day), divided by the part of that
window that has recordings (a box recording for 3 hours is judged on those 3 hours). Below
`MIN_OBSERVED_US` of recordings there is no rate to speak of and the preview says so (None).

What the recordings may occupy is the space the bounds leave them: the smaller of `max_used_percent`
of the filesystem and its size less `min_free_bytes`, minus what other files use. The days the disk
holds are that over the rate, capped by `max_age_days`. Every channel ages out together (retention
deletes the oldest of all channels first), so a channel holds the disk's days, or fewer where its
own quota (`max_bytes` over its own rate, its `max_age_days`) is tighter.
"""
from __future__ import annotations

from dataclasses import dataclass

from hal.storage import DiskUsage
from recorder.index import Index
from recorder.retention import DAY_US, RetentionPolicy

RATE_WINDOW_US = DAY_US
MIN_OBSERVED_US = 10 * 60_000_000  # ten minutes of recordings before a rate is quoted


@dataclass(frozen=True, slots=True)
class Holding:
    """How long something holds recordings: `days` (None: no rate yet), the rate it is based on,
    and which bound decides it: 'space', 'age', 'quota' or 'no rate yet'."""

    days: float | None
    bytes_per_day: int | None
    limited_by: str

    def as_dict(self) -> dict:
        return {"days": None if self.days is None else round(self.days, 1), "bytes_per_day": self.bytes_per_day,
                "limited_by": self.limited_by}


@dataclass(frozen=True, slots=True)
class RetentionPreview:
    disk: Holding
    capacity_bytes: int  # what the recordings may occupy on this disk under its bounds
    channels: dict[int, Holding]

    def as_dict(self) -> dict:
        return {**self.disk.as_dict(), "capacity_bytes": self.capacity_bytes,
                "channels": {str(ch): h.as_dict() for ch, h in sorted(self.channels.items())}}

    def sentence(self) -> str:
        """'at today's rate this disk holds 23 days (space)', for people."""
        if self.disk.days is None:
            return "not enough recorded yet to estimate how many days this disk holds"
        return f"at today's rate this disk holds {self.disk.days:.1f} days (limited by {self.disk.limited_by})"


def preview(index: Index, *, usage: DiskUsage | None, policy: RetentionPolicy, now_us: int,
            capacity_bytes: int | None = None) -> RetentionPreview:
    """The preview for one disk whose recordings `index` lists, with `usage` measured just now; or, with
    `capacity_bytes` (what the recordings may occupy on all the recording disks together), for a set of
    disks that recording spreads over."""
    if capacity_bytes is None:
        capacity_bytes = recording_capacity(usage, policy, index.totals()[1])
    capacity = capacity_bytes
    recent = index.recorded_since(now_us - RATE_WINDOW_US)
    all_bytes = sum(size for size, _ in recent.values())
    first_us = min((first for _, first in recent.values()), default=None)
    disk = _holding(capacity, _rate(all_bytes, first_us, now_us), policy.max_age_days, "space")
    channels = {}
    for channel in sorted(set(index.channels()) | set(policy.channels)):
        rate = _rate(*recent.get(channel, (0, None)), now_us)
        channels[channel] = _channel_holding(policy, channel, disk, rate)
    return RetentionPreview(disk, capacity, channels)


def recording_capacity(usage: DiskUsage, policy: RetentionPolicy, recordings_bytes: int) -> int:
    """Bytes the recordings may occupy: the tighter space bound, less what other files use."""
    usable = usage.used_bytes + usage.free_bytes
    other_bytes = max(usage.used_bytes - recordings_bytes, 0)
    allowed = min(policy.max_used_percent / 100 * usable, usable - policy.min_free_bytes)
    return max(int(allowed) - other_bytes, 0)


def _channel_holding(policy: RetentionPolicy, channel: int, disk: Holding, rate: int | None) -> Holding:
    if rate is None or disk.days is None:
        return Holding(None, rate, "no rate yet")
    best = Holding(disk.days, rate, disk.limited_by)
    quota = policy.channels.get(channel)
    if quota is not None and quota.max_bytes is not None and rate > 0:
        best = min(best, Holding(quota.max_bytes / rate, rate, "quota"), key=_days)
    if quota is not None and quota.max_age_days is not None:
        best = min(best, Holding(quota.max_age_days, rate, "age"), key=_days)
    return best


def _holding(capacity_bytes: int, rate: int | None, max_age_days: float | None, limited_by: str) -> Holding:
    if rate is None:
        return Holding(None, None, "no rate yet")
    days = capacity_bytes / rate if rate > 0 else float("inf")
    if max_age_days is not None and max_age_days < days:
        return Holding(max_age_days, rate, "age")
    return Holding(None if days == float("inf") else days, rate, limited_by)


def _rate(recorded_bytes: int, first_start_us: int | None, now_us: int) -> int | None:
    """Bytes a day at the rate of the last day's recordings; None with under ten minutes of them."""
    if first_start_us is None or now_us - first_start_us < MIN_OBSERVED_US:
        return None
    return round(recorded_bytes * DAY_US / (now_us - first_start_us))


def _days(holding: Holding) -> float:
    return float("inf") if holding.days is None else holding.days
