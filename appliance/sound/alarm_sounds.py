"""Alarm sounds on one output: the player of the rules' `play` actions on the AUDIO OUT, or on a
channel's camera speaker (appliance.sound.rule_sounds gives each output its player).

`play` (from the alarm thread) never blocks: it hands the request to the player's thread, which writes
the clip (decoded in advance by the ClipCache) to its ALARM-priority source in CHUNK_S pieces, at most
LEAD_S ahead of real time, so a stop or a newer alarm is heard within about LEAD_S + CHUNK_S and the
card's queue never holds more than that.

The player writes in its output's format (`rate`, `channels`: the AUDIO OUT's OUT_RATE stereo, a camera
speaker's 8 kHz mono), so the clips are decoded once in that format. An output that someone else holds
(an operator talking on a camera's speaker) refuses to open with `OutputBusy`: the sound is skipped,
counted and logged, never queued behind the talker.

One player per output, and the newest alarm wins: a `play` replaces the sound playing. A replaced sound
that loops while its alarm is active (`loop`) is not forgotten: when the newer sound ends it starts
again from its beginning, until its alarm clears. A replaced sound with repeats left is dropped (it
was only announcing that alarm, and the newer alarm has been announced instead).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from base.clock import Clocks
from hal.audio_out import AudioPlayback, AudioPlaybackError

from appliance.sound.clips import OUT_CHANNELS, OUT_RATE, Clip, ClipCache, ClipError
from appliance.sound.worker import SoundWorker

log = logging.getLogger("nvr.sound")

CHUNK_S = 0.02  # the piece written at a time: how soon a stop or a newer sound takes effect
LEAD_S = 0.06  # how far ahead of real time the player writes: the card's queue stays this short
IDLE_WAIT_S = 1.0  # with nothing to play the thread looks for a request this often (a request wakes it)


class OutputBusy(AudioPlaybackError):
    """The output is held by someone an alarm sound must not speak over (an operator talking there)."""


@dataclass(eq=False)
class Request:
    """One `play`: `key` says whose (a rule's action), `times` how often (None: until stopped)."""

    key: object
    clip: Clip | None  # None: not in the cache (evicted); the player's thread decodes it, not the alarm's
    times: int | None
    volume: float
    pause_s: float
    stop_on_clear: bool
    position: int = 0  # next frame of the clip (or of the pause after it, counted past its end)
    played: int = 0  # whole plays done
    started_us: int | None = field(default=None)  # monotonic, when its first samples were written
    path: str = ""

    def next_chunk(self, frames: int) -> np.ndarray | None:
        """The next `frames` (or fewer) samples at its volume; None when it has played `times` times."""
        if self.times is not None and self.played >= self.times:
            return None
        length, pause = len(self.clip.samples), round(self.pause_s * self.clip.rate)
        if self.position >= length:  # in the pause after a play
            count = min(frames, length + pause - self.position)
            chunk = np.zeros((count, self.clip.samples.shape[1]), np.int16)
        else:
            piece = self.clip.samples[self.position:self.position + frames]
            chunk = piece if self.volume == 1.0 else np.round(piece * self.volume).astype(np.int16)
            count = len(piece)
        self.position += count
        if self.position >= length + (pause if self.times is None or self.played + 1 < self.times else 0):
            self.position, self.played = 0, self.played + 1
        return chunk


class AlarmSounds(SoundWorker):
    """Plays clips on `speaker()` (a source at ALARM priority on the AUDIO OUT, or a camera's speaker),
    opened at `rate` with `channels`; `output` names it in logs. Start with `start()`."""

    def __init__(self, *, speaker: Callable[[], AudioPlayback], clips: ClipCache, clocks: Clocks,
                 on_started: Callable[[Request], None] | None = None, rate: int = OUT_RATE,
                 channels: int = OUT_CHANNELS, output: str = "AUDIO OUT"):
        super().__init__("alarm-sounds")
        self._speaker_factory, self._clips, self._clocks = speaker, clips, clocks
        self.rate, self.channels, self.output = rate, channels, output
        self.on_started = on_started  # told on the player's thread when a request's first samples are out
        self._lock = threading.Lock()
        self._requests: list[Request] = []  # oldest first; the last is the one heard
        self._cut_short = False  # the last request written was replaced before its end
        self.started = self.finished = self.replaced = self.stopped = self.errors = self.skipped_busy = 0
        self.last_error: str | None = None

    def preload(self, paths: list[str]) -> list[str]:
        """Decode `paths` into the cache now (in this output's format); the errors, one line each."""
        return self._clips.preload(paths, rate=self.rate, channels=self.channels)

    # --- orders (any thread; never block) ---

    def play(self, key: object, path: str, *, times: int | None = 1, volume: float = 1.0, pause_s: float = 0.0,
             stop_on_clear: bool = True) -> None:
        """Play the clip of `path` `times` times (None: until `stop(key)`), replacing what plays now."""
        clip = self._clips.cached(path, rate=self.rate, channels=self.channels)
        request = Request(key, clip, times, volume, pause_s, stop_on_clear, path=path)
        with self._lock:
            kept = [r for r in self._requests if r.key != key and r.times is None]
            self.replaced += len(self._requests) - len(kept)
            self._requests = [*kept, request]
        self._wake.set()

    def stop(self, match: Callable[[object], bool], *, cleared: bool = True) -> None:
        """Stop the sounds whose key `match`es (with `cleared`, only those that stop when their alarm clears)."""
        with self._lock:
            kept = [r for r in self._requests if not (match(r.key) and (r.stop_on_clear or not cleared))]
            self.stopped += len(self._requests) - len(kept)
            self._requests = kept
        self._wake.set()

    def playing(self) -> object | None:
        """The key of the sound heard now, or None."""
        with self._lock:
            return self._requests[-1].key if self._requests else None

    # --- the player's thread ---

    def _current(self) -> Request | None:
        with self._lock:
            return self._requests[-1] if self._requests else None

    def _done(self, request: Request) -> None:
        with self._lock:
            if request in self._requests:
                self._requests.remove(request)
                self.finished += 1

    def _run(self) -> None:
        speaker: AudioPlayback | None = None
        try:
            while not self._stop.is_set():
                request = self._current()
                if request is None:
                    speaker = self._close(speaker)
                    self._clocks.wait(self._wake, IDLE_WAIT_S)
                    self._wake.clear()
                    continue
                if request.clip is None and not self._decode(request):
                    continue
                speaker = speaker or self._open()
                if speaker is None:
                    self._done(request)  # no card: the request is dropped (counted), the next may find one
                    continue
                self._play_from(request, speaker)
        finally:
            self._close(speaker)

    def _decode(self, request: Request) -> bool:
        try:
            request.clip = self._clips.get(request.path, rate=self.rate, channels=self.channels)
            return True
        except ClipError as exc:
            self._failed(f"cannot play {request.path!r}: {exc}")
            self._done(request)
            return False

    def _open(self) -> AudioPlayback | None:
        speaker = self._speaker_factory()
        try:
            speaker.open(sample_rate=self.rate, channels=self.channels)
        except OutputBusy as exc:
            self.skipped_busy += 1
            log.warning("alarm sound on %s skipped: %s", self.output, exc)
            return None
        except AudioPlaybackError as exc:
            self._failed(f"no {self.output} for alarm sounds: {exc}")
            return None
        self._start_us, self._written = self._clocks.monotonic_us(), 0
        self._cut_short = False
        return speaker

    def _close(self, speaker: AudioPlayback | None) -> None:
        if speaker is not None:
            speaker.close()
        return None

    def _play_from(self, request: Request, speaker: AudioPlayback) -> None:
        """Write `request` chunk by chunk until it ends or another request is the current one (then what
        was written of it and not yet heard is flushed when the next one starts)."""
        frames = round(CHUNK_S * self.rate)
        if self._cut_short:
            speaker.flush()
        self._cut_short = True  # until it ends by itself
        while not self._stop.is_set() and self._current() is request:
            chunk = request.next_chunk(frames)
            if chunk is None:
                self._done(request)
                self._cut_short = False
                return
            try:
                speaker.write(chunk)
            except AudioPlaybackError as exc:
                self._failed(str(exc))
                self._done(request)
                return
            if request.started_us is None:
                request.started_us = self._clocks.monotonic_us()
                self.started += 1
                if self.on_started is not None:
                    self.on_started(request)
            self._pace(len(chunk))

    def _pace(self, frames: int) -> None:
        """Keep at most LEAD_S written ahead of real time (behind it, catch up at once: no backlog)."""
        now_us = self._clocks.monotonic_us()
        self._written += frames
        ahead_us = self._start_us + self._written * 1_000_000 // self.rate - now_us
        if ahead_us < 0:  # we fell behind (a busy machine, or idle): real time starts again from here
            self._start_us, self._written = now_us, 0
        elif ahead_us > LEAD_S * 1e6:
            self._clocks.sleep((ahead_us - LEAD_S * 1e6) / 1e6)

    def _failed(self, message: str) -> None:
        self.errors += 1
        self.last_error = message
        log.warning("alarm sound: %s", message)

    def statistics(self) -> dict:
        with self._lock:
            playing = [str(r.key) for r in self._requests]
        return {"output": self.output, "playing": playing, "started": self.started, "finished": self.finished,
                "replaced": self.replaced, "stopped": self.stopped, "errors": self.errors,
                "skipped_busy": self.skipped_busy, "last_error": self.last_error, "clips": self._clips.statistics()}
