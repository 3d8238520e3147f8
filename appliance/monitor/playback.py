"""Local playback on the monitor: the last minutes of a channel read from its segments on disk, at real-time pace."""
from __future__ import annotations

import logging
from datetime import datetime
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

from base.clock import Clocks
from base.media import EncodedPacket, StreamInfo
from recorder.fmp4 import SegmentContents, read_segment
from recorder.index import Index, Segment
from recorder.mp4 import Mp4Error

from appliance.monitor.decode import H264Decoder
from appliance.monitor.feeds import Feed

log = logging.getLogger("nvr.monitor")


def local_time_text(utc_us: int) -> str:
    """'YYYY-MM-DD HH:MM:SS' in the appliance's local time zone, as DVRs show time."""
    return _local_second_text(utc_us // 1_000_000)


@lru_cache(maxsize=4)
def _local_second_text(utc_s: int) -> str:
    # Converting to local time costs more than drawing the text; the wall asks many times a second.
    return datetime.fromtimestamp(utc_s).astimezone().strftime("%Y-%m-%d %H:%M:%S")


class PlaybackFeed(Feed):
    """Plays channel `channel`'s main stream from `start_us` (UTC) on, segment after segment, as
    recorded (closed and indexed segments; the one being written joins once it is closed).
    `position_us` is the recorded time of the picture shown; `ended` turns True after the newest
    recording has been played, and the monitor then returns to live."""

    kind = "playback"

    def __init__(self, *, channel: int, index: Index, root: Path, start_us: int, fps: float, clocks: Clocks):
        super().__init__(channel=channel, fps=fps, clocks=clocks)
        self._index, self._root, self.start_us = index, root, start_us
        self.position_us = start_us
        self.ended = False
        self.segments_played = 0

    @property
    def note(self) -> str:
        return f"PLAYBACK {local_time_text(self.position_us)}"

    def _run(self) -> None:
        origin = (self._clocks.monotonic_us(), self.start_us)  # (monotonic, recorded) instants that coincide
        last_end_us = self.start_us
        while not self._stop.is_set():
            segments = [s for s in self._index.segments(channel=self.channel, stream="main", start_us=last_end_us)
                         if s.end_us > last_end_us]
            if not segments:
                break
            for segment in segments:
                if self._stop.is_set():
                    return
                self._play_segment(segment, origin)
                last_end_us = max(last_end_us, segment.end_us)
        self.ended = True

    def _play_segment(self, segment: Segment, origin: tuple[int, int]) -> None:
        try:
            contents = read_segment(self._root / segment.path)
        except (OSError, Mp4Error) as exc:
            log.warning("playback: cannot read %s (%s); skipping it", segment.path, exc)
            self.errors += 1
            return
        track = contents.track
        decoder = H264Decoder(StreamInfo("h264", track.width, track.height, Fraction(1, track.timescale),
                                         track.avcc))
        with open(self._root / segment.path, "rb") as f:
            for ref, at_us in self._samples_from(contents, segment, origin[1]):
                if self._stop.is_set():
                    return
                f.seek(ref.offset)
                packet = EncodedPacket(f.read(ref.size), ref.decode_time + ref.cto, ref.decode_time, ref.keyframe)
                frames = decoder.decode(packet)
                if at_us < origin[1] or not frames:
                    continue  # decoding up from the keyframe before the start: not shown
                self._wait_until(origin[0] + (at_us - origin[1]))
                self.position_us, self.last_frame_us = at_us, self._clocks.monotonic_us()
                self.frames_in += 1
                frame = frames[-1]
                self._store(lambda w, h: self._scaler.rgb(frame, w, h))
        self.segments_played += 1

    def _samples_from(self, contents: SegmentContents, segment: Segment, start_us: int):
        """(sample, recorded UTC) from the last keyframe at or before `start_us` to the segment's end."""
        scale = 1_000_000 / contents.track.timescale
        timed = [(ref, segment.start_us + round((ref.decode_time - segment.media_start_ticks) * scale))
                 for ref in contents.samples]
        first = 0
        for position, (ref, at_us) in enumerate(timed):
            if ref.keyframe and at_us <= start_us:
                first = position
        return timed[first:]

    def _wait_until(self, due_monotonic_us: int) -> None:
        while not self._stop.is_set():
            remaining_s = (due_monotonic_us - self._clocks.monotonic_us()) / 1e6
            if remaining_s <= 0:
                return
            self._stop.wait(min(remaining_s, 0.2))
