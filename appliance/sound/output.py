"""The box's sound outputs shared by everything that plays (the monitor's channel sound, alarm sounds, talk
and the LINE IN intercom): one player per ALSA device, and a priority rule for who is heard on it.

    MONITOR < ALARM < TALK

Each user gets a `Source` (an `AudioPlayback`, so the monitor's SoundFeed and talk take it as they would
a card). Every source open on a device is fed as its user pleases, but only the highest-priority one
that is open is heard (among equals, the last opened); the others' samples are dropped and counted, so
when the louder one closes the next is heard again from where it is now (live sound stays live). When a
more urgent source opens, what the quieter one left queued for the card is flushed, so an alarm sound
starts within the card's own buffer of the alarm, not after half a second of the channel's sound.

The device is opened (at OUT_RATE stereo) when its first source opens and closed with its last. A
source in another format is converted on the way (mono doubled, other rates resampled by PyAV).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np

from hal.audio_out import AudioPlayback, AudioPlaybackError, make_audio_playback

from appliance.sound.clips import OUT_CHANNELS, OUT_RATE

log = logging.getLogger("nvr.sound")

MONITOR, ALARM, TALK = 0, 1, 2
PRIORITY_NAMES = {MONITOR: "monitor", ALARM: "alarm", TALK: "talk"}


class SharedOutput:
    """One playback device and the sources that may play on it. Thread-safe."""

    def __init__(self, device: str, *, playback: AudioPlayback):
        self.device, self._playback = device, playback
        self._lock = threading.Lock()
        self._open: list[Source] = []  # in the order opened
        self._heard: Source | None = None
        self.device_opens = self.interruptions = 0

    def source(self, name: str, priority: int) -> Source:
        """A new source called `name` (for statistics) at `priority` (MONITOR, ALARM or TALK)."""
        if priority not in PRIORITY_NAMES:
            raise ValueError(f"unknown priority {priority!r}; use MONITOR, ALARM or TALK")
        return Source(self, name, priority)

    def heard(self) -> str | None:
        """The name of the source heard now, or None."""
        with self._lock:
            return self._heard.name if self._heard is not None else None

    def _attach(self, source: Source) -> None:
        with self._lock:
            if not self._open:
                self._playback.open(sample_rate=OUT_RATE, channels=OUT_CHANNELS)  # AudioPlaybackError: caller's
                self.device_opens += 1
            self._open.append(source)
            self._choose()

    def _detach(self, source: Source) -> None:
        with self._lock:
            if source not in self._open:
                return
            self._open.remove(source)
            self._choose()
            if not self._open:
                self._playback.close()

    def _choose(self) -> None:
        top = max(reversed(self._open), key=lambda s: s.priority, default=None)  # max keeps the first: the latest
        before = self._heard
        if top is not before and before is not None and top is not None and top.priority > before.priority:
            self._playback.flush()  # the quieter source's queued sound must not delay the urgent one
            self.interruptions += 1
        self._heard = top

    def _flush(self, source: Source) -> None:
        with self._lock:
            if source is self._heard:
                self._playback.flush()

    def _write(self, source: Source, samples: np.ndarray) -> bool:
        with self._lock:
            if source is not self._heard:
                return False
            self._playback.write(samples)
            return True

    def statistics(self) -> dict:
        with self._lock:
            return {"device": self.device, "heard": self._heard.name if self._heard else None,
                    "sources": [s.name for s in self._open], "device_opens": self.device_opens,
                    "interruptions": self.interruptions, "playback": self._playback.statistics()}


class Source:
    """One user's way onto a shared output; meets `hal.audio_out.AudioPlayback`."""

    def __init__(self, output: SharedOutput, name: str, priority: int):
        self.output, self.name, self.priority = output, name, priority
        self._resampler = None
        self._channels = 0
        self.is_open = False
        self.frames_heard = self.frames_muted = 0

    def open(self, *, sample_rate: int, channels: int) -> None:
        if channels not in (1, 2) or sample_rate <= 0:
            raise AudioPlaybackError(f"{self.name}: cannot play {channels} channels at {sample_rate} Hz")
        if sample_rate != OUT_RATE:
            import av

            self._resampler = av.AudioResampler(format="s16", layout="mono" if channels == 1 else "stereo",
                                                rate=OUT_RATE)
        self._rate, self._channels = sample_rate, channels
        self.output._attach(self)
        self.is_open = True

    def write(self, samples: np.ndarray) -> None:
        if not self.is_open:
            raise AudioPlaybackError(f"{self.name}: write before open")
        converted = self._convert(samples)
        if self.output._write(self, converted):
            self.frames_heard += len(converted)
        else:
            self.frames_muted += len(converted)

    def _convert(self, samples: np.ndarray) -> np.ndarray:
        samples = np.asarray(samples, dtype=np.int16).reshape(-1, self._channels)
        if self._resampler is not None:
            samples = self._resample(samples)
        # Mono is doubled here, not by a resampler, whose upmix puts it 3 dB lower on each side.
        return samples if self._channels == OUT_CHANNELS else np.repeat(samples, OUT_CHANNELS, axis=1)

    def _resample(self, samples: np.ndarray) -> np.ndarray:
        import av

        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples).reshape(1, -1), format="s16",
                                           layout="mono" if self._channels == 1 else "stereo")
        frame.sample_rate = self._rate
        outs = [out.to_ndarray().reshape(-1, self._channels) for out in self._resampler.resample(frame)]
        return np.concatenate(outs) if outs else np.zeros((0, self._channels), np.int16)

    def flush(self) -> None:
        """Drop what this source wrote and the card has not played yet (only while it is the one heard)."""
        self.output._flush(self)

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            self.output._detach(self)

    def statistics(self) -> dict:
        return {"name": self.name, "priority": PRIORITY_NAMES[self.priority], "frames_heard": self.frames_heard,
                "frames_muted": self.frames_muted, "device": self.output.device}


class AudioOutputs:
    """The box's playback devices by ALSA name, each opened once and shared (`SharedOutput`): the one
    place the appliance opens a speaker, so two config keys naming one device (monitor.audio_out and
    audio_out.device) share its player and its priority rule. `playback` makes a device's backend
    (tests: a simulated speaker)."""

    def __init__(self, *, playback: Callable[[str], AudioPlayback] = make_audio_playback):
        self._make = playback
        self._lock = threading.Lock()
        self._outputs: dict[str, SharedOutput] = {}

    def output(self, device: str) -> SharedOutput:
        with self._lock:
            if device not in self._outputs:
                self._outputs[device] = SharedOutput(device, playback=self._make(device))
            return self._outputs[device]

    def speaker(self, device: str, *, name: str, priority: int) -> Callable[[], AudioPlayback]:
        """A factory of sources on `device` (what the monitor's SoundFeed takes)."""
        return lambda: self.output(device).source(name, priority)

    def playback_by_device(self, *, name: str, priority: int) -> Callable[[str], AudioPlayback]:
        """A factory of sources by device name (what talk's TalkHub takes as `playback`)."""
        return lambda device: self.output(device).source(name, priority)

    def statistics(self) -> list[dict]:
        with self._lock:
            outputs = list(self._outputs.values())
        return [output.statistics() for output in outputs]
