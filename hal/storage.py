"""The data disk as the recorder sees it: space used and free, and making writes durable."""
from __future__ import annotations

import os
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
