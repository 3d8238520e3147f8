"""PelcoBus on the in-memory serial line: exact pacing by the injected clock, queries among other traffic."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

import pytest

from drivers.pelco.protocol import Preset, Query, encode, decode
from drivers.pelco.bus import BusDown, PelcoBus, QueryTimeout
from base.clock import RealClocks, SimulatedClocks
from hal.serial_port import SimulatedSerialLine


@pytest.fixture
def line():
    return SimulatedSerialLine(baud=2400)


@pytest.fixture
def make_bus(line):
    buses = []

    def make(**kwargs):
        kwargs.setdefault("clocks", RealClocks())
        bus = PelcoBus(open_port=lambda: line.a, protocol="pelco-d", baud=2400, **kwargs)
        bus.start(require_port=True)
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        bus.stop()


def test_frames_are_spaced_by_wire_time_plus_four_characters_on_the_injected_clock(line, make_bus):
    clocks = SimulatedClocks()
    bus = make_bus(clocks=clocks)
    started_us = clocks.monotonic_us()
    for future in [bus.send(1, Preset("set", number)) for number in range(1, 6)]:
        future.result(timeout=5)
    per_frame_us = round(7 * 10 / 2400 * 1e6) + round(4 * 10 / 2400 * 1e6)  # 29167 + 16667
    assert clocks.monotonic_us() - started_us == 4 * per_frame_us
    assert line.b.read(64, timeout_s=1) == b"".join(encode("pelco-d", 1, Preset("set", n)) for n in range(1, 6))
    assert bus.statistics()["gap_ms"] == pytest.approx(16.67)


def fake_dome(line, replies: list[bytes], *, pause_s: float = 0.005) -> threading.Thread:
    """Answer the first frame read from the line with `replies`, written one after another."""
    def run():
        deadline = time.monotonic() + 5
        while not line.b.read(64, timeout_s=0.05):
            if time.monotonic() > deadline:
                return
        for reply in replies:
            line.b.write(reply)
            time.sleep(pause_s)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_query_is_answered_through_a_general_response_garbage_and_a_split_report(line, make_bus):
    bus = make_bus()
    report = bytes.fromhex("FF 01 00 59 23 28 A5")  # pan 90.00 degrees
    fake_dome(line, [bytes.fromhex("FF 01 00 01"), b"\x13\x37", report[:3], report[3:]])
    assert bus.query(1, "pan") == 9000
    stats = bus.statistics()
    assert (stats["acks"], stats["rx_garbage_bytes"], stats["queries"], stats["timeouts"]) == (1, 2, 1, 0)


def test_an_answer_from_another_dome_does_not_satisfy_the_query(line, make_bus):
    bus = make_bus(query_timeout_s=0.2)
    fake_dome(line, [bytes.fromhex("FF 02 00 59 23 28 A6")])
    with pytest.raises(QueryTimeout, match="address 1"):
        bus.query(1, "pan")
    assert bus.statistics()["reports"] == 1 and bus.statistics()["timeouts"] == 1


def test_the_query_frame_is_the_pelco_literal(line, make_bus):
    bus = make_bus(query_timeout_s=0.1)
    with pytest.raises(QueryTimeout):
        bus.query(1, "zoom")
    sent = line.b.read(64, timeout_s=1)
    assert sent == bytes.fromhex("FF 01 00 55 00 00 56") and decode("pelco-d", sent).message == Query("zoom")


def test_a_stopped_bus_refuses_requests(make_bus):
    bus = make_bus()
    bus.stop()
    with pytest.raises(BusDown, match="stopped"):
        bus.send(1, Preset("go", 1))


def test_a_newer_move_replaces_only_a_move_queued_after_any_preset_call(line, make_bus):
    from drivers.pelco.protocol import STOP, Move

    clocks = SimulatedClocks()
    bus = make_bus(clocks=clocks)
    with bus._cond:  # hold the worker so that everything below is queued before the first frame goes
        left = bus.send(1, Move(pan=-1, pan_speed=5))
        go = bus.send(1, Preset("go", 2))
        right = bus.send(1, Move(pan=1, pan_speed=5))
        other = bus.send(2, Move(tilt=1, tilt_speed=5))
        stop = bus.send(1, STOP)
    assert [future.result(timeout=5) for future in (left, go, right, other, stop)] == \
        ["sent", "sent", "superseded", "sent", "sent"]
    sent = line.b.read(64, timeout_s=1)
    assert [decode("pelco-d", sent[i:i + 7]).message for i in range(0, len(sent), 7)] == \
        [Move(pan=-1, pan_speed=5), Preset("go", 2), STOP, Move(tilt=1, tilt_speed=5)]


def test_a_query_times_out_on_the_bus_clock_not_on_real_time(line, make_bus):
    clocks = SimulatedClocks()
    bus = make_bus(clocks=clocks, query_timeout_s=0.1)
    with ThreadPoolExecutor(max_workers=1) as pool:
        answer = pool.submit(bus.query, 1, "pan")
        assert line.b.read(64, timeout_s=5) == encode("pelco-d", 1, Query("pan"))  # the query is on the wire
        done, _ = wait([answer], timeout=0.3)  # three times its timeout in real time: still waiting
        assert not done
        clocks.advance(0.1)
        with pytest.raises(QueryTimeout, match="within 0.1 s"):
            answer.result(timeout=5)
    assert bus.statistics()["timeouts"] == 1


def test_a_dome_answering_aux_9_with_a_valid_checksum_leaves_the_worker_serving(line, make_bus):
    """Row 8 of issue 12: an aux-on for output 9 (out of 1-8) with a right checksum used to raise a
    PelcoError in the worker thread and kill it; every later command then timed out."""
    bus = make_bus(query_timeout_s=0.3)
    aux9 = bytes((0xFF, 0x01, 0x00, 0x09, 0x00, 0x09))
    aux9 += bytes((sum(aux9[1:6]) & 0xFF,))
    report = bytes.fromhex("FF 01 00 59 23 28 A5")  # pan 90.00 degrees
    fake_dome(line, [aux9, report])
    assert bus.query(1, "pan") == 9000  # the reply after the hostile one is still read
    fake_dome(line, [aux9])
    with pytest.raises(QueryTimeout):
        bus.query(1, "tilt")
    future = bus.send(1, Preset("go", 3))
    assert future.result(timeout=5) == "sent"  # the worker lives on
    assert bus._thread.is_alive() and bus.statistics()["worker_errors"] == 0
