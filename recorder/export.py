"""Export: the segments covering a time range remuxed into one ordinary MP4, with no re-encode.

The clip starts at the keyframe at or before the requested start (so its first frame decodes) and
ends with the last frame that starts before the requested end. Where two segments overlap (a writer that
moved to another disk wrote the last group of pictures on both), the earlier one is cut at the later one's
first keyframe, so every moment is in the clip once. Gaps between runs are closed up
(a clip of a camera that was offline for an hour is not an hour of frozen picture); `gaps` in the
result says how many were. The file is written beside its destination and renamed into place, so a
failed export leaves nothing half-written.

Audio (track 2 of the segments) comes along: each audio frame keeps its place relative to the video
of its segment, moved with that segment when a gap is closed; frames that would overlap the
next run after a closed gap, or fall outside the clip's video, are left out. An edit list delays
the audio track when its first frame starts after the first video frame.
"""
from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recorder.errors import ExportError
from recorder.fmp4 import TIMESCALE, AudioTrack, SampleRef, VideoTrack, avc1_entry, mp4a_entry, read_segment
from recorder.index import Index, Segment
from recorder.mp4 import box, full_box
from recorder.segmenter import ticks_to_us

_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
COPY_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path
    start_us: int  # wall time of the first frame
    end_us: int  # wall time where the last frame ends
    frames: int
    bytes: int
    gaps: int
    audio_frames: int = 0


@dataclass(frozen=True, slots=True)
class _Frame:
    file: Path
    ref: SampleRef
    at_us: int  # wall time


@dataclass(slots=True)
class _Audio:
    """The audio of the clip: its track, and per segment file its frames and its run's start."""

    track: AudioTrack
    by_file: dict[Path, tuple[int, list[SampleRef]]]


def export(index: Index, root: Path, *, channel: int, start_us: int, end_us: int, out: Path,
           stream: str = "main", progress: Callable[[int, int], None] | None = None) -> ExportResult:
    """Write the recording of `channel` between `start_us` and `end_us` (UTC µs) to `out`.

    Raises ExportError when the range is empty or holds no recording, or when the picture format
    changes inside it (export the parts on either side of the change separately).
    """
    if end_us <= start_us:
        raise ExportError("the export end must be after its start")
    segments = index.segments(channel=channel, stream=stream, start_us=start_us, end_us=end_us)
    if not segments:
        raise ExportError(f"channel {channel} has no {stream} recording between the times given")
    track, frames, audio = _collect(root, segments, start_us, end_us)
    return _write(out, track, frames, audio, progress)


def _collect(root: Path, segments: list[Segment], start_us: int,
             end_us: int) -> tuple[VideoTrack, list[_Frame], _Audio | None]:
    track, audio = None, None
    frames: list[_Frame] = []
    for seg in segments:
        contents = read_segment(root / seg.path)
        if track is not None and contents.track.avcc != track.avcc:
            raise ExportError(
                f"the picture format changes at {seg.start_us} (segment {seg.path}); export before and after it separately"
            )
        track = contents.track
        run_start_us = seg.start_us - ticks_to_us(seg.media_start_ticks)
        if frames and contents.samples:
            _drop_overlap(frames, run_start_us + ticks_to_us(contents.samples[0].decode_time))
        frames.extend(_Frame(root / seg.path, ref, run_start_us + ticks_to_us(ref.decode_time)) for ref in contents.samples)
        audio = _note_audio(audio, contents, root / seg.path, run_start_us)
    first = _first_keyframe(frames, start_us)
    chosen = [f for f in frames[first:] if f.at_us < end_us]
    if not chosen:
        raise ExportError("no frame of the recording falls between the times given")
    return track, chosen, audio


def _drop_overlap(frames: list[_Frame], begins_us: int) -> None:
    """The next segment begins before `frames` end (after a writer moved to another disk, both disks hold the
    group of pictures before the failure): the earlier segment is kept up to the later one's first frame, a
    keyframe, so both sides decode and each moment is in the clip once (playback cuts it the same way)."""
    while frames and frames[-1].at_us >= begins_us:
        frames.pop()


def _note_audio(audio: _Audio | None, contents, file: Path, run_start_us: int) -> _Audio | None:
    if contents.audio is None or not contents.audio_samples:
        return audio
    if audio is None:
        audio = _Audio(contents.audio, {})
    elif (contents.audio.asc, contents.audio.sample_rate) != (audio.track.asc, audio.track.sample_rate):
        raise ExportError(f"the sound format changes in segment {file.name}; export before and after it separately")
    audio.by_file[file] = (run_start_us, contents.audio_samples)
    return audio


def _first_keyframe(frames: list[_Frame], start_us: int) -> int:
    """Index of the keyframe at or before `start_us`, else the first keyframe after it."""
    best = None
    for i, frame in enumerate(frames):
        if frame.ref.keyframe and (frame.at_us <= start_us or best is None):
            best = i
        if frame.at_us > start_us and best is not None:
            break
    if best is None:
        raise ExportError("the range holds no keyframe to start the clip at")
    return best


def _durations(frames: list[_Frame]) -> tuple[list[int], int]:
    """Sample durations in ticks, closing up gaps between runs; and how many gaps there were."""
    durations, gaps = [], 0
    for frame, nxt in zip(frames, frames[1:]):
        step = (nxt.at_us - frame.at_us) * TIMESCALE // 1_000_000
        if nxt.file != frame.file and (step > 2 * frame.ref.duration or step <= 0):
            step = frame.ref.duration  # a gap: the next run starts right after this frame
            gaps += 1
        durations.append(max(step, 1))
    durations.append(frames[-1].ref.duration)
    return durations, gaps


def _audio_frames(audio: _Audio | None, frames: list[_Frame],
                  durations: list[int]) -> tuple[list[_Frame], list[int], int]:
    """The audio frames of the clip, their durations (audio ticks), and where the first one starts.

    Each audio frame is placed relative to its segment's video as it was recorded: a segment moved
    by closing a gap moves its audio with it."""
    if audio is None:
        return [], [], 0
    rate = audio.track.sample_rate
    shift_ticks: dict[Path, int] = {}  # export ticks minus recorded decode time, per segment file
    position = 0
    for frame, duration in zip(frames, durations):
        if frame.file not in shift_ticks and frame.file in audio.by_file:
            run_start_us = audio.by_file[frame.file][0]
            clip_us = position * 1_000_000 // TIMESCALE - (frame.at_us - run_start_us)
            shift_ticks[frame.file] = round(clip_us * rate / 1_000_000)
        position += duration
    end = position * rate // TIMESCALE
    placed: list[tuple[int, _Frame]] = []
    for file, shift in shift_ticks.items():
        for ref in audio.by_file[file][1]:
            at = ref.decode_time + shift
            if 0 <= at < end and (not placed or at > placed[-1][0]):
                placed.append((at, _Frame(file, ref, 0)))
    steps = [nxt[0] - at for (at, _), nxt in zip(placed, placed[1:])]
    steps.append(placed[-1][1].ref.duration if placed else 0)
    return [f for _, f in placed], steps, placed[0][0] if placed else 0


def _write(out: Path, track: VideoTrack, frames: list[_Frame], audio: _Audio | None, progress) -> ExportResult:
    durations, gaps = _durations(frames)
    sound, sound_durations, sound_start = _audio_frames(audio, frames, durations)
    tracks = _Tracks(track, frames, durations, audio.track if sound else None, sound, sound_durations, sound_start)
    video_bytes = sum(f.ref.size for f in frames)
    mdat_bytes = video_bytes + sum(f.ref.size for f in sound)
    moov = _moov(tracks, 0, 0)
    wide = mdat_bytes + 16 > 0xFFFFFFFF
    mdat_header = struct.pack(">I4sQ", 1, b"mdat", mdat_bytes + 16) if wide else struct.pack(">I4s", mdat_bytes + 8, b"mdat")
    ftyp = box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso2avc1mp41")
    data_offset = len(ftyp) + len(moov) + len(mdat_header)
    moov = _moov(tracks, data_offset, data_offset + video_bytes)
    partial = out.with_name(out.name + ".partial")
    try:
        with open(partial, "wb") as dst:
            dst.write(ftyp + moov + mdat_header)
            _copy_samples(dst, frames + sound, mdat_bytes, progress)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    end_us = frames[-1].at_us + ticks_to_us(frames[-1].ref.duration)
    return ExportResult(out, frames[0].at_us, end_us, len(frames), out.stat().st_size, gaps, len(sound))


def _copy_samples(dst, frames: list[_Frame], total: int, progress) -> None:
    """Copy sample bytes, in runs of samples that lie back to back in the same source file."""
    done, i = 0, 0
    handles: dict[Path, object] = {}
    try:
        while i < len(frames):
            j, end = i + 1, frames[i].ref.offset + frames[i].ref.size
            while j < len(frames) and frames[j].file == frames[i].file and frames[j].ref.offset == end and end - frames[i].ref.offset < COPY_CHUNK:
                end += frames[j].ref.size
                j += 1
            src = handles.get(frames[i].file) or handles.setdefault(frames[i].file, open(frames[i].file, "rb"))
            src.seek(frames[i].ref.offset)
            dst.write(src.read(end - frames[i].ref.offset))
            done += end - frames[i].ref.offset
            if progress is not None:
                progress(done, total)
            i = j
    finally:
        for handle in handles.values():
            handle.close()


@dataclass(slots=True)
class _Tracks:
    video: VideoTrack
    frames: list[_Frame]
    durations: list[int]
    audio: AudioTrack | None
    sound: list[_Frame]
    sound_durations: list[int]
    sound_start: int  # audio ticks from the clip's start to the first audio frame


def _moov(tracks: _Tracks, video_offset: int, audio_offset: int) -> bytes:
    total = sum(tracks.durations)
    next_track = 3 if tracks.audio is not None else 2
    mvhd = full_box(b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, TIMESCALE, total), struct.pack(">IH", 0x10000, 0x100),
                    bytes(10), _MATRIX, bytes(24), struct.pack(">I", next_track))
    traks = [_video_trak(tracks, total, video_offset)]
    if tracks.audio is not None:
        traks.append(_audio_trak(tracks, audio_offset))
    return box(b"moov", mvhd, *traks)


def _video_trak(tracks: _Tracks, total: int, data_offset: int) -> bytes:
    track = tracks.video
    tkhd = full_box(b"tkhd", 0, 3, struct.pack(">IIIII", 0, 0, 1, 0, total), bytes(8), struct.pack(">hhhH", 0, 0, 0, 0),
                    _MATRIX, struct.pack(">II", track.width << 16, track.height << 16))
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, TIMESCALE, total, 0x55C4, 0))
    hdlr = full_box(b"hdlr", 0, 0, bytes(4), b"vide", bytes(12), b"VideoHandler\x00")
    stbl = _stbl(track, tracks.frames, tracks.durations, data_offset)
    minf = box(b"minf", full_box(b"vmhd", 0, 1, bytes(8)), _DINF, stbl)
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, minf))


def _audio_trak(tracks: _Tracks, data_offset: int) -> bytes:
    audio, rate = tracks.audio, tracks.audio.sample_rate
    media_total = sum(tracks.sound_durations)
    delay = tracks.sound_start * TIMESCALE // rate  # in the movie's timescale
    movie_total = delay + media_total * TIMESCALE // rate
    tkhd = full_box(b"tkhd", 0, 3, struct.pack(">IIIII", 0, 0, 2, 0, movie_total), bytes(8),
                    struct.pack(">hhhH", 0, 1, 0x100, 0), _MATRIX, struct.pack(">II", 0, 0))
    edits = [(delay, -1)] if delay else []
    edits.append((movie_total - delay, 0))
    elst = full_box(b"elst", 0, 0, struct.pack(">I", len(edits)),
                    b"".join(struct.pack(">IiHH", duration, media_time, 1, 0) for duration, media_time in edits))
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, rate, media_total, 0x55C4, 0))
    hdlr = full_box(b"hdlr", 0, 0, bytes(4), b"soun", bytes(12), b"SoundHandler\x00")
    sizes = [f.ref.size for f in tracks.sound]
    stbl = box(b"stbl", full_box(b"stsd", 0, 0, struct.pack(">I", 1), mp4a_entry(audio)), _stts(tracks.sound_durations),
               full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, len(sizes), 1)),
               full_box(b"stsz", 0, 0, struct.pack(">II", 0, len(sizes)), struct.pack(f">{len(sizes)}I", *sizes)),
               full_box(b"co64", 0, 0, struct.pack(">IQ", 1, data_offset)))
    minf = box(b"minf", full_box(b"smhd", 0, 0, bytes(4)), _DINF, stbl)
    return box(b"trak", tkhd, box(b"edts", elst), box(b"mdia", mdhd, hdlr, minf))


_DINF = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))


def _stbl(track: VideoTrack, frames: list[_Frame], durations: list[int], data_offset: int) -> bytes:
    stsd = full_box(b"stsd", 0, 0, struct.pack(">I", 1), avc1_entry(track))
    parts = [stsd, _stts(durations)]
    if any(f.ref.cto for f in frames):
        parts.append(full_box(b"ctts", 0, 0, struct.pack(">I", len(frames)),
                              b"".join(struct.pack(">II", 1, f.ref.cto) for f in frames)))
    keys = [i + 1 for i, f in enumerate(frames) if f.ref.keyframe]
    parts.append(full_box(b"stss", 0, 0, struct.pack(">I", len(keys)), struct.pack(f">{len(keys)}I", *keys)))
    # One chunk holding every sample: they lie back to back in the single mdat.
    parts.append(full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, len(frames), 1)))
    parts.append(full_box(b"stsz", 0, 0, struct.pack(">II", 0, len(frames)),
                          struct.pack(f">{len(frames)}I", *(f.ref.size for f in frames))))
    parts.append(full_box(b"co64", 0, 0, struct.pack(">IQ", 1, data_offset)))
    return box(b"stbl", *parts)


def _stts(durations: list[int]) -> bytes:
    entries: list[list[int]] = []
    for d in durations:
        if entries and entries[-1][1] == d:
            entries[-1][0] += 1
        else:
            entries.append([1, d])
    return full_box(b"stts", 0, 0, struct.pack(">I", len(entries)), b"".join(struct.pack(">II", c, d) for c, d in entries))
