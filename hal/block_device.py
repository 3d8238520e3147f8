"""A whole block device as the disk-initialising command sees it: what is on it, whether it is in use,
its serial, and making it an ext4 recordings disk (util-linux's wipefs and lsblk, e2fsprogs' mkfs.ext4).

Exceptions:

    BlockDeviceError (OSError)    not a block device, a tool failed, or its output is not what it prints
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

MAX_TOOL_OUTPUT_BYTES = 1 << 20  # wipefs/lsblk of one disk print a few KiB
MAX_DISKS = 64  # whole disks listed for the Disks page; an appliance has a handful
WHOLE_DISK_TYPES = ("disk", "loop")  # lsblk TYPE of a whole device (loop: an image file, as tests use)
TOOL_TIMEOUT_S = 120.0  # mkfs.ext4 on a large disk with lazy init takes seconds; a hung disk must not hang us


class BlockDeviceError(OSError):
    """A block device could not be looked at or prepared; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Signature:
    """Something on the device: a filesystem, a partition table, RAID or LVM metadata (wipefs's view)."""

    kind: str  # 'ext4', 'gpt', 'dos', 'LVM2_member', ...
    device: str  # the node it was found on: the disk or one of its partitions
    label: str | None


@dataclass(frozen=True, slots=True)
class WholeDisk:
    """A whole block device as lsblk sees it (not a partition), for choosing one to initialise."""

    path: str  # '/dev/sdb'
    size_bytes: int
    model: str | None
    serial: str | None
    read_only: bool
    mounted: tuple[str, ...]  # where it or a partition of it is mounted (or used as swap)

    def as_dict(self) -> dict:
        return {"device": self.path, "size_bytes": self.size_bytes, "model": self.model, "serial": self.serial,
                "read_only": self.read_only, "mounted": list(self.mounted)}


def whole_disks() -> list[WholeDisk]:
    """The machine's whole disks with a size (empty card readers, detached loop devices and zram's unset
    devices have none), at most MAX_DISKS of them."""
    doc = _json(["lsblk", "--json", "--bytes", "--output", "NAME,PATH,TYPE,SIZE,MODEL,SERIAL,MOUNTPOINT,RO"])
    found = []
    for item in doc.get("blockdevices") or []:
        if not isinstance(item, dict) or item.get("type") not in WHOLE_DISK_TYPES:
            continue
        size, path = item.get("size"), item.get("path")
        if not isinstance(size, int) or size <= 0 or not isinstance(path, str) or not path.startswith("/dev/"):
            continue
        points: list[str] = []
        _mounts_of([item], points)
        found.append(WholeDisk(path, size, _text(item.get("model")), _text(item.get("serial")),
                               item.get("ro") is True, tuple(points)))
        if len(found) == MAX_DISKS:
            break
    return found


def _text(value) -> str | None:
    return (str(value).strip()[:100] or None) if value is not None else None


def _mounts_of(items, points: list[str]) -> None:
    for item in items or []:
        if isinstance(item, dict):
            if item.get("mountpoint"):
                points.append(str(item["mountpoint"]))
            _mounts_of(item.get("children"), points)


def check_block_device(device: str) -> None:
    """Raise BlockDeviceError unless `device` is a block device node."""
    try:
        mode = os.stat(device).st_mode
    except OSError as exc:
        raise BlockDeviceError(exc.errno, f"{device}: {exc.strerror}") from None
    if not stat.S_ISBLK(mode):
        raise BlockDeviceError(f"{device} is not a block device (give the whole disk, e.g. /dev/sdb)")


def signatures(device: str) -> list[Signature]:
    """Every filesystem, partition table or volume signature on the disk and its partitions."""
    nodes = [device] + [f"/dev/{child}" for child in _children(device)]
    found = []
    for node in nodes:
        doc = _json(["wipefs", "--no-act", "--json", node])
        for item in doc.get("signatures") or []:
            if isinstance(item, dict):
                found.append(Signature(str(item.get("type", "?")), node, item.get("label") or None))
    return found


def mount_points(device: str) -> list[str]:
    """Where the disk or any of its partitions is mounted (or used as swap)."""
    doc = _json(["lsblk", "--json", "--output", "NAME,MOUNTPOINT", device])
    points: list[str] = []
    _mounts_of(doc.get("blockdevices"), points)
    return points


def serial_of(device: str) -> str | None:
    """The disk's serial number as the kernel reports it (lsblk), or None (loop devices, some bridges)."""
    doc = _json(["lsblk", "--json", "--nodeps", "--output", "SERIAL", device])
    items = doc.get("blockdevices") or []
    serial = items[0].get("serial") if items and isinstance(items[0], dict) else None
    return (str(serial).strip() or None) if serial else None


def make_recordings_filesystem(device: str, *, label: str, wipe: bool) -> None:
    """Make the whole disk one ext4 filesystem labelled `label`, with no reserved blocks (nobody but the
    recorder writes there) and an inode per MiB (segments are megabytes). `wipe`: first erase every
    signature on it (the caller has made sure the admin meant it)."""
    if wipe:
        _run(["wipefs", "--all", device])
    _run(["mkfs.ext4", "-q", "-F", "-m", "0", "-T", "largefile", "-L", label[:16], device])


def _children(device: str) -> list[str]:
    doc = _json(["lsblk", "--json", "--output", "NAME", device])
    names: list[str] = []

    def walk(items) -> None:
        for item in items or []:
            if isinstance(item, dict):
                names.append(str(item.get("name")))
                walk(item.get("children"))
    for top in doc.get("blockdevices") or []:
        if isinstance(top, dict):
            walk(top.get("children"))
    return names


def _json(command: list[str]) -> dict:
    out = _run(command)
    if not out.strip():
        return {}
    try:
        doc = json.loads(out)
    except ValueError as exc:
        raise BlockDeviceError(f"{command[0]} printed something that is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BlockDeviceError(f"{command[0]} printed JSON that is not an object")
    return doc


def _run(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, timeout=TOOL_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise BlockDeviceError(f"{command[0]} is not installed (util-linux, e2fsprogs)") from None
    except subprocess.TimeoutExpired:
        raise BlockDeviceError(f"{' '.join(command)} did not finish within {TOOL_TIMEOUT_S:g} s") from None
    if len(done.stdout) > MAX_TOOL_OUTPUT_BYTES:
        raise BlockDeviceError(f"{command[0]} printed more than {MAX_TOOL_OUTPUT_BYTES} bytes")
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip()[-400:]
        raise BlockDeviceError(f"{' '.join(command)} failed ({done.returncode}): {why}")
    return done.stdout.decode(errors="replace")


def mount_and_do(device: str, folder: Path, action) -> None:
    """Mount `device` on the empty folder `folder`, call `action(folder)`, unmount (always)."""
    _run(["mount", device, str(folder)])
    try:
        action(folder)
    finally:
        _run(["umount", str(folder)])
