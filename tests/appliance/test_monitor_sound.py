"""The HDMI monitor's sound: the full-screen channel's AAC from its live tap, decoded and played on the
configured speaker (here the simulated one: no sound card on this machine), none on the wall, none
unless configured."""
from __future__ import annotations

import numpy as np

from base.clock import SimulatedClocks
from hal.audio_out import SimulatedAudioPlayback
from hal.display.offscreen import OffscreenDisplay
from recorder.live import LiveHub
from support.recording import pattern_with_audio
from support.waiting import wait_for

from appliance.config.monitor import MonitorConfig
from appliance.monitor.monitor import ChannelInfo, Monitor
from appliance.monitor.sound import PLAY_RATE
from appliance.monitor.wall import Wall

CHANNELS = [ChannelInfo(1, "Door", raw=True), ChannelInfo(2, "Yard", raw=True)]


def make_monitor(hub: LiveHub, speaker, **config) -> Monitor:
    monitor = Monitor(MonitorConfig(backend="offscreen", **config), channels=CHANNELS, live=hub,
                      clocks=SimulatedClocks(), open_display=lambda: None, speaker=speaker)
    monitor.display = OffscreenDisplay(width=320, height=240)
    return monitor


def publish_beeping_camera(hub: LiveHub, channel: int, seconds: float) -> None:
    """A simulated camera on `channel` whose microphone beeps in the first 50 ms of every second."""
    clocks = SimulatedClocks()
    source = pattern_with_audio(clocks)
    live = hub.stream(channel, "main")
    live.publish_run(source.open())
    end_us = clocks.monotonic_us() + round(seconds * 1e6)
    for packet in source.packets():
        live.publish(packet)
        if clocks.monotonic_us() >= end_us:
            break
    source.close()


def test_the_full_screen_channel_is_heard_and_the_wall_is_silent():
    hub, speaker = LiveHub(), SimulatedAudioPlayback()
    monitor = make_monitor(hub, lambda: speaker)
    monitor._compose(Wall(320, 240))
    assert monitor.statistics()["sound"] is None and speaker.opens == 0  # the wall: no sound
    monitor.full_screen(1)
    monitor._compose(Wall(320, 240))
    wait_for(lambda: speaker.is_open and hub.stream(1, "main").subscribers > 0, what="the sound feed to listen")
    publish_beeping_camera(hub, 1, 3.2)
    wait_for(lambda: len(speaker.played()) > 2.5 * PLAY_RATE, what="2.5 s of sound played",
             details=lambda: (len(speaker.played()), monitor.statistics()["sound"]))
    pcm = speaker.played().astype(np.float64) / 32768
    assert (speaker.sample_rate, speaker.channels, pcm.shape[1]) == (PLAY_RATE, 2, 2)
    window = PLAY_RATE // 100
    levels = np.sqrt((pcm[: len(pcm) // window * window, 0].reshape(-1, window) ** 2).mean(axis=1))
    loud = levels > 0.1
    assert 2 <= np.count_nonzero(loud[1:] & ~loud[:-1]) <= 4  # a beep a second, silence between
    assert monitor.statistics()["sound"]["errors"] == 0
    monitor.full_screen(None)
    monitor._compose(Wall(320, 240))
    assert not speaker.is_open and monitor.statistics()["sound"] is None
    monitor.stop()


def test_switching_the_full_screen_channel_switches_the_sound_and_losing_the_screen_stops_it():
    hub, speakers = LiveHub(), []

    def speaker():
        speakers.append(SimulatedAudioPlayback())
        return speakers[-1]
    monitor = make_monitor(hub, speaker)
    monitor.full_screen(1)
    monitor._compose(Wall(320, 240))
    wait_for(lambda: hub.stream(1, "main").subscribers > 0, what="channel 1's sound feed")
    monitor.full_screen(2)
    monitor._compose(Wall(320, 240))
    wait_for(lambda: hub.stream(2, "main").subscribers > 0 and hub.stream(1, "main").subscribers == 0,
             what="the sound to follow the full-screen channel")
    assert monitor.statistics()["sound"]["channel"] == 2 and not speakers[0].is_open
    monitor._close_feeds()  # what the monitor does when its screen goes away
    assert not speakers[-1].is_open and hub.stream(2, "main").subscribers == 0
    monitor.stop()


def test_no_speaker_configured_means_no_sound():
    hub = LiveHub()
    monitor = Monitor(MonitorConfig(backend="offscreen"), channels=CHANNELS, live=hub, clocks=SimulatedClocks(),
                      open_display=lambda: None)
    monitor.display = OffscreenDisplay(width=320, height=240)
    monitor.full_screen(1)
    monitor._compose(Wall(320, 240))
    assert monitor.statistics()["sound"] is None and hub.stream(1, "main").subscribers == 0
    monitor.stop()


def test_a_playback_device_that_is_not_there_is_an_error_that_says_what_to_check():
    import pytest

    from hal.audio_out import AlsaAudioPlayback, AudioPlaybackError

    with pytest.raises(AudioPlaybackError, match=r"cannot open ALSA playback device 'hw:9,0'.*aplay -L"):
        AlsaAudioPlayback("hw:9,0").open(sample_rate=PLAY_RATE, channels=2)
