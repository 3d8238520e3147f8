"""The audio half of a segment: AAC frames timed on the run's clock and held until their video fragment.

The video track decides where fragments and segments end; audio follows. Each audio frame is timed
in samples since the run's media time zero (the first keyframe), computed from its own timestamp on
the clock it shares with the video (base.media's contract), so the two tracks line up in every file
whatever order the packets arrived in. A fragment takes the frames that start before its video ends;
the rest wait for the next one. A segment's last fragment takes only the frames that end by the cut
(the one across it opens the next segment), and since sound arrives after its picture the segmenter
keeps the cut segment open until `complete_until` says they are all here (recorder.segmenter). Frames are written back to back: a frame's duration is the distance
to the next one, so a fragment boundary never moves audio in time.
"""
from __future__ import annotations

import logging
from collections import deque
from fractions import Fraction
from typing import Protocol

from base.media import AudioInfo, EncodedPacket
from recorder.aac import FRAME_SAMPLES, AacError, audio_specific_config, split_adts
from recorder.fmp4 import AUDIO_TRACK_ID, TIMESCALE, AudioTrack, Sample, TrackRun

log = logging.getLogger("nvr.segmenter")

MAX_QUEUED_S = 20  # audio running this far ahead of the video is dropped (oldest first) to bound memory
MAX_GAP_S = 10  # a larger jump between two audio frames is a discontinuity, not lost packets


class AudioCounters(Protocol):
    """Where the muxer counts (the segmenter's statistics)."""

    audio_frames_recorded: int
    audio_dropped: int  # before the run began, too far ahead, unreadable, or going back in time
    audio_timestamp_fixes: int


class AudioMuxer:
    """One run's audio for one stream: `push` packets, `take` what belongs to a fragment.

    Only AAC can be muxed; sources with other codecs are transcoded before the segmenter
    (recorder.audio_transcode). Not thread-safe: the segmenter's thread uses it.
    """

    def __init__(self, info: AudioInfo, video_time_base: Fraction, stats: AudioCounters, *, label: str):
        if info.codec != "aac":
            raise ValueError(f"audio codec {info.codec!r} cannot go into MP4 as is; transcode it to AAC first")
        self.track = audio_track(info)
        self._rate = info.sample_rate
        self._packet_scale = Fraction(info.time_base) * info.sample_rate  # packet pts -> samples
        self._video_time_base = Fraction(video_time_base)
        self._stats, self._label = stats, label
        self._queue: deque[tuple[int, bytes]] = deque()  # (ticks in samples, raw AAC frame)
        self._last_ticks: int | None = None
        self._fix = 0
        self._frame_ticks = FRAME_SAMPLES
        self._origin_key: tuple[int, int] | None = None

    def reset(self) -> None:
        """A new run: what is held was timed against the old one."""
        self._stats.audio_dropped += len(self._queue)
        self._queue.clear()
        self._last_ticks = None
        self._fix = 0

    def push(self, packet: EncodedPacket, video_dts0: int, tick_fix: int) -> None:
        """Queue one AAC frame. `video_dts0` and `tick_fix` are the segmenter's mapping of video
        timestamps to run ticks (run ticks = (dts - dts0) in 90 kHz + tick_fix)."""
        if (video_dts0, tick_fix) != self._origin_key:
            self._set_origin(video_dts0, tick_fix)
        ticks = (packet.pts * self._mul - self._sub) // self._div + self._fix
        data = self._raw_frame(packet.data)
        last = self._last_ticks
        if last is not None and abs(ticks - last) > MAX_GAP_S * self._rate:
            # The audio clock jumped: keep the track continuous from here on, and count it.
            self._stats.audio_timestamp_fixes += 1
            self._fix += last + self._frame_ticks - ticks
            ticks = last + self._frame_ticks
        if data is None or ticks < 0 or (last is not None and ticks <= last):
            self._stats.audio_dropped += 1
            return
        if last is not None and ticks - last <= 2 * FRAME_SAMPLES:
            self._frame_ticks = ticks - last  # the usual frame length, for the frame that ends a run
        self._last_ticks = ticks
        self._queue.append((ticks, data))
        while self._queue and self._queue[-1][0] - self._queue[0][0] > MAX_QUEUED_S * self._rate:
            self._queue.popleft()
            self._stats.audio_dropped += 1

    def _set_origin(self, video_dts0: int, tick_fix: int) -> None:
        """Precompute ticks = floor(pts · scale − origin · rate) in integers (this runs per packet)."""
        origin = video_dts0 * self._video_time_base - Fraction(tick_fix, TIMESCALE)  # seconds of run time 0
        scale, offset = self._packet_scale, origin * self._rate
        self._mul = scale.numerator * offset.denominator
        self._sub = offset.numerator * scale.denominator
        self._div = scale.denominator * offset.denominator
        self._origin_key = (video_dts0, tick_fix)

    def _raw_frame(self, data: bytes) -> bytes | None:
        try:
            adts = split_adts(data)
        except AacError as exc:
            log.warning("%s: dropped an audio frame: %s", self._label, exc)
            return None
        return data if adts is None else adts[0]

    def drop_before(self, video_ticks: int) -> None:
        """Forget frames that start before `video_ticks` (a segment opening after a gap in the video)."""
        limit = self._to_audio_ticks(video_ticks)
        while self._queue and self._queue[0][0] < limit:
            self._queue.popleft()
            self._stats.audio_dropped += 1

    def take(self, until_video_ticks: int, *, final: bool = False, cut: bool = False) -> TrackRun | None:
        """The frames that start before `until_video_ticks` (90 kHz run time) as one track run; with
        `cut` (the segment ends there) only those that also end by then.

        The newest queued frame stays (its duration is the distance to the next one) unless `final`.
        """
        limit = self._limit(until_video_ticks, cut)
        queue, taken = self._queue, []
        while queue and queue[0][0] < limit and (final or len(queue) > 1):
            taken.append(queue.popleft())
        if not taken:
            return None
        samples = [Sample(data, nxt[0] - ticks, True) for (ticks, data), nxt in zip(taken, taken[1:])]
        last_ticks, last_data = taken[-1]
        following = queue[0][0] if queue else last_ticks + self._frame_ticks
        samples.append(Sample(last_data, following - last_ticks, True))
        self._stats.audio_frames_recorded += len(samples)
        return TrackRun(AUDIO_TRACK_ID, taken[0][0], samples)

    def complete_until(self, cut_video_ticks: int) -> bool:
        """True once every frame that ends by the cut at `cut_video_ticks` has arrived: a later one has
        (frames are queued in time order). An encoder's output lags its input (FFmpeg's AAC encoder
        holds two frames: 256 ms of 8 kHz G.711), so the sound of a segment's last moments comes
        after its last picture."""
        return self._last_ticks is not None and self._last_ticks >= self._limit(cut_video_ticks, True)

    def _limit(self, video_ticks: int, cut: bool) -> int:
        """The first audio tick not taken. At a segment's cut, the frame that runs across it opens the
        next segment, so every segment's sound starts with or before its picture, by less than a frame."""
        limit = self._to_audio_ticks(video_ticks)
        return limit - self._frame_ticks + 1 if cut else limit

    def _to_audio_ticks(self, video_ticks: int) -> int:
        return video_ticks * self._rate // TIMESCALE


def audio_track(info: AudioInfo) -> AudioTrack:
    """The MP4 track for `info`; an AAC source without an AudioSpecificConfig is taken to be AAC-LC."""
    asc = info.extradata or audio_specific_config(info.sample_rate, info.channels)
    return AudioTrack(info.sample_rate, info.channels, bytes(asc))
