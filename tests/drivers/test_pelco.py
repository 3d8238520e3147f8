"""Pelco-D and Pelco-P frames as byte literals: every command encodes to its bytes and decodes back."""
from __future__ import annotations

import pytest

from drivers.pelco.protocol import (STOP, Ack, Aux, ChecksumError, FrameError, Move, PelcoError, PositionReport, Preset,
                           Query, SetPosition, UnsupportedCommand, checksum_d, checksum_p, decode,
                           degrees_to_wire, encode, wire_to_degrees)
from drivers.pelco.stream import FrameDecoder


def hexbytes(text: str) -> bytes:
    return bytes.fromhex(text)


PELCO_D = [  # (address, message, frame)
    (1, Move(pan=-1, pan_speed=0x20), "FF 01 00 04 20 00 25"),  # the literal: pan left 0x20
    (1, Move(pan=1, pan_speed=0x20), "FF 01 00 02 20 00 23"),
    (1, Move(tilt=1, tilt_speed=0x10), "FF 01 00 08 00 10 19"),
    (1, Move(tilt=-1, tilt_speed=0x3F), "FF 01 00 10 00 3F 50"),
    (1, Move(pan=-1, tilt=1, pan_speed=0x20, tilt_speed=0x20), "FF 01 00 0C 20 20 4D"),
    (1, Move(pan=1, pan_speed=0x3F, turbo=True), "FF 01 00 02 FF 00 02"),
    (1, Move(zoom=1), "FF 01 00 20 00 00 21"),
    (1, Move(zoom=-1), "FF 01 00 40 00 00 41"),
    (1, Move(focus=1), "FF 01 00 80 00 00 81"),
    (1, Move(focus=-1), "FF 01 01 00 00 00 02"),
    (1, Move(iris=1), "FF 01 02 00 00 00 03"),
    (1, Move(iris=-1), "FF 01 04 00 00 00 05"),
    (1, STOP, "FF 01 00 00 00 00 01"),
    (1, Preset("set", 1), "FF 01 00 03 00 01 05"),
    (1, Preset("clear", 1), "FF 01 00 05 00 01 07"),
    (1, Preset("go", 1), "FF 01 00 07 00 01 09"),  # the literal: go to preset 1
    (0x20, Preset("go", 255), "FF 20 00 07 00 FF 26"),
    (1, Aux(True, 1), "FF 01 00 09 00 01 0B"),
    (1, Aux(False, 2), "FF 01 00 0B 00 02 0E"),
    (1, SetPosition("pan", 9000), "FF 01 00 4B 23 28 97"),
    (1, SetPosition("tilt", 35000), "FF 01 00 4D 88 B8 8E"),
    (1, SetPosition("zoom", 0x8000), "FF 01 00 4F 80 00 D0"),
    (1, Query("pan"), "FF 01 00 51 00 00 52"),
    (1, Query("tilt"), "FF 01 00 53 00 00 54"),
    (1, Query("zoom"), "FF 01 00 55 00 00 56"),
    (1, PositionReport("pan", 9000), "FF 01 00 59 23 28 A5"),
    (1, PositionReport("tilt", 35000), "FF 01 00 5B 88 B8 9C"),
    (1, PositionReport("zoom", 0xFFFF), "FF 01 00 5D FF FF 5C"),
    (1, Ack(0), "FF 01 00 01"),
    (7, Ack(0x81), "FF 07 81 88"),
]

PELCO_P = [
    (1, Move(pan=-1, tilt_speed=0x1F), "A0 01 00 04 00 1F AF 15"),  # the literal
    (1, Move(pan=-1, pan_speed=0x20), "A0 01 00 04 20 00 AF 2A"),
    (1, Move(pan=1, pan_speed=0x20), "A0 01 00 02 20 00 AF 2C"),
    (1, Move(tilt=1, tilt_speed=0x10), "A0 01 00 08 00 10 AF 16"),
    (1, Move(tilt=-1, tilt_speed=0x3F), "A0 01 00 10 00 3F AF 21"),
    (1, Move(pan=-1, pan_speed=0x3F, turbo=True), "A0 01 00 04 40 00 AF 4A"),
    (1, Move(zoom=1), "A0 01 00 20 00 00 AF 2E"),
    (1, Move(zoom=-1), "A0 01 00 40 00 00 AF 4E"),
    (1, Move(focus=1), "A0 01 01 00 00 00 AF 0F"),
    (1, Move(focus=-1), "A0 01 02 00 00 00 AF 0C"),
    (1, Move(iris=1), "A0 01 04 00 00 00 AF 0A"),
    (1, Move(iris=-1), "A0 01 08 00 00 00 AF 06"),
    (1, STOP, "A0 01 00 00 00 00 AF 0E"),
    (0, STOP, "A0 00 00 00 00 00 AF 0F"),
    (1, Preset("set", 1), "A0 01 00 03 00 01 AF 0C"),
    (1, Preset("clear", 1), "A0 01 00 05 00 01 AF 0A"),
    (1, Preset("go", 1), "A0 01 00 07 00 01 AF 08"),
    (1, Query("pan"), "A0 01 00 51 00 00 AF 5F"),
    (1, PositionReport("pan", 9000), "A0 01 00 59 23 28 AF 5C"),
]


@pytest.mark.parametrize(("address", "message", "frame"), PELCO_D, ids=[row[2] for row in PELCO_D])
def test_pelco_d_frames_equal_their_byte_literals(address, message, frame):
    assert encode("pelco-d", address, message) == hexbytes(frame)
    decoded = decode("pelco-d", hexbytes(frame))
    assert (decoded.address, decoded.message, decoded.raw) == (address, message, hexbytes(frame))


@pytest.mark.parametrize(("address", "message", "frame"), PELCO_P, ids=[row[2] for row in PELCO_P])
def test_pelco_p_frames_equal_their_byte_literals(address, message, frame):
    assert encode("pelco-p", address, message) == hexbytes(frame)
    decoded = decode("pelco-p", hexbytes(frame))
    assert (decoded.address, decoded.message, decoded.raw) == (address, message, hexbytes(frame))


def test_checksums_are_the_sum_of_bytes_2_to_6_for_d_and_the_xor_of_all_seven_for_p():
    assert checksum_d(hexbytes("FF 01 00 04 20 00")) == 0x25
    assert checksum_d(hexbytes("FF FF FF FF FF FF")) == (5 * 0xFF) & 0xFF  # the sync byte is not summed
    assert checksum_p(hexbytes("A0 01 00 04 00 1F AF")) == 0x15


def test_a_d_controller_sending_40_for_turbo_is_read_as_turbo():
    assert decode("pelco-d", hexbytes("FF 01 00 04 40 00 45")).message == Move(pan=-1, pan_speed=63, turbo=True)


@pytest.mark.parametrize(("protocol", "frame", "error"), [
    ("pelco-d", "FF 01 00 04 20 00 26", ChecksumError),
    ("pelco-d", "FF 01 00 04 20 00", FrameError),  # short
    ("pelco-d", "FE 01 00 04 20 00 25", FrameError),  # wrong sync
    ("pelco-d", "FF 01 00 02 00 00 04", ChecksumError),
    ("pelco-d", "FF 01 00 06 20 00 27", FrameError),  # left and right at once
    ("pelco-d", "FF 01 00 08 00 40 49", FrameError),  # tilt speed above 3F
    ("pelco-d", "FF 01 88 00 00 00 89", UnsupportedCommand),  # sense + camera on
    ("pelco-d", "FF 01 00 07 00 00 08", FrameError),  # preset 0
    ("pelco-d", "FF 01 00 4B 8C A0 78", FrameError),  # pan 36000 is a full turn: out of range
    ("pelco-d", "FF 01 00 0F 00 00 10", UnsupportedCommand),  # remote reset
    ("pelco-d", "FF 01 00 02", ChecksumError),  # a 4-byte response with a bad sum
    ("pelco-p", "A0 01 00 04 00 1F AF 16", ChecksumError),
    ("pelco-p", "A0 01 00 04 00 1F AE 14", FrameError),  # wrong ETX
    ("pelco-p", "A0 01 30 00 00 00 AF 3E", UnsupportedCommand),  # camera on, auto-scan bits
])
def test_malformed_frames_are_rejected_with_a_reason(protocol, frame, error):
    with pytest.raises(error):
        decode(protocol, hexbytes(frame))


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Move(pan=2), "pan direction"),
    (lambda: Move(pan_speed=64), "pan_speed must be an integer from 0 to 63, got 64"),
    (lambda: Preset("go", 0), "preset number"),
    (lambda: Preset("jump", 1), "preset action"),
    (lambda: SetPosition("pan", 36000), "pan position"),
    (lambda: encode("pelco-d", 256, STOP), "address must be an integer from 0 to 255, got 256"),
    (lambda: encode("pelco-x", 1, STOP), "protocol"),
    (lambda: encode("pelco-p", 1, Ack()), "only Pelco-D"),
])
def test_bad_values_are_refused_naming_the_value(make, message):
    with pytest.raises(PelcoError, match=message):
        make()


def test_angles_wrap_to_hundredths_of_a_degree():
    assert degrees_to_wire(90) == 9000
    assert degrees_to_wire(-10) == 35000
    assert degrees_to_wire(360) == 0
    assert wire_to_degrees(35000, signed=True) == -10
    assert wire_to_degrees(35000) == 350


# --- the stream decoder -------------------------------------------------------------------------

def test_the_stream_decoder_skips_garbage_and_counts_it():
    decoder = FrameDecoder("pelco-d")
    frames = decoder.feed(hexbytes("00 13 37 FF 01 00 04 20 00 25 55 AA FF 01 00 07 00 01 09"))
    assert [frame.message for frame in frames] == [Move(pan=-1, pan_speed=0x20), Preset("go", 1)]
    # 3 leading bytes, 2 between the frames
    assert decoder.statistics() == {"frames": 2, "garbage_bytes": 5, "checksum_errors": 0,
                                    "rejected_frames": 0, "pending_bytes": 0}


def test_a_stray_sync_byte_in_garbage_costs_one_checksum_error_and_the_frame_still_arrives():
    decoder = FrameDecoder("pelco-d")
    frames = decoder.feed(hexbytes("FF 10 FF 01 00 04 20 00 25"))
    assert [frame.raw for frame in frames] == [hexbytes("FF 01 00 04 20 00 25")]
    assert decoder.checksum_errors == 1 and decoder.garbage_bytes == 2


def test_frames_split_across_reads_are_reassembled():
    decoder = FrameDecoder("pelco-p")
    literal = hexbytes("A0 01 00 04 00 1F AF 15")
    assert decoder.feed(literal[:3]) == []
    assert decoder.pending_bytes == 3
    assert [frame.raw for frame in decoder.feed(literal[3:])] == [literal]


def test_a_truncated_frame_is_dropped_as_garbage_when_the_line_goes_idle():
    decoder = FrameDecoder("pelco-p")
    decoder.feed(hexbytes("A0 01 00 04"))
    assert decoder.idle() == []
    assert decoder.garbage_bytes == 4 and decoder.pending_bytes == 0
    assert len(decoder.feed(hexbytes("A0 01 00 04 00 1F AF 15"))) == 1


def test_a_corrupted_pelco_p_frame_is_counted_and_the_next_one_decoded():
    decoder = FrameDecoder("pelco-p")
    frames = decoder.feed(hexbytes("A0 01 00 04 00 1F AF 16 A0 01 00 07 00 01 AF 08"))
    assert [frame.message for frame in frames] == [Preset("go", 1)]
    assert decoder.checksum_errors == 1 and decoder.garbage_bytes == 8


def test_well_formed_but_unsupported_frames_are_rejected_and_counted():
    decoder = FrameDecoder("pelco-d")
    assert decoder.feed(hexbytes("FF 01 00 0F 00 00 10 FF 01 00 00 00 00 01")) == [
        decode("pelco-d", hexbytes("FF 01 00 00 00 00 01"))]
    assert decoder.rejected_frames == 1 and "0x0f" in decoder.recent_errors[0]


def test_the_host_side_reads_general_responses_between_position_reports():
    decoder = FrameDecoder("pelco-d", role="host")
    frames = decoder.feed(hexbytes("FF 01 00 01 FF 01 00 59 23 28 A5 FF 02 00 02"))
    assert [frame.message for frame in frames] == [Ack(0), PositionReport("pan", 9000)]
    assert decoder.pending_bytes == 4  # a last ack could still be the start of a report
    assert [frame.message for frame in decoder.idle()] == [Ack(0)]
    assert decoder.garbage_bytes == 0


def test_the_host_side_reads_its_own_echo_as_commands():
    decoder = FrameDecoder("pelco-d", role="host")  # adapters that hear their own transmission
    assert [frame.message for frame in decoder.feed(hexbytes("FF 00 00 00 00 00 00"))] == [STOP]
