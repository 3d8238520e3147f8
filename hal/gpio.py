"""GPIO input and output pins: gpiozero (Raspberry Pi factories, or its MockFactory in tests), else linuxpy.gpio.

One interface, two backends:

* `GpiozeroGpio` over any gpiozero pin factory. On a Raspberry Pi that is lgpio / RPi.GPIO / native;
  in tests it is gpiozero's `MockFactory`, whose pins the tests drive (`drive_low()`) and whose
  `states` history proves what an output did.
* `LinuxGpio` over the kernel's GPIO character device (`/dev/gpiochipN`) through `linuxpy.gpio`, for
  boards where gpiozero's real factories do not load (they need a Raspberry Pi).

`open_gpio("auto")` uses an explicit pin factory if given, else gpiozero's default factory if one
loads on this board, else the character device. No pin is touched at import time.

Pins are named as the backend understands them: gpiozero takes ``17``, ``"GPIO17"``, ``"BOARD11"``;
the character device takes ``17`` (line 17 of the default chip) or ``"gpiochip1:5"``.

Exceptions:

    GpioError (OSError)     a pin cannot be opened or driven (wraps the backend's own error)
"""
from __future__ import annotations

import logging
import os
import re
import select
import threading
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("nvr.gpio")

PinName = int | str
LevelCallback = Callable[[bool], None]


class GpioError(OSError):
    """A pin could not be opened, read or driven."""


class InputPin(Protocol):
    """A digital input with the internal pull-up on. `when_changed(level)` is called on every edge,
    from whatever thread the backend uses, with the new electrical level (True = high)."""

    name: str
    when_changed: LevelCallback | None

    def is_high(self) -> bool: ...

    def close(self) -> None: ...


class OutputPin(Protocol):
    """A digital output. `active` is the logical state: high when `active_high`, low otherwise."""

    name: str

    def set_active(self, active: bool) -> None: ...

    @property
    def is_active(self) -> bool: ...

    def close(self) -> None: ...


class Gpio(Protocol):
    """A source of pins: one per board (or one MockFactory per test)."""

    backend: str

    def input(self, pin: PinName, *, pull_up: bool = True) -> InputPin: ...

    def output(self, pin: PinName, *, active_high: bool = True, initial_active: bool = False) -> OutputPin: ...

    def close(self) -> None: ...


# --- gpiozero ---------------------------------------------------------------------------------

class _ZeroInput:
    def __init__(self, device: Any, name: str):
        self._device, self.name = device, name
        self.when_changed: LevelCallback | None = None
        # With the pull-up, gpiozero calls the line "active" when it is low.
        device.when_activated = lambda: self._changed(False)
        device.when_deactivated = lambda: self._changed(True)

    def _changed(self, level: bool) -> None:
        callback = self.when_changed
        if callback is not None:
            callback(level)

    def is_high(self) -> bool:
        return not self._device.is_active

    def close(self) -> None:
        self.when_changed = None
        self._device.close()


class _ZeroOutput:
    def __init__(self, device: Any, name: str):
        self._device, self.name = device, name

    def set_active(self, active: bool) -> None:
        try:
            self._device.value = bool(active)
        except Exception as exc:
            raise GpioError(f"cannot drive output {self.name}: {exc}") from exc

    @property
    def is_active(self) -> bool:
        return bool(self._device.value)

    def close(self) -> None:
        self._device.close()


class GpiozeroGpio:
    """Pins from a gpiozero pin factory (None: gpiozero's default for this board)."""

    backend = "gpiozero"

    def __init__(self, *, pin_factory: Any = None):
        from gpiozero import Device
        self._factory = pin_factory if pin_factory is not None else (Device.pin_factory or Device._default_pin_factory())
        self.factory_name = type(self._factory).__name__

    def input(self, pin: PinName, *, pull_up: bool = True) -> InputPin:
        from gpiozero import DigitalInputDevice
        try:
            device = DigitalInputDevice(pin, pull_up=pull_up, bounce_time=None, pin_factory=self._factory)
        except Exception as exc:
            raise GpioError(f"cannot open input pin {pin!r} ({self.factory_name}): {exc}") from exc
        return _ZeroInput(device, str(pin))

    def output(self, pin: PinName, *, active_high: bool = True, initial_active: bool = False) -> OutputPin:
        from gpiozero import DigitalOutputDevice
        try:
            device = DigitalOutputDevice(pin, active_high=active_high, initial_value=initial_active,
                                         pin_factory=self._factory)
        except Exception as exc:
            raise GpioError(f"cannot open output pin {pin!r} ({self.factory_name}): {exc}") from exc
        return _ZeroOutput(device, str(pin))

    def close(self) -> None:
        """The factory belongs to whoever made it (a test's MockFactory); pins are closed one by one."""


# --- linuxpy character device -----------------------------------------------------------------

_CHIP_LINE_RE = re.compile(r"(?:/dev/)?(gpiochip\d+):(\d+)")


def parse_chip_line(pin: PinName, *, default_chip: str = "/dev/gpiochip0") -> tuple[str, int]:
    """``17`` -> (default chip, 17); ``'GPIO17'`` -> (default chip, 17); ``'gpiochip1:5'`` -> ('/dev/gpiochip1', 5)."""
    if isinstance(pin, int) and not isinstance(pin, bool) and pin >= 0:
        return default_chip, pin
    if isinstance(pin, str):
        match = _CHIP_LINE_RE.fullmatch(pin.strip())
        if match:
            return f"/dev/{match.group(1)}", int(match.group(2))
        text = pin.strip().upper().removeprefix("GPIO")
        if text.isdigit():
            return default_chip, int(text)
    raise GpioError(f"expected a line number such as 17, 'GPIO17' or 'gpiochip0:17', got {pin!r}")


class _LineInput:
    def __init__(self, request: Any, line: int, name: str):
        self._request, self._line, self.name = request, line, name
        self.when_changed: LevelCallback | None = None
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._watch, name=f"gpio-{name}", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        from linuxpy.gpio.device import read_one_event
        fd = self._request.filenos()[0]
        while True:
            ready, _, _ = select.select([fd, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                event = read_one_event(fd)
            except OSError as exc:
                log.error("gpio %s: reading edge events failed: %s", self.name, exc)
                return
            callback = self.when_changed
            if callback is not None:
                callback(event.type.name.startswith("RISING"))

    def is_high(self) -> bool:
        return bool(self._request.get_values([self._line])[self._line])

    def close(self) -> None:
        self.when_changed = None
        os.write(self._stop_w, b"x")
        self._thread.join(2)
        self._request.close()
        os.close(self._stop_r)
        os.close(self._stop_w)


class _LineOutput:
    def __init__(self, request: Any, line: int, name: str, active_high: bool, initial_active: bool):
        self._request, self._line, self.name, self._active_high = request, line, name, active_high
        self._active = initial_active

    def set_active(self, active: bool) -> None:
        try:
            self._request.set_values({self._line: active == self._active_high})
        except OSError as exc:
            raise GpioError(f"cannot drive output {self.name}: {exc}") from exc
        self._active = bool(active)

    @property
    def is_active(self) -> bool:
        return self._active

    def close(self) -> None:
        self._request.close()


class LinuxGpio:
    """Pins from the GPIO character device through linuxpy (any Linux board)."""

    backend = "linuxpy"

    def __init__(self, *, default_chip: str = "/dev/gpiochip0", consumer: str = "nvr"):
        self._default_chip, self._consumer = default_chip, consumer
        self._chips: dict[str, Any] = {}

    def _chip(self, path: str) -> Any:
        from linuxpy.gpio.device import Device
        if path not in self._chips:
            device = Device(path)
            device.open()
            self._chips[path] = device
        return self._chips[path]

    def _request(self, pin: PinName, line_config: dict) -> tuple[Any, int]:
        chip, line = parse_chip_line(pin, default_chip=self._default_chip)
        try:
            request = self._chip(chip).request({"name": self._consumer, "lines": [{"line": line, **line_config}]})
            request.open()
        except OSError as exc:
            raise GpioError(f"cannot request {chip} line {line}: {exc.strerror or exc}") from exc
        return request, line

    def input(self, pin: PinName, *, pull_up: bool = True) -> InputPin:
        config = {"direction": "input", "edge": "both", **({"bias": "pull-up"} if pull_up else {})}
        request, line = self._request(pin, config)
        return _LineInput(request, line, str(pin))

    def output(self, pin: PinName, *, active_high: bool = True, initial_active: bool = False) -> OutputPin:
        request, line = self._request(pin, {"direction": "output"})
        out = _LineOutput(request, line, str(pin), active_high, initial_active)
        out.set_active(initial_active)
        return out

    def close(self) -> None:
        for device in self._chips.values():
            device.close()
        self._chips.clear()


def open_gpio(backend: str = "auto", *, pin_factory: Any = None, default_chip: str = "/dev/gpiochip0") -> Gpio:
    """The board's GPIO: 'gpiozero', 'linuxpy', or 'auto' (an explicit factory, else gpiozero's default
    if one loads here, else the character device). Raises GpioError when none is usable."""
    if backend == "linuxpy":
        return LinuxGpio(default_chip=default_chip)
    if backend == "gpiozero" or pin_factory is not None:
        return GpiozeroGpio(pin_factory=pin_factory)
    if backend != "auto":
        raise GpioError(f"unknown GPIO backend {backend!r}; expected auto, gpiozero or linuxpy")
    try:
        return GpiozeroGpio()
    except Exception as exc:  # BadPinFactory and friends: not a Raspberry Pi
        log.info("gpiozero has no pin factory on this board (%s); using the GPIO character device", exc)
    if not os.path.exists(default_chip):
        raise GpioError(f"no GPIO here: gpiozero has no pin factory and {default_chip} does not exist")
    return LinuxGpio(default_chip=default_chip)
