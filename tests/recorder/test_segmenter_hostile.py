"""Segmenter.push keeps its word against a hostile camera (issue 12, row 7): malformed parameter sets
and absurd timestamps are counted and skipped, never raised, and no segment file is left open."""
from __future__ import annotations

import os

from base.media import EncodedPacket
from recorder.fmp4 import read_segment
from support.open_files import files_open_under
from support.recording import decoded_frames, make_segmenter
from support.recording import test_pattern_source as pattern_source


class Bits:
    """An H.264 RBSP bit writer (u(n), ue(v)), for SPS the tests craft."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, count: int, value: int) -> Bits:
        self.bits += [(value >> (count - 1 - i)) & 1 for i in range(count)]
        return self

    def ue(self, value: int) -> Bits:
        code = value + 1
        return self.u(code.bit_length() * 2 - 1, code)

    def bytes(self) -> bytes:
        bits = self.bits + [1] + [0] * (-(len(self.bits) + 1) % 8)  # rbsp_stop_one_bit, alignment
        return bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))


def cropped_away_sps() -> bytes:
    """A baseline SPS of one 16x16 macroblock cropped by 200 pixels each side: width below zero."""
    rbsp = (Bits().u(8, 66).u(8, 0).u(8, 30).ue(0).ue(0).ue(2).ue(1).u(1, 0).ue(0).ue(0).u(1, 1).u(1, 1)
            .u(1, 1).ue(100).ue(100).ue(0).ue(0).u(1, 0).bytes())
    return b"\x67" + rbsp


def annexb(*nals: bytes) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + nal for nal in nals)


def open_segment_fds(folder) -> int:
    """Descriptors this process holds on segment files under `folder`: a leaked segment shows here,
    while descriptors other threads of the test worker open and close meanwhile do not."""
    return len(files_open_under(folder, suffix=".mp4"))


def hostile_variants(packet: EncodedPacket, number: int) -> EncodedPacket:
    """Every 7th packet turned hostile in one of three ways the issue lists."""
    kind = number // 7 % 3
    if kind == 0:
        packet.data = annexb(b"\x67\x42") + packet.data  # an in-band SPS under 4 bytes
    elif kind == 1:
        packet.data = annexb(cropped_away_sps(), b"\x68\xce\x38\x80") + packet.data
    else:
        packet.pts = packet.dts + (1 << 40)  # pts - dts = 2^40
    return packet


def test_push_never_raises_on_hostile_packets_and_leaks_no_file_descriptor(tmp_path, index, clocks):
    seg = make_segmenter(tmp_path, index, clocks, segment_seconds=2)
    for reconnect in range(6):
        source = pattern_source(clocks)
        seg.start_run(source.open())
        for number, packet in enumerate(source.packets()):
            seg.push(hostile_variants(packet, number) if number % 7 == 3 else packet)  # must not raise
            if number == 100:
                break
        seg.finish()
        source.close()
    assert open_segment_fds(tmp_path) == 0  # one fd leaked per reconnect before the fix
    assert seg.stats.bad_packets > 0
    rows = index.segments()
    assert rows, "the good packets between the hostile ones were recorded"
    for row in rows:  # whole files (the frames after a garbage SPS need not decode: the camera sent them so)
        contents = read_segment(tmp_path / row.path)
        assert contents.usable_bytes == contents.file_bytes and len(contents.samples) == row.frames
    assert decoded_frames(tmp_path / rows[0].path) == rows[0].frames  # before any hostile parameter set


def test_an_unforeseen_failure_closes_the_segment_instead_of_leaking_it(tmp_path, index, clocks, monkeypatch):
    import struct

    import recorder.segmenter as segmenter_module

    real = segmenter_module.media_fragment_parts
    calls = []

    def fails_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise struct.error("argument out of range")  # what a 2^40 composition offset once raised
        return real(*args, **kwargs)

    monkeypatch.setattr(segmenter_module, "media_fragment_parts", fails_once)
    seg = make_segmenter(tmp_path, index, clocks, segment_seconds=10)
    source = pattern_source(clocks)
    seg.start_run(source.open())
    open_while_recording = None
    for number, packet in enumerate(source.packets()):
        if number == 1:
            open_while_recording = open_segment_fds(tmp_path)
        seg.push(packet)
        if number == 150:
            break
    seg.finish()
    source.close()
    assert open_while_recording == 1  # the check below would prove nothing otherwise
    assert open_segment_fds(tmp_path) == 0 and seg.stats.bad_packets == 1
    rows = index.segments()
    assert len(rows) == 2 and all(decoded_frames(tmp_path / r.path) == r.frames for r in rows)


def test_timestamps_that_barely_move_still_make_fragments_of_bounded_size(tmp_path, index, clocks):
    """A camera whose frames are a tick apart would have had the segmenter hold frames until a second
    of media time gathered (90000 frames); fragments are written at MAX_FRAGMENT_SAMPLES instead."""
    from fractions import Fraction

    from recorder.fmp4 import TIMESCALE
    from recorder.segmenter import MAX_FRAGMENT_SAMPLES

    seg = make_segmenter(tmp_path, index, clocks, segment_seconds=60)
    source = pattern_source(clocks)
    info = source.open()
    seg.start_run(info)
    per_tick = int(1 / (Fraction(info.time_base) * TIMESCALE)) or 1  # one 90 kHz tick in the source's units
    for number, packet in enumerate(source.packets()):
        packet.dts = packet.pts = number * per_tick
        seg.push(packet)
        assert len(seg._segment.fragment if seg._segment else []) <= MAX_FRAGMENT_SAMPLES
        if number == 2 * MAX_FRAGMENT_SAMPLES + 10:
            break
    assert seg._segment is not None and seg._segment.fragments_queued == 2  # written behind, on the I/O thread
    seg.finish()
    source.close()
    row = index.segments()[0]
    assert read_segment(tmp_path / row.path).fragments == 3 and row.frames == 2 * MAX_FRAGMENT_SAMPLES + 11
