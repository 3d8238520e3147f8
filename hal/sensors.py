"""Environment sensors: the kernel's thermal zones (CPU/SoC temperature), an SHT3x on I2C via smbus2, and
the system uptime.

`ThermalZones` reads ``<root>/thermal_zone*/temp`` (millidegrees Celsius); the root is injectable
so tests lay out a fake sysfs. `Sht3x` talks to a Sensirion SHT30/31/35 with single-shot
measurements; `decode_sht3x` is the pure part (CRC-8 checked), tested with byte literals.

Exceptions:

    SensorError (OSError)   a sensor cannot be read, or answered with a bad checksum
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from base.clock import Clocks

SHT3X_DEFAULT_ADDRESS = 0x44
SHT3X_MEASURE_HIGH = bytes([0x24, 0x00])  # single shot, high repeatability, no clock stretching
SHT3X_MEASURE_S = 0.016  # datasheet: at most 15.5 ms for high repeatability


class SensorError(OSError):
    """A sensor could not be read, or its answer was corrupt."""


@dataclass(frozen=True, slots=True)
class Reading:
    """One sensor reading; `humidity_percent` is None for a temperature-only sensor."""

    sensor: str
    temperature_c: float
    humidity_percent: float | None = None


@dataclass(frozen=True, slots=True)
class ThermalZone:
    """One kernel thermal zone's reading: `zone` is its sysfs name, `kind` the driver's type string."""

    zone: str
    kind: str
    temperature_c: float


class ThermalZones:
    """The kernel's thermal zones under `root` (default ``/sys/class/thermal``)."""

    def __init__(self, *, root: Path = Path("/sys/class/thermal")):
        self.root = root

    def zones(self) -> list[ThermalZone]:
        """Every zone that reads; zones that fail (some report EINVAL when idle, a container has none)
        are skipped."""
        found = []
        for zone in sorted(self.root.glob("thermal_zone*")):
            try:
                millidegrees = int((zone / "temp").read_text().strip())
            except (OSError, ValueError):
                continue
            found.append(ThermalZone(zone.name, _read_text(zone / "type") or zone.name, millidegrees / 1000.0))
        return found

    def read(self) -> list[Reading]:
        """The zones as sensor readings, named `thermal_zone0 (cpu-thermal)`."""
        return [Reading(f"{z.zone} ({z.kind})", z.temperature_c) for z in self.zones()]


def system_uptime_s(proc_uptime: Path = Path("/proc/uptime")) -> float | None:
    """Seconds since the kernel booted, or None where /proc/uptime cannot be read."""
    try:
        return float(proc_uptime.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def sht3x_crc(data: bytes) -> int:
    """Sensirion's CRC-8 (polynomial 0x31, initial 0xFF): ``sht3x_crc(b'\\xbe\\xef') == 0x92``."""
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def decode_sht3x(answer: bytes) -> tuple[float, float]:
    """(temperature °C, relative humidity %) from the 6-byte answer: T msb, lsb, crc, RH msb, lsb, crc."""
    if len(answer) != 6:
        raise SensorError(f"SHT3x answer must be 6 bytes, got {len(answer)}: {answer.hex(' ')}")
    for word, crc in ((answer[0:2], answer[2]), (answer[3:5], answer[5])):
        if sht3x_crc(word) != crc:
            raise SensorError(f"SHT3x checksum mismatch on {word.hex()}: got {crc:#04x}, "
                              f"expected {sht3x_crc(word):#04x}")
    raw_t = int.from_bytes(answer[0:2], "big")
    raw_rh = int.from_bytes(answer[3:5], "big")
    return -45.0 + 175.0 * raw_t / 65535.0, 100.0 * raw_rh / 65535.0


class Sht3x:
    """An SHT3x on I2C bus `bus` at `address`. `smbus` makes the bus object (default smbus2.SMBus),
    injectable for tests; `clocks` waits for the measurement."""

    def __init__(self, *, bus: int = 1, address: int = SHT3X_DEFAULT_ADDRESS,
                 smbus: Callable[[int], Any] | None = None, clocks: Clocks):
        self.bus, self.address, self._sleep = bus, address, clocks.sleep
        self._smbus = smbus

    def read(self) -> Reading:
        from smbus2 import SMBus, i2c_msg
        opener = self._smbus or SMBus
        try:
            with opener(self.bus) as bus:
                bus.i2c_rdwr(i2c_msg.write(self.address, SHT3X_MEASURE_HIGH))
                self._sleep(SHT3X_MEASURE_S)
                answer = i2c_msg.read(self.address, 6)
                bus.i2c_rdwr(answer)
        except OSError as exc:
            raise SensorError(f"SHT3x at bus {self.bus} address {self.address:#04x} did not answer: "
                              f"{exc.strerror or exc}") from exc
        temperature_c, humidity = decode_sht3x(bytes(answer))
        return Reading(f"sht3x@{self.bus}:{self.address:#04x}", temperature_c, humidity)
