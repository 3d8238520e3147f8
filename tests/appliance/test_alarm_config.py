"""Alarm, motion and rule config: valid files load; dangling references are rejected with key path and line."""
from __future__ import annotations

import textwrap

import pytest

from appliance.config.model import ConfigError, parse_config

BASE = """
storage: {path: /tmp/nvr-test}
channels:
  - id: 1
    source: {type: test-pattern}
    motion:
      sensitivity: 70
      zones: [{name: door, points: [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]}]
      masks: [{points: [[0, 0.9], [1, 0.9], [1, 1]]}]
  - {id: 2, source: {type: test-pattern}, ptz: {port: bus, address: 2}}
ptz: {ports: [{id: bus, url: "loop://"}]}
alarms:
  inputs:
    - {id: door, name: Front door, pin: 17, contact: NC, debounce_ms: 30,
       schedule: [{days: [mon, tue], start: "22:00", end: "06:00"}]}
    - {id: window, pin: GPIO27}
  outputs:
    - {id: siren, pin: 22, mode: pulse, pulse_s: 3}
    - {id: strobe, pin: "gpiochip0:23", active_high: false, mode: latch}
"""


def load(rules_yaml: str, base: str = BASE):
    return parse_config(textwrap.dedent(base) + textwrap.dedent(rules_yaml), source="nvr.yaml")


def problems(rules_yaml: str, base: str = BASE) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(rules_yaml, base)
    return str(caught.value).splitlines()


def test_a_complete_alarm_config_loads_with_every_action_kind():
    config = load("""
        rules:
          - name: door opened
            when: {alarm_input: door}
            do:
              - output: {id: siren, for_s: 10}
              - record: {channels: [1, 2], pre_s: 5, post_s: 20}
              - ptz_preset: {channel: 2, preset: 3}
              - webhook: {url: "http://127.0.0.1:9000/hook", body: {text: "{rule} at {at}"}}
              - log: Door opened
          - {when: {motion: 1}, do: [{record: {channels: [1]}}]}
          - {when: {video_loss: 2}, do: [{output: {id: strobe}}]}
          - {when: {disk: full}, do: [{log: disk full}]}
          - {when: {temperature: out_of_range}, do: [{log: too hot}]}
        """)
    assert [rule.when.signal for rule in config.rules] == [
        ("alarm_input", "door"), ("motion", "1"), ("video_loss", "2"), ("disk", "full"), ("temperature", "out_of_range")]
    assert config.alarms.inputs[0].schedule[0].days == ["mon", "tue"]
    assert config.channels[0].motion.zones[0].points[1] == [0.5, 0]


def test_rules_naming_unknown_inputs_outputs_and_channels_are_rejected_with_key_path_and_line():
    found = problems("""
        rules:
          - when: {alarm_input: dor}
            do:
              - record: {channels: [1, 9]}
              - output: {id: sirne}
              - ptz_preset: {channel: 7, preset: 1}
          - when: {motion: 2}
            do: [{log: x}]
          - when: {video_loss: 5}
            do: [{log: x}]
        """)
    assert found == [
        "nvr.yaml:22: rules[0].when.alarm_input: unknown alarm input 'dor'; alarms.inputs defines: door, window",
        "nvr.yaml:24: rules[0].do[0].record.channels[1]: unknown channel 9; channels defines: 1, 2",
        "nvr.yaml:25: rules[0].do[1].output.id: unknown alarm output 'sirne'; alarms.outputs defines: siren, strobe",
        "nvr.yaml:26: rules[0].do[2].ptz_preset.channel: unknown channel 7; channels defines: 1, 2",
        "nvr.yaml:27: rules[1].when.motion: channel 2 has no motion detection; add a `motion:` section to that channel "
        "(or an `onvif:` endpoint to its source for the camera's own motion)",
        "nvr.yaml:29: rules[2].when.video_loss: unknown channel 5; channels defines: 1, 2",
    ]


def test_a_preset_call_on_a_channel_without_a_dome_is_rejected():
    found = problems("""
        rules:
          - when: {alarm_input: door}
            do: [{ptz_preset: {channel: 1, preset: 1}}]
        """)
    assert found == ["nvr.yaml:23: rules[0].do[0].ptz_preset.channel: channel 1 has no PTZ dome; "
                     "add a `ptz:` section (port and address) to that channel, or an `onvif:` endpoint to its "
                     "source for an ONVIF PTZ camera"]


def test_a_rule_needs_exactly_one_signal_and_each_action_exactly_one_kind():
    found = problems("""
        rules:
          - when: {alarm_input: door, motion: 1}
            do: [{log: x, output: {id: siren}}]
        """)
    assert found[0].startswith("nvr.yaml:22: rules[0].when: expected exactly one of alarm_input, motion")
    assert found[1].startswith("nvr.yaml:23: rules[0].do[0]: expected exactly one action of record, output")


def test_duplicate_ids_and_shared_pins_are_rejected():
    base = BASE + """
    - {id: siren, pin: 17}
"""
    found = problems("", base)
    assert "alarms.outputs[2].id: duplicate alarm output id 'siren'; already used by alarms.outputs[0]" in found[0]
    assert "alarms.outputs[2].pin: pin 17 is already used by alarms.inputs[0]" in found[1]


def test_bad_values_name_what_was_expected():
    base = BASE.replace('start: "22:00"', 'start: "25:00"').replace("contact: NC", "contact: NX")
    found = problems("rules: [{when: {disk: gone}, do: [{webhook: {url: ftp://x}}]}]\n", base)
    text = "\n".join(found)
    assert "alarms.inputs[0].contact: expected one of NO, NC, got 'NX'" in text
    assert "alarms.inputs[0].schedule[0].start: expected a time of day as HH:MM" in text
    assert "rules[0].when.disk: expected one of full, error, missing, failing, hot, errors (or null), got 'gone'" in text
    assert "rules[0].do[0].webhook.url: expected an http:// or https:// URL with a host, got 'ftp://x'" in text


def test_an_unquoted_contact_no_is_taken_as_normally_open_not_as_yaml_false():
    config = load("", BASE.replace("{id: window, pin: GPIO27}", "{id: window, pin: GPIO27, contact: NO}"))
    assert config.alarms.inputs[1].contact == "NO"


def test_the_default_yaml_alarm_and_rule_examples_are_valid_once_uncommented(tmp_path):
    from pathlib import Path

    from support.tones import write_tone
    template = (Path(__file__).parents[2] / "appliance" / "default.yaml").read_text()
    for name in ("siren.wav", "warning.mp3"):  # the sounds its `play` examples name, made here
        made = write_tone(tmp_path / name, freq_hz=800, seconds=0.2, rate=44100,
                          codec="libmp3lame" if name.endswith(".mp3") else "pcm_s16le")
        template = template.replace(f"/etc/nvr/sounds/{name}", str(made))
    example = template[template.index("# Alarm inputs and outputs"):]
    lines = [line[2:] for line in example.splitlines()
             if line.startswith("# ") and line[2:].startswith(("alarms:", "rules:", " "))]
    channels = ("channels:\n  - {id: 1, source: {type: test-pattern}}\n"
                "  - {id: 2, source: {type: test-pattern}, ptz: {port: bus, address: 1}}\n"
                "ptz: {ports: [{id: bus, url: 'loop://'}]}\naudio_out: {device: simulated}\n")
    config = parse_config(channels + "\n".join(lines))
    assert [i.id for i in config.alarms.inputs] == ["door"] and config.rules[0].when.alarm_input == "door"
    assert [next(iter(action.model_fields_set)) for action in config.rules[0].do] == [
        "output", "record", "ptz_preset", "webhook", "log", "play", "play"]
