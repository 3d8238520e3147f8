"""Alarm sounds: a rule's `play` action decodes its file once (real PyAV), plays it on the AUDIO OUT (the
simulated speaker) at its pitch and length, repeats, loops while the alarm is active, stops when it clears,
and takes the output from the monitor's channel sound; a bad file is a config error at its key and line."""
from __future__ import annotations

import textwrap
import threading

import numpy as np
import pytest

from appliance.alarms.rules import RuleEngine
from appliance.alarms.webhooks import WebhookSender
from appliance.config.model import ConfigError, parse_config
from appliance.sound.clips import MAX_CLIP_S, OUT_RATE, ClipCache, ClipError, decode_clip
from appliance.sound.output import ALARM, MONITOR, TALK, AudioOutputs
from appliance.sound.rule_sounds import RuleSounds
from appliance.talk.session import TalkHub
from base.timers import Scheduler
from hal.audio_out import SimulatedAudioPlayback
from support.tones import loud_frames, pitch_hz, write_tone
from support.waiting import wait_for


@pytest.fixture
def siren(tmp_path):
    return write_tone(tmp_path / "siren.wav", freq_hz=880, seconds=0.5, rate=22050)


def rules_config(rules_yaml: str, *, audio_out: str = "audio_out: {device: simulated}\n"):
    return parse_config(audio_out + textwrap.dedent("""\
        channels: [{id: 1, source: {type: test-pattern}}]
        alarms:
          inputs: [{id: door, pin: 17}]
          temperature: {thermal_zones: false}
        """) + textwrap.dedent(rules_yaml), source="nvr.yaml")


@pytest.fixture
def sound_rig(index, clocks):
    """(make(rules_yaml) -> (engine, scheduler, sounds), speaker): a rule engine whose `play` goes to the
    rules' sound players (RuleSounds), the AUDIO OUT's on a shared simulated output."""
    speaker = SimulatedAudioPlayback()
    outputs = AudioOutputs(playback=lambda device: speaker)
    made: list[RuleSounds] = []

    def make(rules_yaml: str):
        config = rules_config(rules_yaml)
        talk = TalkHub(playback=outputs.playback_by_device(name="talk", priority=TALK))
        sounds = RuleSounds(config, outputs=outputs, talk=talk, clocks=clocks)
        assert sounds.preload() == []
        sounds.start()
        made.append(sounds)
        scheduler = Scheduler(clocks=clocks)
        engine = RuleEngine(rules=config.rules, index=index, relays={}, scheduler=scheduler, clocks=clocks,
                            webhooks=WebhookSender(), sounds=sounds)
        return engine, scheduler, sounds

    yield make, speaker, outputs
    for sounds in made:
        sounds.close()


def fire(engine, scheduler, clocks, active: bool = True) -> None:
    engine.signal("alarm_input", "door", active, at_us=clocks.utc_now_us())
    scheduler.run_pending()


def idle(sounds, speaker) -> None:
    wait_for(lambda: sounds.playing() is None and not speaker.is_open, what="the alarm sound to end",
             details=sounds.statistics)


def test_a_rule_plays_its_sound_file_at_its_pitch_and_length_on_the_audio_out(sound_rig, clocks, siren):
    make, speaker, _ = sound_rig
    engine, scheduler, sounds = make(f"rules: [{{when: {{alarm_input: door}}, do: [{{play: '{siren}'}}]}}]\n")
    fire(engine, scheduler, clocks)
    wait_for(lambda: sounds.statistics()["started"] == 1, what="the sound to start")
    idle(sounds, speaker)
    played = speaker.played()
    assert (speaker.sample_rate, speaker.channels) == (OUT_RATE, 2)
    loud = loud_frames(played)
    assert abs((loud[-1] - loud[0] + 1) / OUT_RATE - 0.5) < 0.005  # 22.05 kHz resampled to 48 kHz: same length
    assert abs(pitch_hz(played[loud[0]:loud[-1], 0], OUT_RATE) - 880) < 4
    assert np.array_equal(played[:, 0], played[:, 1])  # mono to both sides
    assert sounds.statistics()["clips"]["decodes"] == 1


def test_an_mp3_plays_at_its_pitch_repeated_with_pauses_and_at_half_volume(sound_rig, clocks, tmp_path):
    make, speaker, _ = sound_rig
    warning = write_tone(tmp_path / "warning.mp3", freq_hz=440, seconds=0.4, rate=44100, codec="libmp3lame")
    engine, scheduler, sounds = make(f"""\
        rules:
          - when: {{alarm_input: door}}
            do: [{{play: {{file: '{warning}', repeat: 3, pause_s: 0.3, volume_percent: 50}}}}]
        """)
    fire(engine, scheduler, clocks)
    idle(sounds, speaker)
    played = speaker.played()
    level = np.abs(played[:, 0].astype(np.int32))
    window = OUT_RATE // 50  # 20 ms
    loud = level[: len(level) // window * window].reshape(-1, window).max(axis=1) > 3000
    starts = np.flatnonzero(loud[1:] & ~loud[:-1]) + 1
    assert len(starts) + int(loud[0]) == 3  # three plays
    assert len(starts) >= 2 and 0.6 <= (starts[1] - starts[0]) * 0.02 <= 0.8  # 0.4 s sound + 0.3 s pause
    assert 0.45 * 16383 < level.max() < 0.55 * 16383 * 1.1  # half of the file's 0.5 full scale
    first = loud_frames(played)[0]
    assert abs(pitch_hz(played[first:first + round(0.3 * OUT_RATE), 0], OUT_RATE) - 440) < 4


def test_a_looping_sound_plays_while_the_alarm_is_active_and_stops_when_it_clears(sound_rig, clocks, siren):
    make, speaker, _ = sound_rig
    engine, scheduler, sounds = make(f"""\
        rules: [{{when: {{alarm_input: door}}, do: [{{play: {{file: '{siren}', loop: true}}}}]}}]
        """)
    fire(engine, scheduler, clocks)
    wait_for(lambda: len(speaker.played()) > 4 * 0.5 * OUT_RATE, what="the siren to have looped 4 times")
    assert sounds.playing() is not None
    fire(engine, scheduler, clocks, active=False)
    idle(sounds, speaker)
    assert sounds.statistics()["stopped"] == 1
    heard = len(speaker.played())
    clocks.advance(5)
    assert len(speaker.played()) == heard and not speaker.is_open  # silent, and the card let go


def test_a_newer_alarm_replaces_the_sound_and_a_looping_one_comes_back_after_it(sound_rig, clocks, tmp_path):
    make, speaker, _ = sound_rig
    low = write_tone(tmp_path / "low.wav", freq_hz=300, seconds=0.4)
    high = write_tone(tmp_path / "high.wav", freq_hz=1200, seconds=0.4)
    engine, scheduler, sounds = make(f"""\
        rules:
          - {{when: {{alarm_input: door}}, do: [{{play: {{file: '{low}', loop: true}}}}]}}
          - {{when: {{video_loss: 1}}, do: [{{play: '{high}'}}]}}
        """)
    fire(engine, scheduler, clocks)
    wait_for(lambda: len(speaker.played()) > OUT_RATE, what="a second of the looping sound")
    engine.signal("video_loss", "1", True, at_us=clocks.utc_now_us())
    scheduler.run_pending()
    wait_for(lambda: sounds.statistics()["finished"] == 1, what="the newer sound to have played once")
    assert speaker.flushes >= 1  # what was written of the loop and not yet heard did not delay it
    after_newer = len(speaker.played())  # a busy machine may have got here late: wait for the loop after it
    wait_for(lambda: len(speaker.played()) > max(3 * OUT_RATE, after_newer + round(0.6 * OUT_RATE)),
             what="more of the looping sound, after the newer one")
    fire(engine, scheduler, clocks, active=False)
    idle(sounds, speaker)
    pitches = [pitch_hz(piece[:, 0], OUT_RATE) for piece in np.array_split(speaker.played(),
                                                                           len(speaker.played()) // 9600)]
    high_at = [i for i, p in enumerate(pitches) if abs(p - 1200) < 30]
    assert high_at and abs(pitches[high_at[-1] + 2] - 300) < 30  # the loop again after the newer sound
    assert abs(pitches[high_at[0] - 1] - 300) < 30  # and before it


def test_an_alarm_sound_interrupts_the_monitors_channel_sound_and_talk_interrupts_both(clocks):
    speaker = SimulatedAudioPlayback()
    outputs = AudioOutputs(playback=lambda device: speaker)
    monitor = outputs.speaker("hw:0,0", name="monitor", priority=MONITOR)()
    monitor.open(sample_rate=OUT_RATE, channels=2)
    monitor.write(np.full((480, 2), 100, np.int16))
    alarm = outputs.output("hw:0,0").source("alarm", ALARM)
    alarm.open(sample_rate=OUT_RATE, channels=2)
    assert speaker.flushes == 1  # the monitor's queued sound is dropped, not played before the siren
    monitor.write(np.full((480, 2), 100, np.int16))  # muted now
    alarm.write(np.full((480, 2), 200, np.int16))
    talk = outputs.playback_by_device(name="talk", priority=TALK)("hw:0,0")
    talk.open(sample_rate=8000, channels=1)  # talk's own format, converted on the way
    alarm.write(np.full((480, 2), 200, np.int16))
    talk.write(np.full((800, 1), 300, np.int16))
    talk.close()
    alarm.write(np.full((480, 2), 200, np.int16))
    alarm.close()
    monitor.write(np.full((480, 2), 100, np.int16))
    values = speaker.played()[:, 0]
    runs = [int(v) for i, v in enumerate(values) if i == 0 or values[i - 1] != v]
    assert runs[0] == 100 and runs[1] == 200 and 200 in runs and runs[-1] == 100
    assert max(abs(v - 300) for v in runs if 250 < v < 350) < 50  # talk heard in between, resampled
    assert speaker.opens == 1 and speaker.is_open  # one card, opened once, still the monitor's
    assert (monitor.frames_muted, alarm.frames_muted) == (480, 480)
    monitor.close()
    assert not speaker.is_open


def test_every_play_file_is_decoded_once_and_the_cache_is_bounded(tmp_path):
    one = write_tone(tmp_path / "one.wav", freq_hz=500, seconds=1.0)
    two = write_tone(tmp_path / "two.wav", freq_hz=600, seconds=1.0)
    cache = ClipCache(max_bytes=round(1.5 * OUT_RATE * 4))  # room for one second-long clip
    assert cache.get(str(one)) is cache.get(str(one))
    cache.get(str(two))
    assert cache.statistics() == {"clips": 1, "bytes": OUT_RATE * 4, "decodes": 2, "evictions": 1}
    with pytest.raises(ClipError, match="over the cache"):
        ClipCache(max_bytes=1000).get(str(one))


def test_a_sound_file_that_is_too_long_is_refused_while_it_is_decoded(tmp_path):
    long = write_tone(tmp_path / "long.wav", freq_hz=500, seconds=3.0, rate=8000)
    with pytest.raises(ClipError, match="longer than 2 s"):
        decode_clip(long, max_s=2.0)
    assert MAX_CLIP_S >= 60


@pytest.mark.parametrize(("make_file", "rule", "where", "says"), [
    (None, "{play: /nonexistent/siren.wav}", "rules[0].do[0].play.file", "No such file"),
    ("garbage", "{play: {file: FILE, repeat: 2}}", "rules[0].do[0].play.file", "cannot decode"),
    ("video", "{play: FILE}", "rules[0].do[0].play.file", "no sound"),
    (None, "{play: siren.wav}", "rules[0].do[0].play.file", "full path"),
    (None, "{play: {file: /x.wav, repeat: 0}}", "rules[0].do[0].play.repeat", "from 1 to 1000"),
    (None, "{play: {file: /x.wav, volume_percent: 150}}", "rules[0].do[0].play.volume_percent", "100"),
])
def test_a_bad_play_action_is_a_config_error_at_its_key_and_line(tmp_path, make_file, rule, where, says):
    path = tmp_path / "sound.wav"
    if make_file == "garbage":
        path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really a wave file" * 10)
    elif make_file == "video":
        import av
        with av.open(str(path.with_suffix(".mp4")), "w") as container:
            stream = container.add_stream("mpeg4", rate=25)
            stream.width = stream.height = 64
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            for packet in [*stream.encode(frame), *stream.encode(None)]:
                container.mux(packet)
        path = path.with_suffix(".mp4")
    with pytest.raises(ConfigError) as caught:
        rules_config(f"rules:\n  - when: {{alarm_input: door}}\n    do:\n      - {rule.replace('FILE', str(path))}\n")
    message = str(caught.value)
    assert message.startswith(f"nvr.yaml:9: {where}: ") and says in message, message  # the file, its line, the key


def test_a_play_action_needs_the_audio_out(siren):
    with pytest.raises(ConfigError) as caught:
        rules_config(f"rules: [{{when: {{alarm_input: door}}, do: [{{play: '{siren}'}}]}}]\n", audio_out="")
    assert "rules[0].do[0].play" in str(caught.value) and "audio_out.device" in str(caught.value)


def test_the_alarm_side_preloads_the_sounds_and_plays_them_when_a_board_alarm_fires(clocks, index, mock_pins, siren):
    from appliance.alarms.io import AlarmIO
    from recorder.faults import FaultBoard
    from recorder.live import LiveHub
    from hal.gpio import GpiozeroGpio

    speaker = SimulatedAudioPlayback()
    config = rules_config(f"rules: [{{when: {{video_loss: 1}}, do: [{{play: '{siren}'}}]}}]\n")
    started, board = threading.Event(), FaultBoard(clocks=clocks)
    alarm_io = AlarmIO(config, clocks=clocks, index=index, faults=board, live=LiveHub(),
                       gpio=GpiozeroGpio(pin_factory=mock_pins), outputs=AudioOutputs(playback=lambda d: speaker))
    alarm_io.sounds.on_started = lambda request: started.set()
    alarm_io.start()
    try:
        assert alarm_io.sounds.statistics()["clips"]["decodes"] == 1  # before any alarm
        board.raise_fault("video_loss", "no signal", channel=1)
        assert started.wait(10)
        idle(alarm_io.sounds, speaker)
        assert abs(len(loud_frames(speaker.played())) / OUT_RATE - 0.5) < 0.05
    finally:
        alarm_io.stop()


@pytest.mark.vivid
def test_a_rules_sound_comes_out_of_a_kernel_sound_card_at_its_pitch(tmp_path, index, request):
    """Against a real kernel sound driver (snd-aloop, loaded in the vivid VM): a rule's `play` of a 660 Hz
    tone on the AUDIO OUT = the loopback card's playback side (through AlsaAudioPlayback, the shared
    output and the alarm player) is captured on the card's other side at 660 Hz. Checks are about what
    was heard, not how fast (the guest's CPU is emulated); the time from the alarm to the first loud
    captured sample is printed, not asserted."""
    from base.clock import RealClocks
    from hal.audio import AlsaAudioCapture
    from support.alsa_loopback import LOOPBACK_CARD

    if not LOOPBACK_CARD.exists():
        pytest.skip("no ALSA loopback card (snd-aloop) on this kernel")
    clocks = RealClocks()
    tone = write_tone(tmp_path / "tone.wav", freq_hz=660, seconds=1.5, rate=22050)
    config = rules_config(f"rules: [{{when: {{alarm_input: door}}, do: [{{play: '{tone}'}}]}}]\n",
                          audio_out="audio_out: {device: 'hw:Loopback,0,0'}\n")
    # Both ends pinned to substream 0: "first free" can pick different ones on the two sides (silence).
    microphone = AlsaAudioCapture("hw:Loopback,1,0", sample_rate=OUT_RATE, channels=2, clocks=clocks)
    microphone.open()  # first: the loopback card runs both sides at the rate of the first opened
    # As the appliance builds it: the rules' players on the shared outputs (an ALSA one here).
    sounds = RuleSounds(config, outputs=AudioOutputs(), talk=TalkHub(), clocks=clocks)
    assert sounds.preload() == []
    sounds.start()
    scheduler = Scheduler(clocks=clocks)
    engine = RuleEngine(rules=config.rules, index=index, relays={}, scheduler=scheduler, clocks=clocks,
                        webhooks=WebhookSender(), sounds=sounds)
    chunks = []
    try:
        fired_us = clocks.monotonic_us()
        fire(engine, scheduler, clocks)

        def heard_to_its_end() -> bool:
            chunks.extend(microphone.read())
            return sounds.statistics()["finished"] == 1 and bool(chunks) and \
                chunks[-1].timestamp_us > fired_us + 2_500_000
        wait_for(heard_to_its_end, timeout_s=120, what="the tone played and captured", poll_s=0.02,
                 details=sounds.statistics)
    finally:
        sounds.close()
        microphone.close()
    samples = np.concatenate([c.samples for c in chunks])
    loud = loud_frames(samples)
    assert len(loud) > 0.5 * 1.5 * OUT_RATE, f"{len(loud)} loud frames of {1.5 * OUT_RATE:.0f} played"
    middle = samples[loud[0]:loud[-1], 0]
    assert abs(pitch_hz(middle, OUT_RATE) - 660) < 5
    first_loud_us = next(c.timestamp_us + round(np.flatnonzero(np.abs(c.samples[:, 0]) > 1000)[0] * 1e6 / OUT_RATE)
                         for c in chunks if (np.abs(c.samples[:, 0]) > 1000).any())
    request.config.pluginmanager.getplugin("terminalreporter").write_line(
        f"alarm -> first loud sample on the loopback card: {(first_loud_us - fired_us) / 1000:.1f} ms "
        f"(loud frames {len(loud)}, pitch {pitch_hz(middle, OUT_RATE):.1f} Hz)")


def test_a_sound_not_in_the_cache_is_decoded_by_the_player_never_on_the_alarm_thread(index, clocks, siren):
    class Recording(ClipCache):
        def get(self, path, **format):
            decoders.append(threading.current_thread().name)
            return super().get(path, **format)

    decoders: list[str] = []
    speaker = SimulatedAudioPlayback()
    config = rules_config(f"rules: [{{when: {{alarm_input: door}}, do: [{{play: '{siren}'}}]}}]\n")
    sounds = RuleSounds(config, outputs=AudioOutputs(playback=lambda d: speaker), talk=TalkHub(), clocks=clocks,
                        clips=Recording())  # nothing preloaded (as after an eviction)
    sounds.start()
    try:
        scheduler = Scheduler(clocks=clocks)
        engine = RuleEngine(rules=config.rules, index=index, relays={}, scheduler=scheduler, clocks=clocks,
                            webhooks=WebhookSender(), sounds=sounds)
        fire(engine, scheduler, clocks)
        idle(sounds, speaker)
        assert decoders == ["alarm-sounds"] and len(loud_frames(speaker.played())) > 0.45 * OUT_RATE
    finally:
        sounds.close()


def test_the_monitor_and_the_alarm_sounds_share_one_player_when_they_name_one_device(tmp_path, siren):
    """monitor.audio_out and audio_out.device naming one device: one SharedOutput, the monitor's sound at
    MONITOR priority and the alarm sounds at ALARM, so the rule's sound interrupts the channel's."""
    from appliance.monitor import build_monitor

    speakers: dict[str, SimulatedAudioPlayback] = {}
    config = parse_config(textwrap.dedent(f"""\
        storage: {{path: {tmp_path}}}
        channels: [{{id: 1, source: {{type: test-pattern}}}}]
        audio_out: {{device: 'plughw:CARD=Device,DEV=0'}}
        monitor: {{enabled: true, backend: offscreen, evdev: false, audio_out: 'plughw:CARD=Device,DEV=0'}}
        alarms: {{temperature: {{thermal_zones: false}}}}
        rules: [{{when: {{video_loss: 1}}, do: [{{play: '{siren}'}}]}}]
        """))
    from appliance.app import Appliance
    from base.clock import SimulatedClocks

    nvr = Appliance(config, clocks=SimulatedClocks(), audio_playback=lambda d: speakers.setdefault(d, SimulatedAudioPlayback()))
    monitor_source = build_monitor(nvr)._speaker()
    alarm_source = nvr.audio_outputs.speaker("plughw:CARD=Device,DEV=0", name="alarm", priority=ALARM)()
    assert monitor_source.output is alarm_source.output and list(speakers) == ["plughw:CARD=Device,DEV=0"]
    assert (monitor_source.priority, alarm_source.priority) == (MONITOR, ALARM)


# --- `channel: N`: on that channel's talk output (its camera's speaker), never over an operator ---------

def camera_rules_config(tmp_path, url: str, rules_yaml: str, *, audio_out: str = "simulated"):
    return parse_config(textwrap.dedent(f"""\
        storage: {{path: {tmp_path / 'data'}}}
        audio_out: {{device: {audio_out}}}
        channels:
          - {{id: 1, source: {{type: test-pattern}}}}
          - {{id: 3, source: {{type: rtsp, url: '{url}'}}}}
        alarms:
          inputs: [{{id: door, pin: 17}}]
          temperature: {{thermal_zones: false}}
        """) + textwrap.dedent(rules_yaml), source="nvr.yaml")


def camera_rig(config, index, clocks, hub: TalkHub, speaker=None):
    outputs = AudioOutputs(playback=lambda device: speaker or SimulatedAudioPlayback())
    sounds = RuleSounds(config, outputs=outputs, talk=hub, clocks=clocks)
    assert sounds.preload() == []
    sounds.start()
    scheduler = Scheduler(clocks=clocks)
    engine = RuleEngine(rules=config.rules, index=index, relays={}, scheduler=scheduler, clocks=clocks,
                        webhooks=WebhookSender(), sounds=sounds)
    return engine, scheduler, sounds


def test_a_sound_for_a_camera_channel_is_decoded_at_8_khz_mono_and_the_audio_out_keeps_its_rate(tmp_path):
    siren = write_tone(tmp_path / "siren.wav", freq_hz=800, seconds=0.5, rate=44100)
    cache = ClipCache()
    speaker_clip = cache.get(str(siren), rate=8000, channels=1)
    out_clip = cache.get(str(siren))
    assert speaker_clip.samples.shape == (4000, 1) and speaker_clip.rate == 8000
    assert abs(pitch_hz(speaker_clip.samples[:, 0], 8000) - 800) < 5
    assert out_clip.samples.shape == (round(0.5 * OUT_RATE), 2) and out_clip.rate == OUT_RATE
    assert cache.statistics()["decodes"] == 2 and cache.cached(str(siren), rate=8000, channels=1) is speaker_clip


def test_a_fired_rule_plays_its_sound_on_a_cameras_speaker_through_the_back_channel(tmp_path, index):
    from base.clock import RealClocks
    from support.talk import BackChannelCamera, backchannel_available, dominant_frequency

    ok, reason = backchannel_available()
    if not ok:
        pytest.skip(reason)
    siren = write_tone(tmp_path / "siren.wav", freq_hz=800, seconds=1.0, rate=44100)
    clocks = RealClocks()
    with BackChannelCamera(tmp_path / "heard.raw", codec="pcma") as camera:
        config = camera_rules_config(tmp_path, camera.url(), f"""\
            rules: [{{when: {{alarm_input: door}}, do: [{{play: {{file: '{siren}', channel: 3}}}}]}}]
            """)
        hub = TalkHub()
        engine, scheduler, sounds = camera_rig(config, index, clocks, hub)
        try:
            fire(engine, scheduler, clocks)
            wait_for(lambda: sounds.statistics()["finished"] == 1, timeout_s=30, what="the sound to be played",
                     details=sounds.statistics)
            wait_for(lambda: len(camera.heard()) >= 7800, what="the camera to hear the whole second")
            wait_for(lambda: hub.talking() == [], what="the camera's speaker to be given back")
        finally:
            sounds.close()
        assert abs(dominant_frequency(camera.heard(), 8000) - 800) < 10
        assert sounds.statistics()["errors"] == 0


def test_a_sound_that_starts_while_the_last_one_plays_out_takes_its_back_channel_on_without_waiting(tmp_path):
    """The camera speaker's close returns at once and keeps the session while what was sent plays out (on
    simulated time here, so the window is the test's to choose); a sound opened meanwhile goes on in that
    session, after a silence with its RTP timestamp moved on, and both are heard at their pitches; the
    session is closed and the speaker given back only when the last sound has had time to play."""
    from appliance.talk.camera_playback import CameraSpeakerPlayback
    from base.clock import SimulatedClocks
    from support.talk import BackChannelCamera, backchannel_available, dominant_frequency, tone

    ok, reason = backchannel_available()
    if not ok:
        pytest.skip(reason)
    clocks, hub = SimulatedClocks(), TalkHub()
    with BackChannelCamera(tmp_path / "heard.raw", latency_ms=20) as camera:
        speaker = CameraSpeakerPlayback(camera.url(), hub=hub, channel=3, clocks=clocks)
        speaker.open(sample_rate=8000, channels=1)
        speaker.write(tone(500, 0.3))
        speaker.close()  # returns at once: 0.3 s of sound (and PLAYOUT_S) still to play
        assert not speaker.closed() and hub.talking()[0].user == "alarm sound"
        clocks.advance(0.45)  # within the play-out, 0.15 s after the first sound ended
        speaker.open(sample_rate=8000, channels=1)
        speaker.write(tone(900, 0.3))
        assert speaker.statistics()["sessions"] == 1 and speaker.statistics()["reused"] == 1
        wait_for(lambda: len(camera.heard()) >= 4800, what="both sounds at the camera",
                 details=lambda: len(camera.heard()))
        speaker.close()
        assert not speaker.closed()
        clocks.advance(1.0)  # past the second sound's play-out
        wait_for(speaker.closed, what="the session to be closed after its play-out")
        assert hub.talking() == []
        heard = camera.heard()
        assert abs(dominant_frequency(heard[:2400], 8000) - 500) < 10
        assert abs(dominant_frequency(heard[-2400:], 8000) - 900) < 10
        speaker.open(sample_rate=8000, channels=1)  # closed now: a new session
        assert speaker.statistics()["sessions"] == 2
        speaker.close()
        clocks.advance(1.0)
        wait_for(speaker.closed, what="the second session to be closed")


def test_a_rules_sound_on_a_camera_is_skipped_and_logged_while_an_operator_talks_there(tmp_path, index, clocks,
                                                                                        caplog):
    from appliance.talk.session import Talker

    siren = write_tone(tmp_path / "siren.wav", freq_hz=800, seconds=0.5)
    url = "rtsp://127.0.0.1:9/talk"  # never dialled: the operator holds the speaker
    config = camera_rules_config(tmp_path, url, f"""\
        rules: [{{when: {{alarm_input: door}}, do: [{{play: {{file: '{siren}', channel: 3}}}}]}}]
        """)
    hub = TalkHub()
    operator = Talker("anna", 3, 0)
    assert hub.claim(("camera", url), operator) is None
    engine, scheduler, sounds = camera_rig(config, index, clocks, hub)
    try:
        fire(engine, scheduler, clocks)
        wait_for(lambda: sounds.statistics()["skipped_busy"] == 1, what="the sound to be skipped for the talker",
                 details=sounds.statistics)
    finally:
        sounds.close()
    assert hub.talking() == [operator] and sounds.statistics()["errors"] == 0
    assert "anna is talking on channel 3's camera speaker" in caplog.text


def test_an_operator_talking_on_the_audio_out_is_heard_over_a_rules_sound(tmp_path, index, clocks):
    """On the AUDIO OUT the priority rule decides: talk (TALK) is heard, the alarm sound (ALARM) is muted."""
    siren = write_tone(tmp_path / "siren.wav", freq_hz=800, seconds=0.3)
    speaker = SimulatedAudioPlayback()
    outputs = AudioOutputs(playback=lambda device: speaker)
    hub = TalkHub(playback=outputs.playback_by_device(name="talk", priority=TALK))
    config = rules_config(f"rules: [{{when: {{alarm_input: door}}, do: [{{play: '{siren}'}}]}}]\n")
    sounds = RuleSounds(config, outputs=outputs, talk=hub, clocks=clocks)
    sounds.preload()
    sounds.start()
    talk = hub.playback("simulated")  # what an operator's AudioOutSpeaker opens
    talk.open(sample_rate=OUT_RATE, channels=1)
    try:
        scheduler = Scheduler(clocks=clocks)
        engine = RuleEngine(rules=config.rules, index=index, relays={}, scheduler=scheduler, clocks=clocks,
                            webhooks=WebhookSender(), sounds=sounds)
        fire(engine, scheduler, clocks)
        wait_for(lambda: sounds.statistics()["finished"] == 1, what="the sound to have been played out")
        talk.write(np.full((480, 1), 300, np.int16))
    finally:
        talk.close()
        sounds.close()
    assert len(loud_frames(speaker.played())) == 0 and set(np.unique(speaker.played())) == {300}
    assert outputs.output("simulated").statistics()["device_opens"] == 1


@pytest.mark.parametrize(("rule", "talk", "where", "says"), [
    ("{play: {file: SIREN, channel: 9}}", "", "rules[0].do[0].play.channel", "unknown channel 9"),
    ("{play: {file: SIREN, channel: 3}}", ", talk: {output: 'off'}", "rules[0].do[0].play.channel",
     "no talk output"),
])
def test_a_play_on_a_channel_without_a_talk_output_is_a_config_error_at_its_key(tmp_path, siren, rule, talk, where,
                                                                                 says):
    text = textwrap.dedent(f"""\
        storage: {{path: {tmp_path}}}
        channels: [{{id: 3, source: {{type: rtsp, url: 'rtsp://192.0.2.7/stream'}}{talk}}}]
        alarms:
          inputs: [{{id: door, pin: 17}}]
          temperature: {{thermal_zones: false}}
        rules: [{{when: {{alarm_input: door}}, do: [{rule.replace('SIREN', str(siren))}]}}]
        """)
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="nvr.yaml")
    message = str(caught.value)
    assert "nvr.yaml:6" in message and where in message and says in message, message


def test_a_play_on_a_channel_whose_talk_goes_to_the_audio_out_uses_the_audio_outs_one_player(sound_rig, clocks,
                                                                                                siren):
    make, speaker, outputs = sound_rig
    engine, scheduler, sounds = make(f"""\
        rules: [{{when: {{alarm_input: door}}, do: [{{play: {{file: '{siren}', channel: 1}}}}]}}]
        """)  # channel 1 is analog: its talk (auto) is the AUDIO OUT
    fire(engine, scheduler, clocks)
    wait_for(lambda: sounds.statistics()["started"] == 1, what="the sound to start")
    idle(sounds, speaker)
    assert (speaker.sample_rate, speaker.channels) == (OUT_RATE, 2)
    assert abs(len(loud_frames(speaker.played())) / OUT_RATE - 0.5) < 0.05
    assert [o["output"] for o in sounds.statistics()["outputs"]] == ["AUDIO OUT simulated"]


def test_a_play_on_a_camera_channel_needs_no_audio_out(tmp_path, siren):
    config = parse_config(textwrap.dedent(f"""\
        storage: {{path: {tmp_path}}}
        channels: [{{id: 3, source: {{type: rtsp, url: 'rtsp://192.0.2.7/stream'}}}}]
        alarms:
          inputs: [{{id: door, pin: 17}}]
          temperature: {{thermal_zones: false}}
        rules: [{{when: {{alarm_input: door}}, do: [{{play: {{file: '{siren}', channel: 3}}}}]}}]
        """))
    assert config.rules[0].do[0].play.channel == 3 and config.audio_out.device is None
