"""`PtzControl`: steering a dome by hand, by channel, as `appliance.ptz.service.PtzService` offers it.

The HDMI monitor steers through it; the web UI adapts it to browser terms (`appliance.web.services`).
"""
from __future__ import annotations

from typing import Protocol


class PtzControl(Protocol):
    """Which channels have a dome; continuous pan (-1 left, +1 right) / tilt (-1 down, +1 up), zoom
    (+1 in, -1 out) and stop. Commands may return a Future that resolves once the frame is on the line;
    callers that must not block need not wait for it."""

    def channels(self) -> list[int]: ...

    def move(self, channel: int, pan: int, tilt: int) -> object: ...

    def zoom(self, channel: int, direction: int) -> object: ...

    def stop(self, channel: int) -> object: ...
