"""Fragmented MP4 for one H.264 track: the init segment, media fragments, and reading them back.

A segment file is `ftyp`+`moov` (written and synced first) followed by `moof`+`mdat` fragments of
about a second each. Every fragment is self-describing, so a file cut anywhere by a crash is still
playable up to its last complete fragment; `read_segment` finds that point.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from recorder.mp4 import BoxHeader, Mp4Error, box, find_box, full_box, iter_boxes, scan_file

TIMESCALE = 90_000  # ticks per second of every track we write: RTP's H.264 clock, exact for 25/30 fps

_SAMPLE_FLAGS_SYNC = 0x02000000  # sample_depends_on=2: an IDR, decodable alone
_SAMPLE_FLAGS_NON_SYNC = 0x01010000  # depends on others, sample_is_non_sync_sample=1
_TRUN_FLAGS = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800  # offset, duration, size, flags, cto
_UNITY_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


@dataclass(frozen=True, slots=True)
class VideoTrack:
    """The sample description of an H.264 track: picture size and the avcC record."""

    width: int
    height: int
    avcc: bytes
    timescale: int = TIMESCALE


@dataclass(slots=True)
class Sample:
    """One encoded frame to write: length-prefixed NAL units, duration and composition offset in ticks."""

    data: bytes
    duration: int
    keyframe: bool
    cto: int = 0


def init_segment(track: VideoTrack) -> bytes:
    """`ftyp` + `moov` with an empty sample table and `mvex`, as fragmented MP4 needs."""
    ftyp = box(b"ftyp", b"iso5", struct.pack(">I", 512), b"iso5iso6avc1mp41")
    return ftyp + box(b"moov", _mvhd(track), _trak(track), box(b"mvex", _trex()))


def _mvhd(track: VideoTrack) -> bytes:
    return full_box(
        b"mvhd", 0, 0,
        struct.pack(">IIII", 0, 0, track.timescale, 0),  # times, timescale, duration unknown
        struct.pack(">IH", 0x10000, 0x100), bytes(10), _UNITY_MATRIX, bytes(24), struct.pack(">I", 2),
    )


def _trex() -> bytes:
    return full_box(b"trex", 0, 0, struct.pack(">IIIII", 1, 1, 0, 0, 0))  # track 1, sample entry 1


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


def media_fragment(sequence: int, base_decode_time: int, samples: list[Sample]) -> bytes:
    """One `moof` + `mdat` holding `samples`, the first decoded at `base_decode_time` ticks."""
    return b"".join(media_fragment_parts(sequence, base_decode_time, samples))


def media_fragment_parts(sequence: int, base_decode_time: int, samples: list[Sample]) -> list[bytes]:
    """`media_fragment` as the pieces it is made of (`moof`, the `mdat` header, each sample), for a
    gathering write: the samples are not copied into one string first."""
    if not samples:
        raise ValueError("a fragment needs at least one sample")
    entries = b"".join(
        struct.pack(">IIIi", s.duration, len(s.data), _SAMPLE_FLAGS_SYNC if s.keyframe else _SAMPLE_FLAGS_NON_SYNC, s.cto)
        for s in samples
    )
    trun_size = 12 + 8 + len(entries)
    moof_size = 8 + 16 + 8 + 16 + 20 + trun_size  # moof, mfhd, traf, tfhd, tfdt(v1), trun
    mfhd = full_box(b"mfhd", 0, 0, struct.pack(">I", sequence))
    tfhd = full_box(b"tfhd", 0, 0x020000, struct.pack(">I", 1))  # default-base-is-moof, track 1
    tfdt = full_box(b"tfdt", 1, 0, struct.pack(">Q", base_decode_time))
    trun = full_box(b"trun", 1, _TRUN_FLAGS, struct.pack(">Ii", len(samples), moof_size + 8), entries)
    moof = box(b"moof", mfhd, box(b"traf", tfhd, tfdt, trun))
    assert len(moof) == moof_size
    mdat_header = struct.pack(">I4s", 8 + sum(len(s.data) for s in samples), b"mdat")
    return [moof, mdat_header, *(s.data for s in samples)]


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
    """What `read_segment` found: the track, every complete sample, and where the usable bytes end."""

    track: VideoTrack
    samples: list[SampleRef] = field(default_factory=list)
    fragments: int = 0
    usable_bytes: int = 0
    file_bytes: int = 0

    @property
    def start_ticks(self) -> int:
        return self.samples[0].decode_time if self.samples else 0

    @property
    def duration_ticks(self) -> int:
        return self.samples[-1].decode_time + self.samples[-1].duration - self.start_ticks if self.samples else 0


def read_segment(path: str | os.PathLike) -> SegmentContents:
    """Parse a segment file written by `SegmentFile`, stopping at the first incomplete fragment.

    Raises Mp4Error if the init part (`ftyp` + `moov`) is missing or malformed: such a file holds
    nothing playable.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        boxes = scan_file(f, size)
        contents = _read_init(f, boxes, size)
        pending_moof: tuple[BoxHeader, bytes] | None = None
        for header in boxes:
            if header.kind == b"moof":
                f.seek(header.start)
                pending_moof = (header, f.read(header.end - header.start))
            elif header.kind == b"mdat" and pending_moof is not None:
                try:
                    _add_fragment(contents, pending_moof, header)
                except (Mp4Error, struct.error):
                    break  # a damaged fragment ends the usable part, as a cut one does
                pending_moof = None
    return contents


def _read_init(f, boxes, size: int) -> SegmentContents:
    moov = next((h for h in boxes if h.kind == b"moov"), None)
    if moov is None:
        raise Mp4Error("no complete moov box: the file holds no playable video")
    f.seek(moov.start)
    track = parse_track(f.read(moov.end - moov.start))
    return SegmentContents(track=track, usable_bytes=moov.end, file_bytes=size)


def parse_track(moov: bytes) -> VideoTrack:
    """The video track description from a `moov` box's bytes."""
    mdhd = find_box(moov, [b"moov", b"trak", b"mdia", b"mdhd"])
    stsd = find_box(moov, [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"])
    if mdhd is None or stsd is None:
        raise Mp4Error("moov lacks mdhd or stsd")
    version = moov[mdhd.body]
    timescale = struct.unpack_from(">I", moov, mdhd.body + (20 if version == 1 else 12))[0]
    entry = next(iter_boxes(moov, stsd.body + 8, stsd.end))
    if entry.kind != b"avc1":
        raise Mp4Error(f"sample entry {entry.kind!r} is not avc1")
    width, height = struct.unpack_from(">HH", moov, entry.body + 24)
    avcc = next((b for b in iter_boxes(moov, entry.body + 78, entry.end) if b.kind == b"avcC"), None)
    if avcc is None:
        raise Mp4Error("avc1 entry has no avcC")
    return VideoTrack(width, height, bytes(moov[avcc.body : avcc.end]), timescale)


def _add_fragment(contents: SegmentContents, moof: tuple[BoxHeader, bytes], mdat: BoxHeader) -> None:
    header, data = moof
    traf = find_box(data, [b"moof", b"traf"])
    tfdt = find_box(data, [b"moof", b"traf", b"tfdt"])
    trun = find_box(data, [b"moof", b"traf", b"trun"])
    if traf is None or tfdt is None or trun is None:
        raise Mp4Error(f"fragment at {header.start} lacks traf/tfdt/trun")
    decode_time = (
        struct.unpack_from(">Q", data, tfdt.body + 4)[0] if data[tfdt.body] == 1
        else struct.unpack_from(">I", data, tfdt.body + 4)[0]
    )
    flags = int.from_bytes(data[trun.body + 1 : trun.body + 4], "big")
    if flags != _TRUN_FLAGS:
        raise Mp4Error(f"trun flags {flags:#x} at {header.start} are not the ones this recorder writes")
    count, data_offset = struct.unpack_from(">Ii", data, trun.body + 4)
    offset = header.start + data_offset
    samples = []
    for i in range(count):
        duration, size, sample_flags, cto = struct.unpack_from(">IIIi", data, trun.body + 12 + 16 * i)
        keyframe = not sample_flags & 0x00010000
        samples.append(SampleRef(offset, size, decode_time, duration, keyframe, cto))
        offset += size
        decode_time += duration
    if offset > mdat.end or data_offset != mdat.body - header.start:
        raise Mp4Error(f"fragment at {header.start} does not match the mdat after it")
    contents.samples.extend(samples)
    contents.fragments += 1
    contents.usable_bytes = mdat.end
