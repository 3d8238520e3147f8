"""The data disk as the recorder sees it: space used and free, which block device holds it, and making
writes durable."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class DiskUsage:
    """Space on the filesystem holding a path, counted as `df` does (reserved blocks are not free)."""

    total_bytes: int
    used_bytes: int
    free_bytes: int

    @property
    def used_percent(self) -> float:
        usable = self.used_bytes + self.free_bytes
        return 100.0 * self.used_bytes / usable if usable else 100.0


def disk_usage(path: str | os.PathLike) -> DiskUsage:
    """Usage of the filesystem that holds `path`; raises OSError if it is gone."""
    st = os.statvfs(path)
    return DiskUsage(
        total_bytes=st.f_blocks * st.f_frsize,
        used_bytes=(st.f_blocks - st.f_bfree) * st.f_frsize,
        free_bytes=st.f_bavail * st.f_frsize,
    )


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a directory's entries (files created, renamed or unlinked in it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs_durable(path: Path, root: Path) -> None:
    """Create `path` below `root` and sync every directory it added, so a power cut cannot lose it.

    `root` itself is never created: if the data disk is gone, this fails with FileNotFoundError rather
    than quietly recording onto whatever filesystem is left under its path.
    """
    if not root.is_dir():
        raise FileNotFoundError(2, f"the data folder {root} is gone (disk unplugged or unmounted?)")
    missing = []
    probe = path
    while probe != root and not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for created in reversed(missing):
        created.mkdir(exist_ok=True)
        fsync_dir(created.parent)


def mount_of(path: str | os.PathLike, *, mountinfo: Path = Path("/proc/self/mountinfo")) -> tuple[str, str] | None:
    """(mount point, 'MAJOR:MINOR' of its device) of the filesystem holding `path`: the longest mount
    point above it in the kernel's mount table. None if the table cannot be read."""
    target = os.path.realpath(path)
    best: tuple[str, str] | None = None
    try:
        lines = mountinfo.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(" ")
        if len(fields) < 5:
            continue
        point = _unescape_mount_field(fields[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):  # later mounts hide earlier ones
            best = (point, fields[2])
    return best


def _unescape_mount_field(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes (\\040)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def whole_disk(device_number: str, *, sys_dev_block: Path = Path("/sys/dev/block")) -> str | None:
    """The whole disk ('/dev/sda') holding the block device `MAJOR:MINOR` (a partition's parent), or
    None when sysfs knows no such block device (tmpfs, overlay, NFS: major 0)."""
    try:
        node = (sys_dev_block / device_number).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if (node / "partition").exists():
        node = node.parent
    return f"/dev/{node.name}"


def block_device_of(path: str | os.PathLike, *, mountinfo: Path = Path("/proc/self/mountinfo"),
                    sys_dev_block: Path = Path("/sys/dev/block")) -> str | None:
    """The whole disk holding `path` ('/dev/sda' for a folder on /dev/sda1), or None."""
    found = mount_of(path, mountinfo=mountinfo)
    return None if found is None else whole_disk(found[1], sys_dev_block=sys_dev_block)


def written_bytes(device: str, *, sys_block: Path = Path("/sys/class/block")) -> int | None:
    """Bytes the kernel has written to `device` ('/dev/sda') since boot (its stat file's sectors
    written, always in 512-byte units), or None if unknown."""
    try:
        fields = (sys_block / Path(device).name / "stat").read_text().split()
        return int(fields[6]) * 512
    except (OSError, ValueError, IndexError):
        return None


_FALLOC_FL_KEEP_SIZE = 0x01
_libc = None


def reserve_space(fd: int, length_bytes: int) -> bool:
    """Ask the filesystem to allocate `length_bytes` for the file behind `fd` without changing its size
    (fallocate with KEEP_SIZE), so appends land in one run of blocks instead of wherever the next sync
    finds room. Best effort: False where the filesystem or the C library cannot (FAT, no space left).
    The blocks past the end stay the file's until it is truncated (`os.ftruncate(fd, size)` frees them)."""
    global _libc
    if length_bytes <= 0:
        return False
    if _libc is None:
        import ctypes
        import ctypes.util

        _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        _libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong)
    return _libc.fallocate(fd, _FALLOC_FL_KEEP_SIZE, 0, length_bytes) == 0


def unmount(folder: Path) -> tuple[bool, str]:
    """Unmount the filesystem mounted on `folder`: (done, what happened). Not a mount point: (False, why)."""
    import subprocess

    if not os.path.ismount(folder):
        return False, f"{folder} is not a mount point: nothing to unmount, nothing more is written there"
    done = subprocess.run(["umount", str(folder)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        return False, f"umount {folder} failed: {done.stderr.strip()[-300:]}"
    return True, f"unmounted from {folder}; it can be unplugged"
