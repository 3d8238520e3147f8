"""Live fragmented MP4: the live tap's packets as an init segment and one small fragment per frame.

Sans-IO: `LiveMuxer.push(item)` takes what a `recorder.live.Subscription` yields and returns what to
send. Nothing is decoded or re-encoded: the H.264 access units are re-framed exactly as the
segmenter frames them for disk. One fragment per frame keeps latency to the frame itself (a
player can show a frame as soon as its fragment arrives). Audio packets are passed over: the live
view is video only.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from base.media import EncodedPacket, StreamInfo
from recorder.fmp4 import TIMESCALE, Sample, VideoTrack, init_segment, media_fragment
from base.h264 import ANNEX_B, H264Error, avcc_record, parameter_sets, parse_sps, stream_framing, to_mp4_sample
from recorder.live import RunStarted


@dataclass(frozen=True, slots=True)
class LiveInit:
    """Start (or restart) the player with this init segment; `codec` is the MSE/RFC 6381 string."""

    codec: str
    width: int
    height: int
    data: bytes


@dataclass(frozen=True, slots=True)
class LiveFragment:
    """One frame as `moof`+`mdat`. `media_s` is its decode time in the player's timeline;
    `arrival_us` the source's monotonic arrival (capture) time, for latency measurement."""

    data: bytes
    media_s: float
    keyframe: bool
    arrival_us: int


def codec_string(avcc: bytes) -> str:
    """`avc1.PPCCLL` from an avcC record's profile, compatibility and level bytes."""
    return f"avc1.{avcc[1]:02x}{avcc[2]:02x}{avcc[3]:02x}"


class LiveMuxer:
    """Per viewer state: the current track, and the timeline (ticks since this viewer's first frame)."""

    def __init__(self):
        self._info: StreamInfo | None = None
        self._track: VideoTrack | None = None
        self._sps = self._pps = None
        self._length_size = ANNEX_B
        self._sequence = 0
        self._last_ticks: int | None = None
        self._duration = TIMESCALE // 25
        self._offset = 0  # ticks added so a new run continues the timeline instead of going back
        self._dts0: int | None = None
        self.bad_packets = 0

    @property
    def track(self) -> VideoTrack | None:
        """The track of the last init segment handed out."""
        return self._track

    def push(self, item: RunStarted | EncodedPacket) -> list[LiveInit | LiveFragment]:
        if isinstance(item, RunStarted):
            self._start_run(item.info)
            return []
        if item.track != "video" or self._info is None:
            return []
        try:
            unit = to_mp4_sample(item.data, self._length_size)
        except H264Error:
            self.bad_packets += 1
            return []
        self._sps = unit.sps or self._sps
        self._pps = unit.pps or self._pps
        keyframe = item.keyframe or unit.idr
        out: list[LiveInit | LiveFragment] = []
        if keyframe and self._sps and self._pps:
            avcc = avcc_record(self._sps, self._pps)
            if self._track is None or self._track.avcc != avcc:
                out.append(self._new_track(avcc))
        if self._track is None or not unit.sample:
            return out
        out.append(self._fragment(item, unit.sample, keyframe))
        return out

    def _start_run(self, info: StreamInfo) -> None:
        if self._last_ticks is not None:
            self._offset = self._last_ticks + self._duration
        self._info, self._dts0, self._track = info, None, None
        scale = Fraction(info.time_base) * TIMESCALE
        self._num, self._den = scale.numerator, scale.denominator
        if info.fps:
            self._duration = round(TIMESCALE / info.fps)
        self._sps, self._pps = None, None
        self._length_size = ANNEX_B
        if info.extradata:
            try:
                self._sps, self._pps = parameter_sets(info.extradata)
                self._length_size = stream_framing(info.extradata)
            except H264Error:
                self.bad_packets += 1

    def _new_track(self, avcc: bytes) -> LiveInit:
        try:
            sps = parse_sps(self._sps)
            width, height = sps.width, sps.height
        except H264Error:
            width, height = self._info.width, self._info.height
        self._track = VideoTrack(width, height, avcc)
        return LiveInit(codec_string(avcc), width, height, init_segment(self._track))

    def _fragment(self, packet: EncodedPacket, data: bytes, keyframe: bool) -> LiveFragment:
        if self._dts0 is None:
            self._dts0 = packet.dts
        ticks = self._offset + (packet.dts - self._dts0) * self._num // self._den
        if self._last_ticks is not None:
            step = ticks - self._last_ticks
            if step <= 0 or step > 10 * TIMESCALE:  # timestamps that go back or jump: keep time moving
                self._offset += self._last_ticks + self._duration - ticks
                ticks = self._last_ticks + self._duration
            else:
                self._duration = step
        self._last_ticks = ticks
        cto = max(0, (packet.pts - packet.dts) * self._num // self._den)
        self._sequence += 1
        data = media_fragment(self._sequence, ticks, [Sample(bytes(data), self._duration, keyframe, cto)])
        return LiveFragment(data, ticks / TIMESCALE, keyframe, packet.arrival_us)
