"""The local screen seam: one `Display` interface over KMS/DRM, the framebuffer, an X11 window and offscreen.

A display shows whole composed frames, (height, width, 3) uint8 RGB arrays of exactly `mode`'s size,
and hands back the input events that arrived with it. Backends:

    drm         the board's HDMI output through the kernel's KMS/DRM API and dumb buffers: no X, no GPU stack
    kmsdrm      the same output through SDL2's KMS/DRM driver (pygame-ce), which draws with EGL/GLES and
                needs Mesa (libgl1-mesa-dri, libegl-mesa0, libgbm1, libgles2), not in the image
    fbdev       /dev/fb0 mmap'ed (older boards, or a KMS driver with fbdev emulation only)
    x11         a window on an X server (development; tests under Xvfb)
    offscreen   frames kept in memory for tests and benchmarks

`auto` tries them in that order. SDL backends (kmsdrm, x11) run in a child process (`hal.display.sdl`): an X
server that goes away makes Xlib call exit(), and a KMS driver can crash on a hot-unplug; neither
may take the recorder down with it.

Exceptions:

    DisplayError (OSError)          base
      DisplayUnavailable            this backend cannot open here (no device, no X server, no monitor)
      DisplayLost                   an open display went away (unplugged, X server gone, child died)
"""
from __future__ import annotations

import logging
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from base.clock import Clocks

log = logging.getLogger("nvr.display")

BACKENDS = ("auto", "drm", "kmsdrm", "fbdev", "x11", "offscreen")
AUTO_ORDER = ("drm", "kmsdrm", "fbdev", "x11", "offscreen")
DEFAULT_MODE_SIZE = (1280, 720)
DEFAULT_REFRESH_HZ = 60.0
EDID_HEADER = b"\x00\xff\xff\xff\xff\xff\xff\x00"


class DisplayError(OSError):
    """Base of every display failure."""


class DisplayUnavailable(DisplayError):
    """The backend cannot open here: no device, no X server, no connected monitor."""


class DisplayLost(DisplayError):
    """An open display went away: the monitor was unplugged, the X server died, or the backend crashed."""


@dataclass(frozen=True, slots=True)
class DisplayMode:
    """The size of what a display shows, and how often the screen refreshes."""

    width: int
    height: int
    refresh_hz: float = DEFAULT_REFRESH_HZ


@dataclass(frozen=True, slots=True)
class InputEvent:
    """A key press (`key` is a lower-case name: '1', 'f1', 'enter', 'escape', 'up', 'plus', 'a', ...)
    or a mouse click (`x`, `y` in display pixels, `button` 1 left, 2 middle, 3 right, 4/5 wheel)."""

    kind: Literal["key", "click"]
    key: str = ""
    x: int = 0
    y: int = 0
    button: int = 0


class Display(Protocol):
    """An open screen. Not thread-safe: one thread opens, shows, polls and closes it."""

    name: str
    mode: DisplayMode

    def show(self, frame: np.ndarray) -> None:
        """Put `frame` ((mode.height, mode.width, 3) uint8 RGB) on the screen; DisplayLost if it is gone."""

    def poll_events(self) -> list[InputEvent]:
        """Input events since the last call, oldest first; DisplayLost if the display is gone."""

    def close(self) -> None:
        """Release the screen; safe to call twice and after a DisplayLost."""


@dataclass(frozen=True, slots=True)
class DisplayRequest:
    """What the appliance asks for: a backend name and optional overrides of the detected mode.

    `drm_root`, `fb_path`, `dri_path` and `env` are injected so tests can point them at fakes.
    """

    backend: str = "auto"
    size: tuple[int, int] | None = None
    refresh_hz: float | None = None
    x_display: str | None = None
    drm_root: Path = Path("/sys/class/drm")
    fb_path: Path = Path("/dev/fb0")
    dri_path: Path = Path("/dev/dri")
    env: Mapping[str, str] | None = None


def open_display(request: DisplayRequest, *, clocks: Clocks) -> Display:
    """Open the requested backend, or for 'auto' the first of drm, kmsdrm, fbdev, x11, offscreen that opens.

    Raises DisplayUnavailable naming why each candidate could not open.
    """
    if request.backend not in BACKENDS:
        raise ValueError(f"unknown display backend {request.backend!r}; choose one of: {', '.join(BACKENDS)}")
    order = AUTO_ORDER if request.backend == "auto" else (request.backend,)
    reasons = []
    for name in order:
        try:
            display = _open_one(name, request, clocks)
        except DisplayUnavailable as exc:
            reasons.append(f"{name}: {exc}")
            continue
        log.info("display %s open at %dx%d %.0f Hz", display.name, display.mode.width, display.mode.height,
                 display.mode.refresh_hz)
        return display
    raise DisplayUnavailable("; ".join(reasons))


def _open_one(name: str, request: DisplayRequest, clocks: Clocks) -> Display:
    env = os.environ if request.env is None else request.env
    if name == "offscreen":
        from hal.display.offscreen import OffscreenDisplay
        size = request.size or DEFAULT_MODE_SIZE
        return OffscreenDisplay(width=size[0], height=size[1], refresh_hz=request.refresh_hz or 25.0)
    if name == "drm":
        from hal.display.drm import DrmDisplay
        return DrmDisplay(size=request.size, refresh_hz=request.refresh_hz, drm_root=request.drm_root,
                          dev_root=request.dri_path, clocks=clocks)
    if name == "fbdev":
        from hal.display.fbdev import FramebufferDisplay
        # The framebuffer keeps the mode the kernel set from the EDID; only the refresh rate is read here.
        monitor = connected_monitor(request.drm_root)
        detected_hz = monitor.mode.refresh_hz if monitor and monitor.mode else None
        return FramebufferDisplay(path=request.fb_path, refresh_hz=request.refresh_hz or detected_hz)
    from hal.display.sdl import IsolatedSdlDisplay
    if name == "kmsdrm":
        monitor = connected_monitor(request.drm_root)
        if monitor is None:
            raise DisplayUnavailable(f"no connected monitor under {request.drm_root}")
        return IsolatedSdlDisplay(driver="kmsdrm", size=request.size, refresh_hz=request.refresh_hz,
                                  drm_root=request.drm_root, env=env, clocks=clocks)
    x_display = request.x_display or env.get("DISPLAY")
    if not x_display:
        raise DisplayUnavailable("no X display (DISPLAY is not set)")
    return IsolatedSdlDisplay(driver="x11", size=request.size, refresh_hz=request.refresh_hz,
                              env={**env, "DISPLAY": x_display}, clocks=clocks)


# --- the connected monitor: /sys/class/drm and EDID --------------------------------------------

@dataclass(frozen=True, slots=True)
class Connector:
    """One connected output: its sysfs name (card0-HDMI-A-1) and the monitor's preferred mode."""

    name: str
    mode: DisplayMode | None


def connected_monitor(drm_root: Path) -> Connector | None:
    """The first connected output under `drm_root` (/sys/class/drm), HDMI before others; None if none."""
    found = []
    for path in sorted(drm_root.glob("card*-*")):
        try:
            status = (path / "status").read_text().strip()
        except OSError:
            continue
        if status == "connected":
            found.append(Connector(path.name, _connector_mode(path)))
    found.sort(key=lambda connector: "HDMI" not in connector.name)
    return found[0] if found else None


def _connector_mode(path: Path) -> DisplayMode | None:
    try:
        mode = parse_edid((path / "edid").read_bytes())
    except (OSError, ValueError):
        mode = None
    if mode is not None:
        return mode
    try:
        first = (path / "modes").read_text().split()
    except OSError:
        return None
    return parse_mode_line(first[0]) if first else None


class HotplugWatch:
    """Notices the monitor going away or being swapped, from /sys/class/drm, at most every `interval_s`.

    `check()` raises DisplayLost when no monitor is connected any more, or when another one (another
    connector or another preferred mode) is, so the caller reopens at the new monitor's mode.
    """

    def __init__(self, drm_root: Path, *, interval_s: float = 1.0, clocks: Clocks):
        self._root, self._interval_s = drm_root, interval_s
        self._clocks = clocks
        self.connector = connected_monitor(drm_root)
        self._next_s = self._clocks.monotonic_us() / 1e6 + interval_s

    def check(self) -> None:
        if self._clocks.monotonic_us() / 1e6 < self._next_s:
            return
        self._next_s = self._clocks.monotonic_us() / 1e6 + self._interval_s
        now = connected_monitor(self._root)
        if now is None:
            raise DisplayLost("the monitor was unplugged")
        if self.connector is not None and now != self.connector:
            raise DisplayLost(f"the monitor changed ({now.name}); reopening at its mode")


def parse_mode_line(text: str) -> DisplayMode | None:
    """A mode from a line of /sys/class/drm/*/modes ('1920x1080', '720x576i'); None if it is not one."""
    match = re.fullmatch(r"(\d+)x(\d+)(i?)", text.strip())
    if match is None:
        return None
    return DisplayMode(int(match.group(1)), int(match.group(2)), 50.0 if match.group(3) else DEFAULT_REFRESH_HZ)


def parse_edid(edid: bytes) -> DisplayMode | None:
    """The monitor's preferred mode from its EDID: the first detailed timing descriptor.

    Returns None when the block has no detailed timing; raises ValueError when it is not an EDID
    (wrong header, short, or bad checksum).
    """
    if len(edid) < 128 or edid[:8] != EDID_HEADER:
        raise ValueError("not an EDID block (bad header or shorter than 128 bytes)")
    if sum(edid[:128]) % 256:
        raise ValueError("EDID checksum mismatch")
    descriptor = edid[54:72]
    pixel_clock_10khz = struct.unpack_from("<H", descriptor)[0]
    if pixel_clock_10khz == 0:
        return None
    h_active = descriptor[2] | (descriptor[4] & 0xF0) << 4
    h_blank = descriptor[3] | (descriptor[4] & 0x0F) << 8
    v_active = descriptor[5] | (descriptor[7] & 0xF0) << 4
    v_blank = descriptor[6] | (descriptor[7] & 0x0F) << 8
    total = (h_active + h_blank) * (v_active + v_blank)
    if total == 0:
        return None
    interlaced = bool(descriptor[17] & 0x80)
    refresh = pixel_clock_10khz * 10_000 / total
    if interlaced:  # the descriptor gives one field; a frame is two of them
        v_active, refresh = v_active * 2, refresh * 2
    return DisplayMode(h_active, v_active, round(refresh, 2))


def pick_mode(detected: DisplayMode | None, *, size: tuple[int, int] | None,
              refresh_hz: float | None) -> DisplayMode:
    """The mode to use: the config's size/refresh where given, else the monitor's, else 1280x720 at 60 Hz."""
    base = detected or DisplayMode(*DEFAULT_MODE_SIZE, DEFAULT_REFRESH_HZ)
    width, height = size or (base.width, base.height)
    return DisplayMode(width, height, refresh_hz or base.refresh_hz)
