"""Playback chunks: a few seconds of recording, from a keyframe, as init segment + fMP4 fragments.

A player asks for the chunk at a wall-clock instant and gets the frames from the keyframe at or
before it up to the first keyframe at or after `start + duration`; the chunk says where the next
one starts (`next_us`), so a player that keeps asking plays on across segment and run boundaries
with no stall. Every chunk's media time is wall time minus the player's `base_us`, so chunks line
up on one timeline and a gap in the recording is a gap in the player's buffer, not a jump. Samples
are copied from the segment files as they are: never decoded, never re-encoded.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from recorder.fmp4 import TIMESCALE, Sample, SampleRef, SegmentContents, VideoTrack, init_segment, media_fragment, read_segment
from recorder.index import Segment
from recorder.segmenter import ticks_to_us

MAX_FRAGMENT_SAMPLES = 30
MAX_CHUNK_US = 30_000_000  # even with a long keyframe interval a chunk stops growing here


class SegmentLookup(Protocol):
    """What playback reads segments through: the `Index`, or the index plus the segments being written."""

    def segments(self, *, channel: int | None = None, stream: str | None = None,
                 start_us: int | None = None, end_us: int | None = None) -> list[Segment]: ...

    def next_segment(self, *, channel: int, stream: str, at_or_after_us: int) -> Segment | None: ...


@dataclass(slots=True)
class PlaybackChunk:
    track: VideoTrack
    parts: list[bytes]  # the init segment, then fragments
    start_us: int  # wall time of the first frame (a keyframe)
    end_us: int  # wall time where the last frame ends
    next_us: int | None  # where to ask for the following chunk; None: nothing recorded after it yet
    frames: int

    @property
    def bytes(self) -> int:
        return sum(len(p) for p in self.parts)


@dataclass(frozen=True, slots=True)
class _Frame:
    seg: Segment
    path: Path
    ref: SampleRef
    at_us: int


class SegmentCache:
    """Parsed segments by path, size and mtime (a segment is never rewritten, but a name could be reused
    after deletion). Thread-safe; bounded."""

    def __init__(self, max_entries: int = 64):
        self._max = max_entries
        self._entries: OrderedDict[tuple, SegmentContents] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, path: Path) -> SegmentContents:
        st = os.stat(path)
        key = (str(path), st.st_size, st.st_mtime_ns)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        contents = read_segment(path)
        with self._lock:
            self._entries[key] = contents
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return contents


@dataclass(slots=True)
class _Collector:
    start_us: int
    stop_us: int
    frames: list[_Frame] = field(default_factory=list)
    track: VideoTrack | None = None
    next_us: int | None = None
    done: bool = False


def playback_chunk(index: SegmentLookup, root: Path, *, channel: int, stream: str, start_us: int, duration_us: int,
                   base_us: int | None = None, cache: SegmentCache | None = None) -> PlaybackChunk | None:
    """The chunk at `start_us` (or, in a gap, at the next recording after it); None if nothing is
    recorded at or after `start_us`. Media time is wall time minus `base_us` (default: the chunk's first
    frame). Frames before `base_us` are left out, up to the next keyframe (media time is never negative)."""
    cache = cache or SegmentCache(4)
    col = _Collector(start_us, start_us + max(duration_us, 1))
    segments = index.segments(channel=channel, stream=stream, start_us=max(start_us, base_us or start_us), end_us=col.stop_us + 1)
    if not segments:  # in a gap: the chunk starts at the next recording
        after = index.next_segment(channel=channel, stream=stream, at_or_after_us=start_us)
        if after is not None:
            col = _Collector(after.start_us, after.start_us + max(duration_us, 1))
            segments = [after]
    while segments and not col.done:
        for seg in segments:
            _collect(col, seg, root / seg.path, cache.read(root / seg.path))
            if col.done:
                break
        if col.done:
            break
        # Every frame up to the stop was taken: more comes from the segment after the last one read.
        after = index.next_segment(channel=channel, stream=stream, at_or_after_us=segments[-1].end_us)
        if after is not None and after.id == segments[-1].id:
            after = None
        if col.frames or after is None:
            col.next_us = after.start_us if after is not None else None
            break
        segments = [after]
    if not col.frames:
        return None
    return _chunk(col, base_us)


def _collect(col: _Collector, seg: Segment, path: Path, contents: SegmentContents) -> None:
    run_start_us = seg.start_us - ticks_to_us(seg.media_start_ticks)
    if col.frames and contents.samples:
        _drop_overlap(col, run_start_us + ticks_to_us(contents.samples[0].decode_time))
    for ref in contents.samples:
        at_us = run_start_us + ticks_to_us(ref.decode_time)
        if ref.keyframe:
            if at_us <= col.start_us or not col.frames:
                col.frames, col.track = [], contents.track  # restart at the latest keyframe not after start
            elif at_us >= col.stop_us or contents.track.avcc != col.track.avcc or at_us - col.frames[0].at_us > MAX_CHUNK_US:
                col.next_us, col.done = at_us, True
                return
        if col.frames or ref.keyframe:
            col.frames.append(_Frame(seg, path, ref, at_us))


def _drop_overlap(col: _Collector, begins_us: int) -> None:
    """A segment that begins before the frames collected end (a writer that moved to another disk wrote the
    group of pictures before the failure again there, and the failed disk's segment, back, still holds it):
    the earlier segment plays up to the later one's first frame, a keyframe. Cut there, both sides decode
    (the earlier one's frames before the cut depend on its own keyframe) and each moment plays once; cutting
    the later one instead would start it mid-group, undecodable."""
    if col.frames[-1].at_us < begins_us:
        return
    while col.frames and col.frames[-1].at_us >= begins_us:
        col.frames.pop()


def _chunk(col: _Collector, base_us: int | None) -> PlaybackChunk | None:
    base_us = col.frames[0].at_us if base_us is None else base_us
    frames = [f for f in col.frames if f.at_us >= base_us]
    while frames and not frames[0].ref.keyframe:  # a GOP cut by the base cannot be decoded
        frames.pop(0)
    if not frames:
        return None
    ticks = [(f.at_us - base_us) * TIMESCALE // 1_000_000 for f in frames]
    samples = []
    for i, frame in enumerate(frames):
        step = ticks[i + 1] - ticks[i] if i + 1 < len(frames) else 0
        if step <= 0 or step > 2 * max(frame.ref.duration, 1) + TIMESCALE // 10:
            step = frame.ref.duration  # a gap between runs, or the last frame: its own duration
        samples.append(Sample(b"", max(step, 1), frame.ref.keyframe, frame.ref.cto))
    _read_samples(frames, samples)
    parts = [init_segment(col.track)]
    for begin in range(0, len(samples), MAX_FRAGMENT_SAMPLES):
        group = samples[begin:begin + MAX_FRAGMENT_SAMPLES]
        parts.append(media_fragment(begin // MAX_FRAGMENT_SAMPLES + 1, ticks[begin], group))
    end_us = frames[-1].at_us + ticks_to_us(samples[-1].duration)
    return PlaybackChunk(col.track, parts, frames[0].at_us, end_us, col.next_us, len(frames))


def _read_samples(frames: list[_Frame], samples: list[Sample]) -> None:
    """Fill each sample's bytes, reading each segment's span once."""
    i = 0
    while i < len(frames):
        j = i
        while j + 1 < len(frames) and frames[j + 1].seg.id == frames[i].seg.id:
            j += 1
        first, last = frames[i].ref, frames[j].ref
        with open(frames[i].path, "rb") as f:
            f.seek(first.offset)
            blob = f.read(last.offset + last.size - first.offset)
        for k in range(i, j + 1):
            ref = frames[k].ref
            samples[k].data = blob[ref.offset - first.offset: ref.offset - first.offset + ref.size]
        i = j + 1
