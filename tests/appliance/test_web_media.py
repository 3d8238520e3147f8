"""Media for the web without HTTP: playback chunks at run boundaries, snapshots from recorded
keyframes, MJPEG from packets, and the live muxer on a real RTSP camera's packets."""
from __future__ import annotations

import io

import av
import pytest

from base.clock import RealClocks
from recorder.fmp4 import read_segment
from recorder.live import RunStarted
from recorder.live_mux import LiveFragment, LiveInit, LiveMuxer
from recorder.playback import SegmentCache, playback_chunk
from recorder.snapshot import MjpegTranscoder, keyframe_to_jpeg
from support.recording import make_segmenter, record
from support.recording import test_pattern_source as pattern_source


def decoded(data: bytes) -> list:
    with av.open(io.BytesIO(data), format="mp4") as container:
        container.streams.video[0].codec_context.options = {"err_detect": "explode"}
        return list(container.decode(video=0))


@pytest.fixture
def two_runs(tmp_path, index, clocks):
    """6 s, a 30 s gap, then 6 s of the same channel (4 s segments, keyframe every second)."""
    seg = make_segmenter(tmp_path, index, clocks, segment_seconds=4)
    record(seg, clocks, seconds=6)
    clocks.advance(30)
    record(seg, clocks, seconds=6)
    runs = sorted({s.run_id for s in index.segments()})
    assert len(runs) == 2
    return [[s for s in index.segments() if s.run_id == r] for r in runs]


def test_a_chunk_stops_at_the_end_of_a_run_and_points_at_the_next_one(tmp_path, index, two_runs):
    first, second = two_runs
    base = first[0].start_us - 10_000_000
    chunk = playback_chunk(index, tmp_path, channel=1, stream="main", start_us=first[-1].start_us + 500_000,
                           duration_us=30_000_000, base_us=base, cache=SegmentCache())
    assert chunk.next_us == second[0].start_us
    assert abs(chunk.end_us - first[-1].end_us) < 50_000
    frames = decoded(b"".join(chunk.parts))
    assert len(frames) == chunk.frames
    # media time is wall time minus base: the first frame is where the recording says it is
    assert abs(frames[0].time - (chunk.start_us - base) / 1e6) < 0.001


def test_a_chunk_asked_inside_the_gap_begins_at_the_next_run(tmp_path, index, two_runs):
    first, second = two_runs
    chunk = playback_chunk(index, tmp_path, channel=1, stream="main", start_us=first[-1].end_us + 5_000_000,
                           duration_us=2_000_000, base_us=first[0].start_us)
    assert chunk.start_us == second[0].start_us
    assert playback_chunk(index, tmp_path, channel=1, stream="main", start_us=second[-1].end_us + 1,
                          duration_us=2_000_000, base_us=first[0].start_us) is None


def test_chunks_cut_at_keyframes_line_up_on_one_timeline(tmp_path, index, two_runs):
    first, _ = two_runs
    base = first[0].start_us
    a = playback_chunk(index, tmp_path, channel=1, stream="main", start_us=base, duration_us=1_500_000, base_us=base)
    b = playback_chunk(index, tmp_path, channel=1, stream="main", start_us=a.next_us, duration_us=1_500_000, base_us=base)
    assert b.start_us == a.next_us and abs(a.end_us - b.start_us) < 1000
    frames = decoded(b"".join(a.parts) + b"".join(b.parts[1:]))  # one init, fragments of both
    assert len(frames) == a.frames + b.frames
    assert all(y.time > x.time for x, y in zip(frames, frames[1:]))


def test_a_recorded_keyframe_becomes_a_jpeg_of_the_picture(tmp_path, index, two_runs):
    seg = two_runs[0][0]
    contents = read_segment(tmp_path / seg.path)
    key = next(s for s in contents.samples if s.keyframe)
    with open(tmp_path / seg.path, "rb") as f:
        f.seek(key.offset)
        jpeg = keyframe_to_jpeg(contents.track, f.read(key.size), max_width=80)
    with av.open(io.BytesIO(jpeg)) as image:
        frame = next(image.decode(video=0))
    assert (frame.width, frame.height) == (80, 60)


def test_mjpeg_gives_a_jpeg_per_interval_of_media_time(clocks):
    source = pattern_source(clocks)
    info = source.open()
    transcoder = MjpegTranscoder(interval_us=200_000, max_width=None)
    transcoder.start_run(info)
    jpegs = []
    for n, packet in enumerate(source.packets()):
        out = transcoder.push(packet)
        if out is not None:
            jpegs.append(out)
        if n == 49:  # two seconds at 25 fps
            break
    source.close()
    assert 9 <= len(jpegs) <= 11 and all(j[:2] == b"\xff\xd8" for j in jpegs)


@pytest.mark.rtsp
def test_a_network_camera_is_muxed_for_live_view_without_reencoding(rtsp_server):
    from drivers.rtsp.ffmpeg import RtspCamera
    camera = RtspCamera(rtsp_server.url("/cam1"), name="cam1", clocks=RealClocks(), timeout_s=10)
    info = camera.open()
    mux, out = LiveMuxer(), []
    try:
        out += mux.push(RunStarted(info))
        for packet in camera.packets():
            out += mux.push(packet)
            if sum(isinstance(o, LiveFragment) for o in out) >= 40:
                break
    finally:
        camera.close()
    init = next(o for o in out if isinstance(o, LiveInit))
    assert (init.width, init.height) == (640, 360)
    fragments = [o for o in out if isinstance(o, LiveFragment)]
    assert fragments[0].keyframe
    assert len(decoded(init.data + b"".join(f.data for f in fragments))) == len(fragments)


def test_a_base_inside_a_keyframe_interval_drops_the_cut_frames_and_stays_decodable(tmp_path, index, two_runs):
    first, _ = two_runs
    start = first[0].start_us + 1_500_000  # half way between the keyframes at 1 s and 2 s
    chunk = playback_chunk(index, tmp_path, channel=1, stream="main", start_us=start, duration_us=2_000_000, base_us=start)
    assert chunk.start_us >= start
    assert len(decoded(b"".join(chunk.parts))) == chunk.frames
    default = playback_chunk(index, tmp_path, channel=1, stream="main", start_us=start, duration_us=2_000_000)
    assert default.start_us <= start and decoded(b"".join(default.parts))[0].time == 0
