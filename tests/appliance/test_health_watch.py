"""Thermal zones from a fake sysfs, the SHT3x protocol as byte literals, and the temperature / disk alarms."""
from __future__ import annotations

import pytest

from appliance.alarms.health_watch import HealthWatch, Limits
from hal.sensors import SHT3X_MEASURE_S, Reading, SensorError, Sht3x, ThermalZones, decode_sht3x, sht3x_crc
from recorder.faults import FaultBoard


def write_zone(root, number: int, kind: str, millidegrees: str) -> None:
    zone = root / f"thermal_zone{number}"
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "type").write_text(kind + "\n")
    (zone / "temp").write_text(millidegrees + "\n")


def test_thermal_zones_are_read_in_degrees_and_unreadable_zones_skipped(tmp_path):
    write_zone(tmp_path, 0, "cpu-thermal", "48312")
    write_zone(tmp_path, 1, "gpu", "garbage")
    assert ThermalZones(root=tmp_path).read() == [Reading("thermal_zone0 (cpu-thermal)", 48.312)]


def test_sht3x_crc_and_decoding_match_the_datasheet():
    assert sht3x_crc(b"\xbe\xef") == 0x92  # the datasheet's example
    # 0x6666 -> -45 + 175 * 0.4 = 25 °C; 0x8000 -> 50.0 % RH
    temperature_c, humidity = decode_sht3x(bytes([0x66, 0x66, sht3x_crc(b"\x66\x66"), 0x80, 0x00, sht3x_crc(b"\x80\x00")]))
    assert temperature_c == pytest.approx(25.0, abs=0.01) and humidity == pytest.approx(50.0, abs=0.01)
    with pytest.raises(SensorError, match="checksum"):
        decode_sht3x(bytes([0x66, 0x66, 0x00, 0x80, 0x00, 0x00]))


class FakeBus:
    """An I2C bus with an SHT3x at 0x44 answering `answer` to the single-shot command."""

    def __init__(self, answer: bytes):
        self.answer, self.written = answer, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def i2c_rdwr(self, *messages):
        for message in messages:
            if message.flags & 1:  # I2C_M_RD
                for i, byte in enumerate(self.answer):
                    message.buf[i] = bytes([byte])
            else:
                self.written.append((message.addr, bytes(message)))


def test_an_sht3x_is_sent_the_single_shot_command_and_its_answer_decoded(clocks):
    bus = FakeBus(bytes([0x66, 0x66, sht3x_crc(b"\x66\x66"), 0x80, 0x00, sht3x_crc(b"\x80\x00")]))
    started_us = clocks.monotonic_us()
    reading = Sht3x(bus=1, smbus=lambda number: bus, clocks=clocks).read()
    assert bus.written == [(0x44, b"\x24\x00")]
    assert clocks.monotonic_us() - started_us == round(SHT3X_MEASURE_S * 1e6)  # the measurement's wait
    assert reading.temperature_c == pytest.approx(25.0, abs=0.01) and reading.humidity_percent == pytest.approx(50, abs=0.01)


def test_out_of_range_raises_the_temperature_alarm_and_clears_only_inside_the_hysteresis(clocks):
    board, ambient = FaultBoard(clocks=clocks), [Reading("sht3x", 25.0, 50.0)]
    watch = HealthWatch(faults=board, limits=Limits(), interval_s=30, soc_sensors=[],
                        ambient_sensors=[lambda: ambient[0]])
    watch.check_temperature()
    assert board.active() == []
    ambient[0] = Reading("sht3x", 56.0, 50.0)
    watch.check_temperature()
    assert [(a.kind, a.message) for a in board.active()] == [("temperature", "sht3x: 56.0 °C above 55.0 °C")]
    ambient[0] = Reading("sht3x", 54.0, 50.0)  # inside, but not by the 2 °C hysteresis
    watch.check_temperature()
    assert board.active() != []
    ambient[0] = Reading("sht3x", 20.0, 95.0)  # cool now, but too humid
    watch.check_temperature()
    assert board.active() != [] and watch.out_of_range
    ambient[0] = Reading("sht3x", 20.0, 60.0)
    watch.check_temperature()
    assert board.active() == []


def test_a_hot_soc_alarms_against_its_own_limit_and_a_failing_sensor_is_counted(clocks, tmp_path):
    write_zone(tmp_path, 0, "cpu-thermal", "70000")
    board = FaultBoard(clocks=clocks)

    def broken():
        raise SensorError("no answer")
    watch = HealthWatch(faults=board, limits=Limits(), interval_s=30, soc_sensors=[ThermalZones(root=tmp_path).read],
                        ambient_sensors=[broken])
    watch.check_temperature()
    assert board.active() == [] and watch.read_errors == 1  # 70 °C is fine for a SoC
    write_zone(tmp_path, 0, "cpu-thermal", "85000")
    watch.check_temperature()
    assert board.active()[0].kind == "temperature"


def test_a_vanished_data_disk_raises_disk_missing_until_it_is_back(clocks, tmp_path):
    board = FaultBoard(clocks=clocks)
    (tmp_path / "index.sqlite3").write_bytes(b"")
    watch = HealthWatch(faults=board, limits=Limits(), interval_s=30, soc_sensors=[], ambient_sensors=[],
                        data_root=tmp_path)
    watch.check_disk()
    assert board.active() == []
    (tmp_path / "index.sqlite3").unlink()
    watch.check_disk()
    assert [a.kind for a in board.active()] == ["disk_missing"]
    (tmp_path / "index.sqlite3").write_bytes(b"")
    watch.check_disk()
    assert board.active() == []
