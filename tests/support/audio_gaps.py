"""Measuring audio continuity across segments: holes at every boundary, the A/V offset at each segment's start,
and samples lost over a run. Shared by the tests and `bench/audio_gaps.py` (it does not import pytest).

A camera (the GStreamer test server's `live:...,audio=aac|pcmu` mounts) is recorded by a real
`StreamRecorder` into short segments; each closed segment is read back with FFmpeg (PyAV, demuxing only),
taking the first and last packet of each track. Packet times in our fragments are run time (`tfdt`), so
consecutive segments of a run line up on one timeline:

    hole at a boundary  = next segment's first audio packet time - previous segment's audio end
                          (> 0 silence, < 0 the same sound twice)
    A/V offset at start = segment's first audio packet time - its first video frame's time
                          (<= 0: the sound starts with or before the picture)
    sound short at end  = previous segment's video end - its audio end (> 0: played as a file of its
                          own, the segment falls silent before its picture ends)
    audio lost          = video span of the run - sum of every segment's audio durations
                          (`interior_lost_s` leaves out the run's first and last segment, whose sound
                          may start after the first picture or stop before the last, as the camera sent it)

`tone_gaps` decodes a file (an export) whose sound is a steady tone (the server's `tone=1` mounts) and
finds every stretch where it drops out or the decoded timestamps jump.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

import numpy as np

from base.clock import RealClocks
from recorder.faults import FaultBoard
from recorder.index import Index, Segment
from recorder.segmenter import Segmenter
from recorder.stream_recorder import StreamRecorder
from support.waiting import wait_for


@dataclass(frozen=True)
class TrackSpan:
    start_s: float
    end_s: float  # the last packet's time plus its duration
    duration_s: float  # the sum of packet durations
    packets: int


@dataclass(frozen=True)
class SegmentSpans:
    path: str
    run_id: int
    video: TrackSpan
    audio: TrackSpan | None


@dataclass(frozen=True)
class Boundary:
    before: str
    after: str
    hole_s: float  # > 0: silence between the segments; < 0: overlap
    av_offset_s: float  # the later segment's audio start minus its video start
    short_s: float  # the earlier segment's video end minus its audio end


@dataclass(frozen=True)
class GapReport:
    segments: list[SegmentSpans]
    boundaries: list[Boundary]
    video_span_s: float  # first frame to the end of the last, over whole runs
    audio_s: float  # the sum of audio packet durations over the same segments
    first_av_offset_s: float  # the first segment's (the run's start)

    interior_video_s: float = 0.0
    interior_audio_s: float = 0.0

    @property
    def interior_lost_s(self) -> float:
        return self.interior_video_s - self.interior_audio_s

    @property
    def worst_hole_s(self) -> float:
        return max((abs(b.hole_s) for b in self.boundaries), default=0.0)

    @property
    def audio_lost_s(self) -> float:
        return self.video_span_s - self.audio_s

    def table(self, label: str) -> str:
        """One line per boundary: the hole and the A/V offset, in ms."""
        lines = [f"{label}: {len(self.segments)} segments, video {self.video_span_s:.3f} s, audio {self.audio_s:.3f} s,"
                 f" lost {self.audio_lost_s * 1000:+.1f} ms (between first and last segment"
                 f" {self.interior_lost_s * 1000:+.1f} ms), first A/V offset {self.first_av_offset_s * 1000:+.1f} ms"]
        for b in self.boundaries:
            lines.append(f"  {b.before} -> {b.after}: hole {b.hole_s * 1000:+7.1f} ms, A/V {b.av_offset_s * 1000:+7.1f} ms,"
                         f" sound short at the end {b.short_s * 1000:+7.1f} ms")
        return "\n".join(lines)


def _span(packets: list[av.Packet]) -> TrackSpan | None:
    timed = [p for p in packets if p.pts is not None]
    if not timed:
        return None
    base = timed[0].time_base
    first = min(timed, key=lambda p: p.pts)
    last = max(timed, key=lambda p: p.pts)
    duration = sum(p.duration or 0 for p in timed)
    return TrackSpan(float(first.pts * base), float((last.pts + (last.duration or 0)) * base),
                     float(duration * base), len(timed))


def segment_spans(path: Path, *, run_id: int = 0) -> SegmentSpans:
    """The first and last packet times of each track of one segment, demuxed with PyAV."""
    video, audio = [], []
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.size == 0:
                continue  # the demuxer's end-of-stream marker
            (video if packet.stream.type == "video" else audio).append(packet)
    spans = _span(video)
    if spans is None:
        raise ValueError(f"{path} holds no video")
    return SegmentSpans(str(path), run_id, spans, _span(audio))


def gap_report(root: Path, rows: list[Segment]) -> GapReport:
    """Boundaries between consecutive segments of the same run (rows in time order)."""
    segments = [segment_spans(root / row.path, run_id=row.run_id) for row in rows]
    boundaries = []
    for prev, nxt in zip(segments, segments[1:]):
        if prev.run_id != nxt.run_id or prev.audio is None or nxt.audio is None:
            continue
        boundaries.append(Boundary(Path(prev.path).name, Path(nxt.path).name, nxt.audio.start_s - prev.audio.end_s,
                                   nxt.audio.start_s - nxt.video.start_s, prev.video.end_s - prev.audio.end_s))
    video_span = sum(_run_span(segments, run) for run in dict.fromkeys(s.run_id for s in segments))
    audio_s = sum(s.audio.duration_s for s in segments if s.audio is not None)
    first = segments[0] if segments else None
    offset = first.audio.start_s - first.video.start_s if first is not None and first.audio is not None else 0.0
    inner = [s for s in segments[1:-1] if s.run_id == segments[0].run_id]
    inner_video = inner[-1].video.end_s - inner[0].video.start_s if inner else 0.0
    inner_audio = sum(s.audio.duration_s for s in inner if s.audio is not None)
    return GapReport(segments, boundaries, video_span, audio_s, offset, inner_video, inner_audio)


def _run_span(segments: list[SegmentSpans], run_id: int) -> float:
    mine = [s for s in segments if s.run_id == run_id]
    return mine[-1].video.end_s - mine[0].video.start_s


def record_camera(root: Path, url: str, *, segment_seconds: float, segments: int, client: str = "native",
                  timeout_s: float | None = None) -> list[Segment]:
    """Record the camera at `url` until `segments` segments are closed and indexed; returns their rows.

    Waits for the segments (not for a time), then stops; the last, partial segment is closed by the stop
    and returned too. `timeout_s` defaults to three times the media time asked for plus 30 s.
    """
    from drivers.rtsp.auto import rtsp_camera

    root.mkdir(parents=True, exist_ok=True)
    clocks = RealClocks()
    index = Index(root)
    faults = FaultBoard(clocks=clocks)
    segmenter = Segmenter(channel=1, stream="main", root=root, index=index, clocks=clocks, faults=faults,
                          segment_seconds=segment_seconds, sync=False)
    source = rtsp_camera(url, client=client, name="cam", clocks=clocks)
    recorder = StreamRecorder(source=source, segmenter=segmenter, faults=faults, clocks=clocks)
    recorder.start()
    try:
        wait_for(lambda: segmenter.stats.segments >= segments,
                 timeout_s=timeout_s or 3 * segments * segment_seconds + 30, what=f"{segments} closed segments",
                 details=recorder.statistics)
    finally:
        recorder.stop()
    try:
        return index.segments(channel=1, stream="main")
    finally:
        index.close()


@dataclass(frozen=True)
class ToneGap:
    at_s: float
    length_s: float
    kind: str  # "quiet": the tone dropped out; "jump": decoded timestamps skipped


def tone_gaps(path: Path, *, skip_s: float = 0.3, window_s: float = 0.005) -> tuple[float, list[ToneGap]]:
    """Decode the sound of `path` (a steady tone) and return its decoded length (s) and every gap in it.

    The first and last `skip_s` are not judged (the decoder's priming frame, the sound's end); the
    level is the RMS over `window_s` windows, a gap where it falls below a quarter of the median.
    """
    chunks, rate, expected, jumps = [], 0, None, []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            rate = frame.sample_rate
            if expected is not None and frame.pts is not None and abs(frame.pts - expected) > 1:
                jumps.append(ToneGap(float(expected * frame.time_base), float((frame.pts - expected) * frame.time_base),
                                     "jump"))
            if frame.pts is not None:
                expected = frame.pts + frame.samples
            chunks.append(frame.to_ndarray().reshape(-1)[: frame.samples].astype(np.float64))
    if not chunks:
        return 0.0, [ToneGap(0.0, 0.0, "quiet")]
    pcm = np.concatenate(chunks)
    window = max(1, round(rate * window_s))
    count = len(pcm) // window
    rms = np.sqrt((pcm[: count * window].reshape(count, window) ** 2).mean(axis=1))
    skip = round(skip_s / window_s)
    judged = rms[skip: count - skip]
    quiet = judged < np.median(judged) / 4 if len(judged) else np.zeros(0, bool)
    gaps, start = [], None
    for i, q in enumerate(np.append(quiet, False)):
        if q and start is None:
            start = i
        elif not q and start is not None:
            gaps.append(ToneGap((skip + start) * window_s, (i - start) * window_s, "quiet"))
            start = None
    return len(pcm) / rate, jumps + gaps
