"""PtzService from a config, driving simulated Pelco domes on the far side of a real pty."""
from __future__ import annotations

import errno
import time

import pytest

from appliance.ptz.service import NoPtz, PtzService, UnknownTour
from drivers.pelco.protocol import STOP, Move, Preset
from drivers.pelco.bus import BusDown, QueryTimeout
from base.clock import RealClocks, SimulatedClocks
from hal.serial_port import PortNotFound, SimulatedSerialLine
from recorder.faults import FaultBoard
from support.ptz import DomeRig, ptz_config
from support.waiting import wait_for

TOURS = """\
tours:
  - name: patrol
    steps: [{preset: 1, dwell_s: 5}, {preset: 2, dwell_s: 8}]
"""


@pytest.fixture
def rigs():
    made = []

    def make(protocol, addresses=(1,), **kwargs):
        rig = DomeRig(protocol, addresses, **kwargs)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.close()


@pytest.fixture
def services():
    made = []

    def make(config, **kwargs):
        service = PtzService(config, clocks=kwargs.pop("clocks", RealClocks()), **kwargs)
        service.start()
        made.append(service)
        return service

    yield make
    for service in made:
        service.shutdown()


def run(rig, future, count):
    """Wait until `future`'s frame is written and the dome has accepted `count` commands in all."""
    future.result(timeout=5)
    rig.wait_commands(count)


def drive_sequence(rig, service):
    """Left, down, zoom in, store preset 1, right, recall preset 1: the dome's clock moves 2+3+1+5 s."""
    run(rig, service.move(1, -1, 0, speed=0x20), 1)
    rig.clocks.advance(2)            # 2 s at 32 deg/s to the left
    run(rig, service.stop(1), 2)
    run(rig, service.move(1, 0, -1, speed=10), 3)
    rig.clocks.advance(3)            # 3 s down at 10 deg/s
    run(rig, service.stop(1), 4)
    run(rig, service.zoom(1, +1), 5)
    rig.clocks.advance(1)            # a quarter of the zoom range
    run(rig, service.stop(1), 6)
    run(rig, service.preset_set(1, 1), 7)
    run(rig, service.move(1, +1, 0, speed=0x10), 8)
    rig.clocks.advance(5)            # 5 s right at 16 deg/s
    run(rig, service.stop(1), 9)
    assert rig.dome().position.pan_deg == pytest.approx(16.0)
    run(rig, service.preset_go(1, 1), 10)


SEQUENCE_FRAMES = {  # drive_sequence + preset_clear, frame by frame
    "pelco-d": ["FF 01 00 04 20 00 25", "FF 01 00 00 00 00 01", "FF 01 00 10 00 0A 1B", "FF 01 00 00 00 00 01",
                "FF 01 00 20 00 00 21", "FF 01 00 00 00 00 01", "FF 01 00 03 00 01 05", "FF 01 00 02 10 00 13",
                "FF 01 00 00 00 00 01", "FF 01 00 07 00 01 09", "FF 01 00 05 00 01 07"],
    "pelco-p": ["A0 01 00 04 20 00 AF 2A", "A0 01 00 00 00 00 AF 0E", "A0 01 00 10 00 0A AF 14",
                "A0 01 00 00 00 00 AF 0E", "A0 01 00 20 00 00 AF 2E", "A0 01 00 00 00 00 AF 0E",
                "A0 01 00 03 00 01 AF 0C", "A0 01 00 02 10 00 AF 1C", "A0 01 00 00 00 00 AF 0E",
                "A0 01 00 07 00 01 AF 08", "A0 01 00 05 00 01 AF 0A"],
}


@pytest.mark.parametrize("protocol", ["pelco-d", "pelco-p"])
def test_the_dome_reaches_the_state_of_the_command_sequence(rigs, services, protocol):
    rig = rigs(protocol)
    service = services(ptz_config(rig.path, protocol))

    drive_sequence(rig, service)

    state = rig.dome().state()
    assert (state.position.pan_deg, state.position.tilt_deg, state.position.zoom) ==\
        pytest.approx((296.0, -30.0, 16383.75))
    assert set(state.presets) == {1} and state.motion == STOP
    run(rig, service.preset_clear(1, 1), 11)
    assert rig.dome().state().presets == {}
    assert rig.bus.received == [bytes.fromhex(frame) for frame in SEQUENCE_FRAMES[protocol]]


def test_pelco_d_frames_on_the_line_equal_their_byte_literals(rigs, services):
    rig = rigs("pelco-d")
    service = services(ptz_config(rig.path, "pelco-d"))
    run(rig, service.move(1, -1, 0, speed=0x20), 1)
    run(rig, service.stop(1), 2)
    run(rig, service.preset_go(1, 1), 3)
    run(rig, service.preset_set(1, 2), 4)
    assert rig.bus.received == [bytes.fromhex(text) for text in (
        "FF 01 00 04 20 00 25", "FF 01 00 00 00 00 01", "FF 01 00 07 00 01 09", "FF 01 00 03 00 02 06")]


def test_pelco_p_frames_on_the_line_equal_their_byte_literals(rigs, services):
    rig = rigs("pelco-p")
    service = services(ptz_config(rig.path, "pelco-p", baud=4800))
    run(rig, service.move(1, -1, 0, speed=0, tilt_speed=0x1F), 1)
    run(rig, service.preset_go(1, 1), 2)
    assert rig.bus.received == [bytes.fromhex("A0 01 00 04 00 1F AF 15"), bytes.fromhex("A0 01 00 07 00 01 AF 08")]


@pytest.mark.parametrize("protocol", ["pelco-d", "pelco-p"])
def test_position_queries_read_back_where_the_dome_points(rigs, services, protocol):
    rig = rigs(protocol, send_acks=True)  # a Pelco-D dome that also sends general responses
    service = services(ptz_config(rig.path, protocol))
    drive_sequence(rig, service)

    position = service.position(1)

    assert (position.pan_deg, position.tilt_deg, position.zoom) == pytest.approx((296.0, -30.0, 0.25), abs=1e-4)
    stats = service.statistics()["ports"]["bus1"]
    assert stats["queries"] == 3 and stats["timeouts"] == 0
    if protocol == "pelco-d":
        wait_for(lambda: service.statistics()["ports"]["bus1"]["acks"] >= 10, what="general responses")


def test_absolute_positions_are_sent_and_read_back(rigs, services):
    rig = rigs("pelco-d")
    service = services(ptz_config(rig.path, "pelco-d"))
    for future in service.goto(1, pan_deg=123.45, tilt_deg=-20, zoom=0.5):
        future.result(timeout=5)
    rig.wait_commands(3)
    position = service.position(1)
    assert (position.pan_deg, position.tilt_deg, position.zoom) == pytest.approx((123.45, -20.0, 0.5), abs=1e-4)


@pytest.mark.parametrize("protocol", ["pelco-d", "pelco-p"])
def test_garbage_on_the_line_is_ignored_and_counted(rigs, services, protocol):
    rig = rigs(protocol)
    service = services(ptz_config(rig.path, protocol))
    bad = bytes.fromhex("FF 01 00 04 20 00 26" if protocol == "pelco-d" else "A0 01 00 04 20 00 AF 2B")
    rig.pty.inject(b"\x00\x13\x37noise" + bad)  # noise, then a frame whose checksum is wrong
    wait_for(lambda: rig.bus.decoder.checksum_errors == 1, what="the bad frame")

    run(rig, service.move(1, -1, 0, speed=0x20), 1)  # the next good frame still gets through
    rig.clocks.advance(1)
    run(rig, service.stop(1), 2)

    assert rig.dome().commands == [Move(pan=-1, pan_speed=0x20), STOP]
    assert rig.dome().position.pan_deg == pytest.approx(328.0)
    stats = rig.bus.statistics()
    assert stats["checksum_errors"] == 1 and stats["garbage_bytes"] >= 8 and stats["frames"] == 2


def test_garbage_from_the_domes_is_skipped_by_the_appliance_and_counted(rigs, services):
    rig = rigs("pelco-d")
    service = services(ptz_config(rig.path, "pelco-d"))
    run(rig, service.preset_set(1, 1), 1)
    rig.pty.inject_to_controller(b"\x00\x55\xaa\x13\x37")
    wait_for(lambda: service.statistics()["ports"]["bus1"]["rx_garbage_bytes"] == 5, what="garbage counted")
    assert service.position(1).pan_deg == 0.0


def test_several_domes_share_one_bus_and_only_the_addressed_one_moves(rigs, services):
    rig = rigs("pelco-d", addresses=(1, 2))
    service = services(ptz_config(rig.path, "pelco-d", channels=((1, 1), (2, 2))))
    run(rig, service.move(1, -1, 0, speed=10), 1)
    service.move(2, 1, 0, speed=20).result(timeout=5)
    rig.wait_commands(1, address=2)
    rig.clocks.advance(2)
    service.stop(1).result(timeout=5)
    service.stop(2).result(timeout=5)
    rig.wait_commands(2, address=1)
    rig.wait_commands(2, address=2)
    assert rig.dome(1).position.pan_deg == pytest.approx(340.0)
    assert rig.dome(2).position.pan_deg == pytest.approx(40.0)


def test_frames_to_one_bus_are_spaced_by_the_time_the_baud_rate_needs(rigs, services):
    rig = rigs("pelco-d")
    service = services(ptz_config(rig.path, "pelco-d", baud=2400))
    started = time.monotonic()
    futures = [service.preset_set(1, number) for number in range(1, 11)]
    for future in futures:
        future.result(timeout=10)
    elapsed_s = time.monotonic() - started
    per_frame_s = (7 + 4) * 10 / 2400  # 7 bytes on the wire + 4 quiet characters, 10 bits each
    assert elapsed_s >= 9 * per_frame_s
    rig.wait_frames(10)
    assert [frame[5] for frame in rig.bus.received] == list(range(1, 11))


def test_a_queued_move_is_replaced_by_a_newer_one_to_the_same_dome(rigs, services):
    rig = rigs("pelco-d")
    service = services(ptz_config(rig.path, "pelco-d", baud=2400))
    futures = [service.move(1, -1, 0, speed=speed) for speed in range(1, 30)] + [service.stop(1)]
    results = [future.result(timeout=10) for future in futures]
    assert "superseded" in results and results[-1] == "sent"
    wait_for(lambda: rig.dome().commands and rig.dome().commands[-1] == STOP, what="the final stop")
    assert service.statistics()["ports"]["bus1"]["superseded"] == results.count("superseded")


def let_the_bus_worker_look(service, rig, probe_channel: int = 2) -> None:
    """Return once the bus worker has checked, at the clocks' present time, which tour steps are due, and
    has sent any it found.

    Waiting a fixed real time for that proves nothing on a busy machine (the worker may not have run).
    Instead, commands to another dome on the same bus, one after the other: each turn of the worker's
    loop queues the due tour steps before it takes a command, so the turn that takes the second probe
    began after the first was sent (after the test moved the clock), and the third is queued behind
    any tour step that turn found.
    """
    probe = rig.dome(probe_channel)
    before = len(probe.commands)
    for number in (1, 2, 3):
        service.preset_set(probe_channel, number).result(timeout=20)
    rig.wait_commands(before + 3, address=probe.address)  # the line is read in order: earlier frames are in


def test_a_tour_visits_its_presets_with_their_dwell_times_until_a_manual_command(rigs, services):
    rig = rigs("pelco-d", addresses=(1, 2))
    clocks = SimulatedClocks()
    service = services(ptz_config(rig.path, "pelco-d", channels=((1, 1), (2, 2)), tours=TOURS), clocks=clocks)

    service.tour_start(1, "patrol")
    rig.wait_commands(1)
    clocks.advance(4.9)
    let_the_bus_worker_look(service, rig)
    assert len(rig.dome().commands) == 1  # nothing is due yet
    clocks.advance(0.2)
    rig.wait_commands(2)
    clocks.advance(8.1)
    rig.wait_commands(3)
    assert rig.dome().commands == [Preset("go", 1), Preset("go", 2), Preset("go", 1)]
    assert service.tour_running(1) == "patrol"

    run(rig, service.move(1, 1, 0), 4)  # manual control ends the tour
    assert service.tour_running(1) is None
    clocks.advance(60)
    let_the_bus_worker_look(service, rig)
    assert len(rig.dome().commands) == 4


def test_tour_stop_reports_the_tour_and_unknown_names_are_refused(rigs, services):
    rig = rigs("pelco-d")
    service = services(ptz_config(rig.path, "pelco-d", tours=TOURS), clocks=SimulatedClocks())
    with pytest.raises(UnknownTour, match="no tour 'night'; tours: 'patrol'"):
        service.tour_start(1, "night")
    service.tour_start(1, "patrol")
    assert service.tour_stop(1) == "patrol"
    assert service.tour_stop(1) is None


def test_a_channel_without_ptz_is_refused_by_name(rigs, services):
    rig = rigs("pelco-d")
    service = services(ptz_config(rig.path, "pelco-d"))
    with pytest.raises(NoPtz, match="channel 5 has no PTZ dome configured \\(channels with PTZ: 1\\)"):
        service.move(5, 1, 0)


def test_a_dome_that_does_not_answer_times_out_and_is_counted(rigs, services):
    rig = rigs("pelco-d")  # nothing at address 9
    service = services(ptz_config(rig.path, "pelco-d", channels=((1, 1), (2, 9)), query_timeout_s=0.1))
    with pytest.raises(QueryTimeout, match="address 9"):
        service.position(2)
    assert service.statistics()["ports"]["bus1"]["timeouts"] == 1
    assert service.position(1).pan_deg == 0.0  # the bus is still fine


def test_shutdown_stops_a_dome_left_moving(rigs):
    rig = rigs("pelco-d")
    service = PtzService(ptz_config(rig.path, "pelco-d"), clocks=RealClocks())
    service.start()
    run(rig, service.move(1, 1, 1, speed=5), 1)
    service.shutdown()
    rig.wait_commands(2)
    assert rig.dome().commands[-1] == STOP


def test_a_port_that_cannot_open_raises_an_alarm_per_channel_and_commands_say_why(rigs, services, clocks):
    faults = FaultBoard(clocks=clocks)
    service = services(ptz_config("/dev/ttyUSB97", "pelco-d"), faults=faults)
    [alarm] = faults.active()
    assert (alarm.kind, alarm.channel) == ("ptz_down", 1) and "/dev/ttyUSB97" in alarm.message
    with pytest.raises(BusDown, match="no serial port '/dev/ttyUSB97'"):
        service.stop(1)


def test_kernel_rs485_mode_on_a_pty_is_reported_plainly(rigs, services, clocks):
    rig = rigs("pelco-d")
    faults = FaultBoard(clocks=clocks)
    config = ptz_config(rig.path, "pelco-d")
    config.ptz.ports[0].rs485 = True
    services(config, faults=faults)
    [alarm] = faults.active()
    assert "no kernel RS-485 mode" in alarm.message and "rs485: false" in alarm.message


def test_an_adapter_that_fails_and_comes_back_raises_then_clears_the_alarm(clocks):
    lines: list[SimulatedSerialLine] = []

    def opener(port):
        if not lines:  # the first attempt: the adapter is not plugged in yet
            lines.append(None)
            raise PortNotFound(errno.ENOENT, f"no serial port {port.url!r}")
        lines.append(SimulatedSerialLine(baud=port.baud))
        return lines[-1].a

    faults = FaultBoard(clocks=clocks)
    service = PtzService(ptz_config("/dev/ttyUSB0", "pelco-d"), clocks=RealClocks(), faults=faults, open_port=opener)
    service.start()
    try:
        assert [alarm.kind for alarm in faults.active()] == ["ptz_down"]
        wait_for(lambda: not faults.active(), what="the port to open")
        service.preset_go(1, 3).result(timeout=5)
        assert lines[1].b.read(16, timeout_s=1) == bytes.fromhex("FF 01 00 07 00 03 0B")

        lines[1].a.close()  # unplugged while in use
        with pytest.raises(BusDown):
            service.preset_go(1, 4).result(timeout=5)
        wait_for(lambda: len(lines) == 3 and not faults.active(), what="the port to reopen")
        service.preset_go(1, 5).result(timeout=5)
        assert lines[2].b.read(16, timeout_s=1) == bytes.fromhex("FF 01 00 07 00 05 0D")
        assert service.statistics()["ports"]["bus1"]["port_errors"] == 2
    finally:
        service.shutdown()
