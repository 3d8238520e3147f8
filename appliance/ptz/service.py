"""PTZ control for the appliance: channel numbers -> domes on RS-485 buses, for the web UI, rules and `nvr ptz`.

`PtzService` builds one `drivers.pelco.bus.PelcoBus` per configured port and exposes commands by
channel: `move`, `stop`, `zoom`, `focus`, `iris`, `preset_go` / `preset_set` / `preset_clear`,
`goto` (absolute position), `tour_start` / `tour_stop` and `position`. Commands return a
`concurrent.futures.Future` that resolves once the frame is on the line, so callers that must not
block (linkage rules, web handlers) need not wait. A manual command to a dome stops its tour, as on
a commercial DVR.

A port that cannot be opened raises a `ptz_down` alarm on each channel behind it and is retried in
the background; the other ports and the recording are not affected.

A channel whose camera speaks ONVIF (an ONVIF endpoint and no `ptz:` section) is steered over the LAN by
`appliance.ptz.onvif.OnvifDomes` through the same calls: moves, zoom, stop, presets by number, and
`home` / `step` (a relative move) that only ONVIF cameras have. Focus, iris, absolute `goto`,
`position` and tours are Pelco-only here and raise PtzError naming that. A camera that does not answer
raises `ptz_down` on its channel as a dead bus does.

Exceptions::

    PtzError (RuntimeError)
     +-- NoPtz (also LookupError)        the channel does not exist or has no dome configured
     +-- UnknownTour (also LookupError)  no tour of that name on the channel
    drivers.pelco.bus.BusDown / QueryTimeout, drivers.pelco.protocol.PelcoError (bad speed, preset...)
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from appliance.config.model import ChannelConfig, Config
from appliance.config.ptz import ChannelPtzConfig, PtzPortConfig
from appliance.onvif_cameras import OnvifCameras
from appliance.ptz.onvif import OnvifDomes
from drivers.pelco.protocol import (STOP, ZOOM_MAX, Move, PelcoError, Preset, SetPosition, degrees_to_wire,
                           wire_to_degrees)
from drivers.pelco.bus import PelcoBus, TourStep
from base.clock import Clocks
from hal.serial_port import SerialPort, open_serial_port
from recorder.faults import FaultSink

log = logging.getLogger("nvr.ptz")

PortOpener = Callable[[PtzPortConfig], SerialPort]
DEFAULT_SPEED = 0x20
PTZ_DOWN = "ptz_down"


class PtzError(RuntimeError):
    """Base of the PTZ service's own errors."""


class NoPtz(PtzError, LookupError):
    """The channel does not exist or has no PTZ dome configured."""


class UnknownTour(PtzError, LookupError):
    """The channel has no tour of that name."""


@dataclass(frozen=True)
class PtzPosition:
    """Where a dome points: pan 0 to <360 degrees, tilt in degrees (positive up), zoom 0.0 (wide) to 1.0 (tele)."""

    pan_deg: float
    tilt_deg: float
    zoom: float


def open_configured_port(port: PtzPortConfig) -> SerialPort:
    """Open a configured port as pyserial sees it (exclusive lock, RS-485 mode if asked)."""
    return open_serial_port(port.url, baud=port.baud, rs485=port.rs485)


def make_bus(port: PtzPortConfig, *, clocks: Clocks, open_port: PortOpener = open_configured_port,
             on_port_state: Callable[[bool, str | None], None] | None = None) -> PelcoBus:
    """The bus worker for one configured port (not started)."""
    return PelcoBus(open_port=lambda: open_port(port), protocol=port.protocol, baud=port.baud, clocks=clocks,
                    gap_s=None if port.gap_ms is None else port.gap_ms / 1000, query_timeout_s=port.query_timeout_s,
                    name=f"{port.id} ({port.url})", on_port_state=on_port_state)


class PtzService:
    """Every PTZ dome of the appliance, addressed by channel number."""

    def __init__(self, config: Config, *, clocks: Clocks, faults: FaultSink | None = None,
                 open_port: PortOpener = open_configured_port, buses: dict[str, PelcoBus] | None = None,
                 onvif: OnvifCameras | None = None):
        """`onvif`: the ONVIF channels' connections; their cameras' PTZ is steered through this service."""
        self._domes: dict[int, ChannelPtzConfig] = {c.id: c.ptz for c in config.channels if c.ptz is not None}
        self._faults = faults
        self.onvif: OnvifDomes | None = OnvifDomes(config, onvif, on_state=self._onvif_state) \
            if onvif is not None else None
        used = {dome.port for dome in self._domes.values()}
        self.buses: dict[str, PelcoBus] = buses if buses is not None else {
            port.id: make_bus(port, clocks=clocks, open_port=open_port, on_port_state=self._port_state(port.id))
            for port in config.ptz.ports if port.id in used}
        self._started = False

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Open every port in use and start its worker; a port that fails is retried in the background."""
        for bus in self.buses.values():
            bus.start()
        if self.onvif is not None:
            self.onvif.start()
        self._started = True
        if self.buses:
            log.info("PTZ: %d dome(s) on %d bus(es)", len(self._domes), len(self.buses))

    def shutdown(self) -> None:
        """Stop tours, send Stop to every dome left moving, and close the ports."""
        for bus in self.buses.values():
            bus.stop()
        self._started = False

    def channels(self) -> list[int]:
        """Channels that have a PTZ dome (RS-485, or an ONVIF camera that offers PTZ or has not said yet)."""
        return sorted(set(self._domes) | set(self.onvif.channels() if self.onvif is not None else ()))

    def _onvif_channel(self, channel: int) -> OnvifDomes | None:
        """The ONVIF backend if `channel` is steered over ONVIF (not an RS-485 dome)."""
        if channel in self._domes or self.onvif is None or not self.onvif.has(channel):
            return None
        return self.onvif

    def _pelco_only(self, channel: int, what: str) -> None:
        if self._onvif_channel(channel) is not None:
            raise PtzError(f"channel {channel} is an ONVIF camera: {what} is offered for RS-485 domes only")

    # --- commands --------------------------------------------------------------------------------

    def move(self, channel: int, pan: int, tilt: int, speed: int = DEFAULT_SPEED, *,
             tilt_speed: int | None = None, turbo: bool = False) -> Future:
        """Pan (-1 left, +1 right) and tilt (-1 down, +1 up) at `speed` 0-63 until told otherwise.

        `speed` is sent for each axis that moves (0 for one that does not); an explicit `tilt_speed`
        is sent as given, as some controllers always send both.
        """
        if (onvif := self._onvif_channel(channel)) is not None:
            return onvif.move(channel, pan, tilt, speed, turbo=turbo, tilt_speed=tilt_speed)
        tilt_speed = (speed if tilt else 0) if tilt_speed is None else tilt_speed
        return self._manual(channel, Move(pan=pan, tilt=tilt, pan_speed=speed if pan else 0, turbo=turbo,
                                          tilt_speed=tilt_speed))

    def stop(self, channel: int) -> Future:
        """Stop pan, tilt, zoom, focus and iris motion (and the channel's tour)."""
        if (onvif := self._onvif_channel(channel)) is not None:
            return onvif.stop(channel)
        return self._manual(channel, STOP)

    def zoom(self, channel: int, direction: int) -> Future:
        """Zoom in (+1, tele) or out (-1, wide) until stopped."""
        if (onvif := self._onvif_channel(channel)) is not None:
            return onvif.zoom(channel, direction)
        return self._manual(channel, Move(zoom=direction))

    def focus(self, channel: int, direction: int) -> Future:
        """Focus far (+1) or near (-1) until stopped."""
        self._pelco_only(channel, "focus")
        return self._manual(channel, Move(focus=direction))

    def iris(self, channel: int, direction: int) -> Future:
        """Open (+1) or close (-1) the iris until stopped."""
        self._pelco_only(channel, "iris")
        return self._manual(channel, Move(iris=direction))

    def preset_go(self, channel: int, number: int) -> Future:
        """Go to preset `number` (1-255); used by linkage rules, so it also stops a running tour."""
        if (onvif := self._onvif_channel(channel)) is not None:
            return onvif.preset_go(channel, number)
        return self._manual(channel, Preset("go", number))

    def preset_set(self, channel: int, number: int) -> Future:
        """Store the dome's current position as preset `number`."""
        if (onvif := self._onvif_channel(channel)) is not None:
            return onvif.preset_set(channel, number)
        return self._send(channel, Preset("set", number))

    def preset_clear(self, channel: int, number: int) -> Future:
        """Forget preset `number`."""
        if (onvif := self._onvif_channel(channel)) is not None:
            return onvif.preset_clear(channel, number)
        return self._send(channel, Preset("clear", number))

    def goto(self, channel: int, *, pan_deg: float | None = None, tilt_deg: float | None = None,
             zoom: float | None = None) -> list[Future]:
        """Go to an absolute position (Pelco-D 0x4B/0x4D/0x4F; not every dome has them)."""
        if zoom is not None and not 0.0 <= zoom <= 1.0:
            raise PelcoError(f"zoom must be from 0.0 (wide) to 1.0 (tele), got {zoom!r}")
        self._pelco_only(channel, "an absolute position")
        self._stop_tour(channel)
        values = {"pan": None if pan_deg is None else degrees_to_wire(pan_deg),
                  "tilt": None if tilt_deg is None else degrees_to_wire(tilt_deg),
                  "zoom": None if zoom is None else round(zoom * ZOOM_MAX)}
        return [self._send(channel, SetPosition(axis, value)) for axis, value in values.items() if value is not None]

    def position(self, channel: int, *, timeout_s: float | None = None) -> PtzPosition:
        """Ask the dome where it points (three queries); raises QueryTimeout if it does not answer."""
        self._pelco_only(channel, "reading the position")
        bus, dome = self._bus(channel)
        pan, tilt, zoom = (bus.query(dome.address, axis, timeout_s=timeout_s) for axis in ("pan", "tilt", "zoom"))
        return PtzPosition(wire_to_degrees(pan), wire_to_degrees(tilt, signed=True), zoom / ZOOM_MAX)

    def home(self, channel: int) -> Future:
        """Go to the camera's home position (ONVIF cameras; a Pelco dome's home is a preset)."""
        if (onvif := self._onvif_channel(channel)) is not None:
            return onvif.home(channel)
        self._dome(channel)
        raise PtzError(f"channel {channel} is an RS-485 dome: go to a preset instead of home")

    def step(self, channel: int, *, pan: float = 0.0, tilt: float = 0.0, zoom: float = 0.0) -> Future:
        """Move by a normalized step (-1.0 to 1.0) where an ONVIF camera's PTZ configuration offers it."""
        if (onvif := self._onvif_channel(channel)) is not None:
            return onvif.step(channel, pan=pan, tilt=tilt, zoom=zoom)
        self._dome(channel)
        raise PtzError(f"channel {channel} is an RS-485 dome: relative steps are offered for ONVIF cameras only")

    # --- tours -----------------------------------------------------------------------------------

    def tours(self, channel: int) -> list[str]:
        """Names of the channel's configured tours."""
        if self._onvif_channel(channel) is not None:
            return []
        return [tour.name for tour in self._dome(channel).tours]

    def tour_start(self, channel: int, name: str) -> None:
        """Start the named tour (first preset now); replaces a tour already running on the dome."""
        if self._onvif_channel(channel) is not None:
            raise UnknownTour(f"channel {channel} is an ONVIF camera: tours are offered for RS-485 domes only")
        dome = self._dome(channel)
        tour = next((t for t in dome.tours if t.name == name), None)
        if tour is None:
            known = ", ".join(repr(t.name) for t in dome.tours) or "none configured"
            raise UnknownTour(f"channel {channel} has no tour {name!r}; tours: {known}")
        bus, _ = self._bus(channel)
        bus.start_tour(dome.address, name, [TourStep(step.preset, step.dwell_s) for step in tour.steps])
        log.info("channel %d: tour %r started", channel, name)

    def tour_stop(self, channel: int) -> str | None:
        """Stop the channel's tour; its name, or None if none was running."""
        return self._stop_tour(channel)

    def tour_running(self, channel: int) -> str | None:
        """Name of the tour running on the channel's dome, if any."""
        if self._onvif_channel(channel) is not None:
            return None
        bus, dome = self._bus(channel)
        return bus.tour_of(dome.address)

    # --- status ----------------------------------------------------------------------------------

    def statistics(self) -> dict:
        """Per bus: frames sent, garbage bytes, checksum errors, query timeouts...; per channel: its dome."""
        return {"ports": {port_id: bus.statistics() for port_id, bus in self.buses.items()},
                "channels": {channel: {"port": dome.port, "address": dome.address,
                                       "tour": self.buses[dome.port].tour_of(dome.address)
                                       if dome.port in self.buses else None}
                             for channel, dome in sorted(self._domes.items())},
                "onvif": self.onvif.statistics() if self.onvif is not None else None}

    # --- helpers ---------------------------------------------------------------------------------

    def _dome(self, channel: int) -> ChannelPtzConfig:
        dome = self._domes.get(channel)
        if dome is None:
            with_ptz = ", ".join(map(str, self.channels())) or "none"
            raise NoPtz(f"channel {channel} has no PTZ dome configured (channels with PTZ: {with_ptz})")
        return dome

    def _bus(self, channel: int) -> tuple[PelcoBus, ChannelPtzConfig]:
        dome = self._dome(channel)
        return self.buses[dome.port], dome

    def _send(self, channel: int, message) -> Future:
        bus, dome = self._bus(channel)
        return bus.send(dome.address, message)

    def _manual(self, channel: int, message) -> Future:
        self._stop_tour(channel)
        return self._send(channel, message)

    def _stop_tour(self, channel: int) -> str | None:
        if self._onvif_channel(channel) is not None:
            return None
        bus, dome = self._bus(channel)
        name = bus.stop_tour(dome.address)
        if name:
            log.info("channel %d: tour %r stopped", channel, name)
        return name

    def _onvif_state(self, channel: int, ok: bool, error: str | None) -> None:
        if self._faults is None:
            return
        if ok:
            self._faults.clear_fault(PTZ_DOWN, channel=channel)
        else:
            self._faults.raise_fault(PTZ_DOWN, f"ONVIF PTZ: {error}", channel=channel)

    def _port_state(self, port_id: str) -> Callable[[bool, str | None], None]:
        def changed(ok: bool, error: str | None) -> None:
            if self._faults is None:
                return
            for channel, dome in self._domes.items():
                if dome.port != port_id:
                    continue
                if ok:
                    self._faults.clear_fault(PTZ_DOWN, channel=channel)
                else:
                    self._faults.raise_fault(PTZ_DOWN, f"PTZ port {port_id}: {error}", channel=channel)
        return changed


def channel_with_ptz(config: Config, channel: int) -> tuple[ChannelConfig, PtzPortConfig]:
    """The channel and its port config, or NoPtz naming what is missing."""
    found = next((c for c in config.channels if c.id == channel), None)
    if found is None or found.ptz is None:
        with_ptz = ", ".join(str(c.id) for c in config.channels if c.ptz is not None) or "none"
        what = "does not exist" if found is None else "has no ptz: section"
        raise NoPtz(f"channel {channel} {what} in {config.source_name} (channels with PTZ: {with_ptz})")
    port = next(p for p in config.ptz.ports if p.id == found.ptz.port)
    return found, port

