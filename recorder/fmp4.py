"""Fragmented MP4 for an H.264 track and an optional AAC track: init segment, fragments, reading back.

A segment file is `ftyp`+`moov` (written and synced first) followed by `moof`+`mdat` fragments of
about a second each. Every fragment is self-describing, so a file cut anywhere by a crash is still
playable up to its last complete fragment; `read_segment` finds that point.

Track 1 is video (90 kHz); track 2, when the stream has audio, is AAC timed in samples (its
timescale is the sample rate). A fragment holds one `traf` per track that has samples in it, and
its `mdat` holds the video samples, then the audio samples. Without audio the bytes are exactly
those of a video-only file.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from recorder.aac import AacError, asc_from_esds, esds_payload
from recorder.mp4 import BoxHeader, Mp4Error, box, find_box, full_box, iter_boxes, scan_file

TIMESCALE = 90_000  # ticks per second of every track we write: RTP's H.264 clock, exact for 25/30 fps

_SAMPLE_FLAGS_SYNC = 0x02000000  # sample_depends_on=2: an IDR, decodable alone
_SAMPLE_FLAGS_NON_SYNC = 0x01010000  # depends on others, sample_is_non_sync_sample=1
_TRUN_FLAGS = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800  # offset, duration, size, flags, cto
_UNITY_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
VIDEO_TRACK_ID, AUDIO_TRACK_ID = 1, 2


@dataclass(frozen=True, slots=True)
class VideoTrack:
    """The sample description of an H.264 track: picture size and the avcC record."""

    width: int
    height: int
    avcc: bytes
    timescale: int = TIMESCALE


@dataclass(frozen=True, slots=True)
class AudioTrack:
    """The sample description of an AAC track: rate, channels and the AudioSpecificConfig (`asc`).

    Its timescale is the sample rate, so AAC frames last exactly 1024 ticks.
    """

    sample_rate: int
    channels: int
    asc: bytes
    bitrate: int = 0

    @property
    def timescale(self) -> int:
        return self.sample_rate


@dataclass(slots=True)
class Sample:
    """One encoded frame to write: length-prefixed NAL units, duration and composition offset in ticks."""

    data: bytes
    duration: int
    keyframe: bool
    cto: int = 0


def init_segment(track: VideoTrack, audio: AudioTrack | None = None) -> bytes:
    """`ftyp` + `moov` with empty sample tables and `mvex`, as fragmented MP4 needs; the AAC track
    is track 2 when `audio` is given."""
    ftyp = box(b"ftyp", b"iso5", struct.pack(">I", 512), b"iso5iso6avc1mp41")
    if audio is None:
        return ftyp + box(b"moov", _mvhd(track, next_track=2), _trak(track), box(b"mvex", _trex(VIDEO_TRACK_ID)))
    return ftyp + box(b"moov", _mvhd(track, next_track=3), _trak(track), _audio_trak(audio),
                      box(b"mvex", _trex(VIDEO_TRACK_ID), _trex(AUDIO_TRACK_ID)))


def _mvhd(track: VideoTrack, *, next_track: int) -> bytes:
    return full_box(
        b"mvhd", 0, 0,
        struct.pack(">IIII", 0, 0, track.timescale, 0),  # times, timescale, duration unknown
        struct.pack(">IH", 0x10000, 0x100), bytes(10), _UNITY_MATRIX, bytes(24), struct.pack(">I", next_track),
    )


def _trex(track_id: int) -> bytes:
    return full_box(b"trex", 0, 0, struct.pack(">IIIII", track_id, 1, 0, 0, 0))  # sample entry 1


def _trak(track: VideoTrack) -> bytes:
    tkhd = full_box(
        b"tkhd", 0, 0x3,  # enabled, in movie
        struct.pack(">IIIII", 0, 0, 1, 0, 0), bytes(8), struct.pack(">hhhH", 0, 0, 0, 0),
        _UNITY_MATRIX, struct.pack(">II", track.width << 16, track.height << 16),
    )
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, track.timescale, 0, 0x55C4, 0))  # 'und'
    hdlr = full_box(b"hdlr", 0, 0, bytes(4), b"vide", bytes(12), b"VideoHandler\x00")
    minf = box(b"minf", full_box(b"vmhd", 0, 1, bytes(8)), _dinf(), _stbl(track))
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, minf))


def _audio_trak(audio: AudioTrack) -> bytes:
    tkhd = full_box(
        b"tkhd", 0, 0x3,  # enabled, in movie
        struct.pack(">IIIII", 0, 0, AUDIO_TRACK_ID, 0, 0), bytes(8), struct.pack(">hhhH", 0, 1, 0x100, 0),
        _UNITY_MATRIX, struct.pack(">II", 0, 0),  # alternate group 1, full volume, no picture
    )
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, audio.timescale, 0, 0x55C4, 0))
    hdlr = full_box(b"hdlr", 0, 0, bytes(4), b"soun", bytes(12), b"SoundHandler\x00")
    empty = struct.pack(">I", 0)
    stbl = box(
        b"stbl", full_box(b"stsd", 0, 0, struct.pack(">I", 1), mp4a_entry(audio)),
        full_box(b"stts", 0, 0, empty), full_box(b"stsc", 0, 0, empty),
        full_box(b"stsz", 0, 0, bytes(4), empty), full_box(b"stco", 0, 0, empty),
    )
    minf = box(b"minf", full_box(b"smhd", 0, 0, bytes(4)), _dinf(), stbl)
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, minf))


def mp4a_entry(audio: AudioTrack) -> bytes:
    """The `mp4a` audio sample entry with its `esds` child (16-bit samples, rate as 16.16)."""
    fields = struct.pack(">6sH8sHHHHI", bytes(6), 1, bytes(8), audio.channels, 16, 0, 0,
                         (audio.sample_rate & 0xFFFF) << 16)
    esds = full_box(b"esds", 0, 0, esds_payload(audio.asc, avg_bitrate=audio.bitrate, track_id=AUDIO_TRACK_ID))
    return box(b"mp4a", fields, esds)


def _dinf() -> bytes:
    return box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))


def _stbl(track: VideoTrack) -> bytes:
    empty = struct.pack(">I", 0)
    return box(
        b"stbl", full_box(b"stsd", 0, 0, struct.pack(">I", 1), avc1_entry(track)),
        full_box(b"stts", 0, 0, empty), full_box(b"stsc", 0, 0, empty),
        full_box(b"stsz", 0, 0, bytes(4), empty), full_box(b"stco", 0, 0, empty),
    )


def avc1_entry(track: VideoTrack) -> bytes:
    """The `avc1` visual sample entry with its `avcC` child."""
    fields = struct.pack(
        ">6sHHH12sHHIIIH32sHh", bytes(6), 1, 0, 0, bytes(12), track.width, track.height,
        0x00480000, 0x00480000, 0, 1, bytes(32), 0x18, -1,
    )
    return box(b"avc1", fields, box(b"avcC", track.avcc))


@dataclass(slots=True)
class TrackRun:
    """The samples of one track in one fragment, the first decoded at `base_decode_time` track ticks."""

    track_id: int
    base_decode_time: int
    samples: list[Sample]


def media_fragment(sequence: int, base_decode_time: int, samples: list[Sample], audio: TrackRun | None = None) -> bytes:
    """One `moof` + `mdat` holding `samples`, the first decoded at `base_decode_time` ticks."""
    return b"".join(media_fragment_parts(sequence, base_decode_time, samples, audio))


def media_fragment_parts(sequence: int, base_decode_time: int, samples: list[Sample],
                         audio: TrackRun | None = None) -> list[bytes]:
    """`media_fragment` as the pieces it is made of (`moof`, the `mdat` header, each sample), for a
    gathering write: the samples are not copied into one string first.

    `audio`, when it has samples, adds a second `traf` whose samples follow the video's in the `mdat`.
    """
    video = TrackRun(VIDEO_TRACK_ID, base_decode_time, samples)
    runs = [run for run in (video, audio) if run is not None and run.samples]
    if not runs:
        raise ValueError("a fragment needs at least one sample")
    moof_size = 8 + 16 + sum(_traf_size(len(run.samples)) for run in runs)  # moof, mfhd, trafs
    data_offset = moof_size + 8
    trafs = []
    for run in runs:
        trafs.append(_traf(run, data_offset))
        data_offset += sum(len(s.data) for s in run.samples)
    moof = box(b"moof", full_box(b"mfhd", 0, 0, struct.pack(">I", sequence)), *trafs)
    assert len(moof) == moof_size
    mdat_header = struct.pack(">I4s", data_offset - moof_size, b"mdat")
    return [moof, mdat_header, *(s.data for run in runs for s in run.samples)]


def _traf_size(count: int) -> int:
    return 8 + 16 + 20 + 12 + 8 + 16 * count  # traf, tfhd, tfdt(v1), trun


def _traf(run: TrackRun, data_offset: int) -> bytes:
    entries = b"".join(
        struct.pack(">IIIi", s.duration, len(s.data), _SAMPLE_FLAGS_SYNC if s.keyframe else _SAMPLE_FLAGS_NON_SYNC, s.cto)
        for s in run.samples
    )
    tfhd = full_box(b"tfhd", 0, 0x020000, struct.pack(">I", run.track_id))  # default-base-is-moof
    tfdt = full_box(b"tfdt", 1, 0, struct.pack(">Q", run.base_decode_time))
    trun = full_box(b"trun", 1, _TRUN_FLAGS, struct.pack(">Ii", len(run.samples), data_offset), entries)
    return box(b"traf", tfhd, tfdt, trun)


@dataclass(frozen=True, slots=True)
class SampleRef:
    """Where one sample of a written segment lies in its file, and its timing in track ticks."""

    offset: int
    size: int
    decode_time: int
    duration: int
    keyframe: bool
    cto: int


@dataclass(slots=True)
class SegmentContents:
    """What `read_segment` found: the tracks, every complete sample of each, and where the usable bytes end.

    `samples` are the video track's; `audio_samples` the audio track's (empty when `audio` is None).
    """

    track: VideoTrack
    samples: list[SampleRef] = field(default_factory=list)
    fragments: int = 0
    usable_bytes: int = 0
    file_bytes: int = 0
    audio: AudioTrack | None = None
    audio_samples: list[SampleRef] = field(default_factory=list)
    track_kinds: dict[int, str] = field(default_factory=dict)

    @property
    def start_ticks(self) -> int:
        return self.samples[0].decode_time if self.samples else 0

    @property
    def duration_ticks(self) -> int:
        return self.samples[-1].decode_time + self.samples[-1].duration - self.start_ticks if self.samples else 0


# What reading fixed fields at offsets a damaged box announces raises: a field past the buffer's end
# (IndexError, struct.error) or a container with no child where one must be (StopIteration from next()).
_DAMAGE = (IndexError, struct.error, StopIteration)


def read_segment(path: str | os.PathLike) -> SegmentContents:
    """Parse a segment file written by `SegmentFile`, stopping at the first incomplete fragment.

    Raises Mp4Error if the init part (`ftyp` + `moov`) is missing or malformed: such a file holds
    nothing playable.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        boxes = scan_file(f, size)
        try:
            contents = _read_init(f, boxes, size)
        except _DAMAGE as exc:
            raise Mp4Error(f"damaged moov box: {exc!r}") from exc
        pending_moof: tuple[BoxHeader, bytes] | None = None
        for header in boxes:
            if header.kind == b"moof":
                f.seek(header.start)
                pending_moof = (header, f.read(header.end - header.start))
            elif header.kind == b"mdat" and pending_moof is not None:
                try:
                    _add_fragment(contents, pending_moof, header)
                except (Mp4Error, *_DAMAGE):
                    break  # a damaged fragment ends the usable part, as a cut one does
                pending_moof = None
    return contents


def _read_init(f, boxes, size: int) -> SegmentContents:
    moov = next((h for h in boxes if h.kind == b"moov"), None)
    if moov is None:
        raise Mp4Error("no complete moov box: the file holds no playable video")
    f.seek(moov.start)
    data = f.read(moov.end - moov.start)
    kinds: dict[int, str] = {}
    track = audio = None
    for trak in (b for b in iter_boxes(data, 8) if b.kind == b"trak"):
        kind, track_id, parsed = _parse_trak(data, trak)
        if kind == "video" and track is None:
            track = parsed
        elif kind == "audio" and audio is None:
            audio = parsed
        else:
            continue  # a track we did not write (or a second one): its samples are not read
        kinds[track_id] = kind
    if track is None:
        raise Mp4Error("moov has no avc1 video track")
    return SegmentContents(track=track, usable_bytes=moov.end, file_bytes=size, audio=audio, track_kinds=kinds)


def parse_track(moov: bytes) -> VideoTrack:
    """The video track description from a `moov` box's bytes."""
    for trak in (b for b in iter_boxes(moov, 8) if b.kind == b"trak"):
        try:
            kind, _, parsed = _parse_trak(moov, trak)
        except _DAMAGE as exc:
            raise Mp4Error(f"damaged trak box: {exc!r}") from exc
        if kind == "video":
            return parsed
    raise Mp4Error("moov has no avc1 video track")


def _parse_trak(moov: bytes, trak: BoxHeader) -> tuple[str, int, VideoTrack | AudioTrack | None]:
    """('video' | 'audio' | 'other', track id, description) of one `trak` box."""
    tkhd = find_box(moov, [b"tkhd"], trak.body, trak.end)
    mdhd = find_box(moov, [b"mdia", b"mdhd"], trak.body, trak.end)
    stsd = find_box(moov, [b"mdia", b"minf", b"stbl", b"stsd"], trak.body, trak.end)
    if tkhd is None or mdhd is None or stsd is None:
        raise Mp4Error("trak lacks tkhd, mdhd or stsd")
    track_id = struct.unpack_from(">I", moov, tkhd.body + (20 if moov[tkhd.body] == 1 else 12))[0]
    timescale = struct.unpack_from(">I", moov, mdhd.body + (20 if moov[mdhd.body] == 1 else 12))[0]
    entry = next(iter_boxes(moov, stsd.body + 8, stsd.end))
    if entry.kind == b"avc1":
        return "video", track_id, _parse_avc1(moov, entry, timescale)
    if entry.kind == b"mp4a":
        return "audio", track_id, _parse_mp4a(moov, entry, timescale)
    return "other", track_id, None


def _parse_avc1(moov: bytes, entry: BoxHeader, timescale: int) -> VideoTrack:
    width, height = struct.unpack_from(">HH", moov, entry.body + 24)
    avcc = next((b for b in iter_boxes(moov, entry.body + 78, entry.end) if b.kind == b"avcC"), None)
    if avcc is None:
        raise Mp4Error("avc1 entry has no avcC")
    return VideoTrack(width, height, bytes(moov[avcc.body : avcc.end]), timescale)


def _parse_mp4a(moov: bytes, entry: BoxHeader, timescale: int) -> AudioTrack:
    channels = struct.unpack_from(">H", moov, entry.body + 16)[0]
    esds = next((b for b in iter_boxes(moov, entry.body + 28, entry.end) if b.kind == b"esds"), None)
    if esds is None:
        raise Mp4Error("mp4a entry has no esds")
    payload = bytes(moov[esds.body + 4 : esds.end])
    try:
        asc = asc_from_esds(payload)
    except AacError as exc:
        raise Mp4Error(f"unreadable esds: {exc}") from exc
    bitrate = struct.unpack_from(">I", payload, 2 + 3 + 2 + 9)[0] if len(payload) >= 16 else 0
    return AudioTrack(timescale, channels, asc, bitrate)


def _add_fragment(contents: SegmentContents, moof: tuple[BoxHeader, bytes], mdat: BoxHeader) -> None:
    """Add one fragment's samples, all tracks or none: a fragment that does not parse whole is not used."""
    header, data = moof
    found: dict[str, list[SampleRef]] = {"video": [], "audio": []}
    expected = mdat.body  # the trafs' samples lie back to back in the mdat, in traf order
    for traf in (b for b in iter_boxes(data, 8) if b.kind == b"traf"):
        kind, samples = _read_traf(data, traf, header.start, contents.track_kinds)
        if samples and samples[0].offset != expected:
            raise Mp4Error(f"fragment at {header.start} does not match the mdat after it")
        expected += sum(s.size for s in samples)
        found.setdefault(kind, []).extend(samples)
    if expected > mdat.end or expected == mdat.body:
        raise Mp4Error(f"fragment at {header.start} does not match the mdat after it")
    contents.samples.extend(found["video"])
    contents.audio_samples.extend(found["audio"])
    contents.fragments += 1
    contents.usable_bytes = mdat.end


def _read_traf(data: bytes, traf: BoxHeader, moof_start: int, kinds: dict[int, str]) -> tuple[str, list[SampleRef]]:
    tfhd = find_box(data, [b"tfhd"], traf.body, traf.end)
    tfdt = find_box(data, [b"tfdt"], traf.body, traf.end)
    trun = find_box(data, [b"trun"], traf.body, traf.end)
    if tfhd is None or tfdt is None or trun is None:
        raise Mp4Error(f"fragment at {moof_start} lacks tfhd/tfdt/trun")
    track_id = struct.unpack_from(">I", data, tfhd.body + 4)[0]
    kind = kinds.get(track_id)
    if kind is None:
        raise Mp4Error(f"fragment at {moof_start} has samples of unknown track {track_id}")
    decode_time = (
        struct.unpack_from(">Q", data, tfdt.body + 4)[0] if data[tfdt.body] == 1
        else struct.unpack_from(">I", data, tfdt.body + 4)[0]
    )
    flags = int.from_bytes(data[trun.body + 1 : trun.body + 4], "big")
    if flags != _TRUN_FLAGS:
        raise Mp4Error(f"trun flags {flags:#x} at {moof_start} are not the ones this recorder writes")
    count, data_offset = struct.unpack_from(">Ii", data, trun.body + 4)
    offset = moof_start + data_offset
    samples = []
    for i in range(count):
        duration, size, sample_flags, cto = struct.unpack_from(">IIIi", data, trun.body + 12 + 16 * i)
        samples.append(SampleRef(offset, size, decode_time, duration, not sample_flags & 0x00010000, cto))
        offset += size
        decode_time += duration
    return kind, samples
