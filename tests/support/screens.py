"""Screens for tests: an Xvfb server, real screenshots with xwd, PNG artifacts, and pattern signatures of pictures."""
from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
from pathlib import Path

import numpy as np

ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"


def save_png(frame: np.ndarray, name: str) -> Path:
    """Save an (h, w, 3) RGB frame as test-artifacts/NAME.png and return the path."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    height, width = frame.shape[:2]
    pygame.image.save(pygame.image.frombuffer(np.ascontiguousarray(frame).tobytes(), (width, height), "RGB"), str(path))
    return path


class Xvfb:
    """A virtual X server; the first `start()` lets Xvfb pick a free display number (-displayfd, so
    parallel test runs never race for one), later starts reuse it. `stop()` kills the server."""

    def __init__(self, *, width: int = 1280, height: int = 720):
        self.size = (width, height)
        self.number: int | None = None
        self._proc: subprocess.Popen | None = None

    @property
    def display(self) -> str:
        return f":{self.number}"

    def start(self) -> Xvfb:
        width, height = self.size
        read_fd, write_fd = os.pipe()
        command = ["Xvfb", *([self.display] if self.number is not None else []), "-displayfd", str(write_fd),
                   "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"]
        try:
            self._proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          pass_fds=(write_fd,))
        finally:
            os.close(write_fd)
        with os.fdopen(read_fd) as announced:
            number = announced.readline().strip()  # written once the server accepts connections
        if not number.isdigit():
            self.stop()
            raise RuntimeError(f"Xvfb did not start (display {self.number})")
        self.number = int(number)
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            self._proc.wait(timeout=10)
        self._proc = None

    def screenshot(self) -> np.ndarray:
        """The whole screen as (h, w, 3) RGB, taken with xwd."""
        data = subprocess.run(["xwd", "-root", "-silent", "-display", self.display], capture_output=True,
                              check=True, timeout=20).stdout
        return read_xwd(data)


def have_xvfb() -> bool:
    return shutil.which("Xvfb") is not None and shutil.which("xwd") is not None


def read_xwd(data: bytes) -> np.ndarray:
    """Decode a 24/32-bit TrueColor XWD image (what xwd writes for an Xvfb screen) to RGB."""
    fields = struct.unpack_from(">25I", data)
    header_size, width, height = fields[0], fields[4], fields[5]
    byte_order, bits_per_pixel, bytes_per_line = fields[7], fields[11], fields[12]
    masks, ncolors = fields[14:17], fields[19]
    if bits_per_pixel not in (24, 32):
        raise ValueError(f"only 24 and 32 bits per pixel XWD images are handled, not {bits_per_pixel}")
    start = header_size + 12 * ncolors
    size = bits_per_pixel // 8
    rows = np.frombuffer(data, dtype=np.uint8, count=height * bytes_per_line, offset=start)
    pixels = rows.reshape(height, bytes_per_line)[:, :width * size].reshape(height, width, size).astype(np.uint32)
    order = range(size) if byte_order == 0 else reversed(range(size))  # 0: least significant byte first
    value = sum(pixels[..., index] << (8 * shift) for shift, index in enumerate(order))
    channels = [(value & mask) >> (int(mask).bit_length() - 8) for mask in masks]
    return np.stack(channels, axis=-1).astype(np.uint8)


def signature(picture: np.ndarray) -> np.ndarray:
    """A coarse normalised RGB histogram (4 levels per colour) of a picture's central part: stable while
    a test pattern moves, and different from one pattern to another."""
    height, width = picture.shape[:2]
    centre = picture[height // 5:height * 4 // 5, width // 5:width * 4 // 5] // 64
    bins = (centre[..., 0].astype(np.int32) * 16 + centre[..., 1] * 4 + centre[..., 2]).ravel()
    histogram = np.bincount(bins, minlength=64).astype(np.float64)
    return histogram / histogram.sum()


def closest(picture: np.ndarray, references: dict) -> object:
    """The key of `references` (name -> signature) nearest to `picture`'s signature."""
    mine = signature(picture)
    return min(references, key=lambda key: float(np.abs(references[key] - mine).sum()))
