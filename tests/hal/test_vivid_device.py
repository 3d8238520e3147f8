"""The vivid driver as the vivid-vm guest sees it (v4l2-ctl): device, inputs, PAL on S-Video, D1 YUYV capture.

These are the harness's own checks (the guest has the driver, the host root, the venv); the capture
backend's tests against vivid live with the backend. All are marked `vivid`: run by test_vivid_vm.py.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from support.vivid import find_vivid_capture

pytestmark = pytest.mark.vivid

S_VIDEO_INPUT = 2  # vivid's default input_types=0xe4: 0 webcam, 1 TV, 2 S-Video, 3 HDMI
V4L2_STD_PAL = 0xFF  # PAL-B/B1/G/H/I/D/D1/K
D1_PAL = (720, 576)


@pytest.fixture(scope="module")
def device() -> str:
    found = find_vivid_capture()
    assert found is not None, "no vivid capture node in /sys/class/video4linux"
    return str(found)


def v4l2_ctl(device: str, *args: str) -> str:
    tool = shutil.which("v4l2-ctl")
    assert tool, "v4l2-ctl not found (Debian package v4l-utils; tests/vm/vivid-vm installs it)"
    done = subprocess.run([tool, "-d", device, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"v4l2-ctl {' '.join(args)} exited {done.returncode}: {done.stderr}"
    return done.stdout


def test_device_is_vivid_video0(device):
    assert device == "/dev/video0"
    assert "Driver name      : vivid" in v4l2_ctl(device, "--info")


def test_inputs_include_s_video(device):
    listing = v4l2_ctl(device, "--list-inputs")
    names = [line.split(":", 1)[1].strip() for line in listing.splitlines() if line.strip().startswith("Name")]
    assert len(names) == 4, listing
    assert names[S_VIDEO_INPUT].startswith("S-Video"), names


def test_pal_can_be_set_on_the_s_video_input(device):
    v4l2_ctl(device, "-i", str(S_VIDEO_INPUT), "-s", "pal")
    assert f"Video input : {S_VIDEO_INPUT} (S-Video" in v4l2_ctl(device, "--get-input")
    standard = v4l2_ctl(device, "--get-standard")
    assert f"Video Standard = 0x{V4L2_STD_PAL:08x}" in standard, standard


def test_captures_yuyv_d1_frames(device, tmp_path):
    width, height = D1_PAL
    v4l2_ctl(device, "-i", str(S_VIDEO_INPUT), "-s", "pal")
    raw = tmp_path / "frames.yuyv"
    v4l2_ctl(device, f"--set-fmt-video=width={width},height={height},pixelformat=YUYV",
             "--stream-mmap", "--stream-count=10", f"--stream-to={raw}")
    assert raw.stat().st_size == 10 * width * height * 2


def test_venv_python_imports_av_and_numpy():
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", "import av, numpy"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    print(f"python -c 'import av, numpy' took {time.monotonic() - started:.1f} s in the guest")


def test_linuxpy_opens_the_device(device):
    linuxpy_device = pytest.importorskip("linuxpy.video.device", reason="linuxpy not installed in the venv")
    with linuxpy_device.Device(device) as dev:
        assert dev.info.driver == "vivid"
        print(repr(dev.info))
        print([inp.name for inp in dev.info.inputs])
