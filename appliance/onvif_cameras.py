"""`OnvifCameras`: the appliance's ONVIF connections by channel, on one asyncio loop thread.

A channel has an ONVIF endpoint when its source is `type: onvif` or an `rtsp` source names `onvif:`.
PTZ (`appliance.ptz.onvif`) and camera events (`appliance.alarms.camera_events`) share one connected
`onvif.ONVIFCamera` per channel, made on first use and made again after `forget(channel)` (a failure
that may mean the camera rebooted or changed address). Connecting goes through `connect`, injected:
the default is `drivers.onvif.camera.OnvifCamera.connect` (authentication fallbacks, clock offset).

Every call runs on the `LoopThread` under a timeout, so a camera that does not answer costs its caller
that timeout and nothing more; the other channels and the recording never wait for it.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from typing import Any

from drivers.onvif.loop import LoopThread

from appliance.config.model import ChannelConfig, Config
from appliance.config.onvif import OnvifEndpoint, OnvifSource

log = logging.getLogger("nvr.onvif")

CONNECT_TIMEOUT_S = 15.0
Connector = Callable[[OnvifEndpoint], Awaitable[Any]]


def onvif_endpoint(channel: ChannelConfig) -> OnvifEndpoint | None:
    """The channel's ONVIF endpoint: its source if that is `type: onvif`, else its rtsp source's `onvif:`."""
    source = channel.source
    return source if isinstance(source, OnvifSource) else getattr(source, "onvif", None)


async def connect_endpoint(endpoint: OnvifEndpoint) -> Any:
    """An `onvif.ONVIFCamera` for `endpoint` after `update_xaddrs()`: connected by
    `drivers.onvif.camera.OnvifCamera` (PasswordDigest falling back to PasswordText, HTTP Digest, the
    camera's clock offset, a size cap on every answer), whose library camera PTZ and events drive."""
    from drivers.onvif.camera import OnvifCamera  # the ONVIF library loads only where a channel uses ONVIF

    camera = OnvifCamera(endpoint.url, username=endpoint.username, password=endpoint.password)
    await camera.connect()
    return camera.library_camera


class OnvifCameras:
    """One connected camera per ONVIF channel of `config`, on a loop thread started by `start()`."""

    def __init__(self, config: Config, *, connect: Connector = connect_endpoint, loop: LoopThread | None = None):
        self.endpoints: dict[int, OnvifEndpoint] = {
            channel.id: endpoint for channel in config.channels
            if channel.enabled and (endpoint := onvif_endpoint(channel)) is not None}
        self._connect = connect
        self.loop = loop or LoopThread(name="onvif")
        self._cameras: dict[int, Any] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self.stats = {"connects": 0, "connect_failures": 0}

    def start(self) -> None:
        if self.endpoints:
            self.loop.start()

    def stop(self) -> None:
        """Cancel the long-running tasks, close every connection, end the loop thread."""
        if not self.endpoints:
            return
        try:
            self.loop.submit(self._close_all(), timeout_s=5.0).result(6.0)
        except Exception:
            log.exception("closing the ONVIF connections failed")
        self.loop.stop()

    async def _close_all(self) -> None:
        cameras, self._cameras = list(self._cameras.values()), {}
        for camera in cameras:
            try:
                await camera.close()
            except Exception as exc:
                log.debug("closing an ONVIF connection: %r", exc)

    def channels(self) -> list[int]:
        return sorted(self.endpoints)

    def submit(self, coro: Coroutine[Any, Any, Any], *, timeout_s: float) -> Future:
        return self.loop.submit(coro, timeout_s=timeout_s)

    async def camera(self, channel: int) -> Any:
        """The channel's connected camera (connecting now if it is not); KeyError for a channel without ONVIF."""
        endpoint = self.endpoints[channel]
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            camera = self._cameras.get(channel)
            if camera is None:
                try:
                    camera = await asyncio.wait_for(self._connect(endpoint), CONNECT_TIMEOUT_S)
                except Exception:
                    self.stats["connect_failures"] += 1
                    raise
                self.stats["connects"] += 1
                self._cameras[channel] = camera
                log.info("channel %d: connected to the camera's ONVIF service at %s", channel, endpoint.url)
            return camera

    async def forget(self, channel: int, camera: Any) -> None:
        """Drop `camera` (if it is still the channel's) so that the next use connects afresh."""
        if self._cameras.get(channel) is camera:
            del self._cameras[channel]
            try:
                await camera.close()
            except Exception as exc:
                log.debug("channel %d: closing a failed ONVIF connection: %r", channel, exc)

    def statistics(self) -> dict:
        return {**self.stats, "channels": self.channels(), "connected": sorted(self._cameras),
                "loop": self.loop.statistics()}
