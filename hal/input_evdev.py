"""Keyboards and IR remotes through the kernel's input events (/dev/input/event*), read with the optional `evdev`.

An IR receiver handled by the kernel's rc-core (gpio-ir, a USB dongle) shows up as an input
device sending KEY_* codes, just as a USB keyboard does, so one reader serves both. `key_for_code`
is pure: it turns a kernel key code into the key names the display backends use
(`hal.display.InputEvent`), so remotes and keyboards drive the monitor alike.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from base.clock import Clocks
from hal.display import InputEvent

log = logging.getLogger("nvr.input")

EV_KEY = 1
KEY_DOWN, KEY_REPEAT = 1, 2  # value 0 is release
REPEATING_KEYS = frozenset({"up", "down", "left", "right", "plus", "minus"})
RESCAN_S = 5.0

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
    """The key name for a press of kernel key `code`, or for an autorepeat of a key that steers
    (arrows, zoom: holding one keeps a PTZ camera moving); None for releases and anything else."""
    if event_type != EV_KEY or value not in (KEY_DOWN, KEY_REPEAT):
        return None
    name = _KEYS.get(code)
    return name if value == KEY_DOWN or name in REPEATING_KEYS else None


def evdev_available() -> bool:
    """Whether the optional `evdev` package is installed."""
    try:
        import evdev  # noqa: F401
    except ImportError:
        return False
    return True


class EvdevKeys:
    """Reads key presses from every keyboard-like input device, without blocking.

    Devices are found at start and every few seconds (a remote receiver plugged in later is picked
    up); a device that fails (unplugged) is dropped and logged. `list_paths` and `open_device` are
    injected for tests; by default they come from `evdev`.
    """

    def __init__(self, *, list_paths: Callable[[], Iterable[str]] | None = None,
                 open_device: Callable[[str], object] | None = None, clocks: Clocks):
        if list_paths is None or open_device is None:
            import evdev  # optional: callers check evdev_available() first
            list_paths = list_paths or evdev.list_devices
            open_device = open_device or evdev.InputDevice
        self._list_paths, self._open_device, self._clocks = list_paths, open_device, clocks
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
