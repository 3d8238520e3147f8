"""The serial port seam: pyserial URLs against real ptys, loop:// and a TCP socket; the in-memory line."""
from __future__ import annotations

import os
import socket
import tty

import pytest

from hal.serial_port import (PortBusy, PortNotFound, Rs485Unsupported, SimulatedSerialLine, character_time_s,
                             open_serial_port)


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


def test_a_pty_carries_bytes_both_ways(pty_pair):
    master, path = pty_pair
    port = open_serial_port(path, baud=2400)
    try:
        port.write(bytes.fromhex("FF 01 00 04 20 00 25 0A 0D"))  # LF/CR must pass untranslated
        assert os.read(master, 64) == bytes.fromhex("FF 01 00 04 20 00 25 0A 0D")
        os.write(master, b"\xff\x01\x00\x01")
        assert port.read(64, timeout_s=1.0) == b"\xff\x01\x00\x01"
        assert port.read(64, timeout_s=0.01) == b""
    finally:
        port.close()


def test_a_second_opener_of_a_device_is_told_the_port_is_busy(pty_pair):
    _, path = pty_pair
    first = open_serial_port(path, baud=9600)
    try:
        with pytest.raises(PortBusy, match="in use by another process"):
            open_serial_port(path, baud=9600)
    finally:
        first.close()
    open_serial_port(path, baud=9600).close()  # the lock goes with the port


def test_kernel_rs485_mode_on_a_pty_fails_clearly(pty_pair):
    _, path = pty_pair
    with pytest.raises(Rs485Unsupported, match="no kernel RS-485 mode.*rs485: false"):
        open_serial_port(path, baud=9600, rs485=True)
    open_serial_port(path, baud=9600).close()  # the failed open released the lock


def test_a_missing_device_names_the_url():
    with pytest.raises(PortNotFound, match="/dev/ttyUSB99"):
        open_serial_port("/dev/ttyUSB99", baud=9600)


def test_loop_url_echoes():
    port = open_serial_port("loop://", baud=4800)
    try:
        port.write(b"\xa0\x01")
        assert port.read(16, timeout_s=1.0) == b"\xa0\x01"
    finally:
        port.close()


def test_socket_url_reaches_a_network_serial_converter():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = open_serial_port(f"socket://127.0.0.1:{server.getsockname()[1]}", baud=9600)
        connection, _ = server.accept()
        with connection:
            port.write(b"\xff\x01\x00\x00\x00\x00\x01")
            assert connection.recv(16) == b"\xff\x01\x00\x00\x00\x00\x01"
            connection.sendall(b"\xff\x01\x00\x01")
            assert port.read(16, timeout_s=1.0) == b"\xff\x01\x00\x01"
        port.close()


def test_the_simulated_line_joins_two_ports_back_to_back():
    line = SimulatedSerialLine(baud=2400)
    line.a.write(b"abc")
    assert line.b.read(2, timeout_s=0.1) == b"ab"
    assert line.b.read(9, timeout_s=0.1) == b"c"
    assert line.b.read(9, timeout_s=0.01) == b""
    line.b.write(b"x")
    assert line.a.read(9, timeout_s=0.1) == b"x"
    assert line.a.bytes_written == 3


def test_character_time_is_ten_bits():
    assert character_time_s(2400) == pytest.approx(1 / 240)
