"""The disks as the health page, `/metrics` and `nvr disks` show them: identity, S.M.A.R.T. health,
space, errors, role and the retention preview ("at today's rate this disk holds N days")."""
from __future__ import annotations

import functools
import json
from pathlib import Path

from base.clock import Clocks
from hal.smart import probe
from hal.storage import disk_usage
from recorder.disk_health import DiskHealthWatch
from recorder.faults import FaultSink
from recorder.index import INDEX_FILE, Index
from recorder.retention import ChannelQuota, RetentionPolicy
from recorder.retention_preview import preview

from appliance.config.model import Config

ROLE_RECORDINGS = "recordings"


def retention_policy(config: Config) -> RetentionPolicy:
    """The disk's bounds from storage.retention, with the quota of every channel that sets one
    (disabled channels too: their recordings stay on the disk and stay bounded)."""
    r = config.storage.retention
    quotas = {c.id: ChannelQuota(c.retention.max_bytes, c.retention.max_age_days, c.retention.events_max_age_days)
              for c in config.channels if c.retention != c.retention.__class__()}
    return RetentionPolicy(max_used_percent=r.max_used_percent, min_free_bytes=r.min_free_bytes,
                           max_age_days=r.max_age_days, locked_floor_bytes=r.locked_floor_bytes,
                           events_max_age_days=r.events_max_age_days, channels=quotas)


def make_disk_health(config: Config, root: Path, *, faults: FaultSink, clocks: Clocks, smart: bool = True,
                     smartctl: str = "smartctl") -> DiskHealthWatch:
    """The health watch of the recordings disk as storage.health configures it (`smart=False`: none of
    its S.M.A.R.T., e.g. while no disk is mounted)."""
    health = config.storage.health
    read = None
    if health.smart and smart:
        read = functools.partial(probe, device_type=health.device_type, smartctl=smartctl)
    return DiskHealthWatch(root=root, faults=faults, clocks=clocks, read=read, interval_s=health.interval_s,
                           max_temperature_c=health.max_temperature_c, device=health.device)


def disk_row(watch: DiskHealthWatch, *, index: Index | None, policy: RetentionPolicy, now_us: int,
             role: str = ROLE_RECORDINGS) -> dict:
    """One disk as plain data. `ok` is False (with `error`) when its folder cannot even be measured."""
    row = {"role": role, **watch.statistics()}
    row["ok"] = row.get("space_error") is None
    if not row["ok"]:
        row["error"] = row["space_error"]
    row["retention_preview"] = None
    if index is not None and row["ok"]:
        try:
            found = preview(index, usage=disk_usage(watch.root), policy=policy, now_us=now_us)
        except OSError as exc:
            row["retention_preview"] = {"error": str(exc)}
        else:
            row["retention_preview"] = {**found.as_dict(), "sentence": found.sentence()}
    return row


def inspect_disks(config: Config, *, clocks: Clocks, faults: FaultSink, smartctl: str = "smartctl") -> list[dict]:
    """What `nvr disks` shows: each disk read once now (S.M.A.R.T. without waking a sleeping disk), its
    recordings' index opened read-only beside a running recorder."""
    root = config.storage.path
    watch = make_disk_health(config, root, faults=faults, clocks=clocks, smartctl=smartctl)
    watch.poll()
    index = Index(root, reader=True) if (root / INDEX_FILE).exists() else None
    try:
        return [disk_row(watch, index=index, policy=retention_policy(config), now_us=clocks.utc_now_us())]
    finally:
        if index is not None:
            index.close()


def disks_json(rows: list[dict]) -> str:
    return json.dumps({"disks": rows}, indent=2, sort_keys=True)


def disks_text(rows: list[dict]) -> str:
    """A person's view: one block per disk."""
    blocks = []
    for row in rows:
        preview_row = row.get("retention_preview") or {}
        lines = [
            f"{row['path']}  ({row['role']})",
            f"  device       {row.get('device') or 'unknown'}  {row.get('model') or ''} {row.get('serial') or ''}".rstrip(),
            f"  size         {_size(row.get('capacity_bytes') or row.get('total_bytes'))}",
            f"  health       {row.get('health', 'unknown')}" + (f"  ({row['smart_error']})" if row.get("smart_error") else ""),
            f"  temperature  {_or_unknown(row.get('temperature_c'), ' °C')}   power-on {_or_unknown(row.get('power_on_hours'), ' h')}",
            f"  sectors      reallocated {_or_unknown(row.get('reallocated_sectors'))}, pending "
            f"{_or_unknown(row.get('pending_sectors'))}, uncorrectable {_or_unknown(row.get('uncorrectable_sectors'))}",
            f"  free         {_size(row.get('free_bytes'))} of {_size(row.get('total_bytes'))}"
            f" ({_or_unknown(row.get('used_percent'), ' %')} used)",
            f"  I/O errors   {row.get('io_errors', 0)}",
            f"  retention    {preview_row.get('sentence') or preview_row.get('error') or 'no recordings indexed here yet'}",
        ]
        for channel, holding in (preview_row.get("channels") or {}).items():
            days = "?" if holding["days"] is None else f"{holding['days']:.1f} days"
            lines.append(f"    channel {channel:>3}  {days} ({holding['limited_by']})")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _size(count: int | None) -> str:
    if count is None:
        return "unknown"
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


def _or_unknown(value, unit: str = "") -> str:
    return "unknown" if value is None else f"{value}{unit}"
