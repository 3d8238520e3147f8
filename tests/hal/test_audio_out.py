"""The playback seam's ALSA backend against the real alsa-lib (its `null` PCM: this machine has no sound
card; the vivid VM's snd-aloop card is played by tests/appliance/test_alarm_sounds.py)."""
from __future__ import annotations

import numpy as np
import pytest

from hal.alsa_pcm import AlsaPcmError, PcmPlayback, libasound
from hal.audio_out import CARD_BUFFER_S, AlsaAudioPlayback, AudioPlaybackError
from support.waiting import wait_for


def test_alsa_lib_plays_writes_drops_and_drains_a_pcm():
    pcm = PcmPlayback("null", sample_rate=48000, channels=2, latency_us=round(CARD_BUFFER_S * 1e6))
    try:
        pcm.write(np.zeros((4800, 2), np.int16))
        pcm.drop()
        pcm.write(np.zeros((480, 2), np.int16))
        pcm.drain()
        assert pcm.delay_frames() >= 0
    finally:
        pcm.close()
    pcm.close()  # twice is harmless


def test_the_playback_thread_plays_what_is_queued_flushes_and_can_be_opened_again():
    speaker = AlsaAudioPlayback("null")
    for _ in range(2):
        speaker.open(sample_rate=48000, channels=2)
        speaker.write(np.zeros((960, 2), np.int16))
        speaker.flush()
        speaker.write(np.zeros((960, 2), np.int16))
        speaker.close()
    stats = speaker.statistics()
    assert stats["error"] is None and stats["frames_played"] + stats["frames_flushed"] == 4 * 960
    assert stats["frames_dropped"] == 0


def test_a_device_that_is_not_there_is_a_clear_error():
    with pytest.raises(AudioPlaybackError, match=r"cannot open ALSA playback device 'hw:9,0'.*aplay -L"):
        AlsaAudioPlayback("hw:9,0").open(sample_rate=48000, channels=2)
    with pytest.raises(AlsaPcmError, match="No such file") as caught:
        PcmPlayback("hw:9,0", sample_rate=48000, channels=2, latency_us=100_000)
    assert isinstance(caught.value, OSError) and caught.value.errno == 2  # ENOENT, as alsa-lib said
    assert libasound() is libasound()  # loaded once


def test_without_debians_alsa_lib_the_copy_in_pyavs_wheel_plays():
    """The image may carry no libasound2: PyAV's bundled alsa-lib is loaded instead (own process: the
    library is loaded once per process)."""
    import subprocess
    import sys

    script = ("import ctypes.util, numpy as np\n"
              "ctypes.util.find_library = lambda name: None\n"
              "import hal.alsa_pcm as a\n"
              "print(a._find_library())\n"
              "p = a.PcmPlayback('null', sample_rate=48000, channels=2, latency_us=120000)\n"
              "p.write(np.zeros((4800, 2), np.int16)); p.drain(); p.close()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "av.libs/libasound" in done.stdout


@pytest.mark.parametrize("library", ["debian", "pyav-wheel"])
def test_preparing_a_device_loads_alsa_lib_and_its_configuration_so_the_first_open_does_not(library):
    """prepare_playback (the rule players call it at start) finds and loads alsa-lib and parses its
    configuration; the first open then searches for nothing (ldconfig is a subprocess: ~0.6 s on the
    image's emulated CPU). Own process: the library is loaded once per process."""
    import subprocess
    import sys

    script = ("import ctypes.util, numpy as np\n"
              + ("ctypes.util.find_library = lambda name: None\n" if library == "pyav-wheel" else "")
              + "import hal.alsa_pcm as a, hal.audio_out as o\n"
              "o.prepare_playback('simulated')\n"
              "assert a._lib is None, 'the simulated speaker needs no alsa-lib'\n"
              "o.prepare_playback('null')\n"
              "assert a._lib is not None\n"
              "def searched(name): raise AssertionError('searched for alsa-lib again')\n"
              "ctypes.util.find_library = searched\n"
              "p = a.PcmPlayback('null', sample_rate=48000, channels=2, latency_us=120000)\n"
              "p.write(np.zeros((480, 2), np.int16)); p.drain(); p.close()\n"
              "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_a_device_that_cannot_be_prepared_is_logged_and_left_for_its_open_to_report(monkeypatch, caplog):
    import hal.alsa_pcm
    from hal.audio_out import prepare_playback

    def no_library():
        raise AlsaPcmError(2, "no alsa-lib on this system: install libasound2")

    monkeypatch.setattr(hal.alsa_pcm, "warm_up", no_library)
    prepare_playback("hw:Loopback,0,1")
    assert "cannot prepare ALSA playback for hw:Loopback,0,1: no alsa-lib" in caplog.text
