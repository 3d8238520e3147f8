"""Still pictures for the web: an H.264 keyframe or a raw captured frame as JPEG, and MJPEG from a
packet stream (for browsers without Media Source Extensions). Decoding happens only here, for
viewers; recording never decodes."""
from __future__ import annotations

from fractions import Fraction

import av

from base.media import EncodedPacket, RawFrame, StreamInfo
from recorder.fmp4 import VideoTrack
from base.h264 import H264Error, parameter_sets, parse_avcc_record, split_length_prefixed, to_mp4_sample

START_CODE = b"\x00\x00\x00\x01"


class SnapshotError(ValueError):
    """The picture could not be decoded or encoded."""


def _annexb_from_sample(track: VideoTrack, sample: bytes) -> bytes:
    sps_list, pps_list, _ = parse_avcc_record(track.avcc)
    nals = [*sps_list, *pps_list, *split_length_prefixed(sample, 4)]
    return b"".join(START_CODE + n for n in nals)


def _jpeg_encoder(width: int, height: int, quality: int):
    enc = av.CodecContext.create("mjpeg", "w")
    enc.width, enc.height = width, height
    enc.pix_fmt = "yuvj420p"
    enc.time_base = Fraction(1, 25)
    enc.options = {"qmin": str(quality), "qmax": str(quality)}
    return enc


def frame_to_jpeg(frame: av.VideoFrame, *, max_width: int | None = None, quality: int = 5) -> bytes:
    """Encode one decoded picture as JPEG (qscale `quality`: 2 best .. 31 worst), scaled down to `max_width`."""
    width, height = frame.width, frame.height
    if max_width and width > max_width:
        width, height = max_width, max(2, round(height * max_width / width / 2) * 2)
    enc = _jpeg_encoder(width, height, quality)
    picture = frame.reformat(width=width, height=height, format="yuvj420p")
    packets = [*enc.encode(picture), *enc.encode(None)]
    if not packets:
        raise SnapshotError("the JPEG encoder produced nothing")
    return bytes(packets[0])


def keyframe_to_jpeg(track: VideoTrack, sample: bytes, *, max_width: int | None = None) -> bytes:
    """Decode one keyframe (length-prefixed sample of `track`) and encode it as JPEG."""
    dec = av.CodecContext.create("h264", "r")
    try:
        frames = [*dec.decode(av.Packet(_annexb_from_sample(track, sample))), *dec.decode(None)]
    except (av.FFmpegError, H264Error) as exc:
        raise SnapshotError(f"the keyframe could not be decoded: {exc}") from exc
    if not frames:
        raise SnapshotError("the keyframe decoded to no picture")
    return frame_to_jpeg(frames[0], max_width=max_width)


def raw_to_jpeg(frame: RawFrame, *, max_width: int | None = None) -> bytes:
    picture = av.VideoFrame.from_ndarray(frame.data, format=frame.pixel_format)
    return frame_to_jpeg(picture, max_width=max_width)


class MjpegTranscoder:
    """Decodes a live stream's packets and yields a JPEG at most every `interval_us` of media time."""

    def __init__(self, *, interval_us: int = 250_000, max_width: int | None = 640):
        self._interval_us, self._max_width = interval_us, max_width
        self._dec = None
        self._time_base = Fraction(1, 90_000)
        self._last_us: int | None = None
        self._params: list[bytes] = []

    def start_run(self, info: StreamInfo) -> None:
        self._dec = av.CodecContext.create("h264", "r")
        try:
            self._params = [n for n in parameter_sets(info.extradata) if n]
        except H264Error:
            self._params = []
        self._time_base = Fraction(info.time_base)
        self._last_us = None

    def push(self, packet: EncodedPacket) -> bytes | None:
        if self._dec is None or packet.track != "video":
            return None
        try:
            unit = to_mp4_sample(packet.data)  # normalise to length-prefixed, then to Annex B with SPS/PPS
            if unit.sps and unit.pps:
                self._params = [unit.sps, unit.pps]
            params = self._params if packet.keyframe or unit.idr else []
            data = b"".join(START_CODE + bytes(n) for n in [*params, *split_length_prefixed(unit.sample, 4)])
            frames = self._dec.decode(av.Packet(data))
        except (av.FFmpegError, H264Error):
            return None
        at_us = int(packet.pts * self._time_base * 1_000_000)
        for frame in frames:
            if self._last_us is None or at_us - self._last_us >= self._interval_us or at_us < self._last_us:
                self._last_us = at_us
                return frame_to_jpeg(frame, max_width=self._max_width, quality=8)
        return None


def live_jpeg(live, *, clocks, max_width: int | None = None, fresh_us: int = 2_000_000,
              wait_s: float = 4.0) -> bytes | None:
    """The picture of a `recorder.live.LiveStream` now, as JPEG: its newest raw frame if one came within
    `fresh_us` (analog channels), else the next keyframe of its packets (network cameras), waited for
    at most `wait_s`; None if there is none. Blocks up to `wait_s`: call it off the recording and
    alarm threads."""
    from recorder.live_mux import LiveFragment, LiveMuxer  # the live muxer only where snapshots are taken

    frame = live.latest_frame()
    if frame is not None and clocks.monotonic_us() - frame.timestamp_us < fresh_us:
        return raw_to_jpeg(frame, max_width=max_width)
    if live.info is None:
        return None
    mux, deadline_us = LiveMuxer(), clocks.monotonic_us() + round(wait_s * 1e6)
    with live.subscribe(max_items=64) as sub:
        while clocks.monotonic_us() < deadline_us:
            item = sub.get(timeout_s=0.5)
            if item is None:
                continue
            for out in mux.push(item):
                if isinstance(out, LiveFragment) and out.keyframe:
                    try:
                        return keyframe_to_jpeg(mux.track, to_mp4_sample(item.data).sample, max_width=max_width)
                    except (SnapshotError, H264Error):
                        return None
    return None
