"""Decoding for tiles: both packet framings decode, late packets drop to the next keyframe, a feed that keeps
falling behind decodes keyframes only for a while."""
from __future__ import annotations

from dataclasses import replace

import pytest

from base.clock import SimulatedClocks
from base.media import EncodedPacket
from base.h264 import avcc_record, to_mp4_sample
from recorder.live import LiveHub

import appliance.monitor.feeds as feeds_module
from appliance.monitor.decode import H264Decoder, Scaler
from appliance.monitor.feeds import LiveFeed
from support.recording import test_pattern_source as pattern_source


@pytest.fixture(scope="module")
def clip():
    """About 2 s of a 160x120 test pattern in H.264 (Annex B), a keyframe every 0.4 s."""
    clocks = SimulatedClocks()
    source = pattern_source(clocks, keyframe_interval_s=0.4)
    info = source.open()
    packets = []
    for packet in source.packets():
        packets.append(packet)
        if len(packets) >= 50:
            break
    source.close()
    return info, packets


def test_annex_b_packets_decode_and_scale_to_rgb(clip):
    info, packets = clip
    decoder = H264Decoder(info)
    frames = [frame for packet in packets for frame in decoder.decode(packet)]
    assert len(frames) >= len(packets) - 2 and decoder.errors == 0
    picture = Scaler().rgb(frames[-1], 88, 72)
    assert picture.shape == (72, 88, 3) and picture.std() > 5


def test_length_prefixed_packets_with_avcc_extradata_decode_from_any_keyframe(clip):
    info, packets = clip
    units = [to_mp4_sample(packet.data) for packet in packets]
    sps = next(unit.sps for unit in units if unit.sps)
    pps = next(unit.pps for unit in units if unit.pps)
    avcc_info = replace(info, extradata=avcc_record(sps, pps))
    converted = [replace(packet, data=unit.sample) for packet, unit in zip(packets, units)]
    second_keyframe = [index for index, packet in enumerate(converted) if packet.keyframe][1]
    decoder = H264Decoder(avcc_info)  # a viewer joining mid-stream starts at a keyframe without in-band SPS/PPS
    frames = [frame for packet in converted[second_keyframe:] for frame in decoder.decode(packet)]
    assert len(frames) >= len(converted) - second_keyframe - 2 and decoder.errors == 0


def test_a_malformed_packet_is_counted_and_skipped(clip):
    info, packets = clip
    unit = to_mp4_sample(packets[0].data)
    decoder = H264Decoder(replace(info, extradata=avcc_record(unit.sps, unit.pps)))
    assert decoder.decode(EncodedPacket(b"\x00\x00\x10\x00\x65", 0, 0, True)) == []  # a NAL longer than the packet
    assert decoder.errors == 1
    assert decoder.decode(replace(packets[0], data=unit.sample))  # the next good one decodes


class RecordingDecoder:
    codec_name, errors = "fake", 0

    def __init__(self):
        self.packets = []

    def decode(self, packet):
        self.packets.append(packet.pts)
        return [object()]


def feed_with(clocks) -> tuple[LiveFeed, RecordingDecoder]:
    feed = LiveFeed(channel=1, live=LiveHub().stream(1), fps=25, clocks=clocks)
    feed._decoder = RecordingDecoder()
    return feed, feed._decoder


def packet(pts: int, *, keyframe: bool, age_s: float, clocks) -> EncodedPacket:
    return EncodedPacket(b"", pts, pts, keyframe, clocks.monotonic_us() - int(age_s * 1e6))


def test_late_packets_drop_to_the_next_keyframe_instead_of_queueing():
    clocks = SimulatedClocks()
    feed, decoder = feed_with(clocks)
    feed._take(packet(0, keyframe=True, age_s=0, clocks=clocks))
    feed._take(packet(1, keyframe=False, age_s=0.1, clocks=clocks))
    feed._take(packet(2, keyframe=False, age_s=0.9, clocks=clocks))  # late
    feed._take(packet(3, keyframe=False, age_s=0.0, clocks=clocks))  # fresh, but depends on the dropped one
    feed._take(packet(4, keyframe=True, age_s=0.0, clocks=clocks))
    feed._take(packet(5, keyframe=False, age_s=0.0, clocks=clocks))
    assert decoder.packets == [0, 1, 4, 5] and feed.frames_dropped == 2


def test_a_feed_that_keeps_falling_behind_decodes_keyframes_only_for_a_while():
    clocks = SimulatedClocks()
    feed, decoder = feed_with(clocks)
    pts = 0
    for _ in range(feeds_module.BEHIND_LIMIT):
        feed._take(packet(pts, keyframe=True, age_s=0, clocks=clocks))
        feed._take(packet(pts + 1, keyframe=False, age_s=2, clocks=clocks))
        pts += 2
        clocks.advance(1)
    assert feed.keyframes_only_spells == 1 and feed.statistics()["keyframes_only"]
    decoder.packets.clear()
    feed._take(packet(100, keyframe=True, age_s=0, clocks=clocks))
    feed._take(packet(101, keyframe=False, age_s=0, clocks=clocks))  # fresh, still skipped
    assert decoder.packets == [100]
    clocks.advance(feeds_module.KEYFRAMES_ONLY_S)
    feed._take(packet(102, keyframe=True, age_s=0, clocks=clocks))
    feed._take(packet(103, keyframe=False, age_s=0, clocks=clocks))
    assert decoder.packets == [100, 102, 103] and not feed.statistics()["keyframes_only"]
