"""H.264 facts that sources and the recorder both need: SPS fields and the avcC record.

In `hal` (next to `base.media`) because drivers describe a stream from its parameter sets and the
recorder writes them into MP4, and neither may import the other.
"""
from __future__ import annotations

from dataclasses import dataclass

NAL_SPS = 7
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
