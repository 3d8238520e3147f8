"""The local HDMI monitor: the multi-view wall a DVR shows on the screen plugged into it.

`build_monitor(sources)` wires a `Monitor` to what it shows and drives, given as `MonitorSources`
(live taps, faults, status, the index and data root for playback, PTZ when there is one);
`appliance.app.Appliance` meets that protocol, and starts and stops the monitor with the rest.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from base.clock import Clocks
from hal.display import DisplayRequest, open_display
from hal.input_evdev import EvdevKeys, evdev_available
from recorder.index import Index
from recorder.live import LiveHub

from appliance.config.model import Config, OnvifSource, RtspSource
from appliance.monitor.monitor import ActiveFaults, ChannelInfo, Monitor
from appliance.ptz.control import PtzControl
from appliance.sound.intercom import Intercom
from appliance.sound.output import MONITOR, AudioOutputs

__all__ = ["ChannelInfo", "Monitor", "MonitorSources", "build_monitor", "channel_infos"]

log = logging.getLogger("nvr.monitor")


def channel_infos(config: Config) -> list[ChannelInfo]:
    """The enabled channels as the monitor sees them: analog ones are raw, cameras with a sub_url (ONVIF: sub_profile) have a sub."""
    return [ChannelInfo(channel.id, channel.name, raw=not isinstance(channel.source, (RtspSource, OnvifSource)),
                        has_sub=bool(getattr(channel.source, "sub_url", None)
                                     or getattr(channel.source, "sub_profile", None)))
            for channel in config.channels if channel.enabled]


class MonitorSources(Protocol):
    """What the wall shows and drives. `index` is None while the recorder has not opened it (playback
    then waits); `ptz` is None on an appliance without domes."""

    @property
    def config(self) -> Config: ...

    @property
    def clocks(self) -> Clocks: ...

    @property
    def live(self) -> LiveHub: ...

    @property
    def faults(self) -> ActiveFaults: ...

    @property
    def root(self) -> Path: ...

    @property
    def index(self) -> Index | None: ...

    @property
    def ptz(self) -> PtzControl | None: ...

    @property
    def audio_outputs(self) -> AudioOutputs: ...

    @property
    def intercom(self) -> Intercom | None: ...

    def status(self) -> dict: ...


def build_monitor(sources: MonitorSources) -> Monitor:
    """A Monitor for `sources`' config and state (not started)."""
    config = sources.config.monitor
    request = DisplayRequest(backend=config.backend, size=config.size, refresh_hz=config.refresh_hz,
                             x_display=config.x_display)
    speaker = None if config.audio_out is None else \
        sources.audio_outputs.speaker(config.audio_out, name="monitor", priority=MONITOR)
    return Monitor(config, channels=channel_infos(sources.config), live=sources.live, clocks=sources.clocks,
                   open_display=lambda: open_display(request, clocks=sources.clocks), faults=sources.faults,
                   status=sources.status, ptz=sources.ptz, index=lambda: sources.index, root=sources.root,
                   keys=_evdev_keys(config.evdev, sources.clocks), speaker=speaker, intercom=sources.intercom)


def _evdev_keys(wanted: bool, clocks: Clocks):
    if not wanted:
        return None
    if not evdev_available():
        log.info("monitor: this system has no /dev/input event devices to read; IR remotes and keyboards on the "
                 "console are read only through the display backend")
        return None
    try:
        return EvdevKeys(clocks=clocks).poll
    except OSError as exc:
        log.warning("monitor: cannot read input devices: %s", exc)
        return None
