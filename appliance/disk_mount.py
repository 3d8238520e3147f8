"""Hot plug for recording disks: a disk that must be mounted (storage.require_mount) and comes back is
mounted again, as a commercial NVR does when a disk is plugged back in.

systemd unmounts an fstab mount whose device goes away but does not mount it when the device returns.
The disk set asks `FstabRemount` (its `remount` hook) about a folder that is not mounted each time it looks
at the away disk again (every RETRY_S); the folder is mounted when all of these hold:

- fstab has an entry for the folder, without `noauto` (an admin who wants to mount by hand says so);
- the entry names a local device (UUID=, LABEL=, PARTUUID=, PARTLABEL= or /dev/...), not a bind, swap or a
  network share;
- that device is present now.

Then the disk set's own checks decide whether the disk is taken back (its identity, a synced write).

An ejected disk is `hold`: it is not mounted again while its device stays plugged in (the admin is about
to unplug it); once the device has been seen gone, a return is mounted as any other.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hal.fstab import FSTAB, FstabEntry, entry_for, mount_entry, read_fstab, source_device

log = logging.getLogger("nvr.disk_mount")

NOT_DEVICES = frozenset({"swap", "none", "tmpfs", "proc", "sysfs", "nfs", "nfs4", "cifs", "smb3", "sshfs",
                         "fuse.sshfs", "overlay"})


@dataclass(frozen=True, slots=True)
class RemountPlan:
    mount: bool
    why: str  # what is done, or why not
    device: Path | None = None


def plan_remount(folder: Path, entries: list[FstabEntry], *, dev: Path = Path("/dev"),
                 exists: Callable[[Path], bool] = os.path.exists) -> RemountPlan:
    """Whether to mount `folder` (not mounted now) from the fstab `entries`, and why (not)."""
    entry = entry_for(entries, folder)
    if entry is None:
        return RemountPlan(False, f"{folder} is not in fstab: mount the disk there by hand")
    if "noauto" in entry.options:
        return RemountPlan(False, f"the fstab entry of {folder} says noauto: mount it by hand")
    if entry.fs_type in NOT_DEVICES or "bind" in entry.options or "rbind" in entry.options:
        return RemountPlan(False, f"the fstab entry of {folder} ({entry.fs_type}) is not a local disk")
    device = source_device(entry.source, dev=dev)
    if device is None:
        return RemountPlan(False, f"the fstab source {entry.source[:80]!r} of {folder} names no local device")
    if not exists(device):
        return RemountPlan(False, f"{entry.source[:80]} ({device}) is not plugged in", device)
    return RemountPlan(True, f"{entry.source[:80]} ({device}) is back: mounting it on {folder}", device)


class FstabRemount:
    """The disk set's `remount` hook: `self(folder)` mounts `folder` from `fstab` when `plan_remount` says
    so; True if it is mounted afterwards. Says what it does in the log, and why not once per change."""

    def __init__(self, *, fstab: Path = FSTAB, dev: Path = Path("/dev"),
                 mount: Callable[..., tuple[bool, str]] = mount_entry,
                 is_mount: Callable[[Path], bool] = os.path.ismount):
        self._fstab, self._dev, self._mount, self._is_mount = fstab, dev, mount, is_mount
        self._lock = threading.Lock()
        self._said: dict[Path, str] = {}  # folder -> the last reason logged for it
        self._held: set[Path] = set()  # ejected folders whose device has not been seen gone since
        self.mounted: list[Path] = []  # the folders mounted, in order (for the health page and tests)

    def __call__(self, folder: Path) -> bool:
        folder = Path(folder)
        if self._is_mount(folder):
            return True
        plan = plan_remount(folder, read_fstab(self._fstab), dev=self._dev)
        with self._lock:
            held = folder in self._held
            if held and not plan.mount:
                self._held.discard(folder)  # unplugged since it was ejected (or never to be mounted)
        if held and plan.mount:
            self._say(folder, "it was ejected and is still plugged in: unplug it and plug it in again to record on "
                              "it", logging.INFO)
            return False
        if not plan.mount:
            self._say(folder, plan.why, logging.INFO)
            return False
        log.warning("%s", plan.why)
        done, what = self._mount(folder, fstab=self._fstab)
        if not done or not self._is_mount(folder):
            self._say(folder, f"mounting {folder} again failed: {what}", logging.ERROR)
            return False
        log.warning("recording disk %s: %s", folder, what)
        with self._lock:
            self._said.pop(folder, None)
            self.mounted.append(folder)
        return True

    def hold(self, folder: Path) -> None:
        """`folder`'s disk was ejected: not mounted again until its device has gone and come back."""
        with self._lock:
            self._held.add(Path(folder))

    def _say(self, folder: Path, why: str, level: int) -> None:
        with self._lock:
            if self._said.get(folder) == why:
                return
            self._said[folder] = why
        log.log(level, "recording disk %s not mounted again: %s", folder, why)
