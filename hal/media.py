"""Value types for media crossing the seams: raw captured frames, encoded packets and their stream info.

They live in `hal` because capture hardware produces both kinds (raw YUV from a BNC card, H.264 or
MJPEG from some cards), and `drivers` and `recorder` both speak them without importing each other.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a consumer needs to know about an encoded video stream before its first packet.

    `extradata` is the codec configuration exactly as the source gave it (Annex B SPS/PPS or an
    `avcC` record, or None when the parameter sets only come in-band with keyframes).
    Packet timestamps are in `time_base` units.
    """

    codec: str
    width: int
    height: int
    time_base: Fraction
    extradata: bytes | None = None
    fps: float | None = None


@dataclass(slots=True)
class EncodedPacket:
    """One access unit of encoded video (one frame), timestamps in the stream's `time_base`.

    `data` is H.264 in Annex B (start codes) or length-prefixed form; the recorder normalises it.
    `arrival_us` is the monotonic clock reading when the packet reached us, used for stall detection
    and pacing, never for ordering.
    """

    data: bytes
    pts: int
    dts: int
    keyframe: bool
    arrival_us: int = 0


@dataclass(frozen=True, slots=True)
class CaptureFormat:
    """The format a capture device (real or simulated) delivers frames in."""

    width: int
    height: int
    pixel_format: str
    fps: float


@dataclass(slots=True)
class RawFrame:
    """One uncompressed captured picture.

    `data` holds the image in `pixel_format` as PyAV's `VideoFrame.from_ndarray` takes it
    (for `yuv420p` a (height * 3 // 2, width) uint8 array). `timestamp_us` is the capture time on the
    monotonic clock (the driver's timestamp for V4L2), and `sequence` counts frames the device
    produced, so a gap in it is a dropped frame.
    """

    data: np.ndarray
    pixel_format: str
    width: int
    height: int
    timestamp_us: int
    sequence: int
