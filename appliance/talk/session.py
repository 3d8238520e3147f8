"""Talk sessions: who talks where (`TalkHub`, one talker per output at a time) and one talker's session
(`TalkSession`: its output fed by a thread of its own from a bounded queue, so a slow camera costs that
talker sound, never the web server's event loop)."""
from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from appliance.talk.sinks import TalkSink, TalkSinkError
from hal.audio_out import AudioPlayback, make_audio_playback

log = logging.getLogger("nvr.talk")

# Frames waiting for the output; beyond, they are dropped. Room for the budget's burst (frames.BURST_S of
# 20-ms frames: what the page buffered while the output opened) and some.
QUEUE_FRAMES = 100
ENDED_KEPT = 16  # ended sessions' figures the hub keeps (health, tests)


@dataclass(frozen=True, slots=True)
class Talker:
    user: str
    channel: int
    since_utc_us: int


class TalkHub:
    """The talkers of the appliance by output (a camera's URL or the AUDIO OUT device): `claim` gives an
    output to one talker or says who has it; `release` gives it back. `playback` opens the AUDIO OUT by
    its device name (tests give a simulated speaker they can listen to); `camera_url` turns a camera
    output's name into the RTSP URL to dial (appliance.talk.camera_urls: an ONVIF camera's is learnt at
    run time; the appliance sets it), identity by default."""

    def __init__(self, *, playback: Callable[[str], AudioPlayback] = make_audio_playback,
                 camera_url: Callable[[str], str] | None = None) -> None:
        self.playback = playback
        self.camera_url: Callable[[str], str] = camera_url or (lambda url: url)
        self._lock = threading.Lock()
        self._talkers: dict[tuple[str, str], Talker] = {}
        self.sessions = self.refused_busy = 0
        self.ended: deque[dict] = deque(maxlen=ENDED_KEPT)  # the last sessions' figures, newest last

    def claim(self, output: tuple[str, str], talker: Talker) -> Talker | None:
        """None if `talker` now has `output`; else the talker who has it (nothing changes)."""
        with self._lock:
            holder = self._talkers.get(output)
            if holder is not None:
                self.refused_busy += 1
                return holder
            self._talkers[output] = talker
            self.sessions += 1
            return None

    def holder(self, output: tuple[str, str]) -> Talker | None:
        """Who has `output` now, or None."""
        with self._lock:
            return self._talkers.get(output)

    def release(self, output: tuple[str, str], talker: Talker) -> None:
        with self._lock:
            if self._talkers.get(output) is talker:
                del self._talkers[output]

    def record_ended(self, talker: Talker, figures: dict) -> None:
        """Keep what an ended session let through (the web's talk socket calls it)."""
        with self._lock:
            self.ended.append({"user": talker.user, "channel": talker.channel, **figures})

    def talking(self) -> list[Talker]:
        with self._lock:
            return list(self._talkers.values())

    def statistics(self) -> dict:
        with self._lock:
            return {"talking": [{"user": t.user, "channel": t.channel} for t in self._talkers.values()],
                    "sessions": self.sessions, "refused_busy": self.refused_busy}


class TalkSession:
    """One talker's output: `open()` (blocking), `put(samples)` (never blocks), `close()`.
    `error` is set once the output failed; then `put` refuses everything."""

    def __init__(self, sink: TalkSink, *, name: str):
        self.sink = sink
        self.name = name
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=QUEUE_FRAMES)
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        self.sent_samples = self.dropped_frames = 0
        self.failed = threading.Event()

    def open(self) -> str:
        """Open the output (TalkSinkError if it cannot be) and start feeding it."""
        description = self.sink.open()
        self._thread = threading.Thread(target=self._feed, name=f"talk-{self.name}", daemon=True)
        self._thread.start()
        return description

    def put(self, samples: np.ndarray) -> bool:
        """Queue sound for the output; False if it was dropped (the output is behind, or failed)."""
        if self.error is not None:
            return False
        try:
            self._queue.put_nowait(samples)
            return True
        except queue.Full:
            self.dropped_frames += 1
            return False

    def _feed(self) -> None:
        while (samples := self._queue.get()) is not None:
            try:
                self.sink.send(samples)
                self.sent_samples += len(samples)
            except TalkSinkError as exc:
                self.error = str(exc)
                log.warning("talk %s: %s", self.name, exc)
                self.failed.set()
                return

    def close(self) -> None:
        """Stop feeding (what is queued is still sent) and close the output."""
        if self._thread is not None:
            while True:
                try:
                    self._queue.put(None, timeout=0.5)
                    break
                except queue.Full:
                    if not self._thread.is_alive():
                        break
            self._thread.join(timeout=5)
        self.sink.close()

    def statistics(self) -> dict:
        return {"sent_samples": self.sent_samples, "dropped_frames": self.dropped_frames, "error": self.error,
                **self.sink.statistics()}
