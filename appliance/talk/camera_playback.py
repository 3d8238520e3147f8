"""A channel's camera speaker as an `AudioPlayback`, so the rules' alarm sound player (appliance.sound.
alarm_sounds) plays on it as on the AUDIO OUT: 8 kHz mono, sent through the ONVIF back channel as G.711.

The camera's speaker has no priority rule of its own: it is one talker's at a time, and the `TalkHub`
says whose. `open` takes it from the hub before it dials the camera; an operator who is talking there
keeps it (`OutputBusy`: the alarm sound is skipped and logged), and while the sound plays an operator's
push-to-talk on that camera is refused as busy, as for any second talker.
"""
from __future__ import annotations

import numpy as np

from base.clock import Clocks
from hal.audio_out import AudioPlaybackError

from appliance.sound.alarm_sounds import OutputBusy
from appliance.talk.session import Talker, TalkHub
from appliance.talk.sinks import TALK_RATE, CameraSpeaker, TalkSink, TalkSinkError


class CameraSpeakerPlayback:
    """Channel `channel`'s camera speaker at `url`, held in `hub` under `name` while open. `sink`: the
    back channel (tests may give another TalkSink)."""

    def __init__(self, url: str, *, hub: TalkHub, channel: int, clocks: Clocks, name: str = "alarm sound",
                 sink: TalkSink | None = None):
        self.url, self.channel, self.name = url, channel, name
        self._hub, self._clocks = hub, clocks
        self._sink = sink if sink is not None else CameraSpeaker(url, clocks=clocks, camera_url=hub.camera_url)
        self._talker: Talker | None = None
        self.samples_sent = 0

    @property
    def output(self) -> tuple[str, str]:
        return "camera", self.url

    def open(self, *, sample_rate: int, channels: int) -> None:
        """Take the speaker from the hub (OutputBusy if someone talks there) and open the back channel
        (AudioPlaybackError, the speaker given back, if the camera cannot be reached)."""
        if sample_rate != TALK_RATE or channels != 1:
            raise AudioPlaybackError(f"a camera's speaker takes {TALK_RATE} Hz mono, not {channels} channels "
                                     f"at {sample_rate} Hz")
        talker = Talker(self.name, self.channel, self._clocks.utc_now_us())
        holder = self._hub.claim(self.output, talker)
        if holder is not None:
            raise OutputBusy(f"{holder.user} is talking on channel {self.channel}'s camera speaker")
        try:
            self._sink.open()
        except TalkSinkError as exc:
            self._hub.release(self.output, talker)
            raise AudioPlaybackError(f"channel {self.channel}'s camera speaker: {exc}") from exc
        self._talker = talker

    def write(self, samples: np.ndarray) -> None:
        if self._talker is None:
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
        """Let what was sent play, close the back channel and give the speaker back to the hub."""
        if self._talker is None:
            return
        try:
            self._sink.close()
        finally:
            self._hub.release(self.output, self._talker)
            self._talker = None

    def statistics(self) -> dict:
        return {"channel": self.channel, "samples_sent": self.samples_sent, **self._sink.statistics()}
