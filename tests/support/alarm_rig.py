"""Test instruments for alarm I/O: gpiozero's mock pins installed for a test, a mock pin with a dry contact
on it, and a synthetic camera scene with an intruder."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPin

from base.clock import Clocks
from base.media import CaptureFormat, RawFrame
from hal.video import CaptureError


@contextmanager
def installed_mock_pins() -> Iterator[MockFactory]:
    """gpiozero's MockFactory installed as the default pin factory while the block runs, then reset and the
    previous factory put back; its pins are test instruments: `pins.pin(17).drive_low()`, `.states`."""
    previous, factory = Device.pin_factory, MockFactory()
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        factory.reset()
        Device.pin_factory = previous


class ContactPin(MockPin):
    """A MockPin wired to a dry contact to ground: while the contact is closed the line is low, whatever
    the pull-up says (gpiozero's plain MockPin goes high as soon as a pull-up is set)."""

    def __init__(self, factory, info):
        self.contact_closed = False
        super().__init__(factory, info)

    def _set_pull(self, value):
        super()._set_pull(value)
        if self.contact_closed:
            self._change_state(False)

    def close_contact(self) -> None:
        self.contact_closed = True
        self.drive_low()

    def open_contact(self) -> None:
        self.contact_closed = False
        if self._pull == "up":
            self.drive_high()


class IntruderScene:
    """A `VideoCapture` of a still, textured yuv420p scene; while `intruder` is set a bright square walks
    across the middle of the picture. Paced by `clocks` at `fps`."""

    def __init__(self, *, width: int, height: int, fps: float, clocks: Clocks):
        self.width, self.height, self.fps, self._clocks = width, height, fps, clocks
        self.intruder = False
        self._closed = threading.Event()
        base = np.full((height * 3 // 2, width), 128, np.uint8)
        base[:height] = 80
        base[:height:8, :] = 50  # texture
        base[:height, ::12] = 110
        self._base = base

    def open(self) -> CaptureFormat:
        self._closed.clear()
        return CaptureFormat(self.width, self.height, "yuv420p", self.fps)

    def close(self) -> None:
        self._closed.set()

    def frames(self) -> Iterator[RawFrame]:
        period_us, sequence = round(1e6 / self.fps), 0
        next_us = self._clocks.monotonic_us()
        while not self._closed.is_set():
            wait_s = (next_us - self._clocks.monotonic_us()) / 1e6
            if wait_s > 0 and self._closed.wait(wait_s):
                break
            yield RawFrame(self._draw(sequence), "yuv420p", self.width, self.height, self._clocks.monotonic_us(), sequence)
            sequence += 1
            next_us += period_us
        raise CaptureError("scene closed")

    def _draw(self, sequence: int) -> np.ndarray:
        data = self._base.copy()
        if self.intruder:
            side = self.height // 5
            x = (self.width // 4 + sequence * 4) % (self.width // 2) + self.width // 4 - side // 2
            y = self.height // 2 - side // 2
            data[y:y + side, x:x + side] = 235
        return data
