"""The recording disks: each one's identity file, which may be written now, and where the next segment goes.

With `storage.disks` the data root keeps the index and the segments go to the listed disks. Each disk
carries an identity file (`.nvr-disk.json`: a uuid made on first use, and its label) so that a disk is
known by what it is, not by where it is mounted:

- a folder with no identity file that the index has never seen is a new disk: the file is written;
- a folder whose identity the index knows is that disk (its folder and label are updated);
- a folder with no identity file where a known disk was configured is that disk, *away*: unmounted,
  pulled, or another disk in its place. Nothing is written there (it would land on whatever filesystem
  is under the mount point), and its rows stay in the index for when it comes back;
- a folder with an identity the index does not know is *foreign* (another recorder's disk) and is never
  written to, unless the identity says `nvr disks init` made it (`initialised`) and the disk holds
  nothing besides it (and ext4's `lost+found`): that is a disk made for a recorder and never recorded on,
  so it is adopted on first use. This holds wherever and whenever it was initialised (on another box,
  before this box had an index); a disk holding another recorder's recordings stays foreign.

A disk is reached from the data root through a link `disks/UUID` -> its folder, and a segment's path
in the index is `disks/UUID/chNN/...`, so every reader finds a segment as `root / path` whichever disk
holds it. The next segment goes to the usable disk with the most free space among the channel's disks
(recording spreads over them): the disks of the group the channel is pinned to, else those in no group. A write that fails with anything but a full disk marks that disk *failed*: the writer goes on at once
in a segment on another disk; so does a write that hangs (recorder.io_worker: no write finished in
WRITE_STALL_S). An away or failed disk is looked at again after RETRY_S
(identity back, and a block written and synced there, on a thread of the disk's own and within
WRITE_STALL_S: while an earlier check is still stuck in a hung disk, it stays failed at once) and taken back once the recovery pass for it
(given as `recover`, on a thread of its own) has indexed what was cut short when it went; `on_back`
hears it (the disk's health watch then lets go of the I/O errors met before). Each disk that is not usable raises `disk_offline`
(the rules' `disk: missing`) under its label.

A disk that must be mounted (`must_mount`, from the config's require_mount) is used only while its
folder is a mount point: otherwise it is away, gets no identity file and nothing is written there (an
empty mount point is the system disk's folder). It is looked at again after RETRY_S like any away disk;
`remount(path)`, when given, is asked (on a thread of its own) to mount it again, e.g. from fstab once
its device is back, and the disk is looked at again as soon as that returns True.
"""
from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
import uuid as uuid_module
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from base.clock import Clocks
from hal.storage import DiskUsage, disk_usage, fsync_dir
from recorder.errors import DiskFull
from recorder.faults import FaultSink
from recorder.index import Index
from recorder.io_worker import WRITE_STALL_S, IoWorker
from recorder.segmenter import Placement

log = logging.getLogger("nvr.disks")

IDENTITY_FILE = ".nvr-disk.json"
MAX_IDENTITY_BYTES = 4096  # the file holds a uuid and a label; anything larger is not ours
MAX_LISTED_ENTRIES = 64  # a disk offered for adoption: at most this many of its entries are looked at
NOT_RECORDINGS = frozenset({IDENTITY_FILE, "lost+found"})  # what a disk fresh from `nvr disks init` holds
DISKS_DIR = "disks"  # in the data root: one link per disk, named by its uuid
RETRY_S = 30.0  # an away or failed disk is looked at again after this long
WRITE_CHECK_BYTES = 4096  # a disk is taken back only once a block of this size is written and synced there
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

OK, AWAY, FAILED, FOREIGN, EJECTING = "ok", "away", "failed", "foreign", "ejecting"


class DiskIdentityError(ValueError):
    """An identity file that is not one of ours (unreadable, too large, or without a valid uuid)."""


@dataclass(frozen=True, slots=True)
class Identity:
    uuid: str
    label: str
    initialised: bool = False  # written by `nvr disks init` (not by a recorder's first use)


def read_identity(folder: Path) -> Identity | None:
    """The identity in `folder`, or None if it has none. Raises DiskIdentityError for a file that is
    there but not ours, OSError if the folder cannot be read."""
    try:
        with open(folder / IDENTITY_FILE, "rb") as f:
            data = f.read(MAX_IDENTITY_BYTES + 1)
    except FileNotFoundError:
        return None
    try:
        if len(data) > MAX_IDENTITY_BYTES:
            raise ValueError(f"larger than {MAX_IDENTITY_BYTES} bytes")
        doc = json.loads(data)
        found = Identity(str(doc["uuid"]), str(doc.get("label", ""))[:64], doc.get("initialised") is True)
    except (ValueError, KeyError, TypeError) as exc:
        raise DiskIdentityError(f"{folder / IDENTITY_FILE} is not a disk identity file ({exc})") from None
    if not _UUID.match(found.uuid):
        raise DiskIdentityError(f"{folder / IDENTITY_FILE} holds no valid uuid ({found.uuid[:40]!r})")
    return found


def write_identity(folder: Path, label: str, *, initialised: bool = False) -> Identity:
    """Give the disk at `folder` a new identity, durably; never overwrites one (FileExistsError).
    `initialised`: `nvr disks init` is writing it, so a recorder that has never seen the disk adopts it
    while it holds nothing else (see `adoption_problem`)."""
    identity = Identity(str(uuid_module.uuid4()), label, initialised)
    doc = {"uuid": identity.uuid, "label": label, **({"initialised": True} if initialised else {})}
    fd = os.open(folder / IDENTITY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, json.dumps(doc).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(folder)
    return identity


def adoption_problem(folder: Path, identity: Identity) -> str | None:
    """Why a disk whose identity this recorder has never seen may not be adopted, or None if it may:
    `nvr disks init` made it and it holds nothing besides its identity (and an ext4 `lost+found`).
    Raises OSError if the folder cannot be listed."""
    if not identity.initialised:
        return "its identity was written by a recorder, not by `nvr disks init`"
    found = []
    with os.scandir(folder) as entries:
        for position, entry in enumerate(entries):
            if position >= MAX_LISTED_ENTRIES:
                break
            if entry.name not in NOT_RECORDINGS:
                found.append(entry.name)
    if found:
        shown = ", ".join(repr(name) for name in sorted(found)[:3]) + (", ..." if len(found) > 3 else "")
        return f"it holds files ({shown}): recordings of another recorder?"
    return None


def write_check(folder: Path) -> None:
    """Write a block to `folder`, sync it and remove it; OSError if the disk cannot take it (read-only
    after errors, a dying USB link). A file of its own per call: two writers may check one disk at once."""
    fd, name = tempfile.mkstemp(prefix=".nvr-write-check-", dir=folder)
    try:
        os.write(fd, b"\0" * WRITE_CHECK_BYTES)
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(name)
    fsync_dir(folder)


@dataclass
class RecordingDisk:
    uuid: str  # '' until a new disk has an identity; the data root's is '' for good
    label: str
    path: Path  # the configured folder
    state: str = OK
    reason: str | None = None
    since_us: int | None = None  # when it stopped being usable
    group: str | None = None  # the channels pinned to this group record here; None: the others

    @property
    def prefix(self) -> str:
        return f"{DISKS_DIR}/{self.uuid}/" if self.uuid else ""


class DiskSet:
    """The recording disks of one data root. Thread-safe: every stream's writer asks `place()` for each
    new segment and reports failures with `failed()`."""

    def __init__(self, *, root: Path, disks: list[tuple[Path, str]], index: Index, clocks: Clocks,
                 faults: FaultSink, usage: Callable[[Path], DiskUsage] = disk_usage,
                 groups: dict[str, str] | None = None, pinned: dict[int, str] | None = None,
                 on_back: Callable[[RecordingDisk], None] | None = None,
                 recover: Callable[[str], object] | None = None, must_mount: Collection[Path] = (),
                 is_mount: Callable[[Path], bool] = os.path.ismount,
                 remount: Callable[[Path], bool] | None = None, write_stall_s: float = WRITE_STALL_S):
        """`groups`: disk label -> its group; `pinned`: channel -> the group it records onto. A channel
        not pinned records onto the disks in no group. `recover(uuid)`: the recovery pass for one disk,
        run (on a thread of its own) when the disk comes back and before it is written again, so the
        segments cut short when it went are indexed; without it a returning disk is usable at once.
        `on_back(disk)`: an away or failed disk was taken back (a write to it succeeded and its pass is
        done), called once. `must_mount`: the folders used only while `is_mount` says a disk is mounted
        there; `remount(folder)`: try to mount the disk of such a folder that is not (True: mounted now).
        `write_stall_s`: a write check on a returning disk that has not finished after this long leaves it
        failed (its writes still hang)."""
        self.root, self._index, self._clocks, self._faults, self._usage = root, index, clocks, faults, usage
        self._on_back = on_back
        self.disks = [RecordingDisk("", label, Path(path), group=(groups or {}).get(label)) for path, label in disks]
        self._pinned = dict(pinned or {})
        self._lock = threading.RLock()
        self._states_changed = False
        self._ejecting: frozenset[str] = frozenset()  # read without the lock by every writer
        self._recover = recover
        self._recovering: dict[str, threading.Thread] = {}  # uuid -> its recovery pass, while it runs
        self._must_mount = frozenset(Path(p) for p in must_mount)
        self._is_mount, self._remount = is_mount, remount
        self._remounting: dict[Path, threading.Thread] = {}  # folder -> its remount, while it runs
        self._recognising = threading.Lock()  # one writer at a time recognises a disk found late
        # The write check of each disk runs on a thread of its own, so a disk whose writes hang holds up
        # the writer that asked for a segment at most write_stall_s, once per hang.
        self._checkers = {id(d): IoWorker(f"disk {d.label} write check", stall_s=write_stall_s) for d in self.disks}

    # --- start-up ------------------------------------------------------------------------------

    def open(self) -> None:
        """Recognise every configured disk (writing the identity of new ones) and link it in the data root."""
        (self.root / DISKS_DIR).mkdir(exist_ok=True)
        known = {row.uuid: row for row in self._index.disks()}
        for disk in self.disks:
            self._recognise(disk, known)
            if disk.uuid:
                self._link(disk)
        self._report()

    def _unmounted(self, disk: RecordingDisk) -> bool:
        """Whether the disk must be mounted and is not (then it is marked away, with why)."""
        if disk.path not in self._must_mount:
            return False
        try:
            mounted = self._is_mount(disk.path)
        except OSError:
            mounted = False
        if not mounted:
            self._mark(disk, AWAY, f"not mounted: nothing is written to {disk.path} until a disk is mounted there "
                                   f"(the disk {disk.label!r})")
        return not mounted

    def _recognise(self, disk: RecordingDisk, known: dict) -> None:
        if self._unmounted(disk):
            at_path = [row for row in known.values() if Path(row.path) == disk.path]
            if at_path and not disk.uuid:
                disk.uuid = at_path[-1].uuid  # its rows and link stay; it is written again once it is back
            return
        try:
            identity = read_identity(disk.path) if disk.path.is_dir() else None
        except (DiskIdentityError, OSError) as exc:
            self._mark(disk, FOREIGN, str(exc))
            return
        at_path = [row for row in known.values() if Path(row.path) == disk.path]
        if identity is None and at_path:
            disk.uuid = at_path[-1].uuid  # its rows and link stay; it is written again once it is back
            self._mark(disk, AWAY, f"{disk.path} has no {IDENTITY_FILE}: the disk {disk.label!r} is not mounted "
                                  f"there (or another disk is); nothing is written there until it is back")
        elif identity is None and not disk.path.is_dir():
            self._mark(disk, AWAY, f"{disk.path} does not exist: mount the disk {disk.label!r} there")
        elif identity is None:
            identity = write_identity(disk.path, disk.label)
            log.info("disk %r at %s is new: its identity is %s", disk.label, disk.path, identity.uuid)
        elif identity.uuid not in known:
            try:
                problem = adoption_problem(disk.path, identity)
            except OSError as exc:
                problem = f"its folder cannot be listed ({exc})"
            if problem is not None:
                self._mark(disk, FOREIGN, (
                    f"{disk.path} holds the disk {identity.label!r} ({identity.uuid}) that this recorder has never "
                    f"used, and {problem}. It is not written to. To use it here, move its "
                    f"{IDENTITY_FILE} away (its files are left as they are)"))
                return
            log.info("disk %r at %s was made by `nvr disks init` and holds nothing yet: adopted as %s",
                     disk.label, disk.path, identity.uuid)
        if identity is not None:
            disk.uuid = identity.uuid
            self._index.add_disk(uuid=identity.uuid, label=disk.label, path=str(disk.path),
                                 added_us=self._clocks.utc_now_us())

    def _link(self, disk: RecordingDisk) -> None:
        link = self.root / DISKS_DIR / disk.uuid
        if link.is_symlink() and Path(os.readlink(link)) == disk.path:
            return
        if link.is_symlink():
            link.unlink()
        link.symlink_to(disk.path, target_is_directory=True)
        fsync_dir(link.parent)

    # --- where the next segment goes -----------------------------------------------------------

    def place(self, channel: int | None = None) -> Placement | None:
        """The usable disk with the most free space among the channel's (its group's, or those in no
        group), or None if none is usable now. The disks are looked at outside the lock, so one disk slow
        to answer holds up only the writers that ask about it."""
        now_us = self._clocks.utc_now_us()
        group = self._pinned.get(channel) if channel is not None else None
        with self._lock:
            candidates = [d for d in self.disks if d.group == group and d.uuid and d.uuid not in self._recovering
                          and (d.state == OK or self._may_retry(d, now_us))]
            unknown = [d for d in self.disks if d.group == group and not d.uuid and self._may_retry(d, now_us)]
        for disk in unknown:  # never recognised yet (e.g. not mounted since the start): is it there now?
            self._recognise_later(disk)
            if disk.uuid:
                candidates.append(disk)
        best, best_free = None, -1
        for disk in candidates:
            free = self._usable_free_bytes(disk)
            if free is not None and free > best_free:
                best, best_free = disk, free
        with self._lock:
            changed, self._states_changed = self._states_changed, False
        if changed:
            self._report()
        if best is None:
            return None
        return Placement(best.uuid, best.prefix, self.root / DISKS_DIR / best.uuid)

    def _may_retry(self, disk: RecordingDisk, now_us: int) -> bool:
        """An away or failed disk is looked at again RETRY_S after it was marked (at once after a remount)."""
        return disk.state in (AWAY, FAILED) and (disk.since_us is None or now_us - disk.since_us >= RETRY_S * 1e6)

    def _recognise_later(self, disk: RecordingDisk) -> None:
        """A disk with no identity yet, looked at again: recognised (and linked) if it is there now. A writer
        that finds another already at it goes on without waiting (the disk is not placed on this time)."""
        if not self._recognising.acquire(blocking=False):
            return
        try:
            if not disk.uuid:
                self._recognise_now(disk)
        finally:
            self._recognising.release()

    def _recognise_now(self, disk: RecordingDisk) -> None:
        try:
            self._recognise(disk, {row.uuid: row for row in self._index.disks()})
        except OSError as exc:  # writing its identity failed
            self._mark(disk, FAILED, f"the disk {disk.label!r} at {disk.path} cannot be used: {exc}")
            return
        if disk.uuid:  # written to (and taken back) by the caller's write check
            try:
                self._link(disk)
            except OSError as exc:
                self._mark(disk, FAILED, f"the disk {disk.label!r} cannot be linked into {self.root}: {exc}")
                disk.uuid = ""
            return
        self._mark(disk, disk.state, disk.reason)  # looked at again in RETRY_S
        if disk.state == AWAY and self._remount is not None:
            self._remount_soon(disk)

    def _remount_soon(self, disk: RecordingDisk) -> None:
        """Ask `remount` (on a thread of its own: a mount may take seconds) to mount the disk's folder; once
        it has, the disk is looked at again by the next `place()` rather than after RETRY_S."""
        with self._lock:
            if disk.path in self._remounting or disk.path not in self._must_mount:
                return
            worker = threading.Thread(target=self._remount_then_retry, args=(disk,), daemon=True,
                                      name=f"remount disk {disk.label}")
            self._remounting[disk.path] = worker
        worker.start()

    def _remount_then_retry(self, disk: RecordingDisk) -> None:
        try:
            mounted = self._remount(disk.path)
        except Exception:  # noqa: BLE001 - a failing remount leaves the disk away, looked at again later
            log.exception("disk %r: mounting %s again failed", disk.label, disk.path)
            mounted = False
        finally:
            with self._lock:
                self._remounting.pop(disk.path, None)
        if mounted:
            with self._lock:
                if disk.state == AWAY:
                    disk.since_us = None  # looked at by the next place()

    def remounting(self) -> list[Path]:
        """The folders a remount is under way for."""
        with self._lock:
            return list(self._remounting)

    def _usable_free_bytes(self, disk: RecordingDisk) -> int | None:
        """Free bytes if the disk is there (its identity is in its folder) and writable; else marks it."""
        if self._unmounted(disk):
            if self._remount is not None:
                self._remount_soon(disk)
            return None
        try:
            identity = read_identity(disk.path)
            if identity is None or identity.uuid != disk.uuid:
                self._mark(disk, AWAY, f"{disk.path} no longer holds the disk {disk.label!r} ({disk.uuid}): "
                                       "unmounted or pulled; its recordings come back when it does")
                return None
            if not os.access(disk.path, os.W_OK):
                raise PermissionError(f"{disk.path} is not writable")
            if disk.state != OK:
                self._checkers[id(disk)].call(write_check, disk.path)
            free = self._usage(disk.path).free_bytes
        except (DiskIdentityError, OSError) as exc:
            self._mark(disk, FAILED, f"the disk {disk.label!r} at {disk.path} cannot be used: {exc}")
            return None
        if disk.state != OK:
            return self._take_back(disk, free)
        return free

    # --- a disk that comes back ----------------------------------------------------------------

    def _take_back(self, disk: RecordingDisk, free: int) -> int | None:
        """The disk is there again: usable at once without a recovery pass, else once its pass is done."""
        if self._recover is None:
            log.warning("disk %r at %s is back", disk.label, disk.path)
            self._mark(disk, OK, None)
            self._back(disk)
            return free
        with self._lock:
            if disk.uuid in self._recovering:
                return None  # its pass is running: said once, when it began
            log.warning("disk %r at %s is back: its recovery pass runs before it is written again", disk.label,
                        disk.path)
            worker = threading.Thread(target=self._recover_then_use, args=(disk,), daemon=True,
                                      name=f"recover disk {disk.label}")
            self._recovering[disk.uuid] = worker
        worker.start()
        return None

    def _recover_then_use(self, disk: RecordingDisk) -> None:
        """The recovery pass for the disk (its cut-short segments indexed, rows whose files are gone
        dropped), then the disk is usable. A pass that fails leaves the disk failed, looked at again after
        RETRY_S."""
        try:
            self._recover(disk.uuid)
        except Exception as exc:  # noqa: BLE001 - any failure of the pass: the disk is not written, and says why
            log.exception("disk %r: the recovery pass after its return failed", disk.label)
            self._mark(disk, FAILED, f"the disk {disk.label!r} is back but its recovery pass failed: {exc}")
        else:
            self._mark(disk, OK, None)
            self._back(disk)
        finally:
            with self._lock:
                self._recovering.pop(disk.uuid, None)
        self._report()

    def _back(self, disk: RecordingDisk) -> None:
        if self._on_back is not None:
            self._on_back(disk)

    def recovering(self) -> list[str]:
        """The uuids of the disks whose recovery pass after a return is running."""
        with self._lock:
            return list(self._recovering)

    def close(self, timeout_s: float = 60.0) -> None:
        """Wait (up to `timeout_s` each) for the recovery passes still running, before the index closes."""
        with self._lock:
            workers = list(self._recovering.values())
        for worker in workers:
            worker.join(timeout_s)

    def leaving(self, disk: str) -> bool:
        """Whether the segments open on `disk` should end at their next keyframe (it is being ejected)."""
        return bool(disk) and disk in self._ejecting

    def eject(self, label: str) -> RecordingDisk:
        """Stop putting segments on the disk called `label` and ask the writers to end theirs on it at
        their next keyframe; it is not taken back until `ejected` has run and it is plugged in again.
        KeyError if no disk has that label."""
        with self._lock:
            disk = next((d for d in self.disks if d.label == label), None)
            if disk is None:
                raise KeyError(label)
            self._mark(disk, EJECTING, f"the disk {disk.label!r} is being ejected: recording goes on on the others")
            if disk.uuid:
                self._ejecting = self._ejecting | {disk.uuid}
        self._report()
        return disk

    def ejected(self, disk: RecordingDisk, why: str) -> None:
        """The disk is unmounted (or given up): away until it is plugged in again."""
        with self._lock:
            self._ejecting = self._ejecting - {disk.uuid}
            self._mark(disk, AWAY, why)
        self._report()

    def failed(self, placement: Placement, exc: OSError) -> None:
        """A write on `placement`'s disk failed: unless the disk was only full, the next segments go elsewhere."""
        if isinstance(exc, DiskFull) or not placement.disk:
            return
        with self._lock:
            for disk in self.disks:
                if disk.uuid == placement.disk and disk.state == OK:
                    self._mark(disk, FAILED, f"writing to the disk {disk.label!r} at {disk.path} failed: {exc}; "
                                             "recording goes on on the other disks")
            self._states_changed = False
        self._report()

    def _mark(self, disk: RecordingDisk, state: str, reason: str | None) -> None:
        with self._lock:
            if disk.state != state:
                self._states_changed = True
                (log.info if state == OK else log.error)("disk %r: %s", disk.label, reason or "usable again")
            disk.state, disk.reason = state, reason
            disk.since_us = None if state == OK else self._clocks.utc_now_us()

    def _report(self) -> None:
        """`disk_offline` for each disk that is not usable (by its label), cleared when it is again."""
        with self._lock:
            states = [(d.label, d.state, d.reason) for d in self.disks]
        for label, state, reason in states:
            if state == OK:
                self._faults.clear_fault("disk_offline", disk=label)
            else:
                self._faults.raise_fault("disk_offline", reason or state, disk=label)

    # --- what the others need ------------------------------------------------------------------

    def present(self) -> list[str]:
        """The uuids of the disks whose files can be read and deleted now (the data root's '' first)."""
        with self._lock:
            return [""] + [d.uuid for d in self.disks if d.state == OK and d.uuid]

    def statistics(self) -> list[dict]:
        with self._lock:
            return [{"uuid": d.uuid, "label": d.label, "path": str(d.path), "state": d.state, "reason": d.reason,
                     "group": d.group} for d in self.disks]
