"""H.264 decoding for the wall: packets normalised to Annex B, hardware decoder where the board has one, RGB scaling."""
from __future__ import annotations

import functools
import logging

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from base.media import EncodedPacket, RawFrame, StreamInfo
from base.h264 import ANNEX_B, H264Error, parameter_sets, split_nals, stream_framing

log = logging.getLogger("nvr.monitor")

START_CODE = b"\x00\x00\x00\x01"
HARDWARE_DECODER = "h264_v4l2m2m"


@functools.cache
def hardware_decoder_available() -> bool:
    """Whether the board has a working h264_v4l2m2m decoder (probed once per process)."""
    try:
        codec = av.CodecContext.create(HARDWARE_DECODER, "r")
        codec.open()
    except (av.FFmpegError, ValueError, OSError) as exc:
        log.info("no hardware H.264 decoder (%s: %s); decoding in software", HARDWARE_DECODER, exc)
        return False
    log.info("decoding full-screen main streams with %s", HARDWARE_DECODER)
    return True


def pick_decoder(setting: str, *, full_screen: bool) -> str:
    """The decoder for a stream: 'auto' uses the hardware one only for a full-screen main stream
    (the Pi's v4l2m2m decoder has a few instances and costs a buffer pool each; small sub-streams
    decode cheaply in software), named decoders are taken as they are."""
    if setting == "auto":
        return HARDWARE_DECODER if full_screen and hardware_decoder_available() else "h264"
    return setting


class H264Decoder:
    """Decodes one run of a stream. Packets may be Annex B or length-prefixed (as the source's
    extradata says); the parameter sets from the extradata go in front of each keyframe so decoding
    can start at any keyframe. A packet that fails to decode is counted and skipped."""

    def __init__(self, info: StreamInfo, *, codec_name: str = "h264"):
        self.codec_name = codec_name
        self._framing = stream_framing(info.extradata)
        sps, pps = parameter_sets(info.extradata)
        self._param_sets = b"".join(START_CODE + nal for nal in (sps, pps) if nal)
        self._codec = self._open(codec_name)
        self.errors = 0

    def _open(self, codec_name: str) -> av.CodecContext:
        try:
            codec = av.CodecContext.create(codec_name, "r")
            codec.thread_count = 1  # many tiles decode at once; one thread each keeps them fair
            codec.open()
            return codec
        except (av.FFmpegError, ValueError, OSError) as exc:
            if codec_name == "h264":
                raise
            log.warning("%s failed to open (%s); decoding in software", codec_name, exc)
            self.codec_name = "h264"
            return self._open("h264")

    def decode(self, packet: EncodedPacket) -> list[av.VideoFrame]:
        try:
            data = self._annexb(packet)
            if packet.keyframe and self._param_sets:
                data = self._param_sets + data
            av_packet = av.Packet(data)
            av_packet.pts, av_packet.dts = packet.pts, packet.dts
            return list(self._codec.decode(av_packet))
        except (av.FFmpegError, H264Error, ValueError) as exc:
            self.errors += 1
            log.debug("undecodable packet (%s)", exc)
            return []

    def _annexb(self, packet: EncodedPacket) -> bytes:
        if self._framing == ANNEX_B:
            return packet.data
        return b"".join(START_CODE + nal for nal in split_nals(packet.data, self._framing))

    def close(self) -> None:
        self._codec = None


class Scaler:
    """Scales pictures to a tile's size as RGB (swscale, one context kept per feed)."""

    def __init__(self):
        self._reformatter = VideoReformatter()

    def rgb(self, frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
        scaled = self._reformatter.reformat(frame, width=width, height=height, format="rgb24",
                                            interpolation="FAST_BILINEAR", threads=1)
        return scaled.to_ndarray()

    def rgb_from_raw(self, raw: RawFrame, width: int, height: int) -> np.ndarray:
        return self.rgb(raw_to_av(raw), width, height)


def raw_to_av(raw: RawFrame) -> av.VideoFrame:
    """A PyAV frame holding a raw capture; uyvy422 is copied in by hand (PyAV 18's from_ndarray lacks it)."""
    if raw.pixel_format != "uyvy422":
        return av.VideoFrame.from_ndarray(raw.data, format=raw.pixel_format)
    picture = av.VideoFrame(raw.width, raw.height, raw.pixel_format)
    plane = picture.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(raw.height, plane.line_size)
    rows[:, :raw.width * 2] = raw.data.reshape(raw.height, raw.width * 2)
    return picture
