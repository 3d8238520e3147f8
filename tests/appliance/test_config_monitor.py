"""The monitor: section of the config: defaults, and mistakes reported with their YAML path and line."""
from __future__ import annotations

import pytest

from appliance.config.model import ConfigError, default_config, parse_config


def test_the_monitor_is_off_by_default_and_the_embedded_default_documents_it():
    monitor = default_config().monitor
    assert not monitor.enabled and monitor.backend == "auto" and monitor.layout == 4
    assert monitor.size is None and monitor.pin_hash is None and not monitor.alarm_popup.enabled


def test_a_full_monitor_section_loads():
    config = parse_config(
        "monitor:\n"
        "  enabled: true\n  backend: x11\n  resolution: 1920x1080\n  refresh_hz: 50\n  layout: 8\n"
        "  tiles: [3, null, 1]\n"
        "  sequence: {enabled: true, dwell_s: 5, steps: [{layout: 1, tiles: [2]}, {layout: 16}]}\n"
        "  alarm_popup: {enabled: true, kinds: [alarm_input], duration_s: 20}\n")
    monitor = config.monitor
    assert monitor.size == (1920, 1080) and monitor.layout == 8 and monitor.tiles == [3, None, 1]
    assert [step.layout for step in monitor.sequence.steps] == [1, 16]
    assert monitor.alarm_popup.kinds == ["alarm_input"]


@pytest.mark.parametrize("yaml_text, expected", [
    ("monitor:\n  layout: 6\n", "<embedded>:2: monitor.layout: expected one of 1, 4, 8, 9, 16, got 6"),
    ("monitor:\n  backend: wayland\n", "monitor.backend: expected one of auto, drm, kmsdrm, fbdev, x11, offscreen"),
    ("monitor:\n  resolution: 1080p\n", "monitor.resolution: expected WIDTHxHEIGHT such as '1920x1080'"),
    ("monitor:\n  resolution: 20x20\n", "expected each side from 64 to 8192 pixels"),
    ("monitor:\n  tiles: [1, 300]\n", "monitor.tiles: expected channel numbers from 1 to 256"),
    ("monitor:\n  pin_hash: '1234'\n", "monitor.pin_hash: expected a hash made by `nvr hash-pin`"),
    ("monitor:\n  sequence:\n    dwell_s: 1\n", "<embedded>:3: monitor.sequence.dwell_s:"),
    ("monitor:\n  popup: true\n", "monitor.popup: unknown key"),
    ("monitor:\n  audio_out: /dev/snd/pcmC0D0p\n", "<embedded>:2: monitor.audio_out: '/dev/snd/pcmC0D0p' is no ALSA"),
])
def test_mistakes_name_the_key_path_and_line(yaml_text, expected):
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml_text)
    assert expected in str(caught.value)


def test_nvr_hash_pin_prints_a_config_line_that_loads_and_verifies():
    import subprocess

    from appliance.monitor.lock import verify_pin
    from support.nvr_process import nvr_command

    command = nvr_command()
    result = subprocess.run([*command, "hash-pin"], input="4711\n", capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    config = parse_config("monitor:\n  " + result.stdout)
    assert verify_pin("4711", config.monitor.pin_hash) and not verify_pin("4712", config.monitor.pin_hash)
    bad = subprocess.run([*command, "hash-pin"], input="12\n", capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "4 to 12 digits" in bad.stderr


@pytest.mark.parametrize("device", ["hdmi:CARD=vc4hdmi0,DEV=0", "plughw:1,0", "hw:Loopback,0", "default",
                                    "sysdefault:CARD=Device", "simulated"])
def test_the_monitor_sound_is_off_by_default_and_takes_alsa_playback_names(device):
    assert default_config().monitor.audio_out is None
    assert parse_config(f"monitor:\n  audio_out: '{device}'\n").monitor.audio_out == device
