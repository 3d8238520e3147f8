"""Sound at segment cuts when it arrives late (an encoder's lag: G.711 transcoded to 8 kHz AAC comes out
about half a second after its picture): the cut segment stays open for it, its video already on disk."""
from __future__ import annotations

from collections import deque
from fractions import Fraction

import pytest

from base.clock import SimulatedClocks
from recorder.fmp4 import read_segment
from recorder.index import Index
from support.recording import make_segmenter, pattern_with_audio

RATE = 48000
FRAME = 1024


def record_lagging(root, index, clocks, *, lag_s: float, seconds: float, on_push=None):
    """A simulated camera whose sound reaches the segmenter `lag_s` after the picture of the same moment."""
    segmenter = make_segmenter(root, index, clocks, segment_seconds=2)
    source = pattern_with_audio(clocks, sample_rate=RATE)
    info = source.open()
    segmenter.start_run(info)
    video_base, audio_base = Fraction(info.time_base), Fraction(info.audio.time_base)
    held: deque = deque()
    pushed_audio = 0
    end_us = clocks.monotonic_us() + round(seconds * 1e6)
    for packet in source.packets():
        if packet.track == "audio":
            held.append(packet)
            continue
        now_s = packet.dts * video_base
        while held and held[0].pts * audio_base + Fraction(lag_s) <= now_s:
            segmenter.push(held.popleft())
            pushed_audio += 1
        segmenter.push(packet)
        if on_push is not None:
            on_push(segmenter)
        if clocks.monotonic_us() >= end_us:
            break
    for packet in held:
        segmenter.push(packet)
        pushed_audio += 1
    segmenter.finish()
    source.close()
    return segmenter, pushed_audio


def spans(root, rows):
    out = []
    for row in rows:
        contents = read_segment(root / row.path)
        video = (contents.start_ticks * RATE // 90_000, (contents.start_ticks + contents.duration_ticks) * RATE // 90_000)
        first, last = contents.audio_samples[0], contents.audio_samples[-1]
        out.append((video, (first.decode_time, last.decode_time + last.duration), contents))
    return out


@pytest.mark.parametrize("lag_s", [0.0, 0.3, 0.6])
def test_a_cut_segment_waits_for_its_late_sound_and_the_next_starts_where_it_ended(tmp_path, lag_s):
    clocks = SimulatedClocks()
    index = Index(tmp_path)
    segmenter, pushed = record_lagging(tmp_path, index, clocks, lag_s=lag_s, seconds=9)
    rows = index.segments()
    assert len(rows) >= 4
    found = spans(tmp_path, rows)
    for (video, audio, _), (next_video, next_audio, _) in zip(found, found[1:]):
        assert next_audio[0] == audio[1]  # back to back: no hole, no overlap
        assert video[1] - FRAME < audio[1] <= video[1]  # the sound lasts to the last picture, less than a frame
        assert next_video[0] - FRAME < next_audio[0] <= next_video[0]  # and starts with or before the next one
    stats = segmenter.stats
    assert stats.audio_frames_recorded + stats.audio_dropped == pushed
    assert stats.audio_dropped <= 2  # only what lies before the first keyframe
    index.close()


def test_the_cut_segments_video_is_on_disk_while_it_waits_for_its_sound(tmp_path):
    """Crash safety: waiting for the sound holds no picture back. When the next segment opens, the cut one
    has every video frame written and synced, and only its row (and an audio-only fragment) are to come."""
    clocks = SimulatedClocks()
    index = Index(tmp_path)
    seen: dict[str, tuple[int, bool]] = {}

    def at_each_push(segmenter):
        files = sorted((tmp_path / "ch01" / "main").glob("*.mp4")) if (tmp_path / "ch01").exists() else []
        if len(files) >= 2 and files[-2].name not in seen:
            indexed = any(r.path.endswith(files[-2].name) for r in index.segments())
            seen[files[-2].name] = (len(read_segment(files[-2]).samples), indexed)

    record_lagging(tmp_path, index, clocks, lag_s=0.6, seconds=7, on_push=at_each_push)
    rows = {r.path.rsplit("/", 1)[-1]: r for r in index.segments()}
    assert len(seen) >= 2
    for name, (frames_at_cut, indexed_at_cut) in seen.items():
        assert frames_at_cut == rows[name].frames  # the whole picture was on disk at the cut
        assert not indexed_at_cut  # the row waited for the sound
    index.close()


def test_sound_later_than_a_fragment_closes_the_segment_anyway_and_goes_on_in_the_next(tmp_path):
    """A lag longer than a fragment: the cut segment is not held up longer than the next segment's first
    fragment; what had not arrived starts the next segment, so nothing is lost or doubled."""
    clocks = SimulatedClocks()
    index = Index(tmp_path)
    segmenter, pushed = record_lagging(tmp_path, index, clocks, lag_s=1.6, seconds=9)
    found = spans(tmp_path, index.segments())
    for (_, audio, _), (next_video, next_audio, _) in zip(found, found[1:]):
        assert next_audio[0] == audio[1]
        assert next_audio[0] < next_video[0] - FRAME  # the late sound opened the next segment
    assert segmenter.stats.audio_frames_recorded + segmenter.stats.audio_dropped == pushed
    assert segmenter.stats.audio_dropped <= 2
    index.close()
