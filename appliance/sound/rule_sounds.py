"""The rules' `play` actions by output: the one thing the rule engine hands sounds to.

Each output a rule plays on gets one `AlarmSounds` player (so "the newest alarm wins" holds per output):
- the AUDIO OUT (no `channel`, or a channel whose talk goes to the AUDIO OUT): a source at ALARM
  priority on the shared outputs (appliance.sound.output), clips at the output's OUT_RATE stereo; talk
  and the intercom interrupt it, and it interrupts the monitor's channel sound;
- a channel's camera speaker (`channel: N` with talk to the camera): the ONVIF back channel through
  `CameraSpeakerPlayback`, clips at 8 kHz mono (what G.711 carries), taken from the `TalkHub` so it never
  speaks over an operator talking there (skipped and logged).
All players share one ClipCache (one memory cap).
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from base.clock import Clocks
from hal.audio_out import prepare_playback

from appliance.config.talk import play_target
from appliance.sound.alarm_sounds import AlarmSounds, Request
from appliance.sound.clips import SPEAKER_CHANNELS, SPEAKER_RATE, ClipCache
from appliance.sound.output import ALARM, AudioOutputs
from appliance.talk.camera_playback import CameraSpeakerPlayback
from appliance.talk.session import TalkHub

log = logging.getLogger("nvr.sound")

TOTALS = ("started", "finished", "replaced", "stopped", "errors", "skipped_busy")


class RuleSounds:
    """The players of `config.rules`' enabled `play` actions, built at construction (nothing opens until
    a sound plays). `preload()` then `start()`; `play`/`stop` never block; `close()` ends the players."""

    def __init__(self, config, *, outputs: AudioOutputs, talk: TalkHub, clocks: Clocks,
                 clips: ClipCache | None = None):
        self._clips = clips if clips is not None else ClipCache()
        self._players: dict[tuple[str, str], AlarmSounds] = {}
        self._files: dict[tuple[str, str], list[str]] = {}
        self._where: dict[int | None, tuple[str, str]] = {}
        for rule in config.rules:
            for action in rule.do if rule.enabled else ():
                if action.play is not None:
                    self._add(action.play.channel, action.play.file, config, outputs, talk, clocks)

    def _add(self, channel: int | None, path: str, config, outputs: AudioOutputs, talk: TalkHub,
             clocks: Clocks) -> None:
        kind, where = play_target(channel, config)
        if where is None:  # the config check refuses this; a config built in Python may still hold it
            log.error("a rule plays %s on %s, which has no output; it will not sound",
                      path, f"channel {channel}" if channel is not None else "the AUDIO OUT")
            return
        target = (kind, where)
        self._where[channel] = target
        self._files.setdefault(target, [])
        if path not in self._files[target]:
            self._files[target].append(path)
        if target in self._players:
            return
        if kind == "camera":
            self._players[target] = AlarmSounds(
                speaker=_camera_speaker(where, hub=talk, channel=channel, clocks=clocks), clips=self._clips,
                clocks=clocks, rate=SPEAKER_RATE, channels=SPEAKER_CHANNELS,
                output=f"channel {channel}'s camera speaker")
        else:
            self._players[target] = AlarmSounds(speaker=outputs.speaker(where, name="alarm sounds", priority=ALARM),
                                                clips=self._clips, clocks=clocks, output=f"AUDIO OUT {where}")

    @property
    def on_started(self) -> Callable[[Request], None] | None:
        return next((player.on_started for player in self._players.values()), None)

    @on_started.setter
    def on_started(self, callback: Callable[[Request], None] | None) -> None:
        """Told on a player's thread when a request's first samples are out (any output)."""
        for player in self._players.values():
            player.on_started = callback

    def preload(self) -> list[str]:
        """Decode every file for the outputs that play it; the errors, one line each."""
        errors = []
        for target, player in self._players.items():
            errors += player.preload(self._files[target])
        return errors

    def start(self) -> None:
        """Start the players, with the AUDIO OUT's sound library loaded now rather than at the first alarm."""
        for (kind, where), player in self._players.items():
            if kind != "camera":
                prepare_playback(where)
            player.start()

    def close(self) -> None:
        for player in self._players.values():
            player.close()

    def play(self, key: object, path: str, *, channel: int | None = None, times: int | None = 1,
             volume: float = 1.0, pause_s: float = 0.0, stop_on_clear: bool = True) -> None:
        """Play `path` on the output of `channel` (None: the AUDIO OUT), as `AlarmSounds.play`."""
        player = self._players.get(self._where.get(channel))
        if player is None:
            log.error("no output to play %s on %s", path, f"channel {channel}" if channel is not None else
                      "the AUDIO OUT")
            return
        player.play(key, path, times=times, volume=volume, pause_s=pause_s, stop_on_clear=stop_on_clear)

    def stop(self, match: Callable[[object], bool], *, cleared: bool = True) -> None:
        for player in self._players.values():
            player.stop(match, cleared=cleared)

    def playing(self) -> object | None:
        """The key of a sound heard now on any output (the first output's first), or None."""
        return next((key for player in self._players.values() if (key := player.playing()) is not None), None)

    def statistics(self) -> dict:
        players = [player.statistics() for player in self._players.values()]
        return {**{name: sum(p[name] for p in players) for name in TOTALS},
                "outputs": [{k: v for k, v in p.items() if k != "clips"} for p in players],
                "clips": self._clips.statistics()}


def _camera_speaker(url: str, *, hub: TalkHub, channel: int, clocks: Clocks) -> Callable[[], CameraSpeakerPlayback]:
    """The player's one camera speaker: the same object at every open, so a sound that starts while the
    last one plays out takes its back channel on instead of waiting for it to close (camera_playback)."""
    speaker = CameraSpeakerPlayback(url, hub=hub, channel=channel, clocks=clocks,
                                    name=f"alarm sound (channel {channel})")
    return lambda: speaker
