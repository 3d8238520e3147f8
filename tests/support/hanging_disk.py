"""A disk whose writes hang in the kernel, as a dying USB disk's or a silent bridge's do: ext4 on a loop device,
through device-mapper where the kernel has it (`dmsetup suspend`: new I/O to the device waits in the block
layer until `dmsetup resume`), else frozen with `fsfreeze` (every write to the filesystem waits in the kernel,
uninterruptibly, until it is thawed). Either way a writer's thread is in D state, not failed: the real thing.
Root is needed; the test is skipped with the reason where it is missing."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(command), capture_output=True, text=True)


class HangingDisk:
    """`hang()` makes every new write wait in the kernel, `resume()` lets them finish; `close()` resumes first,
    then unmounts and detaches, whatever state it is in (a suspended device under a mounted filesystem would
    hang the unmount itself)."""

    def __init__(self, folder: Path, name: str, size: str = "96M"):
        self.image, self.mount = folder / f"{name}.img", folder / name
        self.loop: str | None = None
        self.mapped: str | None = None  # the device-mapper name, when the kernel has device-mapper
        self.hung = False
        self.mounted = False
        self.mount.mkdir()
        for tool in ("losetup", "mkfs.ext4", "mount"):
            if shutil.which(tool) is None:
                pytest.skip(f"{tool} is not installed (util-linux, e2fsprogs)")
        subprocess.run(["truncate", "-s", size, str(self.image)], check=True)
        done = _run("losetup", "--find", "--show", str(self.image))
        if done.returncode != 0:
            pytest.skip(f"cannot make a loop device here (needs root): {done.stderr.strip()}")
        self.loop = done.stdout.strip()
        device = self.loop
        if shutil.which("dmsetup") is not None:
            sectors = int(_run("blockdev", "--getsz", self.loop).stdout.strip() or 0)
            name = f"nvr-hang-{os.getpid()}-{name}"
            if sectors and _run("dmsetup", "create", name, "--table", f"0 {sectors} linear {self.loop} 0").returncode == 0:
                self.mapped, device = name, f"/dev/mapper/{name}"
        if self.mapped is None and shutil.which("fsfreeze") is None:
            self.close()
            pytest.skip("neither device-mapper (dmsetup, and the kernel's dm driver) nor fsfreeze is available")
        subprocess.run(["mkfs.ext4", "-q", device], check=True)
        done = _run("mount", device, str(self.mount))
        if done.returncode != 0:
            self.close()
            pytest.skip(f"cannot mount an ext4 filesystem here (needs root): {done.stderr.strip()}")
        self.mounted = True

    @property
    def how(self) -> str:
        return "device-mapper suspend" if self.mapped else "fsfreeze (this kernel has no device-mapper)"

    def hang(self) -> None:
        """From now on writes to the disk wait in the kernel (what is written so far is flushed first)."""
        command = ["dmsetup", "suspend", self.mapped] if self.mapped else ["fsfreeze", "--freeze", str(self.mount)]
        subprocess.run(command, check=True, capture_output=True)
        self.hung = True

    def resume(self) -> None:
        """The device answers again: the writes that waited finish."""
        if not self.hung:
            return
        command = ["dmsetup", "resume", self.mapped] if self.mapped else ["fsfreeze", "--unfreeze", str(self.mount)]
        subprocess.run(command, check=True, capture_output=True)
        self.hung = False

    def close(self) -> None:
        try:
            self.resume()
        finally:
            if self.mounted:
                if _run("umount", str(self.mount)).returncode != 0:
                    _run("umount", "-l", str(self.mount))  # a file still open there: detached, freed when closed
                self.mounted = False
            if self.mapped:
                _run("dmsetup", "remove", "--retry", self.mapped)
            if self.loop:
                _run("losetup", "-d", self.loop)
