"""An analog channel's microphone, opened and retried off the recording thread: `Microphone`.

The video of a channel must never wait on its microphone (one bad part costs only its share). An
ALSA open can fail (snd-aloop gives EIO to a capture that opens second with other buffer sizes) or
block (a busy hardware device in blocking mode waits for its owner to let go), so the device is
opened on an opener thread and the recording thread only looks at the result:

    take()    at the start of a run: the microphone's track, if it is open or opens within
              `open_wait_s`; otherwise None (the run records pictures only) and `audio_lost`
    poll()    per frame while the run has no sound: starts a retry when one is due (`retry_min_s`
              doubling to `retry_max_s`) and says when the microphone is open again
    resume()  the open microphone goes on in this run (its track is the run's)
    packets() the sound captured since the last call; a failing device raises `audio_lost`, is
              closed and retried as above, and the video goes on

At most one opener thread runs per microphone: a device whose open hangs for ever costs one thread,
not one per retry, and no retry starts until that open returns.
"""
from __future__ import annotations

import logging
import threading

import av

from base.clock import Clocks
from base.media import AudioInfo, EncodedPacket
from recorder.audio_encode import CapturedAudio
from recorder.errors import SourceError
from recorder.faults import FaultSink

log = logging.getLogger("nvr.microphone")

AUDIO_LOST = "audio_lost"  # FaultBoard kind: a channel records pictures without its sound
OPENER_THREAD = "mic-open"  # the opener threads' name prefix
OPEN_WAIT_S = 2.0  # how long a run's start waits for a microphone being opened (real time: an OS call, slow
# on a loaded board); a hanging open delays one reopen by this, not each one
RETRY_MIN_S = 5.0  # a microphone that failed is opened again after this, doubling ...
RETRY_MAX_S = 60.0  # ... up to this


class Microphone:
    """A `CapturedAudio` whose opening and failures never hold up the channel's video (module docstring).

    `take`, `poll`, `resume` and `packets` are called by the recording thread, `close` from any thread.
    """

    def __init__(self, audio: CapturedAudio, *, name: str, channel: int | None, faults: FaultSink, clocks: Clocks,
                 open_wait_s: float = OPEN_WAIT_S, retry_min_s: float = RETRY_MIN_S,
                 retry_max_s: float = RETRY_MAX_S):
        if not 0 < retry_min_s <= retry_max_s or open_wait_s < 0:
            raise ValueError(f"need 0 < retry_min_s <= retry_max_s and open_wait_s >= 0, not "
                             f"{retry_min_s!r}, {retry_max_s!r}, {open_wait_s!r}")
        self.audio, self.name, self.channel = audio, name, channel
        self._faults, self._clocks = faults, clocks
        self._open_wait_s, self._retry_min_s, self._retry_max_s = open_wait_s, retry_min_s, retry_max_s
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._opening = False  # an opener thread is running
        self._ready: AudioInfo | None = None  # open, not yet in a run
        self._in_use = False  # open and recording in the current run
        self._info: AudioInfo | None = None  # the track of the microphone in use
        self._hold = False  # keep the ready microphone through the `close` that ends this run
        self._discard = False  # closed while opening: close what the opener opens, unless taken first
        self._retry_at_us, self._delay_s = 0, retry_min_s
        self.error: str | None = None
        self.attempts = self.failures = 0

    @property
    def in_use(self) -> bool:
        return self._in_use

    def take(self) -> AudioInfo | None:
        """The microphone's track for a run that starts now, or None (and `audio_lost`) if it is not open.

        Waits up to `open_wait_s` only for an open this call started; one already under way is not
        waited on, so a hanging device delays a video reopen once, not every time."""
        with self._lock:
            self._discard = self._hold = False
            if self._in_use:  # opened again without a close: the microphone goes on as it is
                return self._info
            started = self._start_if_due()
        if started:
            self._done.wait(self._open_wait_s)
        with self._lock:
            if self._ready is None:
                reason = (f"the microphone did not open within {self._open_wait_s:g} s (still trying)"
                          if self._opening or self.error is None else self.error)
                self._lost(reason)
                return None
            return self._use()

    def poll(self) -> AudioInfo | None:
        """While the run has no sound: the track of a microphone open again (not yet taken), or None;
        starts a retry when one is due."""
        with self._lock:
            if self._ready is None:
                self._start_if_due()
            return self._ready

    def resume(self) -> None:
        """The microphone `poll` found open goes on in this run (its track is the run's)."""
        with self._lock:
            if self._ready is not None:
                self._use()

    def hold_for_next_run(self) -> None:
        """The run ends to add the microphone's track (TracksChanged): keep it open through that `close`."""
        with self._lock:
            self._hold = self._ready is not None

    def packets(self, origin_us: int) -> list[EncodedPacket]:
        """What the microphone captured since the last call, encoded; [] once it has failed."""
        if not self._in_use:
            return []
        try:
            return self.audio.packets(origin_us)
        except (SourceError, av.FFmpegError) as exc:
            with self._lock:
                self._in_use = False
                self.audio.close()
                self._failed(str(exc))
                self._lost(str(exc))
            return []

    def close(self) -> None:
        """Close the microphone, except one held for the next run (`hold_for_next_run`)."""
        with self._lock:
            if self._in_use:
                self._in_use = False
                self.audio.close()
            elif self._ready is not None and self._hold:
                self._hold = False
            elif self._ready is not None:
                self._ready = None
                self.audio.close()
            self._discard = self._opening

    def statistics(self) -> dict[str, object]:
        return {**self.audio.statistics(), "audio_error": self.error, "audio_open_attempts": self.attempts,
                "audio_open_failures": self.failures, "audio_opening": self._opening}

    # --- under the lock ---------------------------------------------------------------------------

    def _start_if_due(self) -> bool:
        if self._opening or self._in_use or self._ready is not None:
            return False
        if self._clocks.monotonic_us() < self._retry_at_us:
            return False
        self._opening, self.attempts = True, self.attempts + 1
        self._done.clear()
        threading.Thread(target=self._open, name=f"{OPENER_THREAD}-{self.name}", daemon=True).start()
        return True

    def _use(self) -> AudioInfo:
        info, self._ready, self._in_use = self._ready, None, True
        self._info = info
        if self.error is not None:
            log.info("%s: the microphone is back; recording sound again", self.name)
        self.error, self._delay_s = None, self._retry_min_s
        self._faults.clear_fault(AUDIO_LOST, channel=self.channel)
        return info

    def _failed(self, reason: str) -> None:
        self.error, self.failures = reason, self.failures + 1
        self._retry_at_us = self._clocks.monotonic_us() + round(self._delay_s * 1e6)
        self._delay_s = min(self._delay_s * 2, self._retry_max_s)

    def _lost(self, reason: str) -> None:
        self._faults.raise_fault(AUDIO_LOST, f"{self.name}: recording without sound: {reason}", channel=self.channel)

    # --- the opener thread --------------------------------------------------------------------------

    def _open(self) -> None:
        info, error = None, None
        try:
            info = self.audio.open()
        except (SourceError, av.FFmpegError, ValueError, OSError) as exc:
            error = str(exc) or type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - the thread must report every failure, not die with it
            log.exception("%s: opening the microphone failed unexpectedly", self.name)
            error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._opening = False
            if info is not None and self._discard:  # the channel closed while this opened
                self.audio.close()
            elif info is not None:
                self._ready = info
            else:
                self._failed(error)
                log.warning("%s: the microphone failed to open (next try in %.0f s): %s", self.name,
                            (self._retry_at_us - self._clocks.monotonic_us()) / 1e6, error)
            self._discard = False
            self._done.set()
