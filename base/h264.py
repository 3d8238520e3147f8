"""H.264 as the drivers and the recorder both need it: SPS fields, the avcC record, and NAL framing
(Annex B start codes, length prefixes, MP4 samples). One module for the codec: drivers describe a
stream from its parameter sets and the recorder writes them into MP4, and neither may import the other.
"""
from __future__ import annotations

from dataclasses import dataclass

NAL_SLICE_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
MAX_PARAMETER_SET_BYTES = 4096  # an SPS or PPS longer than this is garbage (real ones are < 100 bytes)
MAX_AVCC_NAL_BYTES = 0xFFFF  # avcC stores each parameter set's length in 16 bits
MAX_POC_CYCLE = 255  # num_ref_frames_in_pic_order_cnt_cycle (H.264 7.4.2.1.1: 0..255)
MAX_PICTURE_SIDE = 16384  # pixels: larger (or zero) sizes are a corrupt SPS


class H264Error(ValueError):
    """A bitstream that cannot be parsed as H.264."""


@dataclass(frozen=True, slots=True)
class SpsInfo:
    """The SPS fields a container needs."""

    profile_idc: int
    constraint_flags: int
    level_idc: int
    width: int
    height: int
    fps: float | None = None  # from the VUI timing info, when the encoder wrote it


def avcc_record(sps: bytes, pps: bytes) -> bytes:
    """Build an AVCDecoderConfigurationRecord (the body of an `avcC` box) for one SPS and one PPS."""
    if len(sps) < 4:
        raise H264Error(f"SPS of {len(sps)} bytes is too short")
    if max(len(sps), len(pps)) > min(MAX_PARAMETER_SET_BYTES, MAX_AVCC_NAL_BYTES):
        raise H264Error(f"parameter sets of {len(sps)} and {len(pps)} bytes: over {MAX_PARAMETER_SET_BYTES}")
    return b"".join(
        [
            bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]),  # version, profile, compat, level, 4-byte lengths, 1 SPS
            len(sps).to_bytes(2, "big"),
            sps,
            b"\x01",
            len(pps).to_bytes(2, "big"),
            pps,
        ]
    )


class _BitReader:
    """Reads bits and Exp-Golomb codes from an RBSP (emulation prevention already removed).

    Each read looks only at the bytes it needs (at most 5), so parsing is linear in the SPS: a big
    integer of the whole SPS, shifted per read, made a crafted 128 kB SPS cost seconds."""

    def __init__(self, data: bytes):
        self._data = data
        self._bits = len(data) * 8
        self._pos = 0

    def u(self, count: int) -> int:
        if self._pos + count > self._bits:
            raise H264Error("SPS ended early")
        if count == 0:
            return 0
        first, last = self._pos >> 3, (self._pos + count - 1) >> 3
        chunk = int.from_bytes(self._data[first:last + 1], "big")
        self._pos += count
        return (chunk >> ((last + 1) * 8 - self._pos)) & ((1 << count) - 1)

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise H264Error("bad Exp-Golomb code in SPS")
        return (1 << zeros) - 1 + (self.u(zeros) if zeros else 0)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def _rbsp(nal: bytes) -> bytes:
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})


def parse_sps(sps: bytes) -> SpsInfo:
    """Profile, level and the cropped picture size from an SPS NAL unit (header byte included)."""
    if len(sps) < 4 or sps[0] & 0x1F != NAL_SPS:
        raise H264Error("not an SPS NAL unit")
    if len(sps) > MAX_PARAMETER_SET_BYTES:
        raise H264Error(f"SPS of {len(sps)} bytes: over {MAX_PARAMETER_SET_BYTES}")
    r = _BitReader(_rbsp(sps[1:]))
    profile, constraints, level = r.u(8), r.u(8), r.u(8)
    r.ue()  # seq_parameter_set_id
    chroma_format = 1
    if profile in _HIGH_PROFILES:
        chroma_format = _skip_high_profile_fields(r)
    r.ue()  # log2_max_frame_num_minus4
    _skip_pic_order_fields(r)
    r.ue()  # max_num_ref_frames
    r.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs, height_units = r.ue() + 1, r.ue() + 1
    frame_mbs_only = r.u(1)
    if not frame_mbs_only:
        r.u(1)  # mb_adaptive_frame_field_flag
    r.u(1)  # direct_8x8_inference_flag
    crop = (r.ue(), r.ue(), r.ue(), r.ue()) if r.u(1) else (0, 0, 0, 0)
    unit_x = 1 if chroma_format in (0, 3) else 2
    unit_y = (2 - frame_mbs_only) * (2 if chroma_format == 1 else 1)
    width = width_mbs * 16 - (crop[0] + crop[1]) * unit_x
    height = (2 - frame_mbs_only) * height_units * 16 - (crop[2] + crop[3]) * unit_y
    if not (0 < width <= MAX_PICTURE_SIDE and 0 < height <= MAX_PICTURE_SIDE):
        raise H264Error(f"SPS gives a {width}x{height} picture")
    return SpsInfo(profile, constraints, level, width, height, _vui_fps(r))


def _vui_fps(r: _BitReader) -> float | None:
    """The frame rate from the VUI timing info, or None (no VUI, no timing, or a truncated VUI)."""
    try:
        if not r.u(1):  # vui_parameters_present_flag
            return None
        if r.u(1) and r.u(8) == 255:  # aspect_ratio_info_present_flag, aspect_ratio_idc == Extended_SAR
            r.u(32)
        if r.u(1):  # overscan_info_present_flag
            r.u(1)
        if r.u(1):  # video_signal_type_present_flag
            r.u(4)
            if r.u(1):
                r.u(24)
        if r.u(1):  # chroma_loc_info_present_flag
            r.ue(), r.ue()
        if not r.u(1):  # timing_info_present_flag
            return None
        units, scale = r.u(32), r.u(32)
    except H264Error:
        return None
    return scale / (2 * units) if units and scale else None


def _skip_high_profile_fields(r: _BitReader) -> int:
    chroma_format = r.ue()
    if chroma_format == 3:
        r.u(1)  # separate_colour_plane_flag
    r.ue(), r.ue()  # bit depths
    r.u(1)  # qpprime_y_zero_transform_bypass_flag
    if r.u(1):  # seq_scaling_matrix_present_flag
        for i in range(8 if chroma_format != 3 else 12):
            if r.u(1):
                _skip_scaling_list(r, 16 if i < 6 else 64)
    return chroma_format


def _skip_scaling_list(r: _BitReader, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt != 0:
            nxt = (last + r.se() + 256) % 256
        last = nxt if nxt != 0 else last


def _skip_pic_order_fields(r: _BitReader) -> None:
    kind = r.ue()
    if kind == 0:
        r.ue()
    elif kind == 1:
        r.u(1)
        r.se(), r.se()
        cycle = r.ue()
        if cycle > MAX_POC_CYCLE:
            raise H264Error(f"SPS pic_order_cnt cycle of {cycle} frames (at most {MAX_POC_CYCLE})")
        for _ in range(cycle):
            r.se()


# --- NAL framing: Annex B and length prefixes, MP4 samples, avcC records ---------------------------
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


