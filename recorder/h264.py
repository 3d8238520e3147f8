"""H.264 bitstream handling: Annex B and length-prefixed NAL units, avcC records and SPS fields."""
from __future__ import annotations

from dataclasses import dataclass

from base.h264 import H264Error, SpsInfo, avcc_record, parse_sps  # noqa: F401  (re-exported: one copy)

NAL_SLICE_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9

# Parameter sets travel in the sample description (avcC), and access unit delimiters carry nothing
# an MP4 player needs, so both are taken out of samples.
_OUT_OF_BAND = frozenset({NAL_SPS, NAL_PPS, NAL_AUD})


def is_annexb(data: bytes) -> bool:
    """True if `data` starts with an Annex B start code (00 00 01 or 00 00 00 01)."""
    return data[:3] == b"\x00\x00\x01" or data[:4] == b"\x00\x00\x00\x01"


def split_annexb(data: bytes) -> list[bytes]:
    """Split an Annex B byte stream into NAL units (without start codes, trailing zeros dropped).
    Raises H264Error if anything but zero bytes comes before the first start code."""
    return [data[begin:end] for begin, end in _annexb_bounds(data)]


def _annexb_bounds(data: bytes) -> list[tuple[int, int]]:
    """Where `split_annexb`'s NAL units lie in `data`, as (begin, end) offsets."""
    bounds: list[tuple[int, int]] = []
    start = data.find(b"\x00\x00\x01")
    if data and (start < 0 or data[:start].strip(b"\x00")):
        raise H264Error(f"{len(data)}-byte packet does not start with an Annex B start code")
    while start >= 0:
        begin = start + 3
        nxt = data.find(b"\x00\x00\x01", begin)
        end = len(data) if nxt < 0 else nxt
        if nxt >= 0:
            while end > begin and data[end - 1] == 0:  # trailing zeros belong to the next start code
                end -= 1
        if end > begin:
            bounds.append((begin, end))
        start = nxt
    return bounds


def split_length_prefixed(data: bytes, length_size: int = 4) -> list[bytes]:
    """Split length-prefixed (AVCC) NAL units; raises H264Error if a length runs past the end."""
    nals: list[bytes] = []
    pos = 0
    while pos < len(data):
        if pos + length_size > len(data):
            raise H264Error(f"truncated NAL length at byte {pos} of {len(data)}")
        size = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        if size == 0 or pos + size > len(data):
            raise H264Error(f"NAL of {size} bytes at byte {pos} runs past the {len(data)}-byte packet")
        nals.append(data[pos : pos + size])
        pos += size
    return nals


ANNEX_B = 0  # `length_size` value meaning "start codes, not length prefixes"


def split_nals(data: bytes, length_size: int | None = None) -> list[bytes]:
    """NAL units of one access unit: `length_size` 1-4 for length-prefixed, ANNEX_B for start codes,
    None to guess from the first bytes. Guessing is ambiguous (a 4-byte length of 256-511 starts
    00 00 01), so streams decide once from their codec configuration: see `stream_framing`."""
    if length_size is None:
        length_size = ANNEX_B if is_annexb(data) else 4
    return split_annexb(data) if length_size == ANNEX_B else split_length_prefixed(data, length_size)


def stream_framing(extradata: bytes | None) -> int:
    """How a stream's packets are framed, from its extradata: an avcC record (first byte 1) means
    length-prefixed NALs of the size it states; Annex B parameter sets, or none, mean start codes."""
    if extradata and extradata[0] == 1:
        return parse_avcc_record(extradata)[2]
    return ANNEX_B


def nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F


@dataclass(slots=True)
class AccessUnit:
    """One access unit converted for MP4: the sample bytes plus any parameter sets it carried."""

    sample: bytes
    sps: bytes | None
    pps: bytes | None
    idr: bool


def to_mp4_sample(data: bytes, length_size: int | None = None) -> AccessUnit:
    """Convert an access unit to 4-byte length-prefixed NALs, lifting SPS/PPS out of it."""
    if length_size is None:
        length_size = ANNEX_B if is_annexb(data) else 4
    if length_size == ANNEX_B:
        return _annexb_to_mp4_sample(data)
    if length_size == 4:
        unit = _sample_as_is(data)
        if unit is not None:
            return unit
    sps = pps = None
    idr = False
    parts: list[bytes] = []
    for nal in split_length_prefixed(data, length_size):
        kind = nal_type(nal)
        if kind == NAL_SPS:
            sps = nal
        elif kind == NAL_PPS:
            pps = nal
        if kind in _OUT_OF_BAND:
            continue
        idr = idr or kind == NAL_SLICE_IDR
        parts.append(len(nal).to_bytes(4, "big"))
        parts.append(nal)
    return AccessUnit(b"".join(parts), sps, pps, idr)


def _sample_as_is(data: bytes) -> AccessUnit | None:
    """The access unit itself when it already is an MP4 sample (4-byte lengths, nothing to lift out),
    as the native RTSP client delivers most frames: no copy. None when it needs converting (or is
    malformed: the full conversion then says why)."""
    pos, end, idr = 0, len(data), False
    while pos < end:
        if pos + 5 > end:
            return None
        size = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4] & 0x1F
        if size == 0 or kind in _OUT_OF_BAND:
            return None
        idr = idr or kind == NAL_SLICE_IDR
        pos += 4 + size
    return AccessUnit(data, None, None, idr) if pos == end and end else None


def _annexb_to_mp4_sample(data: bytes) -> AccessUnit:
    """`to_mp4_sample` for start codes: the NAL units go into the sample as views of `data`, so each
    byte is copied once (this runs for every frame of every camera)."""
    sps = pps = None
    idr = False
    view = memoryview(data)
    parts: list[bytes | memoryview] = []
    for begin, end in _annexb_bounds(data):
        kind = data[begin] & 0x1F
        if kind == NAL_SPS:
            sps = data[begin:end]
        elif kind == NAL_PPS:
            pps = data[begin:end]
        if kind in _OUT_OF_BAND:
            continue
        idr = idr or kind == NAL_SLICE_IDR
        parts.append((end - begin).to_bytes(4, "big"))
        parts.append(view[begin:end])
    return AccessUnit(b"".join(parts), sps, pps, idr)


def parse_avcc_record(record: bytes) -> tuple[list[bytes], list[bytes], int]:
    """Return (SPS list, PPS list, NAL length size) from an AVCDecoderConfigurationRecord."""
    try:
        length_size = (record[4] & 0x03) + 1
        pos = 5
        sps_list, pos = _read_param_sets(record, pos, record[pos] & 0x1F, 1)
        pps_list, pos = _read_param_sets(record, pos, record[pos], 1)
    except IndexError as exc:
        raise H264Error(f"avcC record of {len(record)} bytes is truncated") from exc
    return sps_list, pps_list, length_size


def _read_param_sets(record: bytes, pos: int, count: int, skip: int) -> tuple[list[bytes], int]:
    pos += skip
    found = []
    for _ in range(count):
        size = int.from_bytes(record[pos : pos + 2], "big")
        found.append(record[pos + 2 : pos + 2 + size])
        if len(found[-1]) != size:
            raise IndexError
        pos += 2 + size
    return found, pos


def parameter_sets(extradata: bytes | None) -> tuple[bytes | None, bytes | None]:
    """First SPS and PPS found in codec extradata in either form (Annex B or avcC), or Nones."""
    if not extradata:
        return None, None
    if is_annexb(extradata):
        nals = split_annexb(extradata)
        sps = next((n for n in nals if nal_type(n) == NAL_SPS), None)
        pps = next((n for n in nals if nal_type(n) == NAL_PPS), None)
        return sps, pps
    sps_list, pps_list, _ = parse_avcc_record(extradata)
    return (sps_list[0] if sps_list else None), (pps_list[0] if pps_list else None)


