"""Two recording disks under one data root, as the disk pull and hang tests set them up."""
from __future__ import annotations

from pathlib import Path

from hal.storage import DiskUsage
from recorder.disk_set import DiskSet
from recorder.faults import FaultBoard
from recorder.index import Index
from recorder.recovery import recover


def prefer(first):
    """Free space that makes the disk set choose `first` while it is usable (every other disk has less)."""
    def usage(path):
        free = 2 * 10**9 if str(path) == str(first) else 10**9
        return DiskUsage(10**12, 10**12 - free, free)
    return usage


def open_disk_set(root: Path, index: Index, clocks, disks: list[tuple[Path, str]], **kwargs) -> tuple[FaultBoard, DiskSet]:
    """A fault board and an opened disk set over `disks` ((mount point, label) pairs) in which a returning
    disk runs its own recovery pass first, as the appliance wires it. `kwargs` go to DiskSet."""
    faults = FaultBoard(clocks=clocks)
    disk_set = DiskSet(root=root, disks=disks, index=index, clocks=clocks, faults=faults,
                       recover=lambda uuid: recover(root, index, sync=True, disks=[uuid]), **kwargs)
    disk_set.open()
    return faults, disk_set
