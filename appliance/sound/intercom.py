"""The LINE IN intercom: the box's microphone heard on its AUDIO OUT, or on a camera's speaker, while someone
holds it open.

Holding is a lease, never a state that must be ended: `hold(holder, lease_s)` opens the intercom (or
extends that holder's lease) and it closes by itself LEASE after the last renewal of the last holder.
The monitor renews on every autorepeat of its key; the web page renews while its button is held, so a
browser that went away, a dropped network or a key-up that never came costs at most one lease of open
microphone. `release(holder)` ends a hold at once.

Latency and memory are bounded: the microphone is read every POLL_S; of what waited, only the newest
MAX_BACKLOG_S is played (older sound is dropped and counted: an intercom that fell behind skips, it
does not lag), and the speaker is a TALK-priority source on the shared AUDIO OUT, which queues at most
`hal.audio_out.MAX_QUEUED_S`, or a camera's speaker (appliance.talk.camera_playback: the ONVIF back
channel, 8 kHz mono G.711), which sends what it is given at once. The capture and the speaker are open
only while someone holds.

A speaker in another format than the microphone's (`speaker_format`: a camera's 8 kHz mono) gets the
microphone's sound resampled by PyAV (its low-pass filter before decimation: no aliasing of a 48 kHz
microphone's upper half into the telephone band). A camera's speaker is one talker's at a time (talk's
`TalkHub`): while an operator talks there the intercom cannot open it; `busy()` says who has it, so a
new hold is refused with their name (`OutputTaken`), and a hold that finds it taken while held (a race)
tries again every second and logs who had it.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np

from base.clock import Clocks
from hal.audio import AudioCapture, AudioCaptureError
from hal.audio_out import AudioPlayback, AudioPlaybackError

from appliance.sound.worker import SoundWorker

log = logging.getLogger("nvr.sound")

POLL_S = 0.01  # the microphone is read this often while held
MAX_BACKLOG_S = 0.1  # captured sound older than this when read is dropped, not played late
MAX_HOLDERS = 16  # distinct holders at once (web sessions, the monitor); more are refused
MAX_HOLDER_CHARS = 64
IDLE_WAIT_S = 1.0


class IntercomBusy(RuntimeError):
    """Too many holders at once; the message says how many are allowed."""


class OutputTaken(IntercomBusy):
    """The intercom's output is someone else's now (an operator talking on that camera's speaker); `user`
    says whose, the message what to do."""

    def __init__(self, message: str, user: str):
        super().__init__(message)
        self.user = user


class Intercom(SoundWorker):
    """LINE IN (`microphone()`) to `speaker()` (the AUDIO OUT's TALK source, or a camera's speaker) while
    held. Thread-safe. `speaker_format`: (rate, channels) the speaker takes, None: the microphone's;
    `busy()`: who else holds the speaker now (a user name) or None; `output` names it (logs, the web)."""

    def __init__(self, *, microphone: Callable[[], AudioCapture], speaker: Callable[[], AudioPlayback],
                 clocks: Clocks, speaker_format: tuple[int, int] | None = None,
                 busy: Callable[[], str | None] | None = None, output: str = "the AUDIO OUT"):
        super().__init__("intercom")
        self._microphone_factory, self._speaker_factory, self._clocks = microphone, speaker, clocks
        self._speaker_format, self._busy, self.output = speaker_format, busy, output
        self._converter: _Converter | None = None
        self._lock = threading.Lock()
        self._holders: dict[str, int] = {}  # holder -> lease end, monotonic us
        self.opened = self.renewals = self.frames_played = self.frames_dropped = self.errors = 0
        self.is_open = False
        self.last_error: str | None = None

    # --- holding (any thread) ---

    def hold(self, holder: str, lease_s: float) -> bool:
        """Open the intercom for `holder` (or renew its lease) for `lease_s` from now; True if `holder` did
        not hold it already (a new hold, not a renewal)."""
        holder = holder[:MAX_HOLDER_CHARS]
        until_us = self._clocks.monotonic_us() + round(lease_s * 1e6)
        with self._lock:
            self._expire()
            if not self._holders and not self.is_open and self._busy is not None \
                    and (user := self._busy()) is not None:
                raise OutputTaken(f"{user} is talking on {self.output}; try again when they let go", user)
            if holder not in self._holders and len(self._holders) >= MAX_HOLDERS:
                raise IntercomBusy(f"the intercom is already held by {MAX_HOLDERS} others; try again when one lets go")
            new = holder not in self._holders
            self._holders[holder] = max(until_us, self._holders.get(holder, 0))
            self.renewals += not new
        self._wake.set()
        return new

    def release(self, holder: str) -> None:
        with self._lock:
            self._holders.pop(holder[:MAX_HOLDER_CHARS], None)
        self._wake.set()

    def held(self) -> bool:
        with self._lock:
            self._expire()
            return bool(self._holders)

    def _expire(self) -> None:
        now_us = self._clocks.monotonic_us()
        for holder in [h for h, until in self._holders.items() if until <= now_us]:
            del self._holders[holder]

    # --- the thread ---

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.held():
                self._clocks.wait(self._wake, IDLE_WAIT_S)
                self._wake.clear()
                continue
            self._session()

    def _session(self) -> None:
        """Open both ends, pass sound until nobody holds, close both."""
        try:
            microphone, speaker = self._open()
        except (AudioCaptureError, AudioPlaybackError) as exc:
            self._failed(f"the intercom cannot open {self.output}: {exc}")
            self._clocks.wait(self._stop, 1.0)  # held still: try again, not in a tight loop
            return
        self.is_open, self.opened = True, self.opened + 1
        try:
            while self.held() and not self._stop.is_set():
                self._pass(microphone.read(), speaker)
                self._clocks.wait(self._wake, POLL_S)  # a release (or close) wakes it at once
                self._wake.clear()
        except (AudioCaptureError, AudioPlaybackError) as exc:
            self._failed(f"the intercom stopped: {exc}")
        finally:
            self.is_open = False
            microphone.close()
            speaker.close()

    def _open(self) -> tuple[AudioCapture, AudioPlayback]:
        microphone = self._microphone_factory()
        found = microphone.open()
        self._rate, self._channels = found.sample_rate, found.channels
        rate, channels = self._speaker_format or (found.sample_rate, found.channels)
        self._converter = None if (rate, channels) == (found.sample_rate, found.channels) else \
            _Converter(found.sample_rate, found.channels, rate, channels)
        speaker = self._speaker_factory()
        try:
            speaker.open(sample_rate=rate, channels=channels)
        except AudioPlaybackError:
            microphone.close()
            raise
        return microphone, speaker

    def _pass(self, chunks, speaker: AudioPlayback) -> None:
        """The newest MAX_BACKLOG_S of what was captured to the speaker (counted in microphone frames)."""
        if not chunks:
            return
        samples = np.concatenate([chunk.samples for chunk in chunks])
        keep = round(MAX_BACKLOG_S * self._rate)
        if len(samples) > keep:
            self.frames_dropped += len(samples) - keep
            samples = samples[-keep:]
        speaker.write(samples if self._converter is None else self._converter.convert(samples))
        self.frames_played += len(samples)

    def _failed(self, message: str) -> None:
        self.errors += 1
        self.last_error = message
        log.warning("%s", message)

    def statistics(self) -> dict:
        with self._lock:
            self._expire()
            holders = sorted(self._holders)
        return {"output": self.output, "held_by": holders, "open": self.is_open, "opened": self.opened, "renewals": self.renewals, "frames_played": self.frames_played,
                "frames_dropped": self.frames_dropped, "errors": self.errors, "last_error": self.last_error}


class _Converter:
    """The microphone's sound in the speaker's format: PyAV's resampler (swresample: filtered, continuous
    across calls; its filter delays the sound by well under a millisecond at these rates)."""

    def __init__(self, rate: int, channels: int, to_rate: int, to_channels: int):
        import av  # PyAV loads only for an intercom heard in another format

        self._rate, self._channels, self._to_channels = rate, channels, to_channels
        self._layout = "mono" if channels == 1 else "stereo"
        self._resampler = av.AudioResampler(format="s16", layout="mono" if to_channels == 1 else "stereo",
                                            rate=to_rate)

    def convert(self, samples: np.ndarray) -> np.ndarray:
        import av

        interleaved = np.ascontiguousarray(np.asarray(samples, dtype=np.int16).reshape(1, -1))
        frame = av.AudioFrame.from_ndarray(interleaved, format="s16", layout=self._layout)
        frame.sample_rate = self._rate
        outs = [out.to_ndarray().reshape(-1, self._to_channels) for out in self._resampler.resample(frame)]
        return np.concatenate(outs) if outs else np.zeros((0, self._to_channels), np.int16)
