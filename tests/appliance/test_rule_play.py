"""The rule action `play: {file, channel, repeat}` (issue 15, part 4): a sound file decoded once at start
and played when the rule fires, on the box's AUDIO OUT (a simulated speaker here) or a camera's speaker
(GStreamer's ONVIF back channel), at its pitch; never over an operator who is talking; config errors at
the key and line."""
from __future__ import annotations

import numpy as np
import pytest

from appliance.alarms.rules import RuleEngine
from appliance.alarms.webhooks import WebhookSender
from appliance.config.model import ConfigError, parse_config
from appliance.talk.player import MAX_SOUND_S, SoundError, SoundPlayer, load_sound
from appliance.talk.session import Talker, TalkHub
from base.clock import RealClocks
from base.timers import Scheduler
from hal.audio_out import SimulatedAudioPlayback
from support.talk import BackChannelCamera, backchannel_available, dominant_frequency, tone, write_wav
from support.waiting import wait_for


def config_for(tmp_path, rules: str, *, channels: str = "  - {id: 1, source: {type: test-pattern}}\n",
               audio_out: str = "simulated"):
    text = (f"storage: {{path: {tmp_path / 'data'}}}\nchannels:\n{channels}"
            f"alarms:\n  inputs: [{{id: door, pin: 17}}]\n  temperature: {{thermal_zones: false}}\n"
            f"audio_out: {{device: {audio_out}}}\nrules:\n{rules}")
    return parse_config(text, source="nvr.yaml", base_dir=tmp_path)


def rig(tmp_path, index, config, hub: TalkHub):
    clocks = RealClocks()
    player = SoundPlayer(config, hub=hub, clocks=clocks)
    player.start()
    scheduler = Scheduler(clocks=clocks)
    engine = RuleEngine(rules=config.rules, index=index, relays={}, scheduler=scheduler, clocks=clocks,
                        webhooks=WebhookSender(), sounds=player)
    return engine, scheduler, player


@pytest.fixture
def siren(tmp_path):
    # 44.1 kHz stereo, as sound files come: the player makes 8 kHz mono of it once.
    mono = tone(800, 1.0, rate=44100, amplitude=0.4)
    path = tmp_path / "siren.wav"
    import wave

    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(44100)
        out.writeframes(np.repeat(mono, 2).astype("<i2").tobytes())
    return path


def test_a_fired_rule_plays_its_sound_on_the_audio_out_at_its_pitch(tmp_path, index, siren):
    speaker = SimulatedAudioPlayback()
    config = config_for(tmp_path, "  - {when: {alarm_input: door}, do: [{play: {file: siren.wav, repeat: 2}}]}\n")
    assert config.rules[0].do[0].play.file == siren  # relative to the config's folder
    engine, scheduler, player = rig(tmp_path, index, config, TalkHub(playback=lambda device: speaker))
    try:
        engine.signal("alarm_input", "door", True)
        scheduler.run_pending()
        wait_for(lambda: player.played == 1, what="the sound to be played twice", details=player.statistics)
    finally:
        player.stop()
    played = speaker.played()[:, 0]
    assert abs(len(played) - 2 * 48000) < 48000 * 0.01 and speaker.sample_rate == 48000
    assert abs(dominant_frequency(played, 48000) - 800) < 3
    assert engine.statistics()["action_errors"] == 0


def test_a_rules_sound_waits_for_no_one_and_is_skipped_while_an_operator_talks(tmp_path, index, siren):
    speaker = SimulatedAudioPlayback()
    hub = TalkHub(playback=lambda device: speaker)
    config = config_for(tmp_path, "  - {when: {alarm_input: door}, do: [{play: {file: siren.wav}}]}\n")
    engine, scheduler, player = rig(tmp_path, index, config, hub)
    operator = Talker("anna", 1, 0)
    assert hub.claim(("audio_out", "simulated"), operator) is None
    try:
        engine.signal("alarm_input", "door", True)
        scheduler.run_pending()
        wait_for(lambda: player.busy == 1, what="the sound to be skipped for the talker")
    finally:
        player.stop()
    assert speaker.opens == 0 and hub.talking() == [operator]


def test_a_fired_rule_plays_its_sound_on_a_cameras_speaker(tmp_path, index, siren):
    ok, reason = backchannel_available()
    if not ok:
        pytest.skip(reason)
    with BackChannelCamera(tmp_path / "heard.raw", codec="pcma") as camera:
        channels = f"  - {{id: 3, source: {{type: rtsp, url: '{camera.url()}'}}}}\n"
        config = config_for(tmp_path, "  - {when: {alarm_input: door}, do: [{play: {file: siren.wav, channel: 3}}]}\n",
                            channels=channels)
        engine, scheduler, player = rig(tmp_path, index, config, TalkHub())
        try:
            engine.signal("alarm_input", "door", True)
            scheduler.run_pending()
            wait_for(lambda: player.played == 1, timeout_s=30, what="the sound to be played",
                     details=player.statistics)
            wait_for(lambda: len(camera.heard()) >= 7800, what="the camera to hear the whole second")
        finally:
            player.stop()
        assert abs(dominant_frequency(camera.heard(), 8000) - 800) < 10


@pytest.mark.parametrize(("rules", "audio_out", "where", "says"), [
    ("  - {when: {alarm_input: door}, do: [{play: {file: nowhere.wav}}]}\n", "simulated",
     "rules[0].do[0].play.file", "no such sound file"),
    ("  - {when: {alarm_input: door}, do: [{play: {file: siren.wav, channel: 9}}]}\n", "simulated",
     "rules[0].do[0].play.channel", "unknown channel 9"),
    ("  - {when: {alarm_input: door}, do: [{play: {file: siren.wav}}]}\n", "null",
     "rules[0].do[0].play.channel", "no AUDIO OUT"),
    ("  - {when: {alarm_input: door}, do: [{play: {file: siren.wav, repeat: 0}}]}\n", "simulated",
     "rules[0].do[0].play.repeat", "1"),
])
def test_a_play_action_that_cannot_sound_is_a_config_error_at_its_key_and_line(tmp_path, siren, rules, audio_out,
                                                                                where, says):
    with pytest.raises(ConfigError) as caught:
        config_for(tmp_path, rules, audio_out=audio_out)
    message = str(caught.value)
    assert "nvr.yaml:" in message and where in message and says in message, message


def test_a_sound_file_that_is_too_long_or_no_sound_is_refused_with_the_reason(tmp_path):
    long = write_wav(tmp_path / "long.wav", np.zeros(int((MAX_SOUND_S + 1) * 8000), np.int16), 8000)
    with pytest.raises(SoundError, match="longer than"):
        load_sound(long)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    with pytest.raises(SoundError, match="junk.wav"):
        load_sound(junk)
    short = load_sound(write_wav(tmp_path / "beep.wav", tone(500, 0.25, rate=16000), 16000))
    assert short.dtype == np.int16 and abs(len(short) - 2000) <= 40
