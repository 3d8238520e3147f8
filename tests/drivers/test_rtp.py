"""RTP depacketizing, sans-IO: H.264 (RFC 6184), AAC (RFC 3640), G.711, sequence and timestamp tracking,
RTCP, and malformed or random input (rejected and counted, never a crash)."""
from __future__ import annotations

import random
import struct

import pytest
from support.rtp_bytes import AUD, IDR, P_SLICE, PPS, SPS, aac_payload, fu_a, length_prefixed, rtp, stap_a

from drivers.rtsp.rtp import (AacDepacketizer, G711Depacketizer, H264Depacketizer, RtpTrack, parse_rtcp,
                         receiver_report)


def h264_track() -> RtpTrack:
    return RtpTrack(H264Depacketizer(), payload_type=96, clock_rate=90000)


def feed(track: RtpTrack, packets: list[bytes]) -> list[tuple[bytes, int, bool]]:
    out: list = []
    for packet in packets:
        track.receive(memoryview(packet), out)
    return out


def packets_of(frames: list[list[bytes]], *, seq: int = 100, ts: int = 1000, step: int = 3600) -> list[bytes]:
    """RTP packets for frames given as lists of payloads; the last payload of each frame has the marker."""
    out = []
    for number, payloads in enumerate(frames):
        for index, payload in enumerate(payloads):
            out.append(rtp(seq, ts + number * step, payload, marker=index == len(payloads) - 1))
            seq += 1
    return out


# H.264


def test_single_nal_units_make_one_length_prefixed_keyframe_without_delimiters():
    track = h264_track()
    frames = feed(track, packets_of([[AUD, SPS, PPS, IDR]]))
    assert frames == [(length_prefixed(SPS, PPS, IDR), 1000, True)]
    assert track.depacketizer.sps == SPS and track.depacketizer.pps == PPS


def test_stap_a_and_fu_a_are_reassembled():
    track = h264_track()
    frames = feed(track, packets_of([[stap_a(SPS, PPS), *fu_a(IDR, 3)], [*fu_a(P_SLICE, 2)]]))
    assert frames == [(length_prefixed(SPS, PPS, IDR), 1000, True), (length_prefixed(P_SLICE), 4600, False)]
    assert track.stats.frames == 2 and track.stats.packets == 6


def test_a_timestamp_change_ends_a_frame_whose_marker_was_not_set():
    track = h264_track()
    packets = [rtp(1, 0, IDR), rtp(2, 3600, P_SLICE, marker=True)]
    assert feed(track, packets) == [(length_prefixed(IDR), 0, True), (length_prefixed(P_SLICE), 3600, False)]


def test_parameter_sets_alone_are_carried_into_the_next_frame():
    track = h264_track()
    packets = [rtp(1, 0, stap_a(SPS, PPS), marker=True), rtp(2, 3600, IDR, marker=True)]
    assert feed(track, packets) == [(length_prefixed(SPS, PPS, IDR), 3600, True)]


def test_a_lost_fragment_drops_the_frame_and_everything_up_to_the_next_keyframe():
    track = h264_track()
    packets = packets_of([[*fu_a(IDR, 3)], [P_SLICE], [P_SLICE], [*fu_a(IDR, 2)], [P_SLICE]])
    del packets[1]  # the middle of the first keyframe
    frames = feed(track, packets)
    assert [(ts, key) for _, ts, key in frames] == [(1000 + 3 * 3600, True), (1000 + 4 * 3600, False)]
    assert (track.stats.lost, track.stats.gaps, track.stats.dropped_frames) == (1, 1, 3)


def test_a_fragment_whose_start_was_lost_is_dropped():
    track = h264_track()
    middle_and_end = fu_a(IDR, 3)[1:]
    frames = feed(track, [rtp(1, 0, P_SLICE, marker=True), rtp(3, 3600, middle_and_end[0]),
                          rtp(4, 3600, middle_and_end[1], marker=True), rtp(5, 7200, IDR, marker=True)])
    assert [(ts, key) for _, ts, key in frames] == [(0, False), (7200, True)]


def test_sequence_numbers_wrap_without_loss_and_late_packets_are_dropped():
    track = h264_track()
    packets = [rtp(65534, 0, IDR, marker=True), rtp(65535, 3600, P_SLICE, marker=True),
               rtp(0, 7200, P_SLICE, marker=True), rtp(65535, 3600, P_SLICE, marker=True),
               rtp(1, 10800, P_SLICE, marker=True)]
    frames = feed(track, packets)
    assert len(frames) == 4 and track.stats.lost == 0 and track.stats.duplicates == 1
    assert track.extended_max_seq == 65536 + 1


def test_rtp_timestamps_are_unwrapped_past_32_bits():
    track = h264_track()
    start = 0xFFFFFFFF - 3600
    packets = [rtp(n, start + n * 3600, IDR if n == 0 else P_SLICE, marker=True) for n in range(4)]
    assert [ts for _, ts, _ in feed(track, packets)] == [start + n * 3600 for n in range(4)]


def test_header_extension_csrcs_and_padding_are_skipped():
    track = h264_track()
    packet = rtp(1, 0, IDR, marker=True, csrcs=2, extension=b"\x10\xff\x00\x00", padding=3)
    assert feed(track, [packet]) == [(length_prefixed(IDR), 0, True)]


@pytest.mark.parametrize("packet", [
    b"\x80\x60\x00",  # shorter than a header
    bytes([0x40, 0x60]) + bytes(10),  # RTP version 1
    rtp(1, 0, IDR, pt=97),  # another payload type
    rtp(1, 0, IDR)[:12] + b"\xbe\xde\x00\x09" + IDR,  # extension longer than the packet
    rtp(1, 0, IDR, padding=1)[:-1] + b"\xff",  # padding longer than the packet
], ids=["short", "version", "payload-type", "extension", "padding"])
def test_malformed_rtp_headers_are_counted_and_dropped(packet):
    track = h264_track()
    assert feed(track, [packet]) == [] and track.stats.bad_packets == 1


@pytest.mark.parametrize("payload", [
    b"\x1c\x85",  # FU-A with no data
    b"\x1c\x80" + b"x",  # FU-A of NAL type 0
    b"\x19" + bytes(10),  # STAP-B: interleaved mode
    b"\x18\x00\x50\x67",  # STAP-A whose NAL length runs past the end
    b"\xe5\x00",  # forbidden bit set
], ids=["fu-a-short", "fu-a-type-0", "stap-b", "stap-a-length", "forbidden-bit"])
def test_malformed_h264_payloads_are_counted_and_the_frame_dropped(payload):
    track = h264_track()
    frames = feed(track, [rtp(1, 0, IDR), rtp(2, 0, payload, marker=True), rtp(3, 3600, P_SLICE, marker=True),
                          rtp(4, 7200, IDR, marker=True)])
    assert track.stats.bad_packets == 1
    assert [(ts, key) for _, ts, key in frames] == [(7200, True)]  # the damaged frame and its successor dropped


# audio


def test_aac_hbr_packets_give_one_frame_per_access_unit():
    track = RtpTrack(AacDepacketizer(), payload_type=97, clock_rate=16000)
    frames = feed(track, [rtp(1, 5000, aac_payload(b"\x21" * 30, b"\x22" * 40), pt=97, marker=True)])
    assert frames == [(b"\x21" * 30, 5000, True), (b"\x22" * 40, 6024, True)]


def test_an_aac_access_unit_split_over_packets_is_reassembled():
    track = RtpTrack(AacDepacketizer(), payload_type=97, clock_rate=16000)
    frame = bytes(range(256)) * 2
    header = struct.pack("!HH", 16, len(frame) << 3)
    frames = feed(track, [rtp(1, 0, header + frame[:300], pt=97), rtp(2, 0, header + frame[300:], pt=97, marker=True)])
    assert frames == [(frame, 0, True)]


@pytest.mark.parametrize("payload", [b"\x00", b"\x00\x00\x01", b"\x00\x20\x00\x80\x00\x80" + b"x"])  # two AUs, 1 byte
def test_malformed_aac_payloads_are_counted(payload):
    track = RtpTrack(AacDepacketizer(), payload_type=97, clock_rate=16000)
    assert feed(track, [rtp(1, 0, payload, pt=97)]) == [] and track.stats.bad_packets == 1


def test_g711_payloads_are_frames_as_they_are():
    track = RtpTrack(G711Depacketizer(), payload_type=0, clock_rate=8000)
    assert feed(track, [rtp(1, 160, b"\xff" * 160, pt=0)]) == [(b"\xff" * 160, 160, True)]


# RTCP


def test_receiver_report_carries_loss_and_the_last_sender_report():
    track = h264_track()
    feed(track, [rtp(10, 0, IDR, marker=True, ssrc=0xABCD), rtp(13, 3600, P_SLICE, marker=True, ssrc=0xABCD)])
    packet = receiver_report(0x1111, [track.report_block(lsr=0x12345678, dlsr=65536)], cname="nvr@test")
    version_count, kind, length, reporter = struct.unpack_from("!BBHI", packet)
    assert (version_count, kind, length, reporter) == (0x81, 201, 7, 0x1111)
    ssrc, fraction, lost, highest, jitter, lsr, dlsr = struct.unpack_from("!IB3sIIII", packet, 8)
    assert (ssrc, fraction, int.from_bytes(lost, "big"), highest, lsr, dlsr) == (0xABCD, 128, 2, 13, 0x12345678, 65536)
    sdes = packet[32:]
    assert sdes[1] == 202 and len(sdes) == (struct.unpack_from("!H", sdes, 2)[0] + 1) * 4 and b"nvr@test" in sdes


def test_sender_reports_and_bye_are_read_from_compound_rtcp():
    sr = struct.pack("!BBHIIIIII", 0x80, 200, 6, 0xABCD, 0xE1234567, 0x89AB0000, 9000, 10, 1000)
    bye = struct.pack("!BBHI", 0x81, 203, 1, 0xABCD)
    reports, saw_bye = parse_rtcp(sr + bye)
    assert [(r.ssrc, r.ntp_middle, r.rtp_timestamp) for r in reports] == [(0xABCD, 0x456789AB, 9000)] and saw_bye
    assert parse_rtcp(b"\x80\xc8\xff\xff" + bytes(8)) == ([], False)  # a length past the end


# random input


def test_random_bytes_never_crash_the_depacketizers():
    rng = random.Random(1234)
    tracks = [h264_track(), RtpTrack(AacDepacketizer(), payload_type=96, clock_rate=16000),
              RtpTrack(G711Depacketizer(), payload_type=96, clock_rate=8000)]
    valid = packets_of([[stap_a(SPS, PPS), *fu_a(IDR, 4)], [*fu_a(P_SLICE, 2)]] * 5)
    for _ in range(3000):
        if rng.random() < 0.5:
            packet = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 60)))
            packet = bytes([0x80, 96]) + packet if rng.random() < 0.7 else packet
        else:  # a valid packet with some bytes flipped or cut
            packet = bytearray(rng.choice(valid))
            for _ in range(rng.randrange(1, 4)):
                packet[rng.randrange(len(packet))] = rng.getrandbits(8)
            packet = bytes(packet[:rng.randrange(1, len(packet) + 1)])
        for track in tracks:
            out: list = []
            track.receive(memoryview(packet), out)
            for data, ts, key in out:
                assert isinstance(data, bytes) and isinstance(ts, int) and isinstance(key, bool)
    for track in tracks:
        parse_rtcp(bytes(rng.getrandbits(8) for _ in range(64)))
        assert track.stats.bad_packets > 0
