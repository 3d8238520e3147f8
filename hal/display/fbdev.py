"""The Linux framebuffer display: /dev/fb0 mmap'ed, RGB frames packed to its 16, 24 or 32 bits per pixel."""
from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hal.display import DEFAULT_REFRESH_HZ, DisplayLost, DisplayMode, DisplayUnavailable, InputEvent

FBIOGET_VSCREENINFO = 0x4600
FBIOGET_FSCREENINFO = 0x4602


@dataclass(frozen=True, slots=True)
class FbGeometry:
    """How the framebuffer lays out pixels: size, bits per pixel, bytes per line, and where each colour
    sits in a pixel (bit offset and length, as the kernel's fb_bitfield gives them)."""

    width: int
    height: int
    bits_per_pixel: int
    line_length: int
    red: tuple[int, int] = (16, 8)
    green: tuple[int, int] = (8, 8)
    blue: tuple[int, int] = (0, 8)

    @property
    def size_bytes(self) -> int:
        return self.line_length * self.height


class _Bitfield(ctypes.Structure):
    _fields_ = [("offset", ctypes.c_uint32), ("length", ctypes.c_uint32), ("msb_right", ctypes.c_uint32)]


class _VarScreeninfo(ctypes.Structure):
    _fields_ = [("xres", ctypes.c_uint32), ("yres", ctypes.c_uint32), ("xres_virtual", ctypes.c_uint32),
                ("yres_virtual", ctypes.c_uint32), ("xoffset", ctypes.c_uint32), ("yoffset", ctypes.c_uint32),
                ("bits_per_pixel", ctypes.c_uint32), ("grayscale", ctypes.c_uint32), ("red", _Bitfield),
                ("green", _Bitfield), ("blue", _Bitfield), ("transp", _Bitfield), ("rest", ctypes.c_uint32 * 16)]


class _FixScreeninfo(ctypes.Structure):
    _fields_ = [("id", ctypes.c_char * 16), ("smem_start", ctypes.c_ulong), ("smem_len", ctypes.c_uint32),
                ("type", ctypes.c_uint32), ("type_aux", ctypes.c_uint32), ("visual", ctypes.c_uint32),
                ("xpanstep", ctypes.c_uint16), ("ypanstep", ctypes.c_uint16), ("ywrapstep", ctypes.c_uint16),
                ("line_length", ctypes.c_uint32), ("mmio_start", ctypes.c_ulong), ("mmio_len", ctypes.c_uint32),
                ("accel", ctypes.c_uint32), ("capabilities", ctypes.c_uint16), ("reserved", ctypes.c_uint16 * 2)]


def read_geometry(fd: int) -> FbGeometry:
    """The geometry of an open framebuffer device, from FBIOGET_VSCREENINFO and FBIOGET_FSCREENINFO."""
    var, fix = _VarScreeninfo(), _FixScreeninfo()
    fcntl.ioctl(fd, FBIOGET_VSCREENINFO, var)
    fcntl.ioctl(fd, FBIOGET_FSCREENINFO, fix)
    return FbGeometry(var.xres, var.yres, var.bits_per_pixel, fix.line_length,
                      (var.red.offset, var.red.length), (var.green.offset, var.green.length),
                      (var.blue.offset, var.blue.length))


def pack_pixels(frame: np.ndarray, geometry: FbGeometry) -> np.ndarray:
    """(height, width, 3) RGB -> (height, width * bytes per pixel) bytes in the framebuffer's pixel layout."""
    if geometry.bits_per_pixel not in (16, 24, 32):
        raise ValueError(f"{geometry.bits_per_pixel} bits per pixel is not supported (16, 24 or 32)")
    value = np.zeros(frame.shape[:2], dtype=np.uint32)
    for index, (offset, length) in enumerate((geometry.red, geometry.green, geometry.blue)):
        value |= (frame[..., index].astype(np.uint32) >> (8 - length)) << offset
    bytes_per_pixel = geometry.bits_per_pixel // 8
    little = value.astype("<u4").view(np.uint8).reshape(frame.shape[0], frame.shape[1], 4)
    return little[..., :bytes_per_pixel].reshape(frame.shape[0], -1)


class FramebufferDisplay:
    """A `Display` on a Linux framebuffer device, written through an mmap.

    `geometry` is read from the device with ioctls unless given (tests pass a regular file standing
    in for the device, with the geometry they chose). No input comes from a framebuffer: keyboards
    and remotes are read through evdev.
    """

    name = "fbdev"

    def __init__(self, *, path: Path = Path("/dev/fb0"), geometry: FbGeometry | None = None,
                 refresh_hz: float | None = None):
        self.path = Path(path)
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise DisplayUnavailable(f"cannot open {self.path}: {exc.strerror or exc}") from exc
        try:
            self.geometry = geometry or read_geometry(self._fd)
            self._map = mmap.mmap(self._fd, self.geometry.size_bytes, mmap.MAP_SHARED, mmap.PROT_WRITE | mmap.PROT_READ)
        except (OSError, ValueError) as exc:
            os.close(self._fd)
            raise DisplayUnavailable(f"{self.path} is not a usable framebuffer: {exc}") from exc
        self.mode = DisplayMode(self.geometry.width, self.geometry.height, refresh_hz or DEFAULT_REFRESH_HZ)
        self._rows = np.frombuffer(self._map, dtype=np.uint8).reshape(self.geometry.height, self.geometry.line_length)

    def show(self, frame: np.ndarray) -> None:
        if self._map is None:
            raise DisplayLost(f"{self.path} is closed")
        packed = pack_pixels(frame, self.geometry)
        try:
            self._rows[:, :packed.shape[1]] = packed
        except (OSError, ValueError) as exc:
            raise DisplayLost(f"writing to {self.path} failed: {exc}") from exc

    def poll_events(self) -> list[InputEvent]:
        return []

    def close(self) -> None:
        if getattr(self, "_map", None) is None:
            return
        del self._rows  # the numpy view holds the mmap's buffer; drop it before closing the map
        self._map.close()
        self._map = None
        os.close(self._fd)
