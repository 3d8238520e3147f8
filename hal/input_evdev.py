"""Keyboards and IR remotes through the kernel's input events (/dev/input/event*), read directly.

An IR receiver handled by the kernel's rc-core (gpio-ir, a USB dongle) shows up as an input
device sending KEY_* codes, just as a USB keyboard does, so one reader serves both. `key_for_code`
is pure: it turns a kernel key code into the key names the display backends use
(`hal.display.InputEvent`), so remotes and keyboards drive the monitor alike.

The devices are read with `os.read` and two ioctls, no third-party package: the `evdev` package
on PyPI ships no binary wheels (only a source archive that needs a C compiler and the kernel
headers), so the image could not install it. What the kernel writes is a stream of fixed-size
`struct input_event` records (see `EVENT_FORMAT`); that and the key bitmap are all this needs.
"""
from __future__ import annotations

import errno
import fcntl
import glob
import logging
import os
import struct
import sys
from collections.abc import Callable, Iterable
from typing import NamedTuple

from base.clock import Clocks
from hal.display import InputEvent

log = logging.getLogger("nvr.input")

EV_KEY = 1
KEY_DOWN, KEY_REPEAT = 1, 2  # value 0 is release
REPEATING_KEYS = frozenset({"up", "down", "left", "right", "plus", "minus", "t"})  # "t": hold-to-talk
RESCAN_S = 5.0
DEVICE_GLOB = "/dev/input/event*"

# struct input_event { struct timeval time; __u16 type; __u16 code; __s32 value; }: the timeval is two
# C longs on every Linux ABI (64-bit time on 32-bit arms keeps `long` fields in this struct), so native
# sizes and alignment give 24 bytes on arm64/x86-64 and 16 on 32-bit boards.
EVENT_FORMAT = "llHHi"
EVENT_BYTES = struct.calcsize(EVENT_FORMAT)
MAX_EVENTS_PER_READ = 256  # a device flooding events costs at most this many records per poll
KEY_MAX = 0x2FF  # linux/input-event-codes.h
NAME_MAX_BYTES = 256

# ioctl numbers from linux/input.h: _IOC(_IOC_READ, 'E', nr, size) with the generic encoding (x86, arm).
_IOC_READ = 2


def _ioc_read(nr: int, size: int) -> int:
    return (_IOC_READ << 30) | (size << 16) | (ord("E") << 8) | nr


def eviocgname(size: int) -> int:
    return _ioc_read(0x06, size)


def eviocgbit(event_type: int, size: int) -> int:
    return _ioc_read(0x20 + event_type, size)


# Kernel key codes (linux/input-event-codes.h) -> our key names.
_KEYS: dict[int, str] = {
    1: "escape", 14: "backspace", 15: "tab", 28: "enter", 57: "space", 12: "minus", 13: "plus",
    103: "up", 108: "down", 105: "left", 106: "right", 104: "pageup", 109: "pagedown", 111: "delete",
    71: "7", 72: "8", 73: "9", 74: "minus", 75: "4", 76: "5", 77: "6", 78: "plus", 79: "1", 80: "2",
    81: "3", 82: "0", 96: "enter",
    # remote controls
    352: "enter", 353: "enter", 158: "escape", 174: "escape", 139: "m", 102: "home", 402: "pageup",
    403: "pagedown", 418: "plus", 419: "minus", 207: "p", 164: "p", 128: "escape", 358: "i", 373: "l",
    375: "l", 407: "pagedown", 412: "pageup", 398: "f1", 399: "f2", 400: "f3", 401: "f4",
}
_KEYS.update({code: str(digit % 10) for digit, code in enumerate(range(2, 12), start=1)})  # KEY_1..KEY_0
_KEYS.update({512 + digit: str(digit) for digit in range(10)})  # KEY_NUMERIC_0..9 on remotes
_KEYS.update({59 + n: f"f{n + 1}" for n in range(10)})  # F1..F10
_KEYS.update({87: "f11", 88: "f12"})
for _row, _start in (("qwertyuiop", 16), ("asdfghjkl", 30), ("zxcvbnm", 44)):
    _KEYS.update({_start + i: letter for i, letter in enumerate(_row)})


def key_for_code(event_type: int, code: int, value: int) -> str | None:
    """The key name for a press of kernel key `code`, or for an autorepeat of a key that is held on
    purpose (arrows, zoom: holding one keeps a PTZ camera moving; T holds the intercom open); None for
    releases and anything else."""
    if event_type != EV_KEY or value not in (KEY_DOWN, KEY_REPEAT):
        return None
    name = _KEYS.get(code)
    return name if value == KEY_DOWN or name in REPEATING_KEYS else None


class RawEvent(NamedTuple):
    """One `struct input_event` without its time stamp."""

    type: int
    code: int
    value: int


class EventStream:
    """Cuts the bytes read from an event device into records; a record split over two reads is kept
    until its end arrives. The kernel hands out whole records, but the parser does not rely on it."""

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, data: bytes) -> list[RawEvent]:
        data = self._rest + data
        whole = len(data) - len(data) % EVENT_BYTES
        self._rest = data[whole:]
        return [RawEvent(type_, code, value)
                for _sec, _usec, type_, code, value in struct.iter_unpack(EVENT_FORMAT, data[:whole])]


def codes_from_bitmap(bitmap: bytes) -> list[int]:
    """The bit numbers set in a kernel bitmap (EVIOCGBIT's answer: little-endian bytes of longs)."""
    return [index * 8 + bit for index, byte in enumerate(bitmap) if byte for bit in range(8) if byte >> bit & 1]


class InputDevice:
    """One /dev/input/event* device, opened non-blocking. `read()` returns the complete records waiting
    (at most MAX_EVENTS_PER_READ) and raises BlockingIOError when there are none; OSError when the
    device is gone (ENODEV after an unplug)."""

    def __init__(self, path: str):
        self.path = path
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self._stream = EventStream()
        try:
            self.name = _ioctl_bytes(self._fd, eviocgname(NAME_MAX_BYTES), NAME_MAX_BYTES) \
                .split(b"\0", 1)[0].decode(errors="replace")
        except OSError:
            self.name = "?"

    def fileno(self) -> int:
        return self._fd

    def capabilities(self) -> dict[int, list[int]]:
        """{EV_KEY: the key codes this device can send}; an empty list for devices without keys."""
        bitmap = _ioctl_bytes(self._fd, eviocgbit(EV_KEY, KEY_MAX // 8 + 1), KEY_MAX // 8 + 1)
        return {EV_KEY: codes_from_bitmap(bitmap)}

    def read(self) -> list[RawEvent]:
        data = os.read(self._fd, EVENT_BYTES * MAX_EVENTS_PER_READ)  # BlockingIOError when nothing waits
        if not data:
            raise OSError(errno.ENODEV, f"{self.path}: end of file (the device is gone)")
        return self._stream.feed(data)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _ioctl_bytes(fd: int, request: int, size: int) -> bytes:
    buffer = bytearray(size)
    fcntl.ioctl(fd, request, buffer, True)
    return bytes(buffer)


def list_devices() -> list[str]:
    """The event devices there are now (none when /dev/input does not exist yet)."""
    return sorted(glob.glob(DEVICE_GLOB))


def evdev_available() -> bool:
    """Whether key presses can be read from the kernel's input devices: on Linux always (a keyboard or
    remote plugged in later appears under /dev/input and is found by the next rescan)."""
    return sys.platform.startswith("linux")


class EvdevKeys:
    """Reads key presses from every keyboard-like input device, without blocking.

    Devices are found at start and every few seconds (a remote receiver plugged in later is picked
    up); a device that fails (unplugged) is dropped and logged. `list_paths` and `open_device` are
    injected for tests; by default they are `list_devices` and `InputDevice`.
    """

    def __init__(self, *, list_paths: Callable[[], Iterable[str]] | None = None,
                 open_device: Callable[[str], object] | None = None, clocks: Clocks):
        self._list_paths = list_paths or list_devices
        self._open_device = open_device or InputDevice
        self._clocks = clocks
        self._devices: dict[str, object] = {}
        self._next_scan = 0.0
        self.errors = 0

    def poll(self) -> list[InputEvent]:
        """Key presses since the last call, from every device."""
        if self._clocks.monotonic_us() / 1e6 >= self._next_scan:
            self._rescan()
        events = []
        for path, device in list(self._devices.items()):
            try:
                for raw in _read_pending(device):
                    name = key_for_code(raw.type, raw.code, raw.value)
                    if name is not None:
                        events.append(InputEvent("key", key=name))
            except OSError as exc:
                log.warning("input device %s is gone: %s", path, exc)
                self.errors += 1
                self._drop(path)
        return events

    def close(self) -> None:
        for path in list(self._devices):
            self._drop(path)

    def _rescan(self) -> None:
        self._next_scan = self._clocks.monotonic_us() / 1e6 + RESCAN_S
        try:
            paths = set(self._list_paths())
        except OSError:
            paths = set()
        for path in paths - set(self._devices):
            try:
                device = self._open_device(path)
            except OSError:
                continue  # no permission or gone again: not ours to read
            if _has_keys(device):
                log.info("reading keys from %s (%s)", path, getattr(device, "name", "?"))
                self._devices[path] = device
            else:
                _close(device)

    def _drop(self, path: str) -> None:
        _close(self._devices.pop(path, None))


def _read_pending(device) -> list:
    try:
        return list(device.read())
    except BlockingIOError:
        return []


def _has_keys(device) -> bool:
    try:
        keys = device.capabilities().get(EV_KEY, [])
    except (OSError, AttributeError):
        return False
    return any(code in _KEYS for code in keys)


def _close(device) -> None:
    if device is not None:
        try:
            device.close()
        except (OSError, AttributeError):
            pass
