"""The PTZ part of the config: ptz.ports[] and channels[].ptz, with problems named by key path and line."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from appliance.config.model import ConfigError, Problem, parse_config

VALID = """\
channels:
  - id: 1
    source: {type: test-pattern}
    ptz:
      port: rs485
      address: 3
      tours:
        - name: patrol
          steps: [{preset: 1, dwell_s: 5}, {preset: 2}]
  - id: 2
    source: {type: test-pattern}
ptz:
  ports:
    - id: rs485
      url: /dev/ttyUSB0
    - id: lobby
      url: socket://192.168.1.50:4001
      protocol: pelco-p
      rs485: false
"""


def problems(text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(text), source="nvr.yaml")
    return caught.value.problems


def test_a_ptz_config_loads_with_defaults_per_protocol():
    config = parse_config(VALID)
    d, p = config.ptz.ports
    assert (d.protocol, d.baud, d.rs485, d.query_timeout_s) == ("pelco-d", 2400, False, 0.5)
    assert (p.protocol, p.baud) == ("pelco-p", 4800)
    ptz = config.channels[0].ptz
    assert (ptz.port, ptz.address, [step.dwell_s for step in ptz.tours[0].steps]) == ("rs485", 3, [5, 10])
    assert config.channels[1].ptz is None


def test_a_channel_naming_an_unknown_port_is_rejected_with_its_key_path_and_line():
    assert problems(VALID.replace("port: rs485", "port: rs458")) == [
        Problem("channels[0].ptz.port", 5, "unknown PTZ port 'rs458'; configured ports: 'rs485', 'lobby'")]


def test_a_ptz_channel_without_any_port_says_where_to_add_one():
    [problem] = problems("channels:\n  - id: 1\n    source: {type: test-pattern}\n    ptz: {port: bus}\n")
    assert problem.path == "channels[0].ptz.port" and "none (add it under ptz.ports)" in problem.message


@pytest.mark.parametrize(("old", "new", "path", "message"), [
    ("address: 3", "address: 256", "channels[0].ptz.address", "expected an integer from 0 to 255, got 256"),
    ("url: /dev/ttyUSB0", "url: COM3", "ptz.ports[0].url", "expected a device path (/dev/ttyUSB0), loop://"),
    ("url: socket://192.168.1.50:4001", "url: socket://192.168.1.50", "ptz.ports[1].url", "socket://HOST:PORT"),
    ("protocol: pelco-p", "protocol: visca", "ptz.ports[1].protocol", "expected one of pelco-d, pelco-p"),
    ("rs485: false", "baud: 19200", "ptz.ports[1].baud", "expected one of 2400, 4800, 9600 (or null), got 19200"),
    ("- id: lobby", "- id: rs485", "ptz.ports", "port ids must be unique; repeated: 'rs485'"),
    ("{preset: 2}", "{preset: 0}", "channels[0].ptz.tours[0].steps[1].preset", "expected an integer from 1 to 255"),
    ("dwell_s: 5", "dwell_s: 0.5", "channels[0].ptz.tours[0].steps[0].dwell_s", "expected a number from 1 to 86400"),
    ("address: 3", "adress: 3", "channels[0].ptz.adress", "unknown key; allowed keys here: port, address, tours"),
])
def test_ptz_mistakes_name_the_key_and_what_was_expected(old, new, path, message):
    assert old in VALID
    [problem] = problems(VALID.replace(old, new))
    assert problem.path == path and message in problem.message


def test_repeated_tour_names_are_refused():
    text = VALID.replace("          steps: [{preset: 1, dwell_s: 5}, {preset: 2}]\n",
                         "          steps: [{preset: 1}]\n        - name: patrol\n          steps: [{preset: 2}]\n")
    [problem] = problems(text)
    assert (problem.path, problem.message) == ("channels[0].ptz.tours", "tour names must be unique; repeated: 'patrol'")


def test_the_default_yaml_ptz_example_is_valid_once_uncommented():
    template = (Path(__file__).parents[2] / "appliance" / "default.yaml").read_text()
    block = template[template.index("# ptz:\n"):template.index("\n# A channel filmed by a dome")]
    ptz = yaml.safe_load("\n".join(line[2:] for line in block.splitlines()))
    config = parse_config(yaml.safe_dump({**ptz, "channels": [{"id": 1, "source": {"type": "test-pattern"},
                                                                "ptz": {"port": "rs485", "address": 1}}]}))
    assert config.ptz.ports[0].url == "/dev/ttyUSB0"
