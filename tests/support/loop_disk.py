"""A disk for tests: an ext4 image on a loop device, mounted, failed through ext4's own error path, pulled."""
from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


class LoopDisk:
    """`plug` mounts it (skipping the test where loop mounts are not allowed), `fail` makes ext4 take it
    read-only as on a disk error, `unplug` unmounts it lazily as a pulled disk leaves its open files."""

    def __init__(self, folder: Path, name: str):
        self.image, self.mount = folder / f"{name}.img", folder / name
        self.mount.mkdir()
        subprocess.run(["truncate", "-s", "96M", str(self.image)], check=True)
        subprocess.run(["mkfs.ext4", "-q", str(self.image)], check=True)

    def plug(self) -> None:
        done = subprocess.run(["mount", "-o", "loop,errors=remount-ro", str(self.image), str(self.mount)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot loop-mount an ext4 image here (needs root): {done.stderr.strip()}")

    def fail(self) -> None:
        """ext4 meets an error, as on a disk returning bad sectors or a USB link going: read-only at once."""
        self._error_trigger().write_text("1\n")

    def pull(self) -> None:
        """Pulled while written: gone from its mount point, and the files still open on it fail at their
        next write (EROFS through ext4's error path; a USB disk yanked for real answers EIO). What was
        synced before stays on the image, as on a real disk."""
        trigger = self._error_trigger()
        self.unplug()
        trigger.write_text("1\n")

    def check(self) -> None:
        """`e2fsck -fy` on the image, once no loop device holds it (as an installer checks a pulled disk)."""
        subprocess.run(["e2fsck", "-fy", str(self.image)], capture_output=True)

    def in_use(self) -> bool:
        """Whether a loop device still holds the image (a detached filesystem keeps it until its last file closes)."""
        return subprocess.run(["losetup", "-j", str(self.image)], capture_output=True, text=True).stdout.strip() != ""

    def _error_trigger(self) -> Path:
        device = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(self.mount)], capture_output=True, text=True,
                                check=True).stdout.strip()
        trigger = Path("/sys/fs/ext4") / Path(device).name / "trigger_fs_error"
        if not trigger.exists():
            pytest.skip(f"this kernel has no {trigger}")
        return trigger

    def unplug(self) -> None:
        subprocess.run(["umount", "-l", str(self.mount)], check=False)


def blank_loop_device(folder: Path, size: str = "64M") -> Iterator[str]:
    """A blank (all zero) loop device of `size`, not mounted, for a fixture to yield from: its /dev path;
    skips the test where loop devices cannot be made (not root). Unmounted and detached afterwards."""
    image = folder / "blank.img"
    subprocess.run(["truncate", "-s", size, str(image)], check=True)
    done = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot make a loop device here (needs root): {done.stderr.strip()}")
    device = done.stdout.strip()
    yield device
    subprocess.run(["umount", device], capture_output=True)
    subprocess.run(["losetup", "-d", device], check=False)
