"""Hostile config documents: alias bombs, deep nesting, huge numbers, NUL characters and oversized files
are refused with the key path and line, `nvr check-config` exits 2 without a traceback, and anchors
used the ordinary way still work."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.config.model import ConfigError, ConfigTooLarge, parse_config
from appliance.config.yaml_lines import MAX_DEPTH, MAX_NUMBER_CHARS, MAX_VALUES, MAX_YAML_CHARS


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A "billion laughs" document: `width`**`levels` strings from a few hundred bytes."""
    lines = ["a: &a [" + ",".join(['"lol"'] * width) + "]"]
    for level in range(1, levels):
        name, prev = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * width) + "]")
    return "\n".join(lines) + "\n"


BOMB = alias_bomb(levels=12, width=9)  # 9**12 = 2.8e11 values, from about 450 bytes

HOSTILE = {
    "alias-bomb": (BOMB, "expand this value to more than"),
    "5000-digit-integer": ("storage:\n  segment_seconds: " + "1" * 5000 + "\n", "storage.segment_seconds"),
    "deep-list": ("storage: " + "[" * 50_000 + "\n", f"more than {MAX_DEPTH} levels"),
    "deep-mapping": ("storage: " + "{a: " * 3000 + "\n", f"more than {MAX_DEPTH} levels"),
    "nul-in-path": ('storage:\n  path: "./d\\0x"\n', "storage.path: contains a NUL"),
}


def run_check_config(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    config = tmp_path / "nvr.yaml"
    config.write_text(text)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "appliance.cli", "check-config", str(config)], capture_output=True,
                          text=True, timeout=10, env=env)  # the acceptance bound: refused within 10 s


def test_the_bomb_is_about_460_bytes_and_would_expand_to_billions():
    assert 400 <= len(BOMB.encode()) <= 460


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_check_config_refuses_hostile_documents_with_exit_2_and_no_traceback(tmp_path, name):
    text, says = HOSTILE[name]
    result = run_check_config(tmp_path, text)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    assert says in result.stderr and "nvr.yaml:" in result.stderr, result.stderr


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_documents_are_one_problem_with_its_line(name):
    text, says = HOSTILE[name]
    with pytest.raises(ConfigTooLarge) as caught:
        parse_config(text, source="nvr.yaml")
    (problem,) = caught.value.problems
    assert problem.line is not None and says in problem.format("nvr.yaml")


def test_a_huge_number_as_a_key_is_refused_with_its_parent_path():
    with pytest.raises(ConfigTooLarge) as caught:
        parse_config("storage:\n  ? " + "9" * 5000 + "\n  : 1\n", source="nvr.yaml")
    problem = caught.value.problems[0]
    assert problem.path.startswith("storage.") and problem.line == 2


def test_numbers_up_to_the_limit_are_read_and_checked_as_usual():
    with pytest.raises(ConfigError) as caught:
        parse_config("storage:\n  segment_seconds: " + "9" * MAX_NUMBER_CHARS + "\n", source="nvr.yaml")
    assert not isinstance(caught.value, ConfigTooLarge)
    assert "expected an integer from 2 to 600" in str(caught.value)


def test_an_alias_that_contains_itself_is_refused():
    with pytest.raises(ConfigTooLarge, match="contains it"):
        parse_config("storage: &s\n  retention: *s\n", source="nvr.yaml")


def test_a_document_over_the_size_limit_is_refused_before_parsing():
    with pytest.raises(ConfigTooLarge, match="characters"):
        parse_config("#" * (MAX_YAML_CHARS + 1), source="nvr.yaml")


def test_a_file_over_the_size_limit_exits_2(tmp_path):
    result = run_check_config(tmp_path, "# padding\n" * (MAX_YAML_CHARS // 2))
    assert result.returncode == 2 and "larger than" in result.stderr and "Traceback" not in result.stderr


def test_anchors_shared_by_many_channels_stay_within_the_limits():
    channel = "  - id: {i}\n    source: *cam\n    audio: *audio\n"
    text = ("cam: &cam {type: rtsp, url: 'rtsp://cam', timeout_s: 3}\naudio: &audio {enabled: false}\n"
            "channels:\n" + "".join(channel.format(i=i) for i in range(1, 257)))
    with pytest.raises(ConfigError) as caught:  # the extra top-level keys are unknown; the rest is checked
        parse_config(text, source="nvr.yaml")
    assert not isinstance(caught.value, ConfigTooLarge)
    assert {p.path for p in caught.value.problems} == {"cam", "audio"}
    assert 256 * 12 < MAX_VALUES


def test_web_allowed_hosts_takes_names_and_addresses_without_ports():
    config = parse_config("web:\n  allowed_hosts: [nvr.example.com, 203.0.113.7, '[2001:db8::1]']\n", source="nvr.yaml")
    assert config.web.allowed_hosts == ["nvr.example.com", "203.0.113.7", "[2001:db8::1]"]
    with pytest.raises(ConfigError, match="web.allowed_hosts") as caught:
        parse_config("web:\n  allowed_hosts: ['http://nvr.example.com:8080']\n", source="nvr.yaml")
    assert "without a port or scheme" in str(caught.value)
