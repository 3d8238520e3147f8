"""H.264 and MP4 byte handling: Annex B and AVCC framing, avcC records, SPS sizes, box parsing."""
from __future__ import annotations

from fractions import Fraction

import pytest

from base.h264 import (ANNEX_B, H264Error, avcc_record, parameter_sets, parse_avcc_record, parse_sps, split_annexb,
                           split_length_prefixed, stream_framing, to_mp4_sample)
from recorder.mp4 import Mp4Error, box, iter_boxes



def _encoded_parameter_sets(width: int, height: int, **options) -> tuple[bytes, bytes]:
    """SPS and PPS from a real libx264 encode of one frame."""
    import av
    import numpy as np

    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.time_base = Fraction(1, 25)
    codec.options = {"preset": "ultrafast", **options}
    codec.open()
    frame = av.VideoFrame.from_ndarray(np.zeros((height * 3 // 2, width), np.uint8), format="yuv420p")
    frame.pts = 0
    data = b"".join(bytes(p) for p in codec.encode(frame)) + b"".join(bytes(p) for p in codec.encode(None))
    unit = to_mp4_sample(data)
    return unit.sps, unit.pps


def test_annexb_is_split_on_three_and_four_byte_start_codes():
    data = b"\x00\x00\x00\x01\x67abc\x00\x00\x01\x68de\x00\x00\x00\x01\x65fgh"
    assert split_annexb(data) == [b"\x67abc", b"\x68de", b"\x65fgh"]


def test_length_prefixed_nals_are_split_and_overruns_rejected():
    assert split_length_prefixed(b"\x00\x00\x00\x02\x65a\x00\x00\x00\x01\x41") == [b"\x65a", b"\x41"]
    with pytest.raises(H264Error, match="runs past"):
        split_length_prefixed(b"\x00\x00\x00\x09\x65a")


def test_a_sample_loses_its_parameter_sets_and_delimiter_and_gains_length_prefixes():
    unit = to_mp4_sample(b"\x00\x00\x00\x01\x09\xf0\x00\x00\x00\x01\x67SPS!\x00\x00\x00\x01\x68PP\x00\x00\x01\x65slice")
    assert unit.sample == b"\x00\x00\x00\x06\x65slice"
    assert unit.sps == b"\x67SPS!" and unit.pps == b"\x68PP" and unit.idr


def test_avcc_record_round_trips():
    sps, pps = _encoded_parameter_sets(320, 240)
    record = avcc_record(sps, pps)
    assert record[:4] == bytes([1, sps[1], sps[2], sps[3]])
    assert parse_avcc_record(record) == ([sps], [pps], 4)
    assert parameter_sets(record) == (sps, pps)
    assert parameter_sets(b"\x00\x00\x00\x01" + sps + b"\x00\x00\x00\x01" + pps) == (sps, pps)


@pytest.mark.parametrize("width,height", [(1920, 1080), (720, 576), (352, 288), (642, 362), (320, 240)])
def test_sps_gives_the_cropped_picture_size(width, height):
    sps, _ = _encoded_parameter_sets(width, height)
    info = parse_sps(sps)
    assert (info.width, info.height) == (width, height)


def test_sps_with_high_profile_scaling_lists_is_parsed():
    sps, _ = _encoded_parameter_sets(1280, 720, **{"x264-params": "cqm=jvt"})
    assert (parse_sps(sps).width, parse_sps(sps).height, parse_sps(sps).profile_idc) == (1280, 720, 100)


def test_garbage_is_not_an_sps():
    with pytest.raises(H264Error):
        parse_sps(b"\x68\x00\x00")
    with pytest.raises(H264Error):
        parse_sps(b"\x67\x64\x00")


def test_boxes_are_walked_and_overruns_reported():
    data = box(b"moov", box(b"trak", b"xyz")) + box(b"free", b"abcd")
    assert [(b.kind, b.start, b.end) for b in iter_boxes(data)] == [(b"moov", 0, 19), (b"free", 19, 31)]
    with pytest.raises(Mp4Error, match="past"):
        list(iter_boxes(data[:-1]))


def test_length_prefixed_packets_that_look_like_start_codes_follow_the_streams_framing():
    nal = b"\x65" + b"\xab" * 299  # 300 bytes: its 4-byte length is 00 00 01 2c, like a start code
    packet = len(nal).to_bytes(4, "big") + nal
    sps, pps = _encoded_parameter_sets(160, 120)
    framing = stream_framing(avcc_record(sps, pps))
    assert framing == 4
    assert to_mp4_sample(packet, framing).sample == packet
    assert stream_framing(None) == ANNEX_B and stream_framing(b"\x00\x00\x00\x01" + sps) == ANNEX_B


def test_an_mp4_ready_sample_passes_through_uncopied_and_others_are_converted():
    slice_ = b"\x41\x9a" + bytes(30)
    ready = len(slice_).to_bytes(4, "big") + slice_
    unit = to_mp4_sample(ready, 4)
    assert unit.sample is ready and not unit.idr and unit.sps is None  # the native RTSP client's P-frames
    sps, pps, idr = b"\x67\x42\xc0\x1e\x01", b"\x68\xce", b"\x65\x88" + bytes(10)
    keyframe = b"".join(len(n).to_bytes(4, "big") + n for n in (sps, pps, idr))
    unit = to_mp4_sample(keyframe, 4)
    assert (unit.sample, unit.sps, unit.pps, unit.idr) == (len(idr).to_bytes(4, "big") + idr, sps, pps, True)
    with pytest.raises(H264Error):
        to_mp4_sample(ready[:-1], 4)  # a length running past the end is still an error
