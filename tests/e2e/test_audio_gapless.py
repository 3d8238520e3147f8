"""Sound without holes across segments (issue 15, part 1): a camera playing a steady tone, as G.711 µ-law
(transcoded once to AAC) and as AAC (remuxed), recorded by a real StreamRecorder with the native RTSP
client into short segments, read back with PyAV.

At every boundary the next segment's sound starts exactly where the last one's ended, and starts with or
before its picture by less than one AAC frame (so a segment played as a file of its own has sound up to
its last picture, less than a frame); between the run's first and last segment no sound is
missing; an export across the segments decodes to the tone with no drop-out and no timestamp jump.
The 2-minute run with 4-second segments of the acceptance is marked slow; `bench/audio_gaps.py` prints
the same figures as a table.
"""
from __future__ import annotations

import pytest

from recorder.export import export
from recorder.index import Index
from support.audio_gaps import gap_report, record_camera, tone_gaps
from support.rtsp import RtspServer, rtsp_audio_available

pytestmark = pytest.mark.rtsp

MOUNTS = {"/pcmu": "live:320x240@25,gop=25,bitrate=300,audio=pcmu,tone=1",
          "/aac": "live:320x240@25,gop=25,bitrate=300,audio=aac,tone=1"}
AAC_FRAME_S = {"pcmu": 1024 / 8000, "aac": 1024 / 48000}  # G.711 is 8 kHz, and so is its AAC
MAX_HOLE_S = 0.030
TIMING_SLACK_S = 0.001  # packet times are rounded to the track's ticks


@pytest.fixture(scope="module")
def tone_server():
    ok, reason = rtsp_audio_available()
    if not ok:
        pytest.skip(f"RTSP test server unavailable: {reason}")
    with RtspServer() as server:
        yield server.start(MOUNTS)


def check_gapless(tmp_path, server: RtspServer, codec: str, *, segment_seconds: int, segments: int) -> None:
    root = tmp_path / "data"
    rows = record_camera(root, server.url(f"/{codec}"), segment_seconds=segment_seconds, segments=segments)
    report = gap_report(root, rows)
    print(report.table(f"{codec}, {segment_seconds} s segments"))
    frame_s = AAC_FRAME_S[codec]
    assert len(report.boundaries) >= segments - 1, report.table(codec)
    for boundary in report.boundaries:
        assert abs(boundary.hole_s) <= min(MAX_HOLE_S, frame_s), boundary
        assert -frame_s - TIMING_SLACK_S <= boundary.av_offset_s <= TIMING_SLACK_S, boundary
        assert -TIMING_SLACK_S <= boundary.short_s <= frame_s + TIMING_SLACK_S, boundary
    assert abs(report.interior_lost_s) <= frame_s + TIMING_SLACK_S, report.table(codec)
    check_export_is_continuous(root, rows, tmp_path / "export.mp4", video_s=report.video_span_s)


def check_export_is_continuous(root, rows, out, *, video_s: float) -> None:
    index = Index(root)
    try:
        result = export(index, root, channel=1, start_us=rows[0].start_us, end_us=rows[-1].end_us, out=out)
    finally:
        index.close()
    assert result.audio_frames > 0
    decoded_s, gaps = tone_gaps(out)
    assert gaps == [], gaps
    assert decoded_s > video_s - 1.0, (decoded_s, video_s)  # the run's first and last moments aside


@pytest.mark.parametrize("codec", ["pcmu", "aac"])
@pytest.mark.parametrize(("segment_seconds", "segments"), [(2, 10), (4, 5)])
def test_the_sound_goes_on_across_every_segment_boundary(tmp_path, tone_server, codec, segment_seconds, segments):
    check_gapless(tmp_path, tone_server, codec, segment_seconds=segment_seconds, segments=segments)


@pytest.mark.slow
@pytest.mark.parametrize("codec", ["pcmu", "aac"])
def test_two_minutes_of_four_second_segments_lose_no_sound(tmp_path, tone_server, codec):
    check_gapless(tmp_path, tone_server, codec, segment_seconds=4, segments=30)
