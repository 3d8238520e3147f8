"""PTZ configuration: the RS-485 buses (`ptz.ports[]`) and each channel's dome (`channels[].ptz`).

`appliance.config.model` hooks these models in (`Config.ptz`, `ChannelConfig.ptz`) and calls
`unknown_port_errors` so that a channel naming a port that is not configured is rejected at load
with its key path (``channels[2].ptz.port``).
"""
from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from appliance.config.section import Section


PtzProtocol = Literal["pelco-d", "pelco-p"]
Baud = Literal[2400, 4800, 9600]
DEFAULT_BAUD = {"pelco-d": 2400, "pelco-p": 4800}  # what domes ship set to
_PORT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_NETWORK_SCHEMES = ("socket", "rfc2217")


def check_port_url(url: str) -> str:
    """Return `url` if pyserial can open it: a device path, loop://, socket://HOST:PORT or rfc2217://HOST:PORT."""
    if url.startswith("/"):
        if url.endswith("/") or any(char.isspace() for char in url):
            raise ValueError(f"expected a device path such as /dev/ttyUSB0 or /dev/serial/by-id/..., got {url!r}")
        return url
    if url.startswith("loop://"):
        return url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in _NETWORK_SCHEMES or not parts.hostname or not port:
        raise ValueError(f"expected a device path (/dev/ttyUSB0), loop://, socket://HOST:PORT or "
                         f"rfc2217://HOST:PORT, got {url!r}")
    return url


class PtzPortConfig(Section):
    """One RS-485 bus with one or more domes on it."""

    id: str = Field(description="Name of the bus, used by channels[].ptz.port (letters, digits, _ . -).")
    url: str = Field(description=(
        "Serial port: /dev/ttyUSB0 (better a stable /dev/serial/by-id/... link), /dev/ttyAMA0, "
        "socket://HOST:PORT for a serial-to-Ethernet converter, rfc2217://HOST:PORT, or loop://."))
    protocol: PtzProtocol = Field("pelco-d", description="What the domes on this bus speak.")
    baud: Baud | None = Field(None, description=(
        "Line speed set on the domes' DIP switches: 2400, 4800 or 9600. Default: 2400 for pelco-d, "
        "4800 for pelco-p."))
    rs485: bool = Field(False, description=(
        "Switch the UART to the kernel's RS-485 mode (RTS drives the transceiver). Only for a UART "
        "wired to an RS-485 transceiver; USB RS-485 adapters and network converters need false."))
    gap_ms: float | None = Field(None, ge=0, le=1000, description=(
        "Quiet time between frames in milliseconds; default four character times at the baud rate."))
    query_timeout_s: float = Field(0.5, ge=0.05, le=10, description=(
        "How long to wait for a dome's answer to a position query."))

    @field_validator("id")
    @classmethod
    def _is_port_id(cls, value: str) -> str:
        if not _PORT_ID_RE.fullmatch(value):
            raise ValueError(f"expected 1-32 letters, digits, '_', '.' or '-', got {value!r}")
        return value

    @field_validator("url")
    @classmethod
    def _is_port_url(cls, value: str) -> str:
        return check_port_url(value)

    @model_validator(mode="after")
    def _default_baud(self) -> PtzPortConfig:
        if self.baud is None:
            self.baud = DEFAULT_BAUD[self.protocol]
        return self


class TourStepConfig(Section):
    """One stop of a tour."""

    preset: int = Field(ge=1, le=255, description="Preset number to go to.")
    dwell_s: float = Field(10.0, ge=1, le=86400, description="Seconds to stay before the next stop.")


class TourConfig(Section):
    """A named list of presets the dome visits in turn, forever, until stopped."""

    name: str = Field(min_length=1, max_length=32, description="Name used to start the tour.")
    steps: list[TourStepConfig] = Field(min_length=1, description="Presets in order, with dwell times.")


class ChannelPtzConfig(Section):
    """The dome that films this channel: which bus and which address."""

    port: str = Field(description="id of the ptz.ports entry the dome is wired to.")
    address: int = Field(1, ge=0, le=255, description=(
        "The dome's address as sent on the wire (set with its DIP switches). Genuine Pelco receivers "
        "speaking Pelco-P count from 0 on the wire for switch address 1."))
    tours: list[TourConfig] = Field(default_factory=list, description="Named preset tours.")

    @field_validator("tours")
    @classmethod
    def _tour_names_are_unique(cls, tours: list[TourConfig]) -> list[TourConfig]:
        _refuse_repeats("tour names", [tour.name for tour in tours])
        return tours


class PtzConfig(Section):
    """Pan/tilt/zoom domes on RS-485 buses."""

    ports: list[PtzPortConfig] = Field(default_factory=list, description="RS-485 buses, each with a unique id.")

    @field_validator("ports")
    @classmethod
    def _port_ids_are_unique(cls, ports: list[PtzPortConfig]) -> list[PtzPortConfig]:
        _refuse_repeats("port ids", [port.id for port in ports])
        return ports


def _refuse_repeats(what: str, values: list[str]) -> None:
    repeated = sorted({value for value in values if values.count(value) > 1})
    if repeated:
        raise ValueError(f"{what} must be unique; repeated: {', '.join(map(repr, repeated))}")


def unknown_port_errors(ptz: PtzConfig, channels: list[Any]) -> list[tuple[tuple[Any, ...], str, str]]:
    """(key path, value, message) for every channel whose ptz.port names no configured port."""
    known = [port.id for port in ptz.ports]
    errors = []
    for index, channel in enumerate(channels):
        if channel.ptz is not None and channel.ptz.port not in known:
            allowed = ", ".join(map(repr, known)) if known else "none (add it under ptz.ports)"
            errors.append((("channels", index, "ptz", "port"), channel.ptz.port,
                           f"unknown PTZ port {channel.ptz.port!r}; configured ports: {allowed}"))
    return errors
