"""A channel's camera speaker as an `AudioPlayback`, so the rules' alarm sound player (appliance.sound.
alarm_sounds) and the LINE IN intercom (appliance.sound.intercom) play on it as on the AUDIO OUT: 8 kHz
mono, sent through the ONVIF back channel as G.711.

The camera's speaker has no priority rule of its own: it is one talker's at a time, and the `TalkHub`
says whose. `open` takes it from the hub before it dials the camera; an operator who is talking there
keeps it (`OutputBusy`: the alarm sound is skipped and logged), and while the sound plays an operator's
push-to-talk on that camera is refused as busy, as for any second talker.

`close` never makes its caller wait: the back channel must stay up until what was sent has played (a
camera drops its playout buffer at TEARDOWN), up to half a second, and a player that waited for that
made the next alarm wait too. So the session is kept while it plays out, on a thread of its own, and
then closed and the speaker given back; an `open` in that time (a newer alarm, the intercom held
again) takes the session as it is: no new DESCRIBE, SETUP and PLAY, and no wait. An `open` that comes
while the TEARDOWN is being sent waits for that (a socket write and close) and dials anew.
"""
from __future__ import annotations

import logging
import threading

import numpy as np

from base.clock import Clocks
from hal.audio_out import AudioPlaybackError

from appliance.sound.alarm_sounds import OutputBusy
from appliance.talk.session import Talker, TalkHub
from appliance.talk.sinks import TALK_RATE, CameraSpeaker, TalkSink, TalkSinkError

log = logging.getLogger("nvr.talk")

CLOSING_WAIT_S = 5.0  # an open waits at most this for a TEARDOWN being sent (a socket write, then close)


class CameraSpeakerPlayback:
    """Channel `channel`'s camera speaker at `url`, held in `hub` under `name` while open (and while what
    was sent plays out after `close`). One object serves any number of open/close rounds, which is what
    lets a round reuse the last one's session. `sink`: the back channel (tests may give another TalkSink)."""

    def __init__(self, url: str, *, hub: TalkHub, channel: int, clocks: Clocks, name: str = "alarm sound",
                 sink: TalkSink | None = None):
        self.url, self.channel, self.name = url, channel, name
        self._hub, self._clocks = hub, clocks
        # The hub's camera_url is looked up at each open: the appliance sets it after building its parts.
        self._sink = sink if sink is not None else CameraSpeaker(url, clocks=clocks,
                                                                 camera_url=lambda where: hub.camera_url(where))
        self._talker: Talker | None = None
        self._state = threading.Condition()
        self._writing = False  # between open and close
        self._round = 0  # +1 at each open and close: a background close whose round has passed does nothing
        self._closing = False  # the TEARDOWN is being sent
        self._reopened = threading.Event()  # wakes a background close early when an open takes the session
        self.samples_sent = self.sessions = self.reused = 0

    @property
    def output(self) -> tuple[str, str]:
        return "camera", self.url

    def open(self, *, sample_rate: int, channels: int) -> None:
        """Take the speaker from the hub (OutputBusy if someone talks there) and open the back channel
        (AudioPlaybackError, the speaker given back, if the camera cannot be reached); or take on the
        session the last `close` is letting play out."""
        if sample_rate != TALK_RATE or channels != 1:
            raise AudioPlaybackError(f"a camera's speaker takes {TALK_RATE} Hz mono, not {channels} channels "
                                     f"at {sample_rate} Hz")
        with self._state:
            if not self._state.wait_for(lambda: not self._closing, timeout=CLOSING_WAIT_S):
                raise AudioPlaybackError(f"channel {self.channel}'s camera speaker is still closing its last "
                                         "session; try again")
            self._round += 1
            if self._talker is not None and not getattr(self._sink, "broken", True):
                self._writing = True
                self.reused += 1
                self._reopened.set()
                self._sink.spurt()
                return
        self._finish_close()  # a broken session still held: close it, then dial anew
        talker = Talker(self.name, self.channel, self._clocks.utc_now_us())
        holder = self._hub.claim(self.output, talker)
        if holder is not None:
            raise OutputBusy(f"{holder.user} is talking on channel {self.channel}'s camera speaker")
        try:
            self._sink.open()
        except TalkSinkError as exc:
            self._hub.release(self.output, talker)
            raise AudioPlaybackError(f"channel {self.channel}'s camera speaker: {exc}") from exc
        with self._state:
            self._talker, self._writing = talker, True
            self.sessions += 1

    def write(self, samples: np.ndarray) -> None:
        if not self._writing:
            raise AudioPlaybackError(f"channel {self.channel}'s camera speaker: write before open")
        mono = np.asarray(samples, dtype=np.int16).reshape(-1)
        try:
            self._sink.send(mono)
        except TalkSinkError as exc:
            raise AudioPlaybackError(f"channel {self.channel}'s camera speaker: {exc}") from exc
        self.samples_sent += len(mono)

    def flush(self) -> None:
        """Sound already sent to a camera cannot be called back; the player's LEAD_S keeps it short."""
        return None

    def close(self) -> None:
        """Stop writing; the session is closed and the speaker given back once what was sent has played,
        on a thread of its own (the caller does not wait; see the module docstring)."""
        with self._state:
            if not self._writing:
                return
            self._writing = False
            self._round += 1
            round_, self._reopened = self._round, threading.Event()
        threading.Thread(target=self._close_after_playout, args=(round_, self._reopened),
                         name=f"speaker-close-ch{self.channel}", daemon=True).start()

    def _close_after_playout(self, round_: int, reopened: threading.Event) -> None:
        playout_s = getattr(self._sink, "playout_left_s", lambda: 0.0)()
        if playout_s > 0 and self._clocks.wait(reopened, playout_s):
            return  # an open took the session on
        with self._state:
            if self._round != round_:
                return
        self._finish_close()

    def _finish_close(self) -> None:
        """Close the session now (it was let play out, or it broke) and give the speaker back."""
        with self._state:
            if self._talker is None or self._writing or self._closing:
                return
            self._closing, talker = True, self._talker
        try:
            self._sink.close()  # what was sent has played out (or the session broke): no linger left
        except Exception:
            log.exception("channel %d: closing the camera speaker's session failed", self.channel)
        finally:
            self._hub.release(self.output, talker)
            with self._state:
                self._talker, self._closing = None, False
                self._state.notify_all()

    def closed(self) -> bool:
        """Whether no session is held (none open, none playing out)."""
        with self._state:
            return self._talker is None

    def statistics(self) -> dict:
        return {"channel": self.channel, "samples_sent": self.samples_sent, "sessions": self.sessions,
                "reused": self.reused, **self._sink.statistics()}
