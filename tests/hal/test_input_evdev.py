"""Reading the kernel's input events without the evdev package: records from a real byte stream (a FIFO
fed by the kernel's pipe code, in the same `struct input_event` layout as /dev/input/event*), the key
bitmap, the ioctl numbers, and what happens when a device floods or goes away.

The image's monitor reads a real PS/2 keyboard this way in image-build/smoke (QEMU's send-key)."""
from __future__ import annotations

import os
import struct

import pytest

from base.clock import SimulatedClocks

from hal.display import InputEvent
from hal.input_evdev import (EV_KEY, EVENT_BYTES, EVENT_FORMAT, MAX_EVENTS_PER_READ, EvdevKeys, EventStream,
                             InputDevice, RawEvent, codes_from_bitmap, eviocgbit, eviocgname)

EV_SYN = 0
KEY_1, KEY_F1, KEY_F2, KEY_OK = 2, 59, 60, 352


def record(event_type: int, code: int, value: int, sec: int = 1_700_000_000, usec: int = 5) -> bytes:
    return struct.pack(EVENT_FORMAT, sec, usec, event_type, code, value)


def press(code: int) -> bytes:
    """What a keyboard writes for one key press and release: down, SYN, up, SYN."""
    return record(EV_KEY, code, 1) + record(EV_SYN, 0, 0) + record(EV_KEY, code, 0) + record(EV_SYN, 0, 0)


def bitmap(*codes: int) -> bytes:
    bits = bytearray(0x2FF // 8 + 1)
    for code in codes:
        bits[code // 8] |= 1 << code % 8
    return bytes(bits)


class FifoKeyboard(InputDevice):
    """An InputDevice over a FIFO: real reads of a kernel byte stream; the key bitmap a keyboard's
    EVIOCGBIT would answer (a FIFO has no ioctls)."""

    def __init__(self, path: str, keys: bytes):
        super().__init__(path)
        self._keys = keys

    def capabilities(self) -> dict[int, list[int]]:
        return {EV_KEY: codes_from_bitmap(self._keys)}


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "event0"
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # so the writer's open does not block
    writer = os.open(path, os.O_WRONLY)
    yield str(path), writer
    for fd in (reader, writer):
        try:
            os.close(fd)
        except OSError:
            pass


def test_the_record_layout_is_the_kernels_struct_input_event():
    assert EVENT_BYTES == (24 if struct.calcsize("l") == 8 else 16)
    # The numbers linux/input.h gives (EVIOCGNAME(256), EVIOCGBIT(EV_KEY, 96)) with the generic _IOC encoding.
    assert eviocgname(256) == 0x81004506
    assert eviocgbit(EV_KEY, 96) == 0x80604521


def test_the_key_bitmap_lists_the_codes_set():
    assert codes_from_bitmap(bitmap(KEY_1, KEY_F1, KEY_OK)) == [KEY_1, KEY_F1, KEY_OK]
    assert codes_from_bitmap(bytes(96)) == []


def test_a_record_split_between_two_reads_is_kept_until_its_end_arrives():
    stream = EventStream()
    data = record(EV_KEY, KEY_F2, 1) + record(EV_SYN, 0, 0)
    assert stream.feed(data[:EVENT_BYTES + 5]) == [RawEvent(EV_KEY, KEY_F2, 1)]
    assert stream.feed(data[EVENT_BYTES + 5:]) == [RawEvent(EV_SYN, 0, 0)]
    assert stream.feed(b"") == []


def test_key_presses_written_to_a_device_stream_become_key_events(fifo):
    path, writer = fifo
    keys = EvdevKeys(list_paths=lambda: [path], open_device=lambda p: FifoKeyboard(p, bitmap(KEY_1, KEY_F1)), clocks=SimulatedClocks())
    assert keys.poll() == []  # found, nothing pressed yet
    os.write(writer, press(KEY_F1) + record(EV_KEY, KEY_1, 1))
    os.write(writer, record(EV_KEY, KEY_1, 2))  # autorepeat of a digit: not a second press
    assert keys.poll() == [InputEvent("key", key="f1"), InputEvent("key", key="1")]
    assert keys.poll() == []


def test_a_device_whose_stream_ends_is_dropped_and_counted(fifo):
    path, writer = fifo
    device = FifoKeyboard(path, bitmap(KEY_OK))
    keys = EvdevKeys(list_paths=lambda: [path], open_device=lambda p: device, clocks=SimulatedClocks())
    os.write(writer, press(KEY_OK))
    assert keys.poll() == [InputEvent("key", key="enter")]
    os.close(writer)  # unplugged: the stream ends
    assert keys.poll() == [] and keys.errors == 1
    with pytest.raises(OSError):
        os.fstat(device.fileno())  # closed


def test_a_flooding_device_costs_a_bounded_read_per_poll(fifo):
    path, writer = fifo
    device = InputDevice(path)
    os.write(writer, record(EV_KEY, KEY_1, 2) * (MAX_EVENTS_PER_READ * 2))
    assert len(device.read()) == MAX_EVENTS_PER_READ
    assert len(device.read()) == MAX_EVENTS_PER_READ
    with pytest.raises(BlockingIOError):
        device.read()
    device.close()


def test_something_that_is_not_an_input_device_is_opened_and_let_go(fifo):
    path, _writer = fifo
    opened: list[InputDevice] = []

    def open_device(p: str) -> InputDevice:
        opened.append(InputDevice(p))
        return opened[-1]

    keys = EvdevKeys(list_paths=lambda: [path, "/nonexistent/event9"], open_device=open_device, clocks=SimulatedClocks())
    assert keys.poll() == [] and keys.errors == 0
    assert opened[0].name == "?"  # EVIOCGNAME is not a FIFO's ioctl
    with pytest.raises(OSError):
        os.fstat(opened[0].fileno())  # closed again: no key bitmap, not a keyboard
