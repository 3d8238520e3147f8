"""SDL2 displays (KMS/DRM and X11, through pygame-ce), each run in a child process the recorder survives.

Why a child process: when the X server goes away Xlib calls exit() in whatever process held the
connection, and SDL's KMS/DRM driver can crash on a hot-unplug. The child owns the screen; the
parent writes each composed RGB frame into a shared memory file and sends one line of JSON asking
the child to show it. A child that dies, hangs or reports an error becomes `DisplayLost` in the
parent, which reopens later with a fresh child.

Protocol (JSON lines; child's stdout is private to it, its logs go to stderr):

    child -> parent   {"ready": [w, h, refresh_hz]} | {"error": "..."}
    parent -> child   {"map": "/dev/shm/path"}   -> {"mapped": true}
                      {"show": 1}                -> {"events": [...]}
                      {"poll": 1}                -> {"events": [...]}
                      {"quit": 1}
"""
from __future__ import annotations

import json
import logging
import mmap
import os
import select
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from base.clock import Clocks
from hal.display import DisplayLost, DisplayMode, DisplayUnavailable, HotplugWatch, InputEvent, pick_mode

log = logging.getLogger("nvr.display")

# The child's cold start imports numpy and pygame and brings SDL's driver up: about a second on a Pi 4, 25 s
# measured in the image under QEMU's CPU emulation (numpy alone), longer on a Pi 3 reading a cold SD card.
# A screen that is slow to open is not a broken one (auto would fall back to fbdev for good).
OPEN_TIMEOUT_S = 90.0
FRAME_TIMEOUT_S = 5.0
HOTPLUG_CHECK_S = 1.0
X11_DEFAULT_SIZE = (1280, 720)


class IsolatedSdlDisplay:
    """A `Display` whose screen is owned by a child process running SDL2 with `driver` (kmsdrm or x11).

    For kmsdrm the mode is the monitor's (SDL's desktop mode) unless `size` overrides it, and the
    parent watches /sys/class/drm: an unplugged or swapped monitor is a DisplayLost, so the caller
    reopens at the new monitor's mode.
    """

    def __init__(self, *, driver: str, size: tuple[int, int] | None = None, refresh_hz: float | None = None,
                 drm_root: Path = Path("/sys/class/drm"), env: Mapping[str, str] | None = None, clocks: Clocks):
        self.name, self._driver, self._drm_root, self._clocks = driver, driver, drm_root, clocks
        self._map: mmap.mmap | None = None
        self._buffer = b""
        self._events: list[InputEvent] = []
        self._hotplug = (HotplugWatch(drm_root, interval_s=HOTPLUG_CHECK_S, clocks=clocks)
                         if driver == "kmsdrm" else None)
        self._monitor = self._hotplug.connector if self._hotplug else None
        # A window manager-less X server (Xvfb, a kiosk) would otherwise get the window centred.
        child_env = {"SDL_VIDEO_WINDOW_POS": "0,0", **(env if env is not None else os.environ),
                     "SDL_VIDEODRIVER": driver, "PYGAME_HIDE_SUPPORT_PROMPT": "1"}
        args = [sys.executable, "-m", "hal.display.sdl", driver, json.dumps(list(size) if size else None)]
        try:
            self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=child_env,
                                          cwd=str(Path(__file__).resolve().parent.parent))
        except OSError as exc:
            raise DisplayUnavailable(f"cannot start the {driver} display process: {exc}") from exc
        try:
            self.mode = self._handshake(refresh_hz)
        except DisplayLost as exc:
            self.close()
            raise DisplayUnavailable(str(exc)) from exc

    def _handshake(self, refresh_hz: float | None) -> DisplayMode:
        reply = self._receive(OPEN_TIMEOUT_S)
        if "error" in reply:
            raise DisplayLost(f"{self._driver}: {reply['error']}")
        width, height, sdl_hz = reply["ready"]
        detected = self._monitor.mode if self._monitor else None
        refresh = refresh_hz or (detected.refresh_hz if detected else None) or sdl_hz or None
        mode = pick_mode(DisplayMode(width, height, refresh or 60.0), size=None, refresh_hz=None)
        fd, path = tempfile.mkstemp(prefix="nvr-display-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        try:
            os.ftruncate(fd, width * height * 3)
            self._map = mmap.mmap(fd, width * height * 3)
            self._send({"map": path})
            self._receive(OPEN_TIMEOUT_S)
        finally:
            os.close(fd)
            os.unlink(path)  # both sides hold it mapped; nothing is left behind if either dies
        self._frame = np.frombuffer(self._map, dtype=np.uint8).reshape(height, width, 3)
        return mode

    def show(self, frame: np.ndarray) -> None:
        if self._map is None:
            raise DisplayLost(f"{self._driver} display is closed")
        self._frame[...] = frame
        self._send({"show": 1})
        self._take_events(self._receive(FRAME_TIMEOUT_S))

    def poll_events(self) -> list[InputEvent]:
        if self._hotplug is not None:
            self._hotplug.check()
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is None:
            return
        self._proc = None
        if proc.poll() is None:
            try:
                proc.stdin.write(b'{"quit": 1}\n')
                proc.stdin.flush()
            except OSError:
                pass
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self._frame = None
        if self._map is not None:
            self._map.close()
            self._map = None

    @property
    def pid(self) -> int | None:
        """The child's process id (tests kill it to prove the parent survives)."""
        return self._proc.pid if self._proc is not None else None

    def _take_events(self, reply: dict) -> None:
        if "error" in reply:
            raise DisplayLost(f"{self._driver}: {reply['error']}")
        for item in reply.get("events", []):
            self._events.append(InputEvent(**item))
        del self._events[:-256]  # nobody polling must not grow memory

    def _send(self, message: dict) -> None:
        proc = self._proc
        if proc is None:
            raise DisplayLost(f"{self._driver} display is closed")
        try:
            proc.stdin.write(json.dumps(message).encode() + b"\n")
            proc.stdin.flush()
        except (OSError, ValueError) as exc:
            raise DisplayLost(f"the {self._driver} display process is gone ({exc})") from exc

    def _receive(self, timeout_s: float) -> dict:
        deadline_us = self._clocks.monotonic_us() + round(timeout_s * 1e6)
        while b"\n" not in self._buffer:
            remaining = (deadline_us - self._clocks.monotonic_us()) / 1e6
            fd = self._proc.stdout.fileno() if self._proc is not None else -1
            if fd < 0 or remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise DisplayLost(f"the {self._driver} display process did not answer within {timeout_s:.0f} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                code = self._proc.poll()
                raise DisplayLost(f"the {self._driver} display process exited (status {code})")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError as exc:
            raise DisplayLost(f"the {self._driver} display process sent garbage: {line[:80]!r}") from exc


# --- the child: owns SDL --------------------------------------------------------------------------

_KEY_ALIASES = {"return": "enter", "keypad enter": "enter", "[enter]": "enter", "escape": "escape",
                "page up": "pageup", "page down": "pagedown", "+": "plus", "=": "plus", "-": "minus",
                "backspace": "backspace", "delete": "delete", "tab": "tab", "space": "space"}


def key_name(sdl_name: str) -> str:
    """Our key name for pygame's `key.name`: keypad keys fold into the main ones, 'return' -> 'enter'."""
    name = sdl_name.lower().strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name.startswith("keypad "):
        name = name[len("keypad "):]
    return _KEY_ALIASES.get(name, name)


def _child_main(driver: str, size: tuple[int, int] | None) -> int:
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything SDL or pygame prints must not corrupt the protocol
    try:
        import pygame
        pygame.display.init()
        screen = _open_screen(pygame, driver, size)
    except Exception as exc:  # every reason SDL cannot open is reported the same way
        out.write(json.dumps({"error": str(exc) or type(exc).__name__}) + "\n")
        return 1
    width, height = screen.get_size()
    out.write(json.dumps({"ready": [width, height, _refresh_hz(pygame)]}) + "\n")
    return _serve(pygame, screen, out)


def _open_screen(pygame, driver: str, size: tuple[int, int] | None):
    if driver == "kmsdrm":
        screen = pygame.display.set_mode(tuple(size) if size else (0, 0), pygame.FULLSCREEN)
    else:
        desktop = pygame.display.get_desktop_sizes()[0]
        wanted = tuple(size) if size else (min(X11_DEFAULT_SIZE[0], desktop[0]), min(X11_DEFAULT_SIZE[1], desktop[1]))
        screen = pygame.display.set_mode(wanted, pygame.NOFRAME)
        pygame.display.set_caption("nvr monitor")
    pygame.mouse.set_visible(True)
    pygame.key.set_repeat(400, 100)  # a held arrow keeps a PTZ camera moving, as on a DVR's front panel
    return screen


def _refresh_hz(pygame) -> float:
    try:
        rates = pygame.display.get_desktop_refresh_rates()
    except (AttributeError, pygame.error):
        return 0.0
    return float(rates[0]) if rates and rates[0] else 0.0


def _serve(pygame, screen, out) -> int:
    picture = None
    mapping = None
    for line in sys.stdin:
        message = json.loads(line)
        if "quit" in message:
            return 0
        if "map" in message:
            width, height = screen.get_size()
            with open(message["map"], "r+b") as f:
                mapping = mmap.mmap(f.fileno(), width * height * 3)
            picture = pygame.image.frombuffer(mapping, (width, height), "RGB")
            out.write('{"mapped": true}\n')
            continue
        if "show" in message and picture is not None:
            screen.blit(picture, (0, 0))
            pygame.display.flip()
        out.write(json.dumps({"events": _events(pygame)}) + "\n")
    return 0


def _events(pygame) -> list[dict]:
    found = []
    for event in pygame.event.get():
        if event.type == pygame.KEYDOWN:
            found.append({"kind": "key", "key": key_name(pygame.key.name(event.key))})
        elif event.type == pygame.MOUSEBUTTONDOWN:
            found.append({"kind": "click", "x": event.pos[0], "y": event.pos[1], "button": event.button})
    return found


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    sys.exit(_child_main(sys.argv[1], json.loads(sys.argv[2])))
