"""Value types for media crossing the seams: raw captured frames, encoded packets and their stream info.

They live in `hal` because capture hardware produces both kinds (raw YUV from a BNC card, H.264 or
MJPEG from some cards), and `drivers` and `recorder` both speak them without importing each other.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """The audio track that comes with a stream, as the source delivers it.

    `codec` is FFmpeg's name: 'aac' (recorded as is), 'pcm_mulaw' / 'pcm_alaw' (G.711, which MP4
    players do not take, so the recorder's side transcodes it to AAC once), others as they come.
    `extradata` is the AAC AudioSpecificConfig when the source has one. Audio packet timestamps are
    in `time_base` units (usually 1/sample_rate) on the same clock as the video's, so A/V offset is
    the difference of the two converted to seconds.
    """

    codec: str
    sample_rate: int
    channels: int
    time_base: Fraction
    extradata: bytes | None = None


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a consumer needs to know about an encoded stream before its first packet.

    `extradata` is the video codec configuration exactly as the source gave it (Annex B SPS/PPS or
    an `avcC` record, or None when the parameter sets only come in-band with keyframes).
    Video packet timestamps are in `time_base` units. `audio` describes the audio track, or is None
    when the stream has none (then no packet has `track == "audio"`).
    """

    codec: str
    width: int
    height: int
    time_base: Fraction
    extradata: bytes | None = None
    fps: float | None = None
    audio: AudioInfo | None = None


@dataclass(slots=True)
class EncodedPacket:
    """One access unit of encoded media: a video frame, or an audio frame when `track == "audio"`.

    Video: `data` is H.264 in Annex B (start codes) or length-prefixed form; the recorder normalises
    it; timestamps in `StreamInfo.time_base`. Audio: `data` is one raw frame of `AudioInfo.codec`
    (AAC without ADTS header), timestamps in `AudioInfo.time_base`, `keyframe` True. A source yields
    both tracks interleaved roughly in arrival order; each track's own timestamps never go back.
    `arrival_us` is the monotonic clock reading when the packet reached us, used for stall detection
    and pacing, never for ordering.
    """

    data: bytes
    pts: int
    dts: int
    keyframe: bool
    arrival_us: int = 0
    track: str = "video"


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
