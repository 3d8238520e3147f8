"""One segment file being written: create exclusively, append fragments durably, close durably."""
from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path

from hal.storage import fsync_dir, reserve_space
from recorder.errors import DiskFull, StorageError


class SegmentFile:
    """A segment on disk, written in the order DESIGN.md §3 gives.

    The file is created with O_EXCL (a recording is never overwritten), its init part written and
    synced, and its directory synced so the name survives a power cut. `append` writes one whole
    fragment and syncs it; on failure the file is cut back to the last complete fragment so it stays
    playable, and StorageError (DiskFull for ENOSPC/EDQUOT) is raised. `close` syncs file and directory;
    only after it may the index row be committed.

    `reserve_bytes`: blocks asked for at creation without changing the file's size (the segment's
    expected length), so its fragments land in one or two extents instead of one per sync; `close`
    gives back what was not used. A file cut short by a crash keeps them until the recovery pass
    truncates it. (bench/disk_writes.py: extents per segment 6-7 -> 2, device bytes per recorded byte
    1.26 -> 1.16 at 16 and 64 channels.)
    """

    def __init__(self, path: Path, init: bytes, *, sync: bool = True, reserve_bytes: int = 0):
        self.path = path
        self._sync = sync
        self.bytes_written = 0
        self.reserved = False
        self.broken = False  # a write failed: later ones are refused (they would follow a missing fragment)
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise _storage_error(exc, f"cannot create segment {path}") from exc
        try:
            self.reserved = reserve_space(self._fd, reserve_bytes)
            self.append(init)
            if sync:
                fsync_dir(path.parent)
        except BaseException:
            self.abandon()
            raise

    def append(self, data: bytes | Sequence[bytes]) -> None:
        """Write `data` completely and make it durable, or leave the file as it was and raise.

        `data` may be a list of byte strings, written as one (a gathering write, without joining them).
        After a failure every append is refused until `broken` is cleared (appends queued behind the one
        that failed must not land after the fragment that is missing).
        """
        parts = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
        size = sum(len(part) for part in parts)
        if self.broken:
            raise StorageError(errno.EIO, f"not writing to {self.path}: an earlier write to it failed")
        try:
            _write_all(self._fd, parts, size)
            if self._sync:
                os.fdatasync(self._fd)
        except OSError as exc:
            self.broken = True
            self._cut_back()
            raise _storage_error(exc, f"cannot write {size} bytes to {self.path}") from exc
        self.bytes_written += size

    def _cut_back(self) -> None:
        # O_APPEND makes the next write land at the new end, not after a hole where the cut part was.
        try:
            os.ftruncate(self._fd, self.bytes_written)
        except OSError:
            pass  # the recovery pass cuts the file at its last complete fragment anyway

    def close(self) -> None:
        """Sync and close the file, then sync its directory. Raises StorageError if that fails."""
        try:
            if self.reserved:
                os.ftruncate(self._fd, self.bytes_written)  # the reserved blocks past the end go back
            if self._sync:
                os.fsync(self._fd)
        except OSError as exc:
            raise _storage_error(exc, f"cannot finish {self.path}") from exc
        finally:
            os.close(self._fd)
            self._fd = -1
        if self._sync:
            try:
                fsync_dir(self.path.parent)
            except OSError as exc:
                raise _storage_error(exc, f"cannot sync directory of {self.path}") from exc

    def release(self) -> None:
        """Close the file descriptor, syncing nothing and keeping the file (what is on the disk stays for the
        recovery pass): the end of a segment whose disk's writes hung."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def abandon(self) -> None:
        """Close without syncing and delete the file (it holds nothing worth keeping)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        try:
            os.unlink(self.path)
        except OSError:
            pass


def _write_all(fd: int, parts: Sequence[bytes], size: int) -> None:
    """Write `parts` one after the other, all of them (a short write, rare for files, is finished)."""
    written = os.writev(fd, parts) if 0 < len(parts) <= _IOV_MAX else 0
    if written < size:
        view = memoryview(b"".join(parts))[written:]
        while view:
            view = view[os.write(fd, view):]


_IOV_MAX = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 16


def _storage_error(exc: OSError, what: str) -> StorageError:
    cls = DiskFull if exc.errno in (errno.ENOSPC, errno.EDQUOT) else StorageError
    return cls(exc.errno, f"{what}: {exc.strerror}")
