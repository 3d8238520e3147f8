"""Test instruments for the kernel's vivid V4L2 driver: the QEMU guest of tests/vm/vivid-vm and the device in it.

Tests marked `vivid` run only inside that guest (NVR_IN_VIVID_VM=1); on the host, test_vivid_vm.py boots
the guest once and runs them all there. None of this imports pytest, so benchmarks can use it too.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

IN_VM_ENV = "NVR_IN_VIVID_VM"
VM_SCRIPT = Path(__file__).resolve().parents[1] / "vm" / "vivid-vm"
REPO_ROOT = VM_SCRIPT.parents[2]
EXIT_UNAVAILABLE = 77  # vivid-vm: a package could not be installed or downloaded
EXIT_VM_FAILED = 125  # vivid-vm: the guest did not boot, its init failed, or it timed out
VIVID_CAPTURE_NAME = "vivid-000-vid-cap"  # /sys/class/video4linux/videoN/name of vivid's capture node
_SUMMARY_COUNT = re.compile(r"(\d+) (passed|failed|skipped|deselected|xfailed|xpassed|errors?|warnings?)\b")


def in_vivid_vm() -> bool:
    """Whether this process runs inside the vivid-vm guest."""
    return os.environ.get(IN_VM_ENV) == "1"


def run_in_vivid_vm(command: list[str], *, cwd: str | os.PathLike = REPO_ROOT, timeout_s: float = 900,
                    memory_mb: int | None = None) -> subprocess.CompletedProcess:
    """Run `command` in a fresh guest; returns its output and exit code (or 77/125, see vivid-vm)."""
    args = [str(VM_SCRIPT), "--timeout", str(timeout_s)]
    if memory_mb:
        args += ["--memory", str(memory_mb)]
    return subprocess.run([*args, "--", *command], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout_s + 600)  # + the first build of kernel and initramfs


def vivid_test_files(*, root: str | os.PathLike = REPO_ROOT, python: str = sys.executable) -> list[str]:
    """The test files holding tests marked `vivid`, found by a collect-only run on the host (seconds here,
    about a minute under emulation, so the guest collects only these)."""
    env = {k: v for k, v in os.environ.items() if k != IN_VM_ENV}
    done = subprocess.run([python, "-m", "pytest", "--collect-only", "-q", "-m", "vivid", "-p", "no:cacheprovider",
                           "tests/"], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode not in (0, 5):  # 5: nothing collected
        raise RuntimeError(f"pytest --collect-only -m vivid exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return sorted({line.split("::")[0] for line in done.stdout.splitlines() if "::" in line})


def pytest_summary(output: str) -> dict[str, int]:
    """Counts from pytest's last summary line ("3 passed, 1 skipped, 9 deselected in 4.2s"): {"passed": 3, ...}."""
    for line in reversed(output.strip().splitlines()):
        counts = _SUMMARY_COUNT.findall(line)
        if counts and re.search(r"\bin [\d.]+s\b", line):
            return {kind.rstrip("s") + "s" if kind.startswith(("error", "warning")) else kind: int(n)
                    for n, kind in counts}
    return {}


def find_vivid_capture(sysfs: str | os.PathLike = "/sys/class/video4linux") -> Path | None:
    """The /dev node of vivid's video capture device, or None."""
    for node in sorted(Path(sysfs).glob("video*")):
        try:
            if (node / "name").read_text().strip() == VIVID_CAPTURE_NAME:
                return Path("/dev") / node.name
        except OSError:
            continue
    return None
