"""The display seam: EDID and sysfs modes, backend choice, the framebuffer over a stand-in file, X11 under Xvfb."""
from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from base.clock import RealClocks, SimulatedClocks
from hal.display import (DisplayLost, DisplayMode, DisplayRequest, DisplayUnavailable, HotplugWatch, InputEvent,
                         connected_monitor, open_display, parse_edid, parse_mode_line, pick_mode)
from hal.display.fbdev import FbGeometry, FramebufferDisplay, pack_pixels
from hal.display.offscreen import OffscreenDisplay
from hal.display.sdl import key_name
from hal.input_evdev import EvdevKeys, key_for_code
from support.screens import Xvfb, have_xvfb, save_png

# The detailed timing descriptor of a 1920x1080 60 Hz monitor (148.5 MHz pixel clock, CEA-861 timing).
DTD_1080P60 = bytes.fromhex("023a801871382d40582c4500c48e2100001e")


def edid(descriptor: bytes = DTD_1080P60) -> bytes:
    block = bytearray(b"\x00\xff\xff\xff\xff\xff\xff\x00" + bytes(46) + descriptor + bytes(128 - 54 - 18))
    block[127] = (-sum(block[:127])) % 256
    return bytes(block)


def test_edid_preferred_mode_is_the_first_detailed_timing():
    assert parse_edid(edid()) == DisplayMode(1920, 1080, 60.0)


def test_edid_with_a_bad_checksum_or_header_is_rejected():
    broken = bytearray(edid())
    broken[127] ^= 1
    with pytest.raises(ValueError, match="checksum"):
        parse_edid(bytes(broken))
    with pytest.raises(ValueError, match="not an EDID"):
        parse_edid(b"\x00" * 128)


def test_edid_without_a_detailed_timing_gives_no_mode():
    assert parse_edid(edid(bytes(18))) is None


def test_sysfs_mode_lines():
    assert parse_mode_line("1280x720") == DisplayMode(1280, 720, 60.0)
    assert parse_mode_line("720x576i").width == 720
    assert parse_mode_line("garbage") is None


def fake_drm(root: Path, connectors: dict[str, tuple[str, bytes | None, str]]) -> Path:
    for name, (status, edid_bytes, modes) in connectors.items():
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "status").write_text(status + "\n")
        (folder / "edid").write_bytes(edid_bytes or b"")
        (folder / "modes").write_text(modes)
    return root


def test_connected_monitor_prefers_hdmi_and_reads_its_edid(tmp_path):
    drm = fake_drm(tmp_path, {"card0-DSI-1": ("connected", None, "800x480\n"),
                              "card0-HDMI-A-1": ("connected", edid(), "1920x1080\n1280x720\n"),
                              "card0-HDMI-A-2": ("disconnected", None, "")})
    monitor = connected_monitor(drm)
    assert monitor.name == "card0-HDMI-A-1"
    assert monitor.mode == DisplayMode(1920, 1080, 60.0)


def test_connected_monitor_falls_back_to_the_modes_file_and_none_when_unplugged(tmp_path):
    drm = fake_drm(tmp_path / "a", {"card1-HDMI-A-1": ("connected", b"\x00junk", "1024x768\n")})
    assert connected_monitor(drm).mode == DisplayMode(1024, 768, 60.0)
    drm = fake_drm(tmp_path / "b", {"card1-HDMI-A-1": ("disconnected", edid(), "")})
    assert connected_monitor(drm) is None


def test_config_overrides_the_monitor_mode():
    detected = DisplayMode(1920, 1080, 60.0)
    assert pick_mode(detected, size=None, refresh_hz=None) == detected
    assert pick_mode(detected, size=(1280, 720), refresh_hz=50) == DisplayMode(1280, 720, 50)
    assert pick_mode(None, size=None, refresh_hz=None) == DisplayMode(1280, 720, 60.0)


def test_auto_falls_through_to_offscreen_when_nothing_else_is_there(tmp_path):
    request = DisplayRequest(backend="auto", size=(320, 240), drm_root=tmp_path / "nodrm",
                             fb_path=tmp_path / "nofb", dri_path=tmp_path / "nodri", env={})
    display = open_display(request, clocks=RealClocks())
    assert display.name == "offscreen" and display.mode.width == 320


def test_a_named_backend_that_cannot_open_says_why(tmp_path):
    with pytest.raises(DisplayUnavailable, match="kmsdrm: no connected monitor"):
        open_display(DisplayRequest(backend="kmsdrm", drm_root=tmp_path), clocks=RealClocks())
    with pytest.raises(DisplayUnavailable, match="DISPLAY is not set"):
        open_display(DisplayRequest(backend="x11", env={}), clocks=RealClocks())
    with pytest.raises(ValueError, match="unknown display backend"):
        open_display(DisplayRequest(backend="vga"), clocks=RealClocks())


# --- framebuffer ---

def quadrants(width: int, height: int) -> np.ndarray:
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    frame[:height // 2, :width // 2] = (255, 0, 0)
    frame[:height // 2, width // 2:] = (0, 255, 0)
    frame[height // 2:, :width // 2] = (0, 0, 255)
    frame[height // 2:, width // 2:] = (255, 255, 255)
    return frame


def test_framebuffer_32bpp_bgrx_written_through_the_mmap(tmp_path):
    geometry = FbGeometry(64, 48, 32, line_length=64 * 4 + 32, red=(16, 8), green=(8, 8), blue=(0, 8))
    fb = tmp_path / "fb0"
    fb.write_bytes(bytes(geometry.size_bytes))
    display = FramebufferDisplay(path=fb, geometry=geometry)
    display.show(quadrants(64, 48))
    display.close()
    rows = np.frombuffer(fb.read_bytes(), np.uint8).reshape(48, geometry.line_length)
    assert tuple(rows[5, 4 * 5:4 * 5 + 3]) == (0, 0, 255)  # red pixel: B, G, R bytes
    assert tuple(rows[5, 4 * 40:4 * 40 + 3]) == (0, 255, 0)
    assert tuple(rows[40, 4 * 5:4 * 5 + 3]) == (255, 0, 0)
    assert not rows[:, 64 * 4:].any()  # the padding past the visible line is left alone


def test_framebuffer_16bpp_rgb565_packing():
    geometry = FbGeometry(2, 1, 16, 4, red=(11, 5), green=(5, 6), blue=(0, 5))
    packed = pack_pixels(np.array([[[255, 0, 0], [0, 0, 255]]], dtype=np.uint8), geometry)
    assert packed.tobytes() == struct.pack("<HH", 0xF800, 0x001F)


def test_a_file_that_is_no_framebuffer_is_unavailable(tmp_path):
    plain = tmp_path / "plain"
    plain.write_bytes(bytes(100))
    with pytest.raises(DisplayUnavailable, match="not a usable framebuffer"):
        FramebufferDisplay(path=plain)
    with pytest.raises(DisplayUnavailable, match="cannot open"):
        FramebufferDisplay(path=tmp_path / "missing")


# --- offscreen ---

def test_offscreen_keeps_frames_hands_events_and_fails_on_demand():
    display = OffscreenDisplay(width=32, height=16)
    display.show(np.full((16, 32, 3), 7, np.uint8))
    assert display.last_frame()[0, 0, 0] == 7 and display.frames_shown == 1
    display.push_event(InputEvent("key", key="f2"))
    assert display.poll_events() == [InputEvent("key", key="f2")]
    display.fail_next()
    with pytest.raises(DisplayLost):
        display.show(np.zeros((16, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="frame must be"):
        display.show(np.zeros((8, 8, 3), np.uint8))


# --- input ---

def test_kernel_key_codes_of_keyboards_and_remotes():
    assert key_for_code(1, 2, 1) == "1"          # KEY_1 pressed
    assert key_for_code(1, 11, 1) == "0"         # KEY_0
    assert key_for_code(1, 0x200 + 7, 1) == "7"  # KEY_NUMERIC_7 on a remote
    assert key_for_code(1, 352, 1) == "enter"    # KEY_OK
    assert key_for_code(1, 158, 1) == "escape"   # KEY_BACK
    assert key_for_code(1, 59, 1) == "f1"
    assert key_for_code(1, 103, 1) == "up"
    assert key_for_code(1, 30, 1) == "a"
    assert key_for_code(1, 2, 0) is None         # release
    assert key_for_code(1, 2, 2) is None         # autorepeat of a digit: ignored
    assert key_for_code(1, 103, 2) == "up"       # autorepeat of an arrow: keeps steering
    assert key_for_code(2, 0, 1) is None         # EV_REL (mouse motion)


def test_sdl_key_names_fold_keypad_and_return():
    assert key_name("return") == "enter"
    assert key_name("[3]") == "3"
    assert key_name("keypad +") == "plus"
    assert key_name("F5") == "f5"


class FakeDevice:
    def __init__(self, events, keys=(2, 28)):
        self.events, self.keys, self.closed, self.name = list(events), keys, False, "fake remote"

    def capabilities(self):
        return {1: list(self.keys)}

    def read(self):
        if self.events == "gone":
            raise OSError(19, "No such device")
        if not self.events:
            raise BlockingIOError
        events, self.events = self.events, []
        return events

    def close(self):
        self.closed = True


def test_evdev_reader_turns_presses_into_key_events_and_drops_vanished_devices():
    press = lambda code, value=1: SimpleNamespace(type=1, code=code, value=value)  # noqa: E731
    remote = FakeDevice([press(0x201), press(0x201, 0), press(352)])
    mouse = FakeDevice([], keys=(0x110,))  # BTN_LEFT only: not a keyboard
    devices = {"/dev/input/event3": remote, "/dev/input/event4": mouse}
    keys = EvdevKeys(list_paths=lambda: list(devices), open_device=devices.__getitem__,
                     clocks=SimulatedClocks())
    assert keys.poll() == [InputEvent("key", key="1"), InputEvent("key", key="enter")]
    assert mouse.closed
    remote.events = "gone"
    assert keys.poll() == [] and keys.errors == 1 and remote.closed


# --- X11 under Xvfb, in a child process ---

needs_xvfb = pytest.mark.skipif(not have_xvfb(), reason="Xvfb and xwd (Debian xvfb, x11-apps) are not installed")


@needs_xvfb
def test_x11_window_shows_frames_and_a_real_screenshot_sees_them():
    xvfb = Xvfb(width=640, height=480).start()
    try:
        display = open_display(DisplayRequest(backend="x11", x_display=xvfb.display, size=(320, 240)),
                               clocks=RealClocks())
        assert display.mode.width == 320 and display.mode.height == 240
        display.show(quadrants(320, 240))
        display.poll_events()
        shot = xvfb.screenshot()
        save_png(shot, "display_x11_quadrants")
        assert tuple(shot[60, 80]) == (255, 0, 0) and tuple(shot[60, 240]) == (0, 255, 0)
        assert tuple(shot[180, 80]) == (0, 0, 255) and tuple(shot[180, 240]) == (255, 255, 255)
        display.close()
    finally:
        xvfb.stop()


@needs_xvfb
def test_x11_server_killed_or_child_crash_is_display_lost_and_this_process_lives_on():
    xvfb = Xvfb(width=320, height=240).start()
    try:
        display = open_display(DisplayRequest(backend="x11", x_display=xvfb.display), clocks=RealClocks())
        frame = quadrants(display.mode.width, display.mode.height)
        display.show(frame)
        xvfb.stop()  # Xlib would exit() the process holding the connection: that is the child
        with pytest.raises(DisplayLost):
            for _ in range(100):
                display.show(frame)
        display.close()
        xvfb.start()
        display = open_display(DisplayRequest(backend="x11", x_display=xvfb.display), clocks=RealClocks())
        display.show(frame)
        os.kill(display.pid, signal.SIGKILL)
        with pytest.raises(DisplayLost):
            display.show(frame)
        display.close()
    finally:
        xvfb.stop()


def test_hotplug_watch_notices_unplugging_and_a_different_monitor(tmp_path):
    clocks = SimulatedClocks()
    drm = fake_drm(tmp_path, {"card0-HDMI-A-1": ("connected", edid(), "1920x1080\n")})
    watch = HotplugWatch(drm, interval_s=1.0, clocks=clocks)
    watch.check()
    (drm / "card0-HDMI-A-1" / "status").write_text("disconnected\n")
    watch.check()  # checked at most once a second
    clocks.advance(1.5)
    with pytest.raises(DisplayLost, match="unplugged"):
        watch.check()
    (drm / "card0-HDMI-A-1" / "status").write_text("connected\n")
    (drm / "card0-HDMI-A-1" / "edid").write_bytes(b"")
    (drm / "card0-HDMI-A-1" / "modes").write_text("1280x1024\n")
    clocks.advance(1.5)
    with pytest.raises(DisplayLost, match="changed"):
        watch.check()


@needs_xvfb
@pytest.mark.skipif(shutil.which("xdotool") is None, reason="xdotool (Debian xdotool) is not installed")
def test_x11_keys_and_clicks_come_back_from_the_child_as_input_events():
    xvfb = Xvfb(width=640, height=480).start()
    try:
        display = open_display(DisplayRequest(backend="x11", x_display=xvfb.display, size=(320, 240)),
                               clocks=RealClocks())
        frame = quadrants(320, 240)
        display.show(frame)
        subprocess.run(["xdotool", "mousemove", "100", "50", "click", "1", "key", "F5", "KP_7", "Return"],
                       env={**os.environ, "DISPLAY": xvfb.display}, check=True, timeout=20)
        events: list[InputEvent] = []
        deadline = time.monotonic() + 10
        while len(events) < 4 and time.monotonic() < deadline:
            display.show(frame)
            events += display.poll_events()
        display.close()
    finally:
        xvfb.stop()
    assert InputEvent("click", x=100, y=50, button=1) in events
    # xdotool toggles num lock to type KP_7
    keys = [event.key for event in events if event.kind == "key" and event.key != "numlock"]
    assert keys == ["f5", "7", "enter"]
