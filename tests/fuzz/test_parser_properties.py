"""Properties of the byte parsers a camera or a wire reaches, checked with Hypothesis.

Where a format can be written, what the writer (ours, or the RFC's layout in tests/support/rtp_bytes.py)
makes must come back whole from the parser, however the bytes are cut into reads; where it cannot,
the parser must keep to its contract on damaged input. Each property runs a fixed number of examples
from a fixed seed (`derandomize`), so a CI run is repeatable; the open-ended search is atheris's
(tests/fuzz/test_fuzz_targets.py, ./dev fuzz).
"""
from __future__ import annotations

import os
import shutil
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.pelco.protocol import Ack, Aux, Move, PositionReport, Preset, Query, SetPosition, encode
from drivers.pelco.stream import FrameDecoder
from drivers.rtsp.rtp import AacDepacketizer, H264Depacketizer, RtpTrack
from drivers.rtsp.protocol import RtspStreamParser, build_request, build_response
from drivers.rtsp.sdp import h264_parameter_sets, parse_sdp
from recorder.aac import SAMPLE_RATES, parse_audio_specific_config, split_adts
from recorder.fmp4 import read_segment
from recorder.index import Index
from recorder.recovery import recover
from support.recording import make_segmenter, record
from support.rtp_bytes import aac_payload, fu_a, interleaved, rtp, stap_a

PROPERTY = settings(max_examples=150, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
chunk_sizes = st.lists(st.integers(1, 700), min_size=1, max_size=20)


def feed_in_chunks(parser, data: bytes, sizes: list[int]) -> list:
    out, pos, turn = [], 0, 0
    while pos < len(data):
        size = sizes[turn % len(sizes)]
        out += parser.feed(data[pos:pos + size])
        pos, turn = pos + size, turn + 1
    return out


# --- RTSP ----------------------------------------------------------------------------------------------

reasons = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(str.strip)
methods = st.sampled_from(["OPTIONS", "DESCRIBE", "SETUP", "PLAY", "GET_PARAMETER", "SET_PARAMETER", "TEARDOWN"])
items = st.one_of(
    st.tuples(st.just("response"), st.integers(100, 599), reasons, st.integers(0, 2**31)),
    st.tuples(st.just("request"), methods, st.integers(0, 2**31)),
    st.tuples(st.just("packet"), st.integers(0, 3), st.binary(max_size=1500)),
)


@PROPERTY
@given(st.lists(items, max_size=12), chunk_sizes)
def test_rtsp_messages_and_interleaved_packets_come_out_whole_and_in_order_however_the_reads_cut_them(sequence, sizes):
    parser = RtspStreamParser()
    packets = []
    parser.handlers = {ch: (lambda view, ch=ch: packets.append((ch, bytes(view)))) for ch in range(4)}
    wire = b"".join(
        build_response(item[1], item[2], item[3]) if item[0] == "response"
        else build_request(item[1], "rtsp://10.0.0.5/ch1", item[2]) if item[0] == "request"
        else interleaved(item[1], item[2])
        for item in sequence)
    messages = feed_in_chunks(parser, wire, sizes)
    assert packets == [(item[1], item[2]) for item in sequence if item[0] == "packet"]
    expected = [(item[1], item[2] or "", item[3]) if item[0] == "response" else (item[1], item[2])
                for item in sequence if item[0] != "packet"]
    got = [(m.status, m.reason, m.cseq) if m.status else (m.method, m.cseq) for m in messages]
    assert got == expected
    assert parser.skipped_bytes == 0 and parser.buffered == 0


# --- SDP -------------------------------------------------------------------------------------------------

@PROPERTY
@given(st.integers(96, 127), st.sampled_from(["H264", "H265"]), st.sampled_from([90000]),
       st.lists(st.binary(min_size=1, max_size=60), max_size=3), st.sampled_from(["\r\n", "\n"]),
       st.sampled_from(["trackID=1", "rtsp://10.0.0.5/ch1/v", "*", ""]))
def test_a_described_video_track_parses_back_with_its_parameter_sets(pt, encoding, rate, sets, newline, control):
    import base64

    sprop = ",".join(base64.b64encode(s).decode() for s in sets)
    lines = ["v=0", "o=- 1 1 IN IP4 10.0.0.5", "s=cam", "t=0 0", "a=control:*", f"m=video 0 RTP/AVP {pt}",
             f"a=rtpmap:{pt} {encoding}/{rate}", f"a=fmtp:{pt} packetization-mode=1;sprop-parameter-sets={sprop}"]
    if control:
        lines.append(f"a=control:{control}")
    description = parse_sdp(newline.join(lines).encode(), base_url="rtsp://10.0.0.5/ch1")
    media = description.first("video")
    assert (media.payload_type, media.encoding, media.clock_rate) == (pt, encoding, rate)
    assert h264_parameter_sets(media.fmtp) == list(sets)
    assert media.control == {"": "rtsp://10.0.0.5/ch1", "*": "rtsp://10.0.0.5/ch1",
                             "trackID=1": "rtsp://10.0.0.5/ch1/trackID=1"}.get(control, control)


# --- RTP depacketizers ---------------------------------------------------------------------------------

nal_bodies = st.binary(min_size=1, max_size=3000)
access_units = st.tuples(
    st.lists(st.sampled_from([6, 7, 8]), max_size=3),  # SEI / SPS / PPS before the picture
    st.sampled_from([1, 5]), nal_bodies,
)


def _packetize(nals: list[bytes], mtu: int, aggregate: bool) -> list[bytes]:
    """RFC 6184 payloads of one access unit: STAP-A for small runs (if `aggregate`), FU-A above the MTU."""
    payloads, pending = [], []
    for nal in nals:
        if len(nal) > mtu:
            if pending:
                payloads.append(stap_a(*pending) if len(pending) > 1 else pending[0])
                pending = []
            payloads += fu_a(nal, -(-(len(nal) - 1) // (mtu - 2)))
        elif aggregate and sum(len(n) + 2 for n in pending) + len(nal) + 3 <= mtu:
            pending.append(nal)
        else:
            if pending:
                payloads.append(stap_a(*pending) if len(pending) > 1 else pending[0])
            pending = [nal]
    if pending:
        payloads.append(stap_a(*pending) if len(pending) > 1 else pending[0])
    return payloads


@PROPERTY
@given(st.lists(access_units, min_size=1, max_size=6), st.integers(40, 1400), st.booleans(), st.integers(0, 65535))
def test_h264_access_units_come_back_whole_from_any_packetization(units, mtu, aggregate, first_seq):
    track = RtpTrack(H264Depacketizer(), payload_type=96, clock_rate=90000)
    frames, expected, seq = [], [], first_seq
    for number, (prefix, picture_type, body) in enumerate(units):
        nals = [bytes((0x60 | kind,)) + bytes((number, 0x42, kind)) for kind in prefix]
        nals.append(bytes((0x60 | picture_type,)) + body)
        payloads = _packetize(nals, mtu, aggregate)
        for index, payload in enumerate(payloads):
            track.receive(memoryview(rtp(seq, 3000 * number, payload, marker=index == len(payloads) - 1)), frames)
            seq += 1
        expected.append(b"".join(len(n).to_bytes(4, "big") + n for n in nals))
    assert [f[0] for f in frames] == expected
    assert [f[1] for f in frames] == [3000 * n for n in range(len(units))]
    assert track.stats.bad_packets == 0


@PROPERTY
@given(st.lists(st.lists(st.binary(min_size=1, max_size=400), min_size=1, max_size=4), min_size=1, max_size=5))
def test_aac_hbr_access_units_come_back_whole(packets):
    track = RtpTrack(AacDepacketizer(), payload_type=97, clock_rate=16000)
    frames = []
    for number, units in enumerate(packets):
        track.receive(memoryview(rtp(number, 4096 * number, aac_payload(*units), marker=True, pt=97)), frames)
    assert [f[0] for f in frames] == [u for units in packets for u in units]
    assert [f[1] for f in frames] == [4096 * n + 1024 * i for n, units in enumerate(packets) for i in range(len(units))]


# --- SPS from libx264 --------------------------------------------------------------------------------------

@settings(PROPERTY, max_examples=25)
@given(st.integers(8, 400).map(lambda n: 2 * n), st.integers(8, 300).map(lambda n: 2 * n),
       st.sampled_from(["baseline", "main", "high"]), st.booleans(), st.sampled_from([10, 25, 30]))
def test_the_sps_libx264_writes_gives_back_the_picture_size_and_rate(width, height, profile, interlaced, fps):
    import av
    import numpy as np

    from base.h264 import parse_sps
    from base.h264 import parameter_sets

    interlaced = interlaced and profile != "baseline"
    if interlaced:
        height -= height % 4  # 4:2:0 fields need a height of whole chroma rows per field
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.time_base, codec.framerate, codec.profile = Fraction(1, fps), Fraction(fps, 1), profile
    codec.options = {"preset": "ultrafast", "x264-params": "interlaced=1" if interlaced else ""}
    frame = av.VideoFrame.from_ndarray(np.zeros((height * 3 // 2, width), dtype=np.uint8), format="yuv420p")
    frame.pts = 0
    first = b"".join(bytes(p) for p in [*codec.encode(frame), *codec.encode(None)])
    sps, _pps = parameter_sets(first)
    info = parse_sps(sps)
    assert (info.width, info.height) == (width, height)
    assert info.fps is None or abs(info.fps - fps) < 0.01


# --- ADTS --------------------------------------------------------------------------------------------------

@PROPERTY
@given(st.integers(0, 3), st.integers(0, len(SAMPLE_RATES) - 1), st.integers(1, 7), st.booleans(),
       st.binary(max_size=2000))
def test_an_adts_frame_splits_into_its_payload_and_the_config_its_header_states(profile, index, channels, crc, payload):
    header_bytes = 7 if not crc else 9
    length = header_bytes + len(payload)
    header = bytes((0xFF, 0xF0 | (0 if crc else 1), (profile << 6) | (index << 2) | (channels >> 2),
                    ((channels & 3) << 6) | (length >> 11), (length >> 3) & 0xFF, ((length & 7) << 5) | 0x1F, 0xFC))
    frame = header + (b"\x12\x34" if crc else b"") + payload
    raw, asc = split_adts(frame)
    config = parse_audio_specific_config(asc)
    assert raw == payload
    assert (config.object_type, config.sample_rate, config.channels) == (profile + 1, SAMPLE_RATES[index], channels)


# --- Pelco --------------------------------------------------------------------------------------------------

speeds = st.integers(0, 0x3F)
messages = st.one_of(
    st.builds(PositionReport, st.sampled_from(["pan", "tilt"]), st.integers(0, 35999)),
    st.builds(PositionReport, st.just("zoom"), st.integers(0, 65535)),
    st.builds(Move, pan=st.sampled_from([-1, 0, 1]), tilt=st.sampled_from([-1, 0, 1]),
              zoom=st.sampled_from([-1, 0, 1]), pan_speed=speeds, tilt_speed=speeds),
    st.builds(Preset, st.sampled_from(["set", "clear", "go"]), st.integers(1, 255)),
    st.builds(Aux, st.booleans(), st.integers(1, 8)),
    st.builds(SetPosition, st.sampled_from(["pan", "tilt"]), st.integers(0, 35999)),
    st.builds(Query, st.sampled_from(["pan", "tilt", "zoom"])),
)


@PROPERTY
@given(st.sampled_from(["pelco-d", "pelco-p"]), st.lists(st.tuples(st.integers(0, 255), messages), max_size=10),
       st.binary(max_size=6).filter(lambda noise: b"\xff" not in noise and b"\xa0" not in noise), chunk_sizes)
def test_pelco_frames_decode_to_what_was_encoded_with_sync_free_noise_between_and_any_reads(protocol, sent, noise, sizes):
    decoder = FrameDecoder(protocol, role="host")
    wire = b"".join(noise + encode(protocol, address, message) for address, message in sent)
    frames = feed_in_chunks(decoder, wire, sizes) + decoder.idle()
    assert [(f.address, f.message) for f in frames] == sent
    assert decoder.garbage_bytes == len(noise) * len(sent)


@PROPERTY
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255)), max_size=10))
def test_pelco_d_general_responses_back_to_back_all_decode(acks):
    decoder = FrameDecoder("pelco-d", role="host")
    frames = decoder.feed(b"".join(encode("pelco-d", address, Ack(faults)) for address, faults in acks))
    frames += decoder.idle()
    assert [(f.address, f.message) for f in frames] == [(address, Ack(faults)) for address, faults in acks]


# --- the recorder's segments, cut or damaged, through the recovery pass --------------------------------------

@pytest.fixture(scope="module")
def segment(tmp_path_factory):
    """One segment of about 4 s (4 fragments) as the recorder writes it, and the index it belongs to."""
    from base.clock import SimulatedClocks

    root = tmp_path_factory.mktemp("segments")
    index = Index(root)
    clocks = SimulatedClocks()
    record(make_segmenter(root, index, clocks, segment_seconds=60), clocks, seconds=4.2)
    row = index.segments()[0]
    path = root / row.path
    whole = path.read_bytes()
    index.delete_rows([row.id])  # the recovery pass will find the file as if the crash came before the row
    yield root, index, path, whole, read_segment(path)
    index.close()


@settings(PROPERTY, max_examples=60)
@given(st.data())
def test_a_segment_cut_anywhere_keeps_exactly_its_complete_fragments(segment, data):
    root, _index, path, whole, full = segment
    cut = data.draw(st.integers(0, len(whole)), label="cut")
    scratch = root / "cut.mp4"
    scratch.write_bytes(whole[:cut])
    try:
        kept = read_segment(scratch)
    except Exception as exc:  # only a cut inside the init part may fail, and only as Mp4Error
        from recorder.mp4 import Mp4Error

        assert isinstance(exc, Mp4Error) and cut < full.samples[0].offset
        return
    assert kept.usable_bytes <= cut
    assert kept.samples == full.samples[:len(kept.samples)]
    complete = [s for s in full.samples if s.offset + s.size <= cut]
    assert len(complete) - len(kept.samples) < 30, "more than one fragment's samples lost"


@settings(PROPERTY, max_examples=60)
@given(st.data())
def test_the_recovery_pass_survives_a_segment_with_damaged_bytes(segment, data):
    root, index, path, whole, _full = segment
    damaged = bytearray(whole)
    for _ in range(data.draw(st.integers(1, 8), label="damaged bytes")):
        at = data.draw(st.integers(0, len(whole) - 1))
        damaged[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(whole)), label="cut")
    path.write_bytes(bytes(damaged[:cut]))
    report = recover(root, index, sync=False)  # never raises for one bad file
    rel = path.relative_to(root).as_posix()
    assert report.recovered == [rel] or report.removed_files == [rel] or report.quarantined == [rel]
    for row in index.segments():
        index.delete_rows([row.id])
    if (root / "lost+found").exists():
        shutil.rmtree(root / "lost+found")
    assert not os.path.exists(path) or path.stat().st_size <= cut


def test_a_segment_whose_first_fragment_time_is_damaged_is_set_aside_not_raised_on(segment):
    """Found by the property above: one flipped byte in the first tfdt made the recovered row end before
    it started, and the index's CHECK constraint raised out of the recovery pass (so out of start-up)."""
    from recorder.mp4 import find_box, iter_boxes

    root, index, path, whole, _full = segment
    moof = next(b for b in iter_boxes(whole) if b.kind == b"moof")
    tfdt = find_box(whole, [b"traf", b"tfdt"], moof.body, moof.end)
    damaged = bytearray(whole)
    damaged[tfdt.body + 4] = 1  # the top byte of the 64-bit base decode time: 2^56 ticks
    path.write_bytes(bytes(damaged))
    rel = path.relative_to(root).as_posix()
    try:
        report = recover(root, index, sync=False)
        assert report.quarantined == [rel] and not index.segments()
        assert (root / "lost+found" / rel.replace("/", "_")).read_bytes() == bytes(damaged)
    finally:
        shutil.rmtree(root / "lost+found", ignore_errors=True)


def test_an_sps_too_long_for_an_avcc_record_is_an_h264_error():
    """Issue #12 row 6: the SPS length is written in 2 bytes; a longer SPS raised OverflowError."""
    from base.h264 import H264Error, avcc_record

    sps = bytes.fromhex("6742c00bd902847e5c0440000003004000000c83c50a92") + bytes(70_000)
    with pytest.raises(H264Error):
        avcc_record(sps, bytes.fromhex("68cb83cb20"))
