"""Where talk is heard: a camera's speaker (drivers.rtsp.backchannel) or the box's AUDIO OUT
(hal.audio_out). Both take 8 kHz mono int16 sound, each encodes it once for its output.

    TalkSinkError (ConnectionError)   the output cannot be opened or stopped taking sound
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from base.clock import Clocks
from base.credentials import mask_credentials
from drivers.rtsp.backchannel import BackChannel, BackChannelError
from hal.audio_out import AudioPlayback, AudioPlaybackError, make_audio_playback

AUDIO_OUT_RATE = 48000  # what the AUDIO OUT is opened at: every card and HDMI sink takes it, few take 8 kHz
TALK_RATE = 8000


class TalkSinkError(ConnectionError):
    """A talk output failed; the message says which and why."""


class TalkSink(Protocol):
    """One output for one talk session: `open()` (blocking, returns a short description), `send`, `close`."""

    def open(self) -> str: ...

    def send(self, samples: np.ndarray) -> None: ...

    def spurt(self) -> None: ...

    def close(self) -> None: ...

    def statistics(self) -> dict: ...


class CameraSpeaker:
    """The camera's speaker through its ONVIF audio back channel. `where` names the camera output (its
    RTSP URL, or an ONVIF camera's device service URL); `camera_url(where)` gives the RTSP URL to dial at
    each open (appliance.talk.camera_urls; TalkSinkError when it cannot be had), identity by default."""

    def __init__(self, where: str, *, clocks: Clocks, timeout_s: float = 5.0,
                 camera_url: Callable[[str], str] | None = None):
        self.where, self._clocks, self._timeout_s = where, clocks, timeout_s
        self._camera_url = camera_url or (lambda url: url)
        self._channel: BackChannel | None = None

    def open(self) -> str:
        """A new back channel session at the camera's URL now (TalkSinkError if the URL or the session
        cannot be had)."""
        self._channel = BackChannel(self._camera_url(self.where), clocks=self._clocks, timeout_s=self._timeout_s)
        try:
            speaker = self._channel.open()
        except BackChannelError as exc:
            raise TalkSinkError(str(exc)) from exc
        return f"camera speaker ({speaker.encoding})"

    def send(self, samples: np.ndarray) -> None:
        if self._channel is None:
            raise TalkSinkError(f"{self.where}: the camera's speaker is not open")
        try:
            self._channel.send(samples)
        except BackChannelError as exc:
            raise TalkSinkError(str(exc)) from exc

    def spurt(self) -> None:
        if self._channel is not None:
            self._channel.spurt()

    def close(self, *, linger: bool = True) -> None:
        """Close the back channel; with `linger`, after what was sent has had time to play."""
        if self._channel is not None:
            self._channel.close(linger=linger)

    def playout_left_s(self) -> float:
        """How long what was sent still needs to play (drivers.rtsp.backchannel.BackChannel.playout_left_s)."""
        return self._channel.playout_left_s() if self._channel is not None else 0.0

    @property
    def broken(self) -> bool:
        """Whether the open session broke (the camera went away): it cannot be reused."""
        return self._channel is None or self._channel.error is not None

    def statistics(self) -> dict:
        return self._channel.statistics() if self._channel is not None else {"camera": mask_credentials(self.where)}


class AudioOutSpeaker:
    """The box's AUDIO OUT: 8 kHz talk resampled to AUDIO_OUT_RATE (linear, continuous across frames)."""

    def __init__(self, device: str, *, playback: AudioPlayback | None = None):
        self.device = device
        self.playback = playback if playback is not None else make_audio_playback(device)
        self._last = 0.0  # the previous frame's last sample, so frames join without a step
        self._phase = 0.0  # where the next output sample falls, in input samples after `_last`

    def open(self) -> str:
        try:
            self.playback.open(sample_rate=AUDIO_OUT_RATE, channels=1)
        except AudioPlaybackError as exc:
            raise TalkSinkError(str(exc)) from exc
        return f"AUDIO OUT {self.device}"

    def send(self, samples: np.ndarray) -> None:
        self.playback.write(self._resample(samples).reshape(-1, 1))

    def _resample(self, samples: np.ndarray) -> np.ndarray:
        source = np.concatenate(([self._last], np.asarray(samples, dtype=np.float64)))
        step = TALK_RATE / AUDIO_OUT_RATE
        positions = np.arange(self._phase, len(source) - 1, step)
        self._phase = (positions[-1] + step) - (len(source) - 1) if len(positions) else self._phase - (len(source) - 1)
        self._last = source[-1]
        return np.round(np.interp(positions, np.arange(len(source)), source)).astype(np.int16)

    def spurt(self) -> None:
        return None  # a sound card has no talk spurts

    def close(self) -> None:
        self.playback.close()

    def statistics(self) -> dict:
        return self.playback.statistics()


def make_sink(target: str, where: str, *, clocks: Clocks,
              playback: Callable[[str], AudioPlayback] = make_audio_playback,
              camera_url: Callable[[str], str] | None = None) -> TalkSink:
    """The sink of a channel's talk target ("camera", where) or ("audio_out", device); `playback` makes the
    AUDIO OUT's speaker from its device name, `camera_url` a camera's RTSP URL from `where`."""
    if target == "camera":
        return CameraSpeaker(where, clocks=clocks, camera_url=camera_url)
    if target == "audio_out":
        return AudioOutSpeaker(where, playback=playback(where))
    raise ValueError(f"no talk output {target!r}")
