"""The appliance's own health as alarms: temperature/humidity out of the operating range, and the data disk gone.

Readings are taken on this watch's own thread (an I2C read waits ~16 ms; the alarm path must not).
Out of range raises `temperature` on the FaultBoard (the rule signal `temperature: out_of_range`);
it clears only once every reading is back inside the range by `hysteresis`, so a value hovering at
the limit does not flap. A data root or index file that vanished (disk unplugged, mount lost) raises
`disk_missing` (the rule signal `disk: missing`) until it is back; so does a `mount_point` (the
recordings disk under `storage.require_mount`) with no disk mounted on it. `on_mount_change` hears
the mount's state at the first check and whenever it changes, so the appliance can restart onto the
disk or off it. `on_disk_check` is called at every disk check (the supervisor checks there whether a
single data disk that met I/O errors can be written again).
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hal.sensors import Reading, SensorError
from recorder.faults import FaultSink

log = logging.getLogger("nvr.health")

DISK_CHECK_S = 5.0


@dataclass(frozen=True, slots=True)
class Limits:
    min_c: float = -10.0
    max_c: float = 55.0
    max_soc_c: float = 80.0
    min_rh: float = 10.0
    max_rh: float = 90.0
    hysteresis: float = 2.0


def out_of_range(reading: Reading, limits: Limits, *, margin: float = 0.0, soc: bool = False) -> str | None:
    """Why `reading` is outside `limits` shrunk by `margin` (for clearing), or None if inside."""
    high = (limits.max_soc_c if soc else limits.max_c) - margin
    if reading.temperature_c > high:
        return f"{reading.sensor}: {reading.temperature_c:.1f} °C above {high:.1f} °C"
    if not soc and reading.temperature_c < limits.min_c + margin:
        return f"{reading.sensor}: {reading.temperature_c:.1f} °C below {limits.min_c + margin:.1f} °C"
    rh = reading.humidity_percent
    if rh is not None and rh > limits.max_rh - margin:
        return f"{reading.sensor}: {rh:.0f} % RH above {limits.max_rh - margin:.0f} %"
    if rh is not None and rh < limits.min_rh + margin:
        return f"{reading.sensor}: {rh:.0f} % RH below {limits.min_rh + margin:.0f} %"
    return None


class HealthWatch:
    """Polls `soc_sensors` (thermal zones: only an upper limit) and `ambient_sensors` (SHT3x: the full
    operating range) every `interval_s`, and the data disk every few seconds."""

    def __init__(self, *, faults: FaultSink, limits: Limits, interval_s: float,
                 soc_sensors: list[Callable[[], list[Reading]]], ambient_sensors: list[Callable[[], Reading]],
                 data_root: Path | None = None, index_file: str = "index.sqlite3",
                 mount_point: Path | None = None, on_mount_change: Callable[[bool], None] | None = None,
                 on_disk_check: Callable[[], None] | None = None):
        self._faults, self.limits, self._interval_s = faults, limits, interval_s
        self._soc, self._ambient = soc_sensors, ambient_sensors
        self._root, self._index_file = data_root, index_file
        self._mount_point, self._on_mount_change = mount_point, on_mount_change
        self._on_disk_check = on_disk_check
        self.mounted: bool | None = None  # of mount_point, at the last check
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.out_of_range = False
        self.disk_missing = False
        self.readings: list[Reading] = []
        self.read_errors = 0
        self.polls = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="health-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _loop(self) -> None:
        since_temperature = self._interval_s
        while not self._stop.is_set():
            self.check_disk()
            if since_temperature >= self._interval_s:
                self.check_temperature()
                since_temperature = 0.0
            step = min(DISK_CHECK_S, self._interval_s)
            self._stop.wait(step)
            since_temperature += step

    def check_temperature(self) -> None:
        """Read every sensor once and raise or clear the `temperature` alarm."""
        self.polls += 1
        readings: list[tuple[Reading, bool]] = []
        for read_zones in self._soc:
            readings += [(reading, True) for reading in self._guard(read_zones) or []]
        for read_one in self._ambient:
            reading = self._guard(read_one)
            if reading is not None:
                readings.append((reading, False))
        self.readings = [reading for reading, _ in readings]
        margin = self.limits.hysteresis if self.out_of_range else 0.0
        problems = [why for reading, soc in readings
                    if (why := out_of_range(reading, self.limits, margin=margin, soc=soc)) is not None]
        if problems and not self.out_of_range:
            self.out_of_range = True
            self._faults.raise_fault("temperature", "; ".join(problems))
        elif not problems and self.out_of_range:
            self.out_of_range = False
            self._faults.clear_fault("temperature")

    def _guard(self, read: Callable):
        try:
            return read()
        except (SensorError, OSError) as exc:
            self.read_errors += 1
            log.warning("health: a sensor could not be read: %s", exc)
            return None

    def check_disk(self) -> None:
        """Raise `disk_missing` while the data root or its index file is gone, or while no disk is mounted
        on `mount_point`; clear it when back."""
        why = None
        if self._mount_point is not None:
            mounted = os.path.ismount(self._mount_point)
            changed = mounted != self.mounted  # the first check counts: the disk may have come since start
            self.mounted = mounted
            if not mounted:
                why = (f"no disk is mounted on {self._mount_point}: nothing is recorded (live view, the local "
                       "monitor and alarm inputs go on); connect the recordings disk and recording starts by itself")
            if changed and self._on_mount_change is not None:
                self._on_mount_change(mounted)
        if why is None and self._root is not None and not (self._root / self._index_file).exists():
            why = f"the data disk at {self._root} is gone (no index file)"
        missing = why is not None
        if self._on_disk_check is not None:
            try:
                self._on_disk_check()
            except Exception:  # noqa: BLE001 - the disk check must go on whatever the hook meets
                log.exception("health: the disk check hook failed")
        if missing and not self.disk_missing:
            self._faults.raise_fault("disk_missing", why)
        elif not missing and self.disk_missing:
            self._faults.clear_fault("disk_missing")
        self.disk_missing = missing

    def statistics(self) -> dict:
        return {"polls": self.polls, "out_of_range": self.out_of_range, "disk_missing": self.disk_missing,
                "disk_mounted": self.mounted,
                "read_errors": self.read_errors,
                "readings": [{"sensor": r.sensor, "temperature_c": round(r.temperature_c, 1),
                              "humidity_percent": None if r.humidity_percent is None else round(r.humidity_percent, 1)}
                             for r in self.readings]}
