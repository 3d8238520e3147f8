"""Live fragmented MP4: the live tap's packets as an init segment and one small fragment per frame.

Sans-IO: `LiveMuxer.push(item)` takes what a `recorder.live.Subscription` yields and returns what to
send. Nothing is decoded or re-encoded: the H.264 access units are re-framed exactly as the
segmenter frames them for disk. One fragment per frame keeps latency to the frame itself (a
player can show a frame as soon as its fragment arrives).

Sound, when the viewer asks for it (`audio=True`) and the stream has it: the init segment gets the
AAC track (`mp4a`, track 2) and every AAC frame becomes a fragment of its own, placed on the viewer's
timeline by its timestamp on the clock the video shares. The live tap carries AAC only: a G.711
camera's sound was transcoded once by its StreamRecorder, for recording and every viewer alike.
Sound costs latency: a player plays only what it holds of both tracks, and a transcoder's AAC comes
out a few hundred ms after its picture, so viewers that do not listen do not ask for it.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from base.media import EncodedPacket, StreamInfo
from recorder.aac import FRAME_SAMPLES, AacError, parse_audio_specific_config, split_adts
from recorder.audio_mux import audio_track
from recorder.fmp4 import AUDIO_TRACK_ID, TIMESCALE, AudioTrack, Sample, TrackRun, VideoTrack, init_segment, \
    media_fragment, media_fragment_parts
from base.h264 import ANNEX_B, H264Error, avcc_record, parameter_sets, parse_sps, stream_framing, to_mp4_sample
from recorder.live import RunStarted


@dataclass(frozen=True, slots=True)
class LiveInit:
    """Start (or restart) the player with this init segment; `codec` is the MSE/RFC 6381 string
    (`avc1.PPCCLL`, with `,mp4a.40.2` when the segment has the sound track). `has_audio`: the stream
    has sound (whether or not this viewer asked for it)."""

    codec: str
    width: int
    height: int
    data: bytes
    has_audio: bool = False


@dataclass(frozen=True, slots=True)
class LiveFragment:
    """One frame as `moof`+`mdat`. `media_s` is its decode time in the player's timeline;
    `arrival_us` the source's monotonic arrival (capture) time, for latency measurement;
    `audio`: an AAC frame of the sound track, not a picture."""

    data: bytes
    media_s: float
    keyframe: bool
    arrival_us: int
    audio: bool = False


def codec_string(avcc: bytes) -> str:
    """`avc1.PPCCLL` from an avcC record's profile, compatibility and level bytes."""
    return f"avc1.{avcc[1]:02x}{avcc[2]:02x}{avcc[3]:02x}"


def audio_codec_string(asc: bytes) -> str:
    """`mp4a.40.N` (RFC 6381: MPEG-4 audio, N the object type: 2 for AAC-LC) from an AudioSpecificConfig."""
    try:
        return f"mp4a.40.{parse_audio_specific_config(asc).object_type}"
    except AacError:
        return "mp4a.40.2"


class LiveMuxer:
    """Per viewer state: the current track, and the timeline (ticks since this viewer's first frame).
    `audio`: carry the stream's sound too."""

    def __init__(self, *, audio: bool = False):
        self._want_audio = audio
        self._audio: AudioTrack | None = None
        self._audio_last: int | None = None  # audio ticks of the last frame sent
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
        if self._info is None:
            return []
        if item.track == "audio":
            fragment = self._audio_fragment(item) if self._audio is not None else None
            return [fragment] if fragment is not None else []
        if item.track != "video":
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
        self._audio = None
        if self._want_audio and info.audio is not None and info.audio.codec == "aac":
            self._audio = audio_track(info.audio)
            self._audio_scale = Fraction(info.audio.time_base)
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
        codec = codec_string(avcc)
        if self._audio is not None:
            codec += "," + audio_codec_string(self._audio.asc)
        return LiveInit(codec, width, height, init_segment(self._track, self._audio), self._info.audio is not None)

    def _audio_fragment(self, packet: EncodedPacket) -> LiveFragment | None:
        """One AAC frame as a fragment of the sound track, at its place on the video's timeline; None
        before the first picture (nothing to place it against), for a frame from before it, or going back."""
        if self._track is None or self._dts0 is None:
            return None
        video_s = Fraction(self._offset, TIMESCALE) - self._dts0 * Fraction(self._info.time_base)
        ticks = int((packet.pts * self._audio_scale + video_s) * self._audio.sample_rate)
        try:
            adts = split_adts(packet.data)
        except AacError:
            self.bad_packets += 1
            return None
        data = packet.data if adts is None else adts[0]
        if ticks < 0 or (self._audio_last is not None and ticks < self._audio_last + FRAME_SAMPLES // 2):
            return None
        if self._audio_last is not None and ticks - self._audio_last < 2 * FRAME_SAMPLES:
            ticks = self._audio_last + FRAME_SAMPLES  # back to back: rounding must not open hairline gaps
        self._audio_last = ticks
        self._sequence += 1
        run = TrackRun(AUDIO_TRACK_ID, ticks, [Sample(data, FRAME_SAMPLES, True)])
        return LiveFragment(b"".join(media_fragment_parts(self._sequence, 0, [], run)), ticks / self._audio.sample_rate,
                            False, packet.arrival_us, audio=True)

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
