"""Alarm contacts and relays over gpiozero's MockFactory pins, timed by simulated clocks (no sleeping)."""
from __future__ import annotations

import os
import threading
import warnings
from datetime import datetime, time, timezone

import pytest

from drivers.contacts import AlarmContact, ArmingWindow, Relay, Schedule
from hal.gpio import GpioError, GpiozeroGpio, LinuxGpio, open_gpio, parse_chip_line
from base.timers import Scheduler

DOOR, WINDOW, SIREN = 17, 27, 22


@pytest.fixture
def rig(mock_pins, clocks):
    """(gpio over the MockFactory, scheduler without a thread: tests run it with run_pending)."""
    return GpiozeroGpio(pin_factory=mock_pins), Scheduler(clocks=clocks)


def make_contact(rig, clocks, pin, contact, *, debounce_ms=50, schedule=None):
    gpio, scheduler = rig
    changes = []
    made = AlarmContact(id=f"in{pin}", name=f"input {pin}", pin=gpio.input(pin), contact=contact,
                        debounce_ms=debounce_ms, clocks=clocks, scheduler=scheduler, schedule=schedule,
                        on_change=lambda c, active, at_us: changes.append((active, at_us)))
    return made, changes


def settle(scheduler, clocks, seconds):
    scheduler.run_pending()
    clocks.advance(seconds)
    scheduler.run_pending()


def test_a_normally_open_contact_alarms_when_it_closes_and_ends_when_it_opens(rig, clocks, mock_pins):
    contact, changes = make_contact(rig, clocks, WINDOW, "NO")
    settle(rig[1], clocks, 1)
    assert changes == [] and not contact.active  # pulled up, open: at rest
    closed_at = clocks.utc_now_us()
    mock_pins.pin(WINDOW).drive_low()
    settle(rig[1], clocks, 0.049)
    assert changes == []  # not yet stable for debounce_ms
    settle(rig[1], clocks, 0.002)
    assert changes == [(True, closed_at)]  # reported with the time of the edge, not of the settle
    mock_pins.pin(WINDOW).drive_high()
    settle(rig[1], clocks, 0.1)
    assert [active for active, _ in changes] == [True, False]


def test_a_normally_closed_contact_alarms_when_it_opens(rig, clocks, mock_pins):
    contact, changes = make_contact(rig, clocks, DOOR, "NC")
    mock_pins.pin(DOOR).drive_low()  # the loop is closed: at rest
    settle(rig[1], clocks, 1)
    assert changes == [] and not contact.active
    mock_pins.pin(DOOR).drive_high()  # door opens (or the wire is cut)
    settle(rig[1], clocks, 0.1)
    assert [active for active, _ in changes] == [True]


def test_an_nc_loop_open_at_start_alarms_after_the_debounce_time(rig, clocks, mock_pins):
    contact, changes = make_contact(rig, clocks, DOOR, "NC")  # the pull-up holds the open loop high
    settle(rig[1], clocks, 0.1)
    assert [active for active, _ in changes] == [True]


def test_a_flapping_input_is_ignored_and_counted(rig, clocks, mock_pins):
    contact, changes = make_contact(rig, clocks, WINDOW, "NO", debounce_ms=50)
    pin = mock_pins.pin(WINDOW)
    for _ in range(20):  # 20 short closures, each 10 ms, 10 ms apart: a chattering contact
        pin.drive_low()
        settle(rig[1], clocks, 0.01)
        pin.drive_high()
        settle(rig[1], clocks, 0.01)
    settle(rig[1], clocks, 0.1)
    assert changes == []
    stats = contact.statistics()
    assert stats["flaps_ignored"] == 1 and stats["edges_ignored"] == 40 and stats["changes"] == 0
    assert stats["chatter_bursts"] == 0  # 0.4 s of bouncing is not yet a chattering line
    pin.drive_low()  # a real closure afterwards still alarms
    settle(rig[1], clocks, 0.1)
    assert [active for active, _ in changes] == [True]


def test_zero_debounce_takes_every_edge_at_once(rig, clocks, mock_pins):
    contact, changes = make_contact(rig, clocks, WINDOW, "NO", debounce_ms=0)
    mock_pins.pin(WINDOW).drive_low()
    rig[1].run_pending()
    assert [active for active, _ in changes] == [True]


def test_a_disarmed_input_is_ignored_and_counted(rig, clocks, mock_pins):
    # The simulated clock starts on Thursday 2026-01-01 00:00 UTC; armed only at weekends.
    weekend = Schedule([ArmingWindow(frozenset({5, 6}), time(0, 0), time(0, 0))], tz=timezone.utc)
    contact, changes = make_contact(rig, clocks, WINDOW, "NO", schedule=weekend)
    mock_pins.pin(WINDOW).drive_low()
    settle(rig[1], clocks, 0.1)
    assert changes == [] and contact.statistics()["ignored_disarmed"] == 1


def test_an_input_whose_schedule_is_set_aside_alarms_at_all_hours_while_armed(rig, clocks, mock_pins):
    weekend = Schedule([ArmingWindow(frozenset({5, 6}), time(0, 0), time(0, 0))], tz=timezone.utc)  # a Thursday now
    contact, changes = make_contact(rig, clocks, WINDOW, "NO", schedule=weekend)
    contact.follows_schedule = False
    mock_pins.pin(WINDOW).drive_low()
    settle(rig[1], clocks, 0.1)
    assert [active for active, _ in changes] == [True] and contact.statistics()["follows_schedule"] is False
    contact.armed = False  # disarmed by hand still wins
    mock_pins.pin(WINDOW).drive_high()
    settle(rig[1], clocks, 0.1)
    mock_pins.pin(WINDOW).drive_low()
    settle(rig[1], clocks, 0.1)
    assert [active for active, _ in changes] == [True, False]


def test_arming_windows_follow_weekday_and_time_and_run_past_midnight():
    nights = Schedule([ArmingWindow(frozenset({0}), time(22, 0), time(6, 0))], tz=timezone.utc)  # Monday 22-06

    def at(text):
        return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1e6)
    assert nights.armed_at(at("2026-01-05T23:00"))  # Monday night
    assert nights.armed_at(at("2026-01-06T05:59"))  # Tuesday early morning, same window
    assert not nights.armed_at(at("2026-01-06T06:00"))
    assert not nights.armed_at(at("2026-01-06T23:00"))  # Tuesday night: not a listed day
    assert not nights.armed_at(at("2026-01-05T12:00"))
    assert Schedule().armed_at(at("2026-01-05T12:00"))  # no windows: always armed


def test_a_relay_pulse_lasts_pulse_s_and_the_pin_history_shows_one_pulse(rig, clocks, mock_pins):
    gpio, scheduler = rig
    relay = Relay(id="siren", pin=gpio.output(SIREN, active_high=True), mode="pulse", pulse_s=2.0,
                  scheduler=scheduler, clocks=clocks)
    pin = mock_pins.pin(SIREN)
    relay.trigger()
    assert pin.state
    settle(scheduler, clocks, 1.999)
    assert pin.state
    settle(scheduler, clocks, 0.002)
    assert not pin.state
    pin.assert_states([False, True, False])


def test_a_retrigger_extends_a_pulse_and_never_shortens_it(rig, clocks, mock_pins):
    gpio, scheduler = rig
    relay = Relay(id="siren", pin=gpio.output(SIREN), mode="pulse", pulse_s=2.0, scheduler=scheduler, clocks=clocks)
    relay.trigger()
    settle(scheduler, clocks, 1.5)
    relay.trigger()  # now on until 3.5 s
    relay.trigger(for_s=0.5)  # shorter than what is left: no effect
    settle(scheduler, clocks, 1.9)
    assert mock_pins.pin(SIREN).state
    settle(scheduler, clocks, 0.2)
    assert not mock_pins.pin(SIREN).state
    mock_pins.pin(SIREN).assert_states([False, True, False])


def test_an_active_low_latching_relay_stays_on_until_cleared_and_is_off_at_start_and_close(rig, clocks, mock_pins):
    gpio, scheduler = rig
    relay = Relay(id="strobe", pin=gpio.output(SIREN, active_high=False), mode="latch", pulse_s=1.0,
                  scheduler=scheduler, clocks=clocks)
    pin = mock_pins.pin(SIREN)
    assert pin.state is True and not relay.is_active  # active low: off is a high pin
    relay.trigger()
    settle(scheduler, clocks, 3600)
    assert pin.state is False and relay.is_active
    relay.clear()
    assert pin.state is True
    relay.trigger()
    relay.close()  # shutdown: back to the safe state
    assert pin.state is True


def test_open_gpio_uses_an_explicit_factory_and_names_bad_pins():
    with pytest.raises(GpioError, match="unknown GPIO backend"):
        open_gpio("sysfs")
    assert parse_chip_line(17) == ("/dev/gpiochip0", 17)
    assert parse_chip_line("GPIO5") == ("/dev/gpiochip0", 5)
    assert parse_chip_line("gpiochip2:7") == ("/dev/gpiochip2", 7)
    with pytest.raises(GpioError, match="'pin-x'"):
        parse_chip_line("pin-x")


def test_the_character_device_backend_reports_a_missing_chip_as_a_gpio_error(tmp_path):
    gpio = LinuxGpio(default_chip=str(tmp_path / "gpiochip9"))
    with pytest.raises(GpioError, match="gpiochip9 line 3"):
        gpio.input(3)


class FakeLineRequest:
    """Stands in for a linuxpy line request: its fd is a pipe the test writes kernel edge-event records into."""

    def __init__(self, config):
        self.config, self.values, self.closed = config, {}, False
        self._read_fd, self.write_fd = os.pipe()

    def open(self):
        pass

    def filenos(self):
        return [self._read_fd]

    def get_values(self, lines):
        return {line: self.values.get(line, 1) for line in lines}

    def set_values(self, values):
        self.values.update(values)

    def close(self):
        self.closed = True


class FakeChip:
    """Stands in for linuxpy.gpio.device.Device (no gpio-sim or gpio-mockup in this kernel)."""

    requests: list[FakeLineRequest] = []

    def __init__(self, path):
        self.path = path

    def open(self):
        pass

    def close(self):
        pass

    def request(self, config):
        request = FakeLineRequest(config)
        FakeChip.requests.append(request)
        return request


def test_the_character_device_backend_requests_pull_ups_and_reads_kernel_edge_events(monkeypatch):
    import linuxpy.gpio.device
    from linuxpy.gpio import raw
    monkeypatch.setattr(linuxpy.gpio.device, "Device", FakeChip)
    FakeChip.requests = []
    gpio = LinuxGpio(default_chip="/dev/gpiochip0")
    pin = gpio.input("gpiochip1:5")
    levels, got = [], threading.Event()
    pin.when_changed = lambda level: (levels.append(level), got.set() if len(levels) == 2 else None)
    request = FakeChip.requests[0]
    assert request.config["lines"] == [{"line": 5, "direction": "input", "edge": "both", "bias": "pull-up"}]
    for kind in (raw.LineEventId.FALLING_EDGE, raw.LineEventId.RISING_EDGE):
        os.write(request.write_fd, bytes(raw.gpio_v2_line_event(timestamp_ns=1, id=kind, offset=5, seqno=1)))
    assert got.wait(2) and levels == [False, True]
    assert pin.is_high()
    pin.close()
    assert request.closed
    out = gpio.output(6, active_high=False)
    assert FakeChip.requests[1].values == {6: True}  # active low, off: the line is high
    out.set_active(True)
    assert FakeChip.requests[1].values == {6: False} and out.is_active


def test_auto_falls_back_to_the_character_device_where_gpiozero_has_no_pin_factory(tmp_path, monkeypatch):
    from gpiozero import Device
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.setattr(Device, "pin_factory", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            GpiozeroGpio()
        except Exception:
            pass
        else:
            pytest.skip("this board has a gpiozero pin factory: auto uses it, not the fallback")
    monkeypatch.setattr(Device, "pin_factory", None)
    with pytest.warns(Warning):  # gpiozero warns as it tries each of its factories on a non-Raspberry board
        with pytest.raises(GpioError, match="no GPIO here"):
            open_gpio("auto", default_chip=str(tmp_path / "gpiochip0"))
    (tmp_path / "gpiochip0").touch()
    with pytest.warns(Warning):
        assert open_gpio("auto", default_chip=str(tmp_path / "gpiochip0")).backend == "linuxpy"


def test_a_line_that_never_settles_is_reported_as_chattering_once_and_never_alarms(rig, clocks, mock_pins):
    contact, changes = make_contact(rig, clocks, WINDOW, "NO", debounce_ms=50)
    pin = mock_pins.pin(WINDOW)
    for _ in range(150):  # 3 s of 10 ms closed / 10 ms open
        pin.drive_low()
        settle(rig[1], clocks, 0.01)
        pin.drive_high()
        settle(rig[1], clocks, 0.01)
    assert contact.statistics()["chattering"] and contact.statistics()["chatter_bursts"] == 1
    settle(rig[1], clocks, 0.1)
    assert changes == [] and not contact.statistics()["chattering"]
