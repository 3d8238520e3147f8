"""The disks as the health page, `/metrics` and `nvr disks` show them: identity, S.M.A.R.T. health,
space, errors, role and the retention preview ("at today's rate this disk holds N days")."""
from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from base.clock import Clocks
from hal.block_device import (BlockDeviceError, Signature, check_block_device, make_recordings_filesystem,
                               mount_and_do, mount_points, serial_of, signatures)
from hal.smart import SmartError, probe
from hal.storage import disk_usage
from recorder.disk_health import DiskHealthWatch
from recorder.faults import FaultSink
from recorder.index import INDEX_FILE, Index
from recorder.retention import ChannelQuota, RetentionPolicy
from recorder.disk_set import (IDENTITY_FILE, DiskIdentityError, DiskSet, adoption_problem, read_identity,
                               write_identity)
from recorder.retention_preview import preview, recording_capacity

from appliance.config.model import Config, DiskConfig

ROLE_RECORDINGS = "recordings"
ROLE_INDEX = "index"  # with storage.disks: the data root keeps the index (and older recordings)
INIT_STEPS = ("checking the disk", "making the ext4 filesystem", "writing the identity file")


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
                     smartctl: str = "smartctl", label: str | None = None, one_disk: bool = True) -> DiskHealthWatch:
    """The health watch of a disk as storage.health configures it (`smart=False`: none of its
    S.M.A.R.T., e.g. while no disk is mounted). `storage.health.device` names the data root's disk only
    (`one_disk`); with several disks each is found from its folder. `label`: its name in faults."""
    health = config.storage.health
    read = None
    if health.smart and smart:
        read = functools.partial(probe, device_type=health.device_type, smartctl=smartctl)
    return DiskHealthWatch(root=root, faults=faults, clocks=clocks, read=read, interval_s=health.interval_s,
                           max_temperature_c=health.max_temperature_c, device=health.device if one_disk else None,
                           label=label)


def disks_capacity(disk_set: DiskSet, index: Index, policy: RetentionPolicy) -> int:
    """What the recordings may occupy on all the recording disks present, each under its own bounds."""
    held = index.disk_bytes()
    total = 0
    for disk in disk_set.disks:
        if disk.uuid and disk.uuid in disk_set.present():
            try:
                total += recording_capacity(disk_usage(disk.path), policy, held.get(disk.uuid, 0))
            except OSError:
                continue
    return total


def disk_row(watch: DiskHealthWatch, *, index: Index | None, policy: RetentionPolicy, now_us: int,
             role: str = ROLE_RECORDINGS, extra: dict | None = None, capacity_bytes: int | None = None) -> dict:
    """One disk as plain data. `ok` is False (with `error`) when its folder cannot even be measured.
    `extra`: more about it (several disks: label, uuid, state); `capacity_bytes`: see `preview`."""
    row = {"role": role, **watch.statistics(), **(extra or {})}
    row["ok"] = row.get("space_error") is None
    if not row["ok"]:
        row["error"] = row["space_error"]
    row["retention_preview"] = None
    if index is not None and row["ok"]:
        try:
            usage = None if capacity_bytes is not None else disk_usage(watch.root)
            found = preview(index, usage=usage, policy=policy, now_us=now_us, capacity_bytes=capacity_bytes)
        except OSError as exc:
            row["retention_preview"] = {"error": str(exc)}
        else:
            row["retention_preview"] = {**found.as_dict(), "sentence": found.sentence()}
    return row


def inspect_disks(config: Config, *, clocks: Clocks, faults: FaultSink, smartctl: str = "smartctl") -> list[dict]:
    """What `nvr disks` shows: each disk read once now (S.M.A.R.T. without waking a sleeping disk), its
    recordings' index opened read-only beside a running recorder. Writes nothing (no identity files)."""
    root = config.storage.path
    policy = retention_policy(config)
    index = Index(root, reader=True) if (root / INDEX_FILE).exists() else None
    try:
        watch = make_disk_health(config, root, faults=faults, clocks=clocks, smartctl=smartctl)
        watch.poll()
        now_us = clocks.utc_now_us()
        if not config.storage.disks:
            return [disk_row(watch, index=index, policy=policy, now_us=now_us)]
        rows = [disk_row(watch, index=None, policy=policy, now_us=now_us, role=ROLE_INDEX)]
        known = {row.uuid for row in index.disks()} if index is not None else set()
        found = [(disk, _identity_state(disk.path, known)) for disk in config.storage.disks]
        capacity = _capacity_of(found, index, policy) if index is not None else None
        for disk, (uuid, state, reason) in found:
            extra = {"label": disk.name, "uuid": uuid, "state": state, "reason": reason}
            if state != "ok":
                rows.append({"role": ROLE_RECORDINGS, "path": str(disk.path), **extra, "ok": False,
                             "error": reason, "health": "unknown", "retention_preview": None})
                continue
            disk_watch = make_disk_health(config, disk.path, faults=faults, clocks=clocks, smartctl=smartctl,
                                          label=disk.name, one_disk=False)
            disk_watch.poll()
            rows.append(disk_row(disk_watch, index=index, policy=policy, now_us=now_us, extra=extra,
                                 capacity_bytes=capacity))
        return rows
    finally:
        if index is not None:
            index.close()


def _identity_state(folder: Path, known: set[str]) -> tuple[str, str, str | None]:
    """(uuid, 'ok' | 'away' | 'foreign', why) of a configured disk folder, as the recorder would judge it."""
    try:
        identity = read_identity(folder) if folder.is_dir() else None
    except (DiskIdentityError, OSError) as exc:
        return "", "foreign", str(exc)
    if identity is None:
        return "", "away", f"no {IDENTITY_FILE} in {folder}: not mounted, or a new disk `nvr run` has not used yet"
    if known and identity.uuid not in known:
        try:
            problem = adoption_problem(folder, identity)
        except OSError as exc:
            problem = f"its folder cannot be listed ({exc})"
        if problem is not None:
            return identity.uuid, "foreign", f"{folder} holds a disk this recorder has never used ({identity.uuid}), and {problem}"
    return identity.uuid, "ok", None


def _capacity_of(found: list, index: Index, policy: RetentionPolicy) -> int:
    held, total = index.disk_bytes(), 0
    for disk, (uuid, state, _) in found:
        if state == "ok":
            try:
                total += recording_capacity(disk_usage(disk.path), policy, held.get(uuid, 0))
            except OSError:
                continue
    return total


def disks_json(rows: list[dict]) -> str:
    return json.dumps({"disks": rows}, indent=2, sort_keys=True)


def disks_text(rows: list[dict]) -> str:
    """A person's view: one block per disk."""
    blocks = []
    for row in rows:
        preview_row = row.get("retention_preview") or {}
        name = f"{row['label']}: " if row.get("label") else ""
        state = f"  [{row['state']}]" if row.get("state") not in (None, "ok") else ""
        lines = [
            f"{name}{row['path']}  ({row['role']}){state}",
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


class DiskInitRefused(ValueError):
    """`nvr disks init` will not touch this device; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class InitCheck:
    """What initialising a device would do: the signatures it would erase and the serial confirming it."""

    device: str
    found: list[Signature]
    serial: str | None


def label_problem(label: str) -> str | None:
    """Why `label` cannot name a recordings disk (storage.disks[].label's rule), or None."""
    try:
        DiskConfig(path=Path("/"), label=label)
    except ValueError:
        return f"expected 1-32 letters, digits, spaces, '_', '.' or '-', got {label[:40]!r}"
    return None


def check_initialisable(device: str, *, confirm_serial: str | None = None, smartctl: str = "smartctl",
                        confirm_with: str = "--confirm-serial") -> InitCheck:
    """Raise DiskInitRefused unless `device` may be made a recordings disk now: not mounted (nor a
    partition of it), and blank unless `confirm_serial` is its serial. Looks only; writes nothing.
    `confirm_with`: where the refusal tells the admin to type the serial."""
    check_block_device(device)
    mounted = mount_points(device)
    if mounted:
        raise DiskInitRefused(f"{device} is in use (mounted on {', '.join(mounted)}); unmount it first")
    found = signatures(device)
    serial = disk_serial(device, smartctl=smartctl)
    if found:
        what = ", ".join(f"{s.kind}{f' {s.label!r}' if s.label else ''} on {s.device}" for s in found)
        if serial is None:
            raise DiskInitRefused(f"{device} is not blank ({what}) and reports no serial number to confirm with; "
                                  f"if you are sure, erase it yourself (wipefs --all {device}) and run this again")
        if confirm_serial != serial:
            hint = "" if confirm_serial is None else f" (you typed {confirm_serial!r})"
            raise DiskInitRefused(f"{device} is not blank ({what}); everything on it would be lost. To go on, "
                                  f"give its serial number with {confirm_with}{hint}: it is printed on the disk's "
                                  f"label and shown by `nvr disks`")
    return InitCheck(device, found, serial)


def initialise_disk(device: str, *, label: str, confirm_serial: str | None = None, smartctl: str = "smartctl",
                    on_step: Callable[[str], None] = lambda step: None, confirm_with: str = "--confirm-serial") -> dict:
    """Make `device` a recordings disk: one ext4 filesystem labelled `label` and a new identity file marked
    `initialised`, so a recorder that has never seen the disk adopts it on first use while it holds nothing.

    Refused (DiskInitRefused) as `check_initialisable` says. `on_step` hears each step as it starts
    (INIT_STEPS). Returns what was done, for the audit log."""
    on_step(INIT_STEPS[0])
    check = check_initialisable(device, confirm_serial=confirm_serial, smartctl=smartctl, confirm_with=confirm_with)
    on_step(INIT_STEPS[1])
    make_recordings_filesystem(device, label=label, wipe=bool(check.found))
    on_step(INIT_STEPS[2])
    made: list = []
    with tempfile.TemporaryDirectory(prefix="nvr-disk-init-") as folder:
        mount_and_do(device, Path(folder), lambda root: made.append(write_identity(root, label, initialised=True)))
    return {"device": device, "label": label, "serial": check.serial, "uuid": made[0].uuid,
            "erased": [f"{s.kind} on {s.device}" for s in check.found]}


def initialise_audited(device: str, *, label: str, confirm_serial: str | None, audit: Callable[[str, dict], None],
                       smartctl: str = "smartctl", on_step: Callable[[str], None] = lambda step: None,
                       confirm_with: str = "--confirm-serial") -> dict:
    """`initialise_disk` with every attempt in the audit log, as `nvr disks init` and the Disks page do it:
    `disk_init` with what was done, or `disk_init_refused` with why (and the error raised again)."""
    try:
        done = initialise_disk(device, label=label, confirm_serial=confirm_serial, smartctl=smartctl, on_step=on_step,
                               confirm_with=confirm_with)
    except (DiskInitRefused, BlockDeviceError) as exc:
        audit("disk_init_refused", {"device": device, "label": label, "why": str(exc)})
        raise
    audit("disk_init", done)
    return done


def disk_serial(device: str, *, smartctl: str = "smartctl") -> str | None:
    """The serial an admin confirms an erase with: the kernel's (lsblk), else S.M.A.R.T.'s (a sleeping
    disk is not woken for it), else None."""
    serial = serial_of(device)
    if serial:
        return serial
    try:
        return probe(device, smartctl=smartctl).serial
    except SmartError:
        return None
