"""The audio playback seam: PCM to an ALSA device (alsa-lib through hal.alsa_pcm: HDMI audio on a Pi, a USB
card, a board's line out) or to a simulated speaker that keeps what it was given.

    AudioPlaybackError (RuntimeError)    the device cannot be opened, or failed while playing

`write` never blocks its caller for long: the ALSA backend plays on a thread of its own from a queue
bounded to MAX_QUEUED_S; what would overflow it is dropped (counted), so a stalled card costs sound,
never the caller's time. Live sound must stay live: a speaker that fell behind skips, it does not lag.
The card's own buffer is CARD_BUFFER_S, and `flush` empties it with the queue.
"""
from __future__ import annotations

import logging
import queue
import re
import threading
from typing import Protocol

import numpy as np

log = logging.getLogger("nvr.audio")

SIMULATED = "simulated"
# The playback names ALSA knows: hw/plughw as for capture, and the HDMI and default PCMs of alsa.conf
# (hdmi:CARD=vc4hdmi0,DEV=0 on a Pi 4, sysdefault:CARD=..., default).
PLAYBACK_DEVICE = re.compile(r"^(plug)?hw:(CARD=)?\w+(,(DEV=)?\d+(,(SUBDEV=)?\d+)?)?$"
                             r"|^(default|sysdefault|hdmi|iec958|front|null)(:(CARD=)?\w+(,(DEV=)?\d+)?)?$")
MAX_QUEUED_S = 0.5  # sound waiting for the card beyond this is dropped: live sound skips, it never lags
# The card's own buffer: what a sound that takes over from another can wait behind, and how long the
# playing thread may stall before the card runs dry (an underrun: a click, then it plays on).
CARD_BUFFER_S = 0.12
MAX_DEVICE_CHARS = 128


class AudioPlaybackError(RuntimeError):
    """The playback device cannot be opened or failed; the message says which and what to check."""


class AudioPlayback(Protocol):
    """A speaker: `open(rate, channels)`, `write` (frames, channels) int16 samples, `flush` (drop what
    waits to be played: a more urgent sound takes over), `close`."""

    def open(self, *, sample_rate: int, channels: int) -> None: ...

    def write(self, samples: np.ndarray) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...

    def statistics(self) -> dict: ...


def check_playback_device(device: str) -> str:
    """`device` if it is a name ALSA can mean (or `simulated`); ValueError saying what is expected."""
    if device == SIMULATED or (len(device) <= MAX_DEVICE_CHARS and PLAYBACK_DEVICE.match(device)):
        return device
    raise ValueError(f"{device!r} is no ALSA playback device: use hw:CARD,DEV, plughw:..., hdmi:CARD=NAME,DEV=N, "
                     f"sysdefault:CARD=NAME, default or {SIMULATED!r} (`aplay -L` lists them)")


class SimulatedAudioPlayback:
    """A speaker for tests: keeps every sample written (`played()`), in order, and counts opens."""

    def __init__(self):
        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self.opens = self.flushes = 0
        self.is_open = False
        self.sample_rate = self.channels = 0

    def open(self, *, sample_rate: int, channels: int) -> None:
        with self._lock:
            self.opens += 1
            self.is_open = True
            self.sample_rate, self.channels = sample_rate, channels

    def write(self, samples: np.ndarray) -> None:
        with self._lock:
            if not self.is_open:
                raise AudioPlaybackError("the simulated speaker is not open")
            self._chunks.append(np.array(samples, dtype=np.int16, copy=True))

    def flush(self) -> None:
        """Counted only: nothing waits in a simulated speaker."""
        with self._lock:
            self.flushes += 1

    def played(self) -> np.ndarray:
        """Everything written so far as (frames, channels) int16."""
        with self._lock:
            if not self._chunks:
                return np.zeros((0, max(self.channels, 1)), np.int16)
            return np.concatenate(self._chunks)

    def close(self) -> None:
        with self._lock:
            self.is_open = False

    def statistics(self) -> dict:
        with self._lock:
            frames = sum(len(c) for c in self._chunks)
        return {"device": SIMULATED, "frames_played": frames, "opens": self.opens}


class AlsaAudioPlayback:
    """An ALSA PCM (alsa-lib through hal.alsa_pcm) with a buffer of CARD_BUFFER_S, fed from a bounded
    queue by its own thread. `flush` empties both the queue and the card's buffer; `close` lets what was
    written play out (at most CARD_BUFFER_S) and closes."""

    def __init__(self, device: str):
        self.device = check_playback_device(device)
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue()
        self._queued_frames = 0
        self._lock = threading.Lock()
        self._drop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pcm = None
        self._max_frames = 0
        self.frames_played = self.frames_dropped = self.frames_flushed = 0
        self.error: str | None = None

    def open(self, *, sample_rate: int, channels: int) -> None:
        from hal.alsa_pcm import AlsaPcmError, PcmPlayback

        try:
            pcm = PcmPlayback(self.device, sample_rate=sample_rate, channels=channels,
                              latency_us=round(CARD_BUFFER_S * 1e6))
        except AlsaPcmError as exc:
            raise AudioPlaybackError(f"{exc.strerror}; check the name with `aplay -L` and that no other program "
                                     "holds it") from exc
        self._pcm, self._max_frames = pcm, int(MAX_QUEUED_S * sample_rate)
        self._drop.clear()
        self._thread = threading.Thread(target=self._run, args=(pcm,), name=f"audio-out-{self.device}", daemon=True)
        self._thread.start()

    def write(self, samples: np.ndarray) -> None:
        with self._lock:
            if self._queued_frames + len(samples) > self._max_frames:
                self.frames_dropped += len(samples)  # the card is behind: skip rather than lag
                return
            self._queued_frames += len(samples)
        self._queue.put(samples)

    def flush(self) -> None:
        """Drop the sound still queued, and what waits in the card's buffer (before the next write)."""
        while True:
            try:
                samples = self._queue.get_nowait()
            except queue.Empty:
                break
            if samples is None:  # closing: keep the end marker for the thread
                self._queue.put(None)
                break
            with self._lock:
                self._queued_frames -= len(samples)
                self.frames_flushed += len(samples)
        self._drop.set()

    def _run(self, pcm) -> None:
        from hal.alsa_pcm import AlsaPcmError

        try:
            while (samples := self._queue.get()) is not None:
                with self._lock:
                    self._queued_frames -= len(samples)
                if self._drop.is_set():
                    self._drop.clear()
                    pcm.drop()
                pcm.write(samples)  # blocks at the card's pace, at most about CARD_BUFFER_S
                self.frames_played += len(samples)
            pcm.drain()
        except AlsaPcmError as exc:
            self.error = f"ALSA playback on {self.device!r} failed: {exc.strerror}"
            log.warning("%s; the sound stops until it is opened again", self.error)
        finally:
            pcm.close()

    def close(self) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=2)

    def card_delay_s(self) -> float:
        """Sound written to the card and not yet heard, in seconds (what a new sound would wait behind)."""
        pcm = self._pcm
        return pcm.delay_frames() / pcm.sample_rate if pcm is not None else 0.0

    def statistics(self) -> dict:
        pcm = self._pcm
        return {"device": self.device, "frames_played": self.frames_played, "frames_dropped": self.frames_dropped,
                "frames_flushed": self.frames_flushed, "underruns": pcm.underruns if pcm is not None else 0,
                "error": self.error}


def prepare_playback(device: str) -> None:
    """Load what the first open of `device` would (alsa-lib and its configuration: hal.alsa_pcm.warm_up),
    so the first sound played on it does not wait for that. Nothing for the simulated speaker. A failure
    is logged, not raised: opening the device reports it where it matters."""
    if device == SIMULATED:
        return
    from hal.alsa_pcm import AlsaPcmError, warm_up

    try:
        warm_up()
    except AlsaPcmError as exc:
        log.warning("cannot prepare ALSA playback for %s: %s", device, exc.strerror)


def make_audio_playback(device: str) -> AudioPlayback:
    """The speaker named `device`: `simulated`, or an ALSA playback PCM."""
    return SimulatedAudioPlayback() if device == SIMULATED else AlsaAudioPlayback(device)
