"""The local HDMI monitor: the multi-view wall a DVR shows on the screen plugged into it.

`build_monitor(supervisor)` wires a `Monitor` to what the supervisor owns (live taps, alarm board,
status, index, PTZ when there is one); the supervisor starts and stops it with recording.
"""
from __future__ import annotations

import logging

from base.clock import Clocks
from hal.display import DisplayRequest, open_display
from hal.input_evdev import EvdevKeys, evdev_available

from appliance.config.model import Config, RtspSource
from appliance.monitor.monitor import ChannelInfo, Monitor, PtzControl

__all__ = ["ChannelInfo", "Monitor", "PtzControl", "build_monitor", "channel_infos"]

log = logging.getLogger("nvr.monitor")


def channel_infos(config: Config) -> list[ChannelInfo]:
    """The enabled channels as the monitor sees them: analog ones are raw, cameras with a sub_url have a sub."""
    return [ChannelInfo(channel.id, channel.name, raw=not isinstance(channel.source, RtspSource),
                        has_sub=bool(getattr(channel.source, "sub_url", None)))
            for channel in config.channels if channel.enabled]


def build_monitor(supervisor) -> Monitor:
    """A Monitor for `supervisor`'s config and state (not started)."""
    config = supervisor.config.monitor
    request = DisplayRequest(backend=config.backend, size=config.size, refresh_hz=config.refresh_hz,
                             x_display=config.x_display)
    return Monitor(config, channels=channel_infos(supervisor.config), live=supervisor.live, clocks=supervisor.clocks,
                   open_display=lambda: open_display(request, clocks=supervisor.clocks), alarms=supervisor.alarms,
                   status=supervisor.status,
                   ptz=getattr(supervisor, "ptz", None), index=lambda: supervisor.index, root=supervisor.root,
                   keys=_evdev_keys(config.evdev, supervisor.clocks))


def _evdev_keys(wanted: bool, clocks: Clocks):
    if not wanted:
        return None
    if not evdev_available():
        log.info("monitor: the optional evdev package is not installed; IR remotes and keyboards on the "
                 "console are read only through the display backend")
        return None
    try:
        return EvdevKeys(clocks=clocks).poll
    except OSError as exc:
        log.warning("monitor: cannot read input devices: %s", exc)
        return None
