"""`OnvifDomes`: PTZ of ONVIF cameras by channel, in the terms `PtzService` speaks (Pelco directions and
0-63 speeds, preset numbers 1-255, Futures).

A channel qualifies when it has an ONVIF endpoint and no RS-485 `ptz:` section (a wired dome wins). Its
PTZ is opened on first use (`drivers.onvif.ptz.OnvifPtz.open`: the media profile, its PTZ
configuration and what that offers) and `start()` opens them all at once in the background. A camera
whose profile has no PTZ configuration drops out of `channels()`; one that cannot be reached stays in
(the pages keep their buttons) and raises `ptz_down` on its channel until a command gets through.

Commands for one camera go out one at a time and in order (a Stop never overtakes its move), each under
`COMMAND_TIMEOUT_S`; at most `MAX_WAITING` wait per camera, more fail at once with `PtzBusy`.
Speeds map linearly: Pelco speed 0-63 -> ONVIF velocity 0.0-1.0 (turbo: 1.0), zoom at `ZOOM_VELOCITY`.
Preset numbers map to the camera's presets as `OnvifPtz.preset_token` says (token, else name == number).
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any

from drivers.onvif.ptz import OnvifPtz, PtzUnsupported

from appliance.config.model import Config
from appliance.onvif_cameras import OnvifCameras

log = logging.getLogger("nvr.ptz.onvif")

COMMAND_TIMEOUT_S = 5.0
OPEN_TIMEOUT_S = 20.0  # connect + GetProfiles + GetConfigurationOptions
MAX_WAITING = 8  # commands queued for one camera; a dead camera cannot pile up more
MAX_SPEED = 63
ZOOM_VELOCITY = 0.5


class PtzBusy(RuntimeError):
    """Too many PTZ commands are waiting for this camera (it does not answer); try again later."""


def _failed(exc: BaseException) -> Future:
    future: Future = Future()
    future.set_exception(exc)
    return future


class OnvifDomes:
    """The ONVIF PTZ cameras of `config` (channels with an endpoint and no `ptz:` section)."""

    def __init__(self, config: Config, cameras: OnvifCameras, *,
                 on_state: Callable[[int, bool, str | None], None] | None = None):
        """`on_state(channel, ok, error)`: the camera's PTZ answered (ok) or failed (for `ptz_down`)."""
        self._cameras, self._on_state = cameras, on_state
        wired = {channel.id for channel in config.channels if channel.ptz is not None}
        self._channels = [channel for channel in cameras.channels() if channel not in wired]
        self._ptz: dict[int, OnvifPtz] = {}
        self._no_ptz: dict[int, str] = {}  # channel -> why: its profile has no PTZ configuration
        self._locks: dict[int, asyncio.Lock] = {}
        self._waiting: dict[int, int] = {}  # commands submitted and not done, per channel
        self._waiting_lock = threading.Lock()  # callers' threads add, the loop thread's callbacks subtract
        self.stats = {"commands": 0, "failures": 0, "busy": 0}

    def channels(self) -> list[int]:
        """Channels whose camera offers PTZ, or has not said yet (unreachable so far)."""
        return [channel for channel in self._channels if channel not in self._no_ptz]

    def has(self, channel: int) -> bool:
        return channel in self._channels

    def why_not(self, channel: int) -> str | None:
        return self._no_ptz.get(channel)

    def start(self) -> None:
        """Open every camera's PTZ in the background, so that the pages know which offer it."""
        for channel in self._channels:
            try:
                self._cameras.submit(self._run(channel, None), timeout_s=OPEN_TIMEOUT_S)
            except RuntimeError as exc:
                log.warning("channel %d: ONVIF PTZ not opened: %s", channel, exc)

    # --- commands, as PtzService forwards them -------------------------------------------------------

    def move(self, channel: int, pan: int, tilt: int, speed: int, turbo: bool = False,
             tilt_speed: int | None = None) -> Future:
        pan_v = pan * (1.0 if turbo else min(speed, MAX_SPEED) / MAX_SPEED)
        tilt_v = tilt * (min(tilt_speed if tilt_speed is not None else speed, MAX_SPEED) / MAX_SPEED)
        return self._command(channel, lambda ptz: ptz.continuous_move(pan=pan_v, tilt=tilt_v))

    def zoom(self, channel: int, direction: int) -> Future:
        return self._command(channel, lambda ptz: ptz.continuous_move(zoom=direction * ZOOM_VELOCITY))

    def stop(self, channel: int) -> Future:
        return self._command(channel, lambda ptz: ptz.stop())

    def step(self, channel: int, *, pan: float = 0.0, tilt: float = 0.0, zoom: float = 0.0) -> Future:
        """A relative move (normalized -1.0 to 1.0), where the camera's configuration offers one."""
        return self._command(channel, lambda ptz: ptz.relative_move(pan=pan, tilt=tilt, zoom=zoom))

    def home(self, channel: int) -> Future:
        return self._command(channel, lambda ptz: ptz.goto_home())

    def preset_go(self, channel: int, number: int) -> Future:
        return self._command(channel, lambda ptz: ptz.goto_preset_number(number))

    def preset_set(self, channel: int, number: int) -> Future:
        return self._command(channel, lambda ptz: ptz.set_preset_number(number))

    def preset_clear(self, channel: int, number: int) -> Future:
        return self._command(channel, lambda ptz: ptz.remove_preset_number(number))

    def presets(self, channel: int) -> Future:
        """The camera's presets as [(token, name)]."""
        async def listed(ptz: OnvifPtz) -> list[tuple[str, str]]:
            return [(preset.token, preset.name) for preset in await ptz.presets()]
        return self._command(channel, listed)

    def capabilities(self, channel: int):
        ptz = self._ptz.get(channel)
        return None if ptz is None else ptz.capabilities

    def _command(self, channel: int, action: Callable[[OnvifPtz], Coroutine[Any, Any, Any]]) -> Future:
        with self._waiting_lock:
            if self._waiting.get(channel, 0) >= MAX_WAITING:
                self.stats["busy"] += 1
                return _failed(PtzBusy(f"channel {channel}: {MAX_WAITING} PTZ commands wait for the camera "
                                       f"already; it does not answer (check it is on and reachable)"))
            self._waiting[channel] = self._waiting.get(channel, 0) + 1
            self.stats["commands"] += 1
        try:
            future = self._cameras.submit(self._run(channel, action), timeout_s=COMMAND_TIMEOUT_S)
        except RuntimeError as exc:
            self._done(channel)
            return _failed(exc)
        future.add_done_callback(lambda _: self._done(channel))
        return future

    def _done(self, channel: int) -> None:
        with self._waiting_lock:
            self._waiting[channel] -= 1

    async def _run(self, channel: int, action) -> Any:
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            camera = None
            try:
                camera = await self._cameras.camera(channel)
                ptz = self._ptz.get(channel)
                if ptz is None:
                    ptz = OnvifPtz(camera, self._cameras.endpoints[channel].profile)
                    await ptz.open()
                    self._ptz[channel] = ptz
                result = None if action is None else await action(ptz)
            except PtzUnsupported as exc:
                if channel not in self._ptz:  # the profile itself has no PTZ: the channel is not a dome
                    self._no_ptz[channel] = str(exc)
                    log.info("channel %d: no ONVIF PTZ: %s", channel, exc)
                raise
            except (LookupError, ValueError):  # the user's mistake (no such preset): the camera is fine
                raise
            except BaseException as exc:  # unreachable, timed out, a SOAP fault: the camera's own share
                self.stats["failures"] += 1
                self._tell(channel, False, f"{type(exc).__name__}: {exc}")
                if camera is not None:
                    self._ptz.pop(channel, None)  # open again next time: the camera may have rebooted
                    await self._cameras.forget(channel, camera)
                raise
            self._tell(channel, True, None)
            return result

    def _tell(self, channel: int, ok: bool, error: str | None) -> None:
        if self._on_state is not None:
            self._on_state(channel, ok, error)

    def statistics(self) -> dict:
        return {**self.stats, "channels": self.channels(), "no_ptz": dict(self._no_ptz)}
