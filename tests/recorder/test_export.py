"""Export: covering segments remuxed into one MP4 starting at a keyframe, bytes copied untouched."""
from __future__ import annotations

import av
import pytest

from recorder.errors import ExportError
from recorder.export import export
from recorder.fmp4 import read_segment
from recorder.index import Index
from support.recording import decoded_frames, make_segmenter, record


@pytest.fixture
def recorded(tmp_path, clocks):
    """12 s of one channel in 4 s segments, keyframes every second (frames at 25 fps)."""
    root = tmp_path / "data"
    root.mkdir()
    index = Index(root)
    record(make_segmenter(root, index, clocks), clocks, seconds=11.99)
    yield root, index
    index.close()


def _packets(path):
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(video=0) if p.size]


def test_an_export_across_segments_starts_at_the_keyframe_before_the_start(recorded, tmp_path):
    root, index = recorded
    segs = index.segments()
    start, end = segs[0].start_us + 2_500_000, segs[0].start_us + 9_000_000
    result = export(index, root, channel=1, start_us=start, end_us=end, out=tmp_path / "clip.mp4")
    assert result.start_us == segs[0].start_us + 2_000_000  # keyframes every second
    assert result.end_us == end and result.frames == 7 * 25
    assert decoded_frames(result.path) == result.frames


def test_export_copies_sample_bytes_without_re_encoding(recorded, tmp_path):
    root, index = recorded
    segs = index.segments()
    result = export(index, root, channel=1, start_us=segs[0].start_us, end_us=segs[-1].end_us, out=tmp_path / "all.mp4")
    source = [p for s in segs for p in _packets(root / s.path)]
    assert _packets(result.path) == source


def test_the_exported_file_is_an_ordinary_mp4_with_its_index_first(recorded, tmp_path):
    root, index = recorded
    segs = index.segments()
    result = export(index, root, channel=1, start_us=segs[0].start_us, end_us=segs[1].end_us, out=tmp_path / "a.mp4")
    head = result.path.read_bytes()[:64]
    assert head[4:8] == b"ftyp" and b"moov" in result.path.read_bytes()[:4096]
    with av.open(str(result.path)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264" and (stream.codec_context.width, stream.codec_context.height) == (160, 120)
        assert float(stream.duration * stream.time_base) == pytest.approx(8.0, abs=0.05)


def test_a_gap_between_runs_is_closed_up_and_counted(tmp_path, clocks):
    index = Index(tmp_path)
    seg = make_segmenter(tmp_path, index, clocks)
    record(seg, clocks, seconds=3)
    clocks.advance(600)  # the camera was away for ten minutes
    record(seg, clocks, seconds=3)
    segs = index.segments()
    result = export(index, tmp_path, channel=1, start_us=segs[0].start_us, end_us=segs[-1].end_us, out=tmp_path / "g.mp4")
    assert result.gaps == 1
    assert decoded_frames(result.path) == result.frames == sum(s.frames for s in segs)
    index.close()


def test_a_range_with_no_recording_is_refused_clearly(recorded, tmp_path):
    root, index = recorded
    with pytest.raises(ExportError, match="no main recording"):
        export(index, root, channel=2, start_us=0, end_us=10**16, out=tmp_path / "x.mp4")
    with pytest.raises(ExportError, match="after its start"):
        export(index, root, channel=1, start_us=10, end_us=5, out=tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()


def test_a_failed_export_leaves_no_partial_file(recorded, tmp_path):
    root, index = recorded
    segs = index.segments()
    (root / segs[1].path).unlink()  # a segment vanished under us
    with pytest.raises(OSError):
        export(index, root, channel=1, start_us=segs[0].start_us, end_us=segs[-1].end_us, out=tmp_path / "y.mp4")
    assert list(tmp_path.glob("y.mp4*")) == []


def test_progress_is_reported_up_to_the_total(recorded, tmp_path):
    root, index = recorded
    segs = index.segments()
    seen = []
    export(index, root, channel=1, start_us=segs[0].start_us, end_us=segs[-1].end_us, out=tmp_path / "p.mp4",
           progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1] and all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
    assert seen[-1][1] == sum(s.size for seg in segs for s in read_segment(root / seg.path).samples)
