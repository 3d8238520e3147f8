"""What the web routes need of the running appliance, as narrow protocols; `appliance.app.Appliance` meets them.

The routes never see the supervisor or the recorder's threads. They read the recorder through
`RecorderView` (recordings, live taps, stream states, status), act on faults through `FaultBoard`,
edit the config through `ConfigTarget`, and steer domes and relays through `WebPtzControl` and
`AlarmPanel`, which `appliance.web.services` adapts from the PTZ service and the alarm I/O.
`ApplianceView` is all of them together: what `WebContext` holds.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from base.clock import Clocks
from recorder.faults import Fault
from recorder.index import Index, Segment
from recorder.live import LiveHub

from appliance.alarms.io import AlarmIO
from appliance.config.model import Config
from appliance.ptz.service import PtzService
from appliance.sound.intercom import Intercom


@dataclass(frozen=True, slots=True)
class StreamState:
    """One recorded stream as the routes list it."""

    channel: int
    stream: str  # 'main' or 'sub'
    connected: bool


class RecorderView(Protocol):
    """What the recordings, playback, live and health routes read of the recorder."""

    @property
    def config(self) -> Config: ...  # the running config (channels for 404s and listings)

    @property
    def root(self) -> Path: ...  # the data root; segment paths in the index are relative to it

    @property
    def clocks(self) -> Clocks: ...

    @property
    def live(self) -> LiveHub: ...  # every stream's live tap

    @property
    def index(self) -> Index | None: ...  # None until the recorder opened the index (the web then opens its own reader)

    def streams(self) -> list[StreamState]: ...

    def open_segments(self, *, channel: int | None = None, stream: str | None = None) -> list[Segment]:
        """The segments being written now (not indexed until they close), as the rows they will get."""
        ...

    def status(self, *, index: Index | None = None) -> dict:
        """The health page's data; `index` is a reader connection to count through."""
        ...

    def eject_disk(self, label: str) -> dict:
        """Eject the recording disk `label` safely (appliance.supervisor.Supervisor.eject_disk); KeyError if none."""
        ...


class FaultBoard(Protocol):
    """Active faults, raised and cleared by hand (`recorder.faults.FaultBoard` meets it)."""

    def active(self) -> list[Fault]: ...

    def raise_fault(self, kind: str, message: str, *, channel: int | None = None, disk: str | None = None) -> None: ...

    def clear_fault(self, kind: str, *, channel: int | None = None, disk: str | None = None) -> None: ...


class ConfigTarget(Protocol):
    """What the config page changes: the running config, applied by restarting only changed channels."""

    @property
    def config(self) -> Config: ...

    def restart_channels(self, config: Config, channel_ids: list[int]) -> list[int]: ...


@runtime_checkable
class WebPtzControl(Protocol):
    """What the PTZ routes need, in browser terms: speeds and directions -1.0..1.0 (0 = still)."""

    def has_channel(self, channel: int) -> bool: ...

    def move(self, channel: int, *, pan: float, tilt: float) -> None: ...

    def zoom(self, channel: int, *, speed: float) -> None: ...

    def stop(self, channel: int) -> None: ...

    def goto_preset(self, channel: int, preset: int) -> None: ...

    def set_preset(self, channel: int, preset: int) -> None: ...


@runtime_checkable
class AlarmPanel(Protocol):
    """What the alarm routes show and switch: alarm inputs (contacts) and alarm outputs (relays)."""

    def inputs(self) -> list[dict]: ...  # {"id", "name", "active", ...}

    def outputs(self) -> list[dict]: ...  # {"id", "name", "on", ...}

    def set_output(self, output_id: str, on: bool) -> None: ...


class ApplianceView(RecorderView, ConfigTarget, Protocol):
    """Everything the routes use. `ptz` and `alarm_io` are the appliance's services (None when it has
    none), or test doubles already in browser terms (`WebPtzControl`, `AlarmPanel`)."""

    @property
    def faults(self) -> FaultBoard: ...

    @property
    def ptz(self) -> PtzService | WebPtzControl | None: ...

    @property
    def alarm_io(self) -> AlarmIO | AlarmPanel | None: ...

    @property
    def intercom(self) -> Intercom | None: ...
