"""`nvr ptz`: send one PTZ command straight to a channel's dome over its configured port, for installers.

It opens the port itself (with the same exclusive lock the service takes), so it works with the
service stopped; when the service holds the port it says so plainly, with the service's pid from
the data root's lock file, instead of a bare "resource busy".

A channel whose camera speaks ONVIF (an ONVIF endpoint, no `ptz:` section) gets the command over the
network instead (`appliance.ptz.onvif`): moves, zoom, stop, presets and `home`; the running service
does not stand in the way (a camera takes commands from several clients).
"""
from __future__ import annotations

import fcntl
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from appliance.config.model import Config
from appliance.config.ptz import PtzPortConfig
from appliance.onvif_cameras import OnvifCameras, onvif_endpoint
from appliance.ptz.onvif import OnvifDomes
from appliance.ptz.service import channel_with_ptz, make_bus
from drivers.pelco.protocol import MAX_PRESET, MAX_SPEED, STOP, Message, Move, Preset, encode, wire_to_degrees
from drivers.pelco.bus import PelcoBus, TourStep
from base.clock import Clocks, RealClocks
from hal.serial_port import PortBusy

DATA_ROOT_LOCK = ".nvr.lock"  # appliance.supervisor.LOCK_FILE; not imported so `nvr ptz` stays light

_MOVES: dict[str, Callable[[int], Move]] = {
    "left": lambda speed: Move(pan=-1, pan_speed=speed),
    "right": lambda speed: Move(pan=1, pan_speed=speed),
    "up": lambda speed: Move(tilt=1, tilt_speed=speed),
    "down": lambda speed: Move(tilt=-1, tilt_speed=speed),
    "zoom-in": lambda speed: Move(zoom=1),
    "zoom-out": lambda speed: Move(zoom=-1),
    "focus-near": lambda speed: Move(focus=-1),
    "focus-far": lambda speed: Move(focus=1),
    "iris-open": lambda speed: Move(iris=1),
    "iris-close": lambda speed: Move(iris=-1),
}
_PRESETS = {"preset-set": "set", "preset-go": "go", "preset-clear": "clear"}
ACTIONS = (*_MOVES, "stop", *_PRESETS, "tour-start", "tour-stop", "position", "home")
_ONVIF_DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, 1), "down": (0, -1)}
ONVIF_ACTIONS = (*_ONVIF_DIRECTIONS, "zoom-in", "zoom-out", "stop", *_PRESETS, "home")
ONVIF_TIMEOUT_S = 30.0  # connecting, reading the profile, then the command


class PtzCommandError(Exception):
    """A mistake the person at the command line can fix (bad argument, unknown channel or tour)."""


class PtzPortBusy(Exception):
    """The port is held by the running service or another program; the message says which."""


class PtzCameraError(Exception):
    """An ONVIF camera could not be reached or refused the command; the message says why."""


def run_ptz_command(config: Config, *, channel: int, action: str, arg: str | None, speed: int,
                    for_s: float | None, out: Callable[[str], None] = print) -> int:
    """Carry out one `nvr ptz` action; returns the exit status. Raises PtzCommandError, PtzPortBusy,
    PtzCameraError."""
    found = next((c for c in config.channels if c.id == channel), None)
    if found is not None and found.ptz is None and onvif_endpoint(found) is not None:
        _check_arguments(action, arg, speed, for_s)
        return _run_onvif(config, channel, action, arg, speed, for_s, out)
    try:
        found, port = channel_with_ptz(config, channel)
    except LookupError as exc:
        raise PtzCommandError(str(exc)) from None
    _check_arguments(action, arg, speed, for_s)
    clocks = RealClocks()  # a command at the console: the one place its clocks are chosen
    bus = make_bus(port, clocks=clocks)
    try:
        bus.start(require_port=True)
    except PortBusy:
        raise PtzPortBusy(busy_message(port, config.storage.path)) from None
    where = f"address {found.ptz.address} on {port.url} ({port.protocol}, {port.baud} baud)"
    try:
        return _dispatch(bus, found.ptz, action, arg, speed, for_s, where, out, clocks)
    finally:
        bus.stop(halt_domes=False)  # a `left` must keep going after the command exits


def _check_arguments(action: str, arg: str | None, speed: int, for_s: float | None) -> None:
    if action not in ACTIONS:
        raise PtzCommandError(f"unknown action {action!r}; actions: {' '.join(ACTIONS)}")
    if not 0 <= speed <= MAX_SPEED:
        raise PtzCommandError(f"--speed must be from 0 to {MAX_SPEED}, got {speed}")
    if for_s is not None and (action not in _MOVES or for_s <= 0):
        raise PtzCommandError("--for SECONDS goes with a move (left, zoom-in, ...) and must be positive")
    needs_arg = action in _PRESETS or action == "tour-start"
    if needs_arg and arg is None:
        raise PtzCommandError(f"{action} needs {'a preset number' if action in _PRESETS else 'a tour name'}")
    if not needs_arg and arg is not None:
        raise PtzCommandError(f"{action} takes no argument, got {arg!r}")
    if action in _PRESETS:
        _preset_number(arg)


def _preset_number(arg: str) -> int:
    if not arg.isdigit() or not 1 <= int(arg) <= MAX_PRESET:
        raise PtzCommandError(f"expected a preset number from 1 to {MAX_PRESET}, got {arg!r}")
    return int(arg)


def _dispatch(bus: PelcoBus, dome, action: str, arg: str | None, speed: int, for_s: float | None,
              where: str, out: Callable[[str], None], clocks: Clocks) -> int:
    if action == "home":
        raise PtzCommandError("home is an ONVIF camera's command; an RS-485 dome goes to a preset (preset-go N)")
    if action == "position":
        return _position(bus, dome.address, where, out)
    if action == "tour-start":
        return _tour(bus, dome, arg, out)
    if action == "tour-stop":
        out("tours run inside the process that started them (the service's from its web page, "
            "`nvr ptz tour-start` until Ctrl-C); sending Stop to the dome")
        action = "stop"
    message: Message = STOP if action == "stop" else (
        Preset(_PRESETS[action], _preset_number(arg)) if action in _PRESETS else _MOVES[action](speed))
    _send(bus, dome.address, message, f"{action}{' ' + arg if arg else ''}", where, out)
    if for_s is not None:
        clocks.sleep(for_s)
        _send(bus, dome.address, STOP, "stop", where, out)
    return 0


def _send(bus: PelcoBus, address: int, message: Message, label: str, where: str, out) -> None:
    bus.send(address, message).result(timeout=10)
    out(f"sent {label} to {where}: {encode(bus.protocol, address, message).hex(' ').upper()}")


def _position(bus: PelcoBus, address: int, where: str, out) -> int:
    pan, tilt, zoom = (bus.query(address, axis) for axis in ("pan", "tilt", "zoom"))
    out(f"dome at {where}: pan {wire_to_degrees(pan):.2f} deg, tilt {wire_to_degrees(tilt, signed=True):.2f} deg, "
        f"zoom {zoom / 0xFFFF:.1%}")
    return 0


def _tour(bus: PelcoBus, dome, name: str, out) -> int:
    tour = next((t for t in dome.tours if t.name == name), None)
    if tour is None:
        known = ", ".join(repr(t.name) for t in dome.tours) or "none configured"
        raise PtzCommandError(f"no tour {name!r} for this channel; tours: {known}")
    done = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: done.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        bus.start_tour(dome.address, name, [TourStep(step.preset, step.dwell_s) for step in tour.steps])
        out(f"touring {name!r}: presets {', '.join(str(step.preset) for step in tour.steps)}; Ctrl-C ends it")
        done.wait()
    finally:
        bus.stop_tour(dome.address)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out(f"tour {name!r} stopped after {bus.statistics()['tour_steps']} preset call(s)")
    return 0


def _run_onvif(config: Config, channel: int, action: str, arg: str | None, speed: int, for_s: float | None,
               out: Callable[[str], None]) -> int:
    if action not in ONVIF_ACTIONS:
        raise PtzCommandError(f"channel {channel} is an ONVIF camera: {action} is for RS-485 domes; "
                              f"an ONVIF camera takes: {' '.join(ONVIF_ACTIONS)}")
    cameras = OnvifCameras(config)
    if channel not in cameras.endpoints:
        raise PtzCommandError(f"channel {channel} is disabled (enabled: false); enable it to steer its camera")
    domes = OnvifDomes(config, cameras)
    where = f"channel {channel}'s camera at {cameras.endpoints[channel].url}"
    cameras.start()
    try:
        _onvif_send(domes, channel, action, arg, speed, where, out)
        if for_s is not None:
            RealClocks().sleep(for_s)
            _onvif_send(domes, channel, "stop", None, speed, where, out)
        elif action in _ONVIF_DIRECTIONS or action.startswith("zoom"):
            out("the camera keeps moving until `nvr ptz stop` (or stops by itself after 60 s)")
        return 0
    finally:
        cameras.stop()


def _onvif_send(domes: OnvifDomes, channel: int, action: str, arg: str | None, speed: int, where: str,
                out: Callable[[str], None]) -> None:
    if action in _ONVIF_DIRECTIONS:
        future = domes.move(channel, *_ONVIF_DIRECTIONS[action], speed)
    elif action in ("zoom-in", "zoom-out"):
        future = domes.zoom(channel, 1 if action == "zoom-in" else -1)
    elif action in _PRESETS:
        number = _preset_number(arg)
        future = {"go": domes.preset_go, "set": domes.preset_set, "clear": domes.preset_clear}[_PRESETS[action]](
            channel, number)
    else:
        future = domes.home(channel) if action == "home" else domes.stop(channel)
    try:
        future.result(timeout=ONVIF_TIMEOUT_S)
    except Exception as exc:
        raise PtzCameraError(f"{where} did not take {action}: {exc}") from exc
    out(f"sent {action}{' ' + arg if arg else ''} to {where}")


def busy_message(port: PtzPortConfig, data_root: Path) -> str:
    """Why the port is busy: the running nvr service (with its pid) or some other program."""
    pid = service_pid(data_root)
    if pid is not None:
        who = f"pid {pid}" if pid > 0 else "pid unknown"
        return (f"{port.url} is held by the running nvr service ({who}, data in {data_root}); "
                f"move the dome from the service's web page, or stop the service first "
                f"(systemctl stop nvr) to use nvr ptz")
    return (f"{port.url} is in use by another program (not the nvr service recording to {data_root}); "
            f"`fuser -v {port.url}` shows which")


def service_pid(data_root: Path) -> int | None:
    """The pid of the nvr service holding `data_root`'s lock, or None if no process holds it."""
    try:
        fd = os.open(data_root / DATA_ROOT_LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(text) if text.isdigit() else -1
    finally:
        os.close(fd)  # closing also drops the shared lock if we got it
    return None
