"""Runs the tests marked `vivid` inside one QEMU guest with the kernel's vivid V4L2 driver (tests/vm/vivid-vm).

On the host those tests are skipped (see conftest.py); each test here boots the guest once, runs
`pytest -m ...` there against /dev/video0 on the files that hold such tests (collecting all of tests/
takes about a minute under emulation) and fails if they fail or none passed. It skips only when the
harness cannot be had here (the script could not install QEMU or download the kernel).

The guest's CPU is emulated (TCG): when the host is busy it runs several times slower in real time,
while the kernel's drivers keep real time (vivid's 25 fps, the ALSA loopback card's 48 kHz). Checks of
that kind (a reader keeping pace with a sound card, "within 3 s") are also marked `slow` and run with
`./dev test-slow`; the default suite runs the rest, whose checks are about what was captured and
recorded, not how fast.
"""
from __future__ import annotations

import sys

import pytest

from support.vivid import (EXIT_UNAVAILABLE, REPO_ROOT, in_vivid_vm, pytest_summary, run_in_vivid_vm,
                           vivid_test_files)

pytestmark = pytest.mark.skipif(in_vivid_vm(), reason="already inside the vivid VM")

GUEST_PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfEs", "--durations=5"]


def test_vivid_capture_tests_pass_inside_the_vm():
    run_vivid_tests_in_the_vm("vivid and not slow")


@pytest.mark.slow
def test_vivid_timing_tests_pass_inside_the_vm():
    run_vivid_tests_in_the_vm("vivid and slow")


def run_vivid_tests_in_the_vm(markers: str) -> None:
    files = vivid_test_files()
    assert files, "no test is marked vivid (pytest --collect-only -m vivid tests/ found none)"
    done = run_in_vivid_vm([*GUEST_PYTEST, "-m", markers, *files], cwd=REPO_ROOT, timeout_s=900)
    print(done.stdout)
    print(done.stderr, file=sys.stderr)
    if done.returncode == EXIT_UNAVAILABLE:
        pytest.skip(f"vivid VM unavailable here: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    report = f"guest pytest exited {done.returncode}\n--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}"
    assert done.returncode == 0, report
    assert pytest_summary(done.stdout).get("passed", 0) >= 1, report
