"""Sound files played when a rule fires (the `play` action): a siren or a spoken warning on the box's
AUDIO OUT or a camera's speaker.

Every sound a rule names is decoded once at start (PyAV, to 8 kHz mono int16, at most MAX_SOUND_S), so a
firing only queues a job: each output has a thread of its own that takes the output from the `TalkHub`
(an operator talking, or another sound playing there, keeps it: the new sound is skipped and logged),
opens it, plays the sound in real time (PREROLL_S ahead, as a talker's page would) and lets it go.
"""
from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

import numpy as np

from appliance.config.talk import PlayAction, play_target
from appliance.talk.session import Talker, TalkHub
from appliance.talk.sinks import TALK_RATE, TalkSinkError, make_sink
from base.clock import Clocks

log = logging.getLogger("nvr.talk.play")

MAX_SOUND_S = 60.0  # a longer file is refused at start: a rule's sound is a warning, not a programme
CHUNK_SAMPLES = 160  # 20 ms, as talk frames and RTP packets
PREROLL_S = 0.1  # sent at once before pacing: the output's buffer never runs dry on a late wake-up
MAX_WAITING = 4  # sounds queued per output; more while one plays are dropped (an alarm storm)


class SoundError(ValueError):
    """A sound file that cannot be played; the message says which and why."""


def load_sound(path: Path) -> np.ndarray:
    """The file's sound as 8 kHz mono int16 samples; SoundError if it cannot be read or is too long."""
    import av  # decoding only here, at start

    max_samples = int(MAX_SOUND_S * TALK_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise SoundError(f"{path}: no sound in the file")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=TALK_RATE)
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    total += len(chunks[-1])
                if total > max_samples:
                    raise SoundError(f"{path}: longer than {MAX_SOUND_S:g} s; cut it shorter")
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except (av.FFmpegError, OSError) as exc:
        raise SoundError(f"{path}: cannot read the sound: {exc}") from exc
    if not chunks or sum(len(c) for c in chunks) == 0:
        raise SoundError(f"{path}: the sound is empty")
    return np.concatenate(chunks).astype(np.int16)


class SoundPlayer:
    """Plays the `play` actions of `config.rules`. `start()` decodes their files; `play(action, rule)`
    never blocks; `stop()` ends the output threads (a sound playing is cut)."""

    def __init__(self, config, *, hub: TalkHub, clocks: Clocks):
        self._config, self._hub, self._clocks = config, hub, clocks
        self._sounds: dict[Path, np.ndarray] = {}
        self._broken: dict[Path, str] = {}
        self._queues: dict[tuple[str, str], queue.Queue] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.played = self.busy = self.dropped = self.failed = 0
        self.last_error: str | None = None

    def start(self) -> None:
        for rule in self._config.rules:
            for action in rule.do:
                if action.play is not None and action.play.file not in self._sounds:
                    self._load(action.play.file)

    def _load(self, path: Path) -> None:
        try:
            self._sounds[path] = load_sound(path)
        except SoundError as exc:
            self._broken[path] = str(exc)
            log.error("%s; the rules that play it will not", exc)

    def play(self, action: PlayAction, rule: str) -> bool:
        """Queue the action's sound on its output; False (logged) if it cannot be played now."""
        if self._stop.is_set():
            return False
        output = play_target(action, self._config)
        samples = self._sounds.get(action.file)
        if output[1] is None or samples is None:
            self._failed(f"{rule}: cannot play {action.file}: "
                         f"{self._broken.get(action.file) or 'nowhere to play it (no talk output)'}")
            return False
        try:
            self._queue_of(output).put_nowait((samples, action, rule))
            return True
        except queue.Full:
            self.dropped += 1
            log.warning("%s: %d sounds already wait for %s; %s dropped", rule, MAX_WAITING, output[0], action.file)
            return False

    def _queue_of(self, output: tuple[str, str]) -> queue.Queue:
        with self._lock:
            jobs = self._queues.get(output)
            if jobs is None:
                jobs = self._queues[output] = queue.Queue(maxsize=MAX_WAITING)
                thread = threading.Thread(target=self._run, args=(output, jobs), name=f"play-{output[0]}", daemon=True)
                self._threads.append(thread)
                thread.start()
            return jobs

    def _run(self, output: tuple[str, str], jobs: queue.Queue) -> None:
        while (job := jobs.get()) is not None and not self._stop.is_set():
            samples, action, rule = job
            talker = Talker(f"rule {rule}", action.channel or 0, self._clocks.utc_now_us())
            holder = self._hub.claim(output, talker)
            if holder is not None:
                self.busy += 1
                log.warning("%s: %s is talking on %s; %s not played", rule, holder.user, output[0], action.file)
                continue
            try:
                self._play(output, samples, action.repeat)
                self.played += 1
            except TalkSinkError as exc:
                self._failed(f"{rule}: playing {action.file} failed: {exc}")
            finally:
                self._hub.release(output, talker)

    def _play(self, output: tuple[str, str], samples: np.ndarray, repeat: int) -> None:
        sink = make_sink(*output, clocks=self._clocks, playback=self._hub.playback)
        try:
            sink.open()
            sound = np.tile(samples, repeat)
            start_s = self._clocks.monotonic_us() / 1e6 - PREROLL_S
            for at in range(0, len(sound), CHUNK_SAMPLES):
                if self._stop.is_set():
                    return
                sink.send(sound[at:at + CHUNK_SAMPLES])
                due_s = start_s + (at + CHUNK_SAMPLES) / TALK_RATE
                self._clocks.sleep(max(0.0, due_s - self._clocks.monotonic_us() / 1e6))
        finally:
            sink.close()

    def _failed(self, message: str) -> None:
        self.failed += 1
        self.last_error = message
        log.error("%s", message)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            queues = list(self._queues.values())
        for jobs in queues:
            _drain(jobs)  # sounds still waiting are not played; `play` takes no more once stopped
            jobs.put_nowait(None)
        for thread in self._threads:
            thread.join(timeout=2)

    def statistics(self) -> dict:
        return {"sounds": len(self._sounds), "unreadable": sorted(str(p) for p in self._broken), "played": self.played,
                "busy": self.busy, "dropped": self.dropped, "failed": self.failed, "last_error": self.last_error}


def _drain(jobs: queue.Queue) -> None:
    while True:
        try:
            jobs.get_nowait()
        except queue.Empty:
            return
