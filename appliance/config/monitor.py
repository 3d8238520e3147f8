"""The `monitor:` section of the config: the local HDMI multi-view wall (layout, tiles, tour, alarm pop-up, lock)."""
from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from appliance.config.section import Section
from hal.audio_out import check_playback_device

LayoutSize = Literal[1, 4, 8, 9, 16]
BackendName = Literal["auto", "drm", "kmsdrm", "fbdev", "x11", "offscreen"]
DecoderName = Literal["auto", "h264", "h264_v4l2m2m"]
TileChannel = int | None


def _check_tiles(tiles: list[TileChannel]) -> list[TileChannel]:
    for channel in tiles:
        if channel is not None and not 1 <= channel <= 256:
            raise ValueError(f"expected channel numbers from 1 to 256 (or null for an empty tile), got {channel!r}")
    return tiles


class SequenceStep(Section):
    """One page of the tour: a layout and the channels in its tiles."""

    layout: LayoutSize = Field(4, description="Tiles on this page: 1, 4, 8, 9 or 16.")
    tiles: list[TileChannel] = Field(default_factory=list, description=(
        "Channel per tile, in reading order; null leaves a tile empty; an empty list pages through "
        "every enabled channel."))

    @field_validator("tiles")
    @classmethod
    def _tiles_are_channels(cls, tiles: list[TileChannel]) -> list[TileChannel]:
        return _check_tiles(tiles)


class SequenceConfig(Section):
    """The tour (sequence) mode: cycle through pages of channels, each shown for `dwell_s`."""

    enabled: bool = Field(False, description="Start the monitor touring; a key toggles it at run time.")
    dwell_s: float = Field(10.0, ge=2, le=3600, description="Seconds each page stays on screen.")
    steps: list[SequenceStep] = Field(default_factory=list, description=(
        "Pages to cycle through; empty: every enabled channel, `monitor.layout` tiles at a time."))


class AlarmPopupConfig(Section):
    """Full-screen pop-up of a channel when it raises an alarm (a linkage rule can also ask for one)."""

    enabled: bool = Field(False, description="Pop up the alarmed channel full-screen.")
    kinds: list[str] = Field(default_factory=lambda: ["alarm_input", "motion", "tamper"], description=(
        "Alarm kinds (as on the alarm board) that pop their channel up."))
    duration_s: float = Field(15.0, ge=1, le=3600, description="Seconds the pop-up stays before the wall returns.")


class MonitorConfig(Section):
    """The local HDMI monitor: the multi-view wall shown on the screen plugged into the recorder."""

    enabled: bool = Field(False, description="Show the live wall on the local screen.")
    backend: BackendName = Field("auto", description=(
        "auto tries drm (HDMI through KMS/DRM, no X, no GPU stack), kmsdrm (the same through SDL, "
        "needs Mesa), fbdev (/dev/fb0), x11 (a window, for development), then offscreen (no screen)."))
    resolution: str | None = Field(None, description=(
        "WIDTHxHEIGHT such as '1920x1080' instead of the connected monitor's preferred mode; null: the monitor's."))
    refresh_hz: float | None = Field(None, ge=10, le=240, description=(
        "Refresh rate of the screen when its EDID does not say or is wrong; the wall never redraws "
        "faster than this. null: the monitor's."))
    fps: float = Field(25.0, ge=1, le=60, description="Frames per second the wall is redrawn at.")
    layout: LayoutSize = Field(4, description="Tiles on the wall at start: 1, 4, 8 (one big and 7), 9 or 16.")
    tiles: list[TileChannel] = Field(default_factory=list, description=(
        "Channel shown in each tile, in reading order (null: empty tile); empty: enabled channels in order."))
    sequence: SequenceConfig = Field(default_factory=dict, description=SequenceConfig.__doc__)
    alarm_popup: AlarmPopupConfig = Field(default_factory=dict, description=AlarmPopupConfig.__doc__)
    decoder: DecoderName = Field("auto", description=(
        "H.264 decoder for network channels: auto uses the board's h264_v4l2m2m for full-screen main "
        "streams where it has one, software (h264) otherwise."))
    pin_hash: str | None = Field(None, description=(
        "scrypt hash of the PIN that unlocks playback and PTZ (make one with `nvr hash-pin`); null: "
        "the monitor shows live only."))
    unlock_timeout_s: float = Field(300.0, ge=10, le=86400, description=(
        "Seconds without a key press or click after which the monitor locks again."))
    playback_minutes: float = Field(5.0, ge=0.5, le=1440, description=(
        "How far back local playback starts, in minutes."))
    x_display: str | None = Field(None, description="X display for backend x11 (default: $DISPLAY).")
    evdev: bool = Field(True, description=(
        "Read keyboards and IR remotes from /dev/input (the kernel's input events, read directly)."))
    audio_out: str | None = Field(None, description=(
        "ALSA playback device that plays the full-screen channel's sound (hdmi:CARD=vc4hdmi0,DEV=0 for a "
        "Pi 4's first HDMI port, plughw:CARD,DEV, default; `aplay -L` lists them); null: no sound."))

    @field_validator("tiles")
    @classmethod
    def _tiles_are_channels(cls, tiles: list[TileChannel]) -> list[TileChannel]:
        return _check_tiles(tiles)

    @field_validator("resolution")
    @classmethod
    def _is_resolution(cls, value: str | None) -> str | None:
        if value is not None and re.fullmatch(r"[1-9][0-9]{1,4}x[1-9][0-9]{1,4}", value) is None:
            raise ValueError(f"expected WIDTHxHEIGHT such as '1920x1080', got {value!r}")
        if value is not None and any(not 64 <= side <= 8192 for side in map(int, value.split("x"))):
            raise ValueError(f"expected each side from 64 to 8192 pixels, got {value!r}")
        return value

    @field_validator("audio_out")
    @classmethod
    def _is_playback_device(cls, value: str | None) -> str | None:
        return value if value is None else check_playback_device(value)

    @field_validator("pin_hash")
    @classmethod
    def _pin_hash_is_scrypt(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("scrypt$"):
            raise ValueError("expected a hash made by `nvr hash-pin` (scrypt$...), never the PIN itself")
        return value

    @property
    def size(self) -> tuple[int, int] | None:
        """The resolution override as (width, height), or None."""
        if self.resolution is None:
            return None
        width, height = self.resolution.split("x")
        return int(width), int(height)
