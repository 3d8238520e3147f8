"""Tests for the YAML config: valid files, defaults, and every problem reported with path and line."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from appliance.config.listen import split_host_port
from appliance.config.model import (ChannelConfig, Config, ConfigError, Problem, RtspSource, V4l2Source,
                              default_config, load_config, parse_config, parse_size_bytes)
from appliance.config.model import TestPatternSource as PatternSource  # a Test* name would be collected

FULL = """\
storage:
  path: /srv/nvr
  segment_seconds: 30
  retention:
    max_used_percent: 85.5
    min_free_bytes: 2GiB
    locked_floor_bytes: 100 MB
    max_age_days: 30
    interval_s: 5
channels:
  - id: 1
    name: Yard
    source:
      type: test-pattern
      width: 1280
      height: 720
      fps: 30
      pattern: ball
      bitrate: 2000000
      keyframe_interval_s: 1
  - id: 7
    enabled: false
    source:
      type: rtsp
      url: rtsp://admin:p@ss@192.168.1.64:554/Streaming/Channels/101
      sub_url: rtsps://cam.local/sub
      timeout_s: 5
      reconnect_max_s: 60
web:
  listen: 0.0.0.0:80
"""


def parse(text: str, **kwargs) -> Config:
    return parse_config(textwrap.dedent(text), source="nvr.yaml", **kwargs)


def problems_of(text: str) -> list[Problem]:
    """The problems parse_config reports for `text` (which must be invalid)."""
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return caught.value.problems


def only_problem(text: str) -> Problem:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


def with_source(source_yaml: str) -> str:
    """A config with one channel whose `source:` mapping is `source_yaml` (unindented)."""
    return "channels:\n  - id: 1\n    source:\n" + textwrap.indent(textwrap.dedent(source_yaml), "      ")


# --- valid configs ----------------------------------------------------------------------------

def test_a_full_config_sets_every_value():
    config = parse(FULL)

    assert config.storage.path == Path("/srv/nvr")
    assert config.storage.segment_seconds == 30
    retention = config.storage.retention
    assert (retention.max_used_percent, retention.min_free_bytes, retention.locked_floor_bytes) == (
        85.5, 2 * 1024**3, 100_000_000)
    assert (retention.max_age_days, retention.interval_s) == (30.0, 5.0)
    yard, door = config.channels
    assert yard.source == PatternSource(width=1280, height=720, fps=30, pattern="ball",
                                            bitrate=2_000_000, keyframe_interval_s=1)
    assert (yard.id, yard.name, yard.enabled) == (1, "Yard", True)
    assert (door.id, door.name, door.enabled) == (7, "Channel 7", False)
    assert isinstance(door.source, RtspSource)
    assert door.source.url == "rtsp://admin:p@ss@192.168.1.64:554/Streaming/Channels/101"
    assert (door.source.sub_url, door.source.timeout_s, door.source.reconnect_max_s) == (
        "rtsps://cam.local/sub", 5.0, 60.0)
    assert (config.web.host, config.web.port) == ("0.0.0.0", 80)
    assert config.source_name == "nvr.yaml"


def test_omitted_settings_take_their_defaults(tmp_path):
    config = parse("channels: []\n", base_dir=tmp_path)

    assert config.storage.path == tmp_path / "nvr-data"
    assert config.storage.segment_seconds == 60
    retention = config.storage.retention
    assert (retention.max_used_percent, retention.min_free_bytes, retention.locked_floor_bytes) == (
        90.0, 1024**3, 64 * 1024**2)
    assert (retention.max_age_days, retention.interval_s) == (None, 10.0)
    assert config.channels == []
    assert (config.web.host, config.web.port) == ("127.0.0.1", 8080)


def test_source_settings_take_their_defaults():
    config = parse(with_source("type: test-pattern\n") + "  - id: 2\n    source: {type: rtsp, url: 'rtsp://cam'}\n")

    assert config.channels[0].source == PatternSource(
        width=720, height=576, fps=25.0, pattern="auto", bitrate=1_500_000, keyframe_interval_s=2.0)
    assert config.channels[1].source == RtspSource(url="rtsp://cam", sub_url=None, timeout_s=10.0,
                                                   reconnect_max_s=30.0)


def test_default_config_is_one_test_pattern_channel_recording_under_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    config = default_config()

    assert config.storage.path == tmp_path / "nvr-data"
    [channel] = config.channels
    assert (channel.id, channel.name, channel.enabled) == (1, "Test pattern", True)
    assert channel.source == PatternSource(width=720, height=576, fps=25, pattern="auto")
    assert config.web.listen == "127.0.0.1:8080"


def test_default_yaml_copied_as_a_template_loads_like_the_default(tmp_path):
    template = Path(__file__).parents[2] / "appliance" / "default.yaml"
    copy = tmp_path / "nvr.yaml"
    copy.write_text(template.read_text())

    config = load_config(copy)

    assert config.storage.path == tmp_path / "nvr-data"
    assert config.channels == default_config().channels


def uncomment_example(template: str, first_line: str) -> str:
    """`template` with the commented-out channel that starts at `first_line` (up to a blank line) uncommented."""
    start = template.index(first_line)
    end = template.find("\n\n", start)
    block = template[start:end].replace("  # - ", "  - ").replace("  #   ", "    ")
    return template[:start] + block + template[end:]


def test_default_yaml_example_rtsp_channel_is_valid_once_uncommented():
    template = (Path(__file__).parents[2] / "appliance" / "default.yaml").read_text()
    uncommented = uncomment_example(template, "  # - id: 2")

    config = parse_config(uncommented)

    assert [channel.id for channel in config.channels] == [1, 2]
    assert config.channels[1].source.sub_url.endswith("/102")


def test_default_yaml_example_v4l2_channel_is_valid_once_uncommented():
    template = (Path(__file__).parents[2] / "appliance" / "default.yaml").read_text()

    config = parse_config(uncomment_example(template, "  # - id: 3"))

    assert [channel.source.type for channel in config.channels] == ["test-pattern", "v4l2"]
    assert config.channels[1].source.device.startswith("/dev/v4l/by-path/")
    assert config.channels[1].source.video_loss_s == 2


def test_channel_names_need_not_be_unique():
    config = parse("""\
        channels:
          - {id: 1, name: Gate, source: {type: test-pattern}}
          - {id: 2, name: Gate, source: {type: test-pattern}}
        """)

    assert [channel.name for channel in config.channels] == ["Gate", "Gate"]


def test_yaml_anchors_and_merge_keys_can_share_settings():
    config = parse("""\
        channels:
          - id: 1
            source: &camera {type: rtsp, url: 'rtsp://cam1', timeout_s: 3}
          - id: 2
            source:
              <<: *camera
              url: rtsp://cam2
        """)

    assert [(c.source.url, c.source.timeout_s) for c in config.channels] == [("rtsp://cam1", 3), ("rtsp://cam2", 3)]


def test_every_model_forbids_unknown_keys_and_describes_every_field():
    models = [Config, ChannelConfig, RtspSource, PatternSource] + [
        Config.model_fields[name].annotation for name in ("storage", "web")]
    models.append(models[-2].model_fields["retention"].annotation)

    for model in models:
        assert issubclass(model, BaseModel) and model.model_config["extra"] == "forbid", model
        undocumented = [name for name, field in model.model_fields.items() if not field.description]
        assert undocumented == [], model


def test_config_built_in_python_also_rejects_duplicate_channel_ids():
    with pytest.raises(ValidationError) as caught:
        Config(channels=[ChannelConfig(id=3, source=PatternSource()),
                         ChannelConfig(id=3, source=PatternSource())])

    assert [error["loc"] for error in caught.value.errors()] == [("channels", 1, "id")]


def test_config_built_in_python_has_an_absolute_storage_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    assert Config().storage.path == tmp_path / "nvr-data"
    assert Config(storage={"path": "rec"}).storage.path == tmp_path / "rec"


# --- storage.path -----------------------------------------------------------------------------

def test_relative_storage_path_resolves_against_the_config_files_folder(tmp_path, monkeypatch):
    (tmp_path / "etc").mkdir()
    config_file = tmp_path / "etc" / "nvr.yaml"
    config_file.write_text("storage:\n  path: ../data/recordings\n")
    monkeypatch.chdir("/")

    config = load_config(config_file)

    assert config.storage.path == tmp_path / "data" / "recordings"
    assert config.source_name == str(config_file)


def test_relative_config_file_path_still_gives_an_absolute_storage_path(tmp_path, monkeypatch):
    (tmp_path / "nvr.yaml").write_text("storage:\n  path: data\n")
    monkeypatch.chdir(tmp_path)

    assert load_config("nvr.yaml").storage.path == tmp_path / "data"


def test_parsed_text_resolves_storage_path_against_base_dir_or_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    assert parse("storage: {path: rec}\n", base_dir=Path("/opt/nvr")).storage.path == Path("/opt/nvr/rec")
    assert parse("storage: {path: rec}\n").storage.path == tmp_path / "rec"
    assert parse("storage: {path: /mnt/disk1}\n", base_dir=tmp_path).storage.path == Path("/mnt/disk1")


def test_empty_storage_path_is_rejected():
    problem = only_problem("storage:\n  path: ''\n")

    assert (problem.path, problem.line) == ("storage.path", 2)
    assert "''" in problem.message


# --- sizes ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    (0, 0),
    (1073741824, 1024**3),
    ("4096", 4096),
    ("512MiB", 512 * 1024**2),
    ("512mib", 512 * 1024**2),
    ("2G", 2 * 1024**3),
    ("2g", 2 * 1024**3),
    ("2Gi", 2 * 1024**3),
    ("1.5GB", 1_500_000_000),
    ("100 MB", 100_000_000),
    ("64 KiB", 65536),
    ("10kb", 10_000),
    ("1 T", 1024**4),
    ("1TB", 10**12),
    ("3 B", 3),
    (" 1.5 GiB ", 1610612736),
])
def test_size_strings_accept_binary_and_decimal_units_in_any_case(text, expected):
    assert parse_size_bytes(text) == expected


def test_size_strings_work_in_the_config():
    config = parse("storage:\n  retention:\n    min_free_bytes: 10 GB\n    locked_floor_bytes: 1G\n")

    assert config.storage.retention.min_free_bytes == 10 * 10**9
    assert config.storage.retention.locked_floor_bytes == 1024**3


@pytest.mark.parametrize("bad, says", [
    ("lots", "expected a size such as"),
    ("-5MB", "expected a size such as"),
    ("5 furlongs", "unknown size unit 'furlongs'"),
    ("1.2.3G", "expected a size such as"),
    ("", "expected a size such as"),
    (-1, "non-negative"),
    (True, "expected an integer"),
])
def test_bad_size_is_rejected_with_a_clear_message(bad, says):
    problem = only_problem(f"storage:\n  retention:\n    min_free_bytes: {bad!r}\n".replace("True", "true"))

    assert (problem.path, problem.line) == ("storage.retention.min_free_bytes", 3)
    assert says in problem.message
    if isinstance(bad, str):
        assert repr(bad) in problem.message


def test_locked_floor_above_the_free_space_target_is_rejected():
    problem = only_problem("storage:\n  retention:\n    min_free_bytes: 1G\n    locked_floor_bytes: 2G\n")

    assert (problem.path, problem.line) == ("storage.retention.locked_floor_bytes", 4)
    assert "at most min_free_bytes (1073741824), got 2147483648" in problem.message


# --- web.listen -------------------------------------------------------------------------------

@pytest.mark.parametrize("listen, host, port", [
    ("127.0.0.1:8080", "127.0.0.1", 8080),
    ("0.0.0.0:80", "0.0.0.0", 80),
    ("localhost:65535", "localhost", 65535),
    ("nvr-1.example.org:1", "nvr-1.example.org", 1),
    ("[::1]:8080", "::1", 8080),
    ("[::]:80", "::", 80),
    ("[fe80::1%eth0]:8443", "fe80::1%eth0", 8443),
])
def test_web_listen_is_split_into_host_and_port(listen, host, port):
    web = parse(f"web:\n  listen: '{listen}'\n").web

    assert (web.listen, web.host, web.port) == (listen, host, port)
    assert split_host_port(listen) == (host, port)


@pytest.mark.parametrize("listen, says", [
    ("8080", "expected host:port"),
    (":8080", "expected host:port"),
    ("localhost", "expected host:port"),
    ("localhost:0", "expected a port from 1 to 65535"),
    ("localhost:65536", "expected a port from 1 to 65535"),
    ("localhost:80x", "expected a port"),
    ("localhost:-80", "expected a port"),
    ("::1:8080", "IPv6 address in brackets"),
    ("[nonsense]:80", "bracketed IPv6 address"),
    ("999.1.1.1:80", "IPv4 address, a host name"),
    ("-bad-:80", "IPv4 address, a host name"),
    ("two words:80", "IPv4 address, a host name"),
])
def test_bad_web_listen_is_rejected_with_the_value(listen, says):
    problem = only_problem(f"web:\n  listen: '{listen}'\n")

    assert (problem.path, problem.line) == ("web.listen", 2)
    assert says in problem.message and repr(listen) in problem.message


# --- error reporting --------------------------------------------------------------------------

def test_text_where_an_integer_belongs_is_reported_with_path_line_and_value():
    problem = only_problem("""\
        storage:
          path: /srv/nvr
          segment_seconds: "abc"
        """)

    assert problem == Problem("storage.segment_seconds", 3,
                              "expected an integer from 2 to 600, got 'abc'")


def test_a_quoted_number_gets_a_hint_to_remove_the_quotes():
    problem = only_problem("storage:\n  segment_seconds: '60'\n")

    assert "got '60' (text in quotes; remove the quotes)" in problem.message


def test_yes_where_a_number_belongs_gets_a_hint_about_yaml_booleans():
    problem = only_problem("storage:\n  segment_seconds: yes\n")

    assert "got True (YAML reads unquoted yes/no" in problem.message


@pytest.mark.parametrize("yaml_text, path, expected", [
    ("storage: {segment_seconds: 1}", "storage.segment_seconds", "an integer from 2 to 600, got 1"),
    ("storage: {segment_seconds: 601}", "storage.segment_seconds", "an integer from 2 to 600, got 601"),
    ("storage: {segment_seconds: 60.5}", "storage.segment_seconds", "an integer from 2 to 600, got 60.5"),
    ("storage: {retention: {max_used_percent: 0}}", "storage.retention.max_used_percent",
     "a number from 1 to 99, got 0"),
    ("storage: {retention: {max_used_percent: 99.5}}", "storage.retention.max_used_percent",
     "a number from 1 to 99, got 99.5"),
    ("storage: {retention: {max_age_days: 0}}", "storage.retention.max_age_days",
     "a number greater than 0 (or null), got 0"),
    ("storage: {retention: {interval_s: 0.5}}", "storage.retention.interval_s",
     "a number from 1 to 3600, got 0.5"),
    ("channels: [{id: 0, source: {type: test-pattern}}]", "channels[0].id", "an integer from 1 to 256, got 0"),
    ("channels: [{id: 257, source: {type: test-pattern}}]", "channels[0].id", "an integer from 1 to 256, got 257"),
    (f"channels: [{{id: 1, name: {'x' * 65}, source: {{type: test-pattern}}}}]", "channels[0].name",
     f"text of 1 to 64 characters, got '{'x' * 65}'"),
    ("channels: [{id: 1, enabled: 'no', source: {type: test-pattern}}]", "channels[0].enabled",
     "true or false, got 'no' (text in quotes; remove the quotes)"),
    ("channels: [{id: 1, source: {type: test-pattern, width: 721}}]", "channels[0].source.width",
     "an even integer from 16 to 3840, got 721"),
    ("channels: [{id: 1, source: {type: test-pattern, height: 2162}}]", "channels[0].source.height",
     "an even integer from 16 to 2160, got 2162"),
    ("channels: [{id: 1, source: {type: test-pattern, fps: 61}}]", "channels[0].source.fps",
     "a number from 1 to 60, got 61"),
    ("channels: [{id: 1, source: {type: test-pattern, bitrate: 1000}}]", "channels[0].source.bitrate",
     "an integer from 64000 to 20000000, got 1000"),
    ("channels: [{id: 1, source: {type: test-pattern, keyframe_interval_s: 0.1}}]",
     "channels[0].source.keyframe_interval_s", "a number from 0.5 to 10, got 0.1"),
    ("channels: [{id: 1, source: {type: test-pattern, pattern: stripes}}]", "channels[0].source.pattern",
     "one of auto, bars, gradient, checker, ball, zoneplate, got 'stripes'"),
    ("channels: [{id: 1, source: {type: rtsp, url: 'rtsp://c', timeout_s: 121}}]",
     "channels[0].source.timeout_s", "a number from 1 to 120, got 121"),
    ("channels: [{id: 1, source: {type: rtsp, url: 'rtsp://c', reconnect_max_s: 0}}]",
     "channels[0].source.reconnect_max_s", "a number from 1 to 600, got 0"),
])
def test_out_of_range_values_say_what_was_expected(yaml_text, path, expected):
    problem = only_problem(yaml_text + "\n")

    assert (problem.path, problem.line) == (path, 1)
    assert problem.message == f"expected {expected}"


@pytest.mark.parametrize("yaml_text, path, line, allowed", [
    ("colour: red\n", "colour", 1, "storage, channels, web, ptz, monitor, alarms, rules, mqtt, audio_out, line_in, rtsp_server, onvif_server"),
    ("storage:\n  segment_secs: 60\n", "storage.segment_secs", 2, "path, segment_seconds, retention, health, disks, require_mount"),
    ("storage:\n  retention:\n    max_age: 3\n", "storage.retention.max_age", 3,
     "max_used_percent, min_free_bytes, locked_floor_bytes, max_age_days, events_max_age_days, interval_s"),
    ("channels:\n  - id: 1\n    title: Gate\n    source: {type: test-pattern}\n", "channels[0].title", 3,
     "id, name, enabled, source, ptz, audio, talk, retention, storage, motion"),
    (with_source("type: rtsp\nurl: rtsp://cam\nsub: rtsp://cam/2\n"), "channels[0].source.sub", 6,
     "type, url, sub_url, timeout_s, reconnect_max_s, client, onvif"),
    ("web:\n  port: 80\n", "web.port", 2, "listen, state_dir, tls_cert, tls_key, tls_self_signed, allowed_hosts"),
])
def test_unknown_key_is_reported_with_its_path_and_line(yaml_text, path, line, allowed):
    problem = only_problem(yaml_text)

    assert problem == Problem(path, line, f"unknown key; allowed keys here: {allowed}")


def test_a_key_named_like_the_source_type_is_still_an_unknown_key_of_the_source():
    problem = only_problem(with_source("type: rtsp\nurl: rtsp://cam\nrtsp: yes\n"))

    assert (problem.path, problem.line) == ("channels[0].source.rtsp", 6)


@pytest.mark.parametrize("yaml_text, path", [
    ("channels: [{id: 1, source: {type: test-pattern, fps: .inf}}]\n", "channels[0].source.fps"),
    ("storage: {retention: {max_age_days: .nan}}\n", "storage.retention.max_age_days"),
    ("storage: {retention: {min_free_bytes: .inf}}\n", "storage.retention.min_free_bytes"),
    (f"storage: {{retention: {{min_free_bytes: '{'9' * 400} TB'}}}}\n", "storage.retention.min_free_bytes"),
])
def test_infinite_and_not_a_number_values_are_rejected(yaml_text, path):
    assert only_problem(yaml_text).path == path


def test_missing_required_key_points_at_the_parent_mapping():
    problem = only_problem(with_source("type: rtsp\ntimeout_s: 5\n"))

    assert problem == Problem("channels[0].source.url", 3, "required key is missing")


def test_channel_without_id_or_source_is_reported_at_the_list_item():
    problems = problems_of("channels:\n  - name: Gate\n")

    assert [(p.path, p.line, p.message) for p in problems] == [
        ("channels[0].id", 2, "required key is missing"),
        ("channels[0].source", 2, "required key is missing")]


def test_duplicate_channel_id_is_reported_at_the_duplicate():
    problem = only_problem("""\
        channels:
          - id: 4
            source: {type: test-pattern}
          - id: 5
            source: {type: test-pattern}
          - id: 4
            source: {type: test-pattern}
        """)

    assert problem == Problem("channels[2].id", 6,
                              "duplicate channel id 4; ids must be unique (already used by channels[0])")


def test_duplicate_channel_id_is_reported_along_with_other_channel_problems():
    problems = problems_of("""\
        channels:
          - id: 4
            source: {type: test-pattern}
          - id: 4
            source: {type: rtsp, url: 'http://cam'}
        """)

    assert [(p.path, p.line) for p in problems] == [("channels[1].id", 4), ("channels[1].source.url", 5)]


@pytest.mark.parametrize("url, expected", [
    ("http://cam", "expected an rtsp:// or rtsps:// URL with a host, got 'http://cam'"),
    ("cam.local/stream", "expected an rtsp:// or rtsps:// URL with a host, got 'cam.local/stream'"),
    ("rtsp:///stream", "expected an rtsp:// or rtsps:// URL with a host, got 'rtsp:///stream'"),
    ("rtsp://user:pw@:554/x", "expected an rtsp:// or rtsps:// URL with a host, got 'rtsp://user:***@:554/x'"),
    ("rtsp://cam one/x", "expected an rtsp:// or rtsps:// URL with a host, got 'rtsp://cam one/x'"),
    ("rtsp://[fe80::1/x", "expected an rtsp:// or rtsps:// URL with a host, got 'rtsp://[fe80::1/x'"),
    ("rtsp://cam:99999/x", "expected a port from 1 to 65535 in the URL, got 'rtsp://cam:99999/x'"),
    ("rtsp://cam:0/x", "expected a port from 1 to 65535 in the URL, got 'rtsp://cam:0/x'"),
    ("rtsp://cam:abc/x", "expected a port from 1 to 65535 in the URL, got 'rtsp://cam:abc/x'"),
])
def test_bad_rtsp_url_is_reported_with_the_bad_value(url, expected):
    problem = only_problem(with_source(f"type: rtsp\nurl: '{url}'\n"))

    assert problem == Problem("channels[0].source.url", 5, expected)


def test_bad_sub_url_is_checked_like_the_main_url():
    problem = only_problem(with_source("type: rtsp\nurl: rtsp://cam\nsub_url: http://cam/sub\n"))

    assert (problem.path, problem.line) == ("channels[0].source.sub_url", 6)


@pytest.mark.parametrize("url", [
    "rtsp://cam", "RTSP://CAM/x", "rtsps://cam.example.org:322/live", "rtsp://192.168.1.64:554/ch1?sub=0",
    "rtsp://admin:12345@10.0.0.2/h264", "rtsp://user:p@ss@cam/x", "rtsp://[fe80::1]:8554/x",
])
def test_good_rtsp_urls_are_accepted_as_written(url):
    config = parse(with_source(f"type: rtsp\nurl: '{url}'\n"))

    assert config.channels[0].source.url == url


def test_unknown_source_type_lists_the_allowed_types():
    problem = only_problem(with_source("type: usb\ndevice: /dev/video0\n"))

    assert problem == Problem("channels[0].source.type", 4,
                              "unknown source type 'usb'; allowed types: rtsp, onvif, test-pattern, v4l2")


def test_source_without_a_type_lists_the_allowed_types():
    problem = only_problem(with_source("url: rtsp://cam\n"))

    assert problem == Problem("channels[0].source.type", 3,
                              "required key is missing; allowed types: rtsp, onvif, test-pattern, v4l2")


# --- v4l2 sources -----------------------------------------------------------------------------

def test_v4l2_source_needs_only_a_device_and_takes_pal_defaults():
    source = parse(with_source("type: v4l2\ndevice: /dev/video0\n")).channels[0].source

    assert source == V4l2Source(device="/dev/video0", input=0, standard="PAL", width=None, height=None, fps=None,
                                encoder="auto", bitrate=2_000_000, preset="veryfast", keyframe_interval_s=2.0)


def test_v4l2_source_sets_every_value():
    source = parse(with_source("""\
        type: v4l2
        device: /dev/v4l/by-path/pci-0000:01:00.0-video-index0
        input: S-Video 0
        standard: NTSC
        width: 704
        height: 480
        fps: 15
        encoder: libx264
        bitrate: 1500000
        preset: faster
        keyframe_interval_s: 1
        """)).channels[0].source

    assert (source.device, source.input, source.standard) == (
        "/dev/v4l/by-path/pci-0000:01:00.0-video-index0", "S-Video 0", "NTSC")
    assert (source.width, source.height, source.fps) == (704, 480, 15.0)
    assert (source.encoder, source.bitrate, source.preset, source.keyframe_interval_s) == (
        "libx264", 1_500_000, "faster", 1.0)


def test_v4l2_input_may_be_a_number_and_standard_may_be_null_for_digital_inputs():
    source = parse(with_source("type: v4l2\ndevice: /dev/video1\ninput: 3\nstandard: null\n")).channels[0].source

    assert (source.input, source.standard) == (3, None)


def test_v4l2_source_without_a_device_points_at_the_source():
    problem = only_problem(with_source("type: v4l2\ninput: 2\n"))

    assert problem == Problem("channels[0].source.device", 3, "required key is missing")


@pytest.mark.parametrize("line, path, message", [
    ("device: video0", "channels[0].source.device",
     "expected a device path such as /dev/video0 or /dev/v4l/by-path/..., got 'video0'"),
    ("input: -1", "channels[0].source.input",
     "expected an input number (0, 1, ...) or an input name such as 'S-Video 0' (`nvr devices` lists them), "
     "got -1"),
    ("input: yes", "channels[0].source.input",
     "expected an input number (0, 1, ...) or an input name such as 'S-Video 0' (`nvr devices` lists them), "
     "got True"),
    ("input: ''", "channels[0].source.input",
     "expected an input number (0, 1, ...) or an input name such as 'S-Video 0' (`nvr devices` lists them), "
     "got ''"),
    ("standard: pal", "channels[0].source.standard", "expected one of PAL, NTSC, SECAM (or null), got 'pal'"),
    ("width: 721", "channels[0].source.width", "expected an even integer from 16 to 3840 (or null), got 721"),
    ("fps: 100", "channels[0].source.fps", "expected a number from 1 to 60 (or null), got 100"),
    ("encoder: nvenc", "channels[0].source.encoder",
     "expected one of auto, libx264, h264_v4l2m2m, got 'nvenc'"),
    ("preset: quick", "channels[0].source.preset",
     "expected one of ultrafast, superfast, veryfast, faster, fast, medium, slow, slower, veryslow, got 'quick'"),
    ("bitrate: '2000000'", "channels[0].source.bitrate",
     "expected an integer from 64000 to 20000000, got '2000000' (text in quotes; remove the quotes)"),
    ("pixel_format: YUYV", "channels[0].source.pixel_format",
     "unknown key; allowed keys here: type, device, input, standard, width, height, fps, encoder, bitrate, "
     "preset, keyframe_interval_s, video_loss_s"),
])
def test_bad_v4l2_values_are_reported_with_path_line_and_value(line, path, message):
    device = "" if line.startswith("device:") else "device: /dev/video0\n"
    text = with_source(f"type: v4l2\n{device}{line}\n")

    assert only_problem(text) == Problem(path, 6 if device else 5, message)


def test_every_problem_is_reported_at_once_in_file_order():
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent("""\
            storage:
              segment_seconds: 0
              retention:
                min_free_bytes: much
            channels:
              - id: 1
                source:
                  type: rtsp
                  url: http://cam
                  colour: red
              - id: 1
                source: {type: test-pattern, fps: 100}
            web:
              listen: nowhere
            """), source="/etc/nvr/nvr.yaml")

    assert str(caught.value).splitlines() == [
        "/etc/nvr/nvr.yaml:2: storage.segment_seconds: expected an integer from 2 to 600, got 0",
        "/etc/nvr/nvr.yaml:4: storage.retention.min_free_bytes: expected a size such as 1073741824, "
        "'512MiB', '2G' or '1.5GB', got 'much'",
        "/etc/nvr/nvr.yaml:9: channels[0].source.url: expected an rtsp:// or rtsps:// URL with a host, "
        "got 'http://cam'",
        "/etc/nvr/nvr.yaml:10: channels[0].source.colour: unknown key; allowed keys here: type, url, "
        "sub_url, timeout_s, reconnect_max_s, client, onvif",
        "/etc/nvr/nvr.yaml:11: channels[1].id: duplicate channel id 1; ids must be unique "
        "(already used by channels[0])",
        "/etc/nvr/nvr.yaml:12: channels[1].source.fps: expected a number from 1 to 60, got 100",
        "/etc/nvr/nvr.yaml:14: web.listen: expected host:port such as '127.0.0.1:8080', '0.0.0.0:80' "
        "or '[::]:8080', got 'nowhere'",
    ]


def test_config_error_is_a_value_error():
    with pytest.raises(ValueError):
        parse("storage: {segment_seconds: 0}\n")


def test_section_left_empty_is_reported_as_an_empty_value():
    problem = only_problem("storage:\nweb: {}\n")

    assert (problem.path, problem.line) == ("storage", 1)
    assert problem.message.endswith("got an empty value (null)")


@pytest.mark.parametrize("yaml_text, line, says", [
    ("storage:\n  path: /srv\n   segment_seconds: 3\n", 3, "mapping values are not allowed here"),
    ("storage:\n\tpath: /srv\n", 2, "indent with spaces"),
    ("channels: [1, 2\nweb: {}\n", 2, "while parsing a flow sequence that starts on line 1"),
    ("web:\n  listen: '127.0.0.1:80\n", 3, "end of stream"),
    ("storage: !!python/object:os.system x\n", 1, "could not determine a constructor"),
    ("a: 1\n---\nb: 2\n", 2, "but found another document"),
])
def test_yaml_syntax_error_is_one_problem_with_its_line(yaml_text, line, says):
    problem = only_problem(yaml_text)

    assert (problem.path, problem.line) == ("", line)
    assert says in problem.message
    assert "\n" not in problem.message


def test_duplicate_yaml_key_is_reported_with_both_lines():
    problem = only_problem("""\
        storage:
          segment_seconds: 30
          path: /srv
          segment_seconds: 90
        """)

    assert problem == Problem("storage.segment_seconds", 4,
                              "duplicate key; first given on line 2, and YAML would silently keep only this later one")


def test_problems_inside_a_repeated_key_point_at_the_copy_that_yaml_keeps():
    problems = problems_of("web:\n  listen: 127.0.0.1:80\nweb:\n  listen: nowhere\n")

    assert [(p.path, p.line) for p in problems] == [("web", 3), ("web.listen", 4)]


@pytest.mark.parametrize("yaml_text", ["", "\n\n", "# nothing but a comment\n"])
def test_empty_file_is_a_problem(yaml_text):
    assert only_problem(yaml_text) == Problem("", 1, "the config file is empty")


@pytest.mark.parametrize("yaml_text, shown", [("- storage\n", "['storage']"), ("just text\n", "'just text'")])
def test_top_level_that_is_not_a_mapping_is_a_problem(yaml_text, shown):
    problem = only_problem(yaml_text)

    assert problem == Problem("", 1, "expected a mapping of settings (storage:, channels:, web:) "
                                     f"at the top level, got {shown}")


def test_missing_file_is_a_config_error_naming_the_file(tmp_path):
    missing = tmp_path / "nope.yaml"

    with pytest.raises(ConfigError) as caught:
        load_config(missing)

    assert str(caught.value) == f"{missing}: the config file does not exist"
    assert isinstance(caught.value.__cause__, FileNotFoundError)


def test_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)  # a folder

    assert caught.value.problems[0].message.startswith("cannot read the config file: ")


def test_file_that_is_not_utf8_is_a_config_error_with_its_line(tmp_path):
    config_file = tmp_path / "nvr.yaml"
    config_file.write_bytes(b"storage:\n  path: /srv/caf\xe9\n")

    with pytest.raises(ConfigError) as caught:
        load_config(config_file)

    [problem] = caught.value.problems
    assert problem.line == 2 and problem.message.startswith("not UTF-8 text")


def test_errors_in_a_loaded_file_name_the_file_and_line(tmp_path):
    config_file = tmp_path / "nvr.yaml"
    config_file.write_text("# comment\nstorage:\n  segment_seconds: 1\n")

    with pytest.raises(ConfigError) as caught:
        load_config(config_file)

    assert str(caught.value) == (f"{config_file}:3: storage.segment_seconds: "
                                 "expected an integer from 2 to 600, got 1")


def test_web_tls_and_state_paths_are_taken_from_the_config_folder(tmp_path):
    from appliance.config.model import parse_config
    config = parse_config("web:\n  tls_cert: certs/web.pem\n  tls_key: /etc/nvr/key.pem\n  state_dir: ~/nvr-state\n",
                          base_dir=tmp_path)
    assert config.web.tls_cert == tmp_path / "certs" / "web.pem"
    assert str(config.web.tls_key) == "/etc/nvr/key.pem"
    assert config.web.state_dir.is_absolute() and config.web.tls_self_signed is False


@pytest.mark.parametrize("board", sorted((Path(__file__).parents[2] / "image-build" / "boards").glob("*.nvr.yaml")),
                         ids=lambda p: p.name)
def test_the_images_factory_configs_are_valid_and_record_only_onto_a_mounted_disk_over_https(board):
    config = load_config(board)
    assert config.storage.require_mount and str(config.storage.path) == "/srv/nvr"
    assert config.web.tls_cert == Path("/var/lib/nvr/tls/cert.pem") and config.web.tls_key == Path("/var/lib/nvr/tls/key.pem")


def test_a_channel_retention_quota_becomes_the_policy_of_that_channel():
    from appliance.supervisor import retention_policy

    config = parse("storage:\n  retention:\n    events_max_age_days: 30\nchannels:\n"
                   "  - id: 3\n    source: {type: test-pattern}\n"
                   "    retention: {max_bytes: 200GiB, max_age_days: 14, events_max_age_days: 90}\n"
                   "  - id: 4\n    source: {type: test-pattern}\n")
    policy = retention_policy(config)
    assert policy.events_max_age_days == 30
    assert set(policy.channels) == {3}
    quota = policy.channels[3]
    assert (quota.max_bytes, quota.max_age_days, quota.events_max_age_days) == (200 * 1024**3, 14, 90)
    assert (policy.events_age_days(3), policy.events_age_days(4)) == (90, 30)


@pytest.mark.parametrize("setting, says", [
    ("max_bytes: 10KB", "greater than or equal to 1048576, got '10KB'"),
    ("max_bytes: lots", "expected a size such as"),
    ("max_age_days: 0", "greater than 0"),
    ("events_max_age_days: -1", "greater than 0"),
    ("quota: 5G", "unknown key; allowed keys here: max_bytes, max_age_days, events_max_age_days"),
])
def test_a_bad_channel_retention_names_its_yaml_path_and_line(setting, says):
    key = setting.split(":")[0]
    problem = only_problem(f"channels:\n  - id: 1\n    source: {{type: test-pattern}}\n    retention:\n      {setting}\n")
    assert (problem.path, problem.line) == (f"channels[0].retention.{key}", 5)
    assert says in problem.message


def test_disk_health_settings_and_their_mistakes_name_the_yaml_path():
    config = parse("storage:\n  health: {interval_s: 600, max_temperature_c: 50, device: /dev/sdb, device_type: sat}\n")
    health = config.storage.health
    assert (health.smart, health.interval_s, health.max_temperature_c, health.device, health.device_type) == (
        True, 600, 50, "/dev/sdb", "sat")
    problem = only_problem("storage:\n  health:\n    device: sdb\n")
    assert (problem.path, problem.line) == ("storage.health.device", 3) and "expected a block device" in problem.message
    problem = only_problem("storage:\n  health:\n    device_type: 'sat; reboot'\n")
    assert problem.path == "storage.health.device_type" and "expected one of sat, scsi" in problem.message
    problem = only_problem("storage:\n  health:\n    interval_s: 5\n")
    assert problem.path == "storage.health.interval_s" and "from 60 to 86400" in problem.message


def test_a_recording_disk_must_be_mounted_as_storage_require_mount_says_unless_it_says_otherwise():
    disks = "  disks: [{path: /mnt/a}, {path: /mnt/b, require_mount: false}, {path: /mnt/c, require_mount: true}]\n"
    required = parse("storage:\n  path: /srv/nvr\n  require_mount: true\n" + disks
                     + "web: {state_dir: /var/lib/nvr}\n").storage
    assert [required.mount_required(d) for d in required.disks] == [True, False, True]
    plain = parse("storage:\n  path: /srv/nvr\n" + disks).storage
    assert [plain.mount_required(d) for d in plain.disks] == [False, False, True]


def test_an_unknown_key_of_a_recording_disk_is_named_with_the_keys_it_may_have():
    problem = only_problem("storage:\n  path: /srv/nvr\n  disks: [{path: /mnt/a, mounted: true}]\n")
    assert problem.path == "storage.disks[0].mounted"
    assert "path, label, group, require_mount" in problem.message


def test_recording_disks_take_paths_from_the_config_folder_and_default_their_labels(tmp_path):
    config = parse("storage:\n  path: /srv/nvr\n  disks:\n    - path: disk1\n    - {path: /mnt/b, label: Bay 2}\n",
                   base_dir=tmp_path)
    assert [(d.path, d.name) for d in config.storage.disks] == [(tmp_path / "disk1", "disk1"), (Path("/mnt/b"), "Bay 2")]


@pytest.mark.parametrize("disks, where, says", [
    ("[{path: /srv/nvr/a}]", "storage.disks[0].path", "overlaps storage.path /srv/nvr, which keeps the index"),
    ("[{path: /srv}]", "storage.disks[0].path", "overlaps storage.path"),
    ("[{path: /mnt/a}, {path: /mnt/a/b}]", "storage.disks[1].path", "overlaps disks[0].path /mnt/a"),
    ("[{path: /mnt/a, label: X}, {path: /mnt/b, label: X}]", "storage.disks[1].label", "used twice"),
    ("[{path: /mnt/a, label: 'a/b'}]", "storage.disks[0].label", "expected 1-32 letters"),
    ("[{label: A}]", "storage.disks[0].path", "required key is missing"),
])
def test_recording_disks_that_overlap_or_share_a_name_are_refused_with_their_yaml_path(disks, where, says):
    problem = only_problem(f"storage:\n  path: /srv/nvr\n  disks: {disks}\n")
    assert problem.path == where and says in problem.message, problem


def test_channels_pinned_to_a_disk_group_need_that_group_and_unpinned_ones_need_a_disk_in_no_group():
    ok = parse("storage:\n  path: /srv/nvr\n  disks: [{path: /mnt/a, group: outdoor}, {path: /mnt/b}]\n"
               "channels:\n  - {id: 1, source: {type: test-pattern}, storage: outdoor}\n"
               "  - {id: 2, source: {type: test-pattern}}\n")
    assert [c.storage for c in ok.channels] == ["outdoor", None]
    problem = only_problem("storage:\n  path: /srv/nvr\n  disks: [{path: /mnt/a, group: outdoor}, {path: /mnt/b}]\n"
                           "channels:\n  - {id: 1, source: {type: test-pattern}, storage: indoor}\n")
    assert (problem.path, problem.line) == ("channels[0].storage", 5)
    assert "no disk in storage.disks has group 'indoor'; the groups are: outdoor" in problem.message
    problem = only_problem("storage:\n  path: /srv/nvr\n  disks: [{path: /mnt/a, group: outdoor}]\n"
                           "channels:\n  - {id: 1, source: {type: test-pattern}}\n")
    assert problem.path == "storage.disks" and "channels without `storage:` have nowhere to record" in problem.message


# --- talk (issue 15 part 3) -------------------------------------------------------------------------------

def test_talk_and_audio_out_keys_are_all_documented_in_the_default_yaml():
    import yaml

    from appliance.config.talk import AudioOutConfig, TalkConfig

    template = yaml.safe_load((Path(__file__).parents[2] / "appliance" / "default.yaml").read_text())
    assert set(template["audio_out"]) == set(AudioOutConfig.model_fields)
    assert set(template["channels"][0]["talk"]) == set(TalkConfig.model_fields)
    for model in (AudioOutConfig, TalkConfig):
        assert model.model_config["extra"] == "forbid"
        assert all(field.description for field in model.model_fields.values()), model


def test_talk_goes_to_the_camera_for_a_network_camera_and_to_audio_out_for_an_analog_one():
    from appliance.config.talk import talk_target

    config = parse_config(textwrap.dedent("""\
        audio_out: {device: simulated}
        channels:
          - {id: 1, source: {type: rtsp, url: 'rtsp://u:p@cam1/live'}}
          - {id: 2, source: {type: test-pattern}}
          - {id: 3, source: {type: test-pattern}, talk: {output: camera, url: 'rtsp://speaker/talk'}}
          - {id: 4, source: {type: rtsp, url: 'rtsp://cam4'}, talk: {output: off}}
          - {id: 5, source: {type: rtsp, url: 'rtsp://cam5'}, talk: {output: audio_out}}
        """))
    targets = [talk_target(c, config.audio_out) for c in config.channels]
    assert targets == [("camera", "rtsp://u:p@cam1/live"), ("audio_out", "simulated"), ("camera", "rtsp://speaker/talk"),
                       ("off", None), ("audio_out", "simulated")]
    quiet = parse_config("channels: [{id: 2, source: {type: test-pattern}}]\n")
    assert talk_target(quiet.channels[0], quiet.audio_out) == ("off", None)  # no AUDIO OUT: no talk


@pytest.mark.parametrize(("text", "where", "says"), [
    ("channels:\n  - id: 1\n    source: {type: test-pattern}\n    talk: {output: audio_out}\n",
     "channels[0].talk.output", "audio_out.device"),
    ("channels:\n  - id: 1\n    source: {type: test-pattern}\n    talk: {output: camera}\n",
     "channels[0].talk.output", "talk.url"),
    ("channels:\n  - id: 1\n    source: {type: test-pattern}\n    talk: {output: shout}\n",
     "channels[0].talk.output", "camera"),
    ("channels:\n  - id: 1\n    source: {type: test-pattern}\n    talk: {url: 'http://cam'}\n",
     "channels[0].talk.url", "rtsp"),
    ("audio_out:\n  device: /dev/dsp\n", "audio_out.device", "aplay -L"),
    ("audio_out:\n  speaker: hw:0\n", "audio_out.speaker", ""),
])
def test_a_talk_config_error_names_the_key_and_its_line(text, where, says):
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="nvr.yaml")
    message = str(caught.value)
    assert where in message and says in message, message
    assert "line " in message or ":" in message.split(where)[0], message


def test_line_in_and_play_keys_are_all_documented_in_the_default_yaml():
    import yaml

    from appliance.config.alarms import PlayAction
    from appliance.config.line_in import LineInConfig

    text = (Path(__file__).parents[2] / "appliance" / "default.yaml").read_text()
    template = yaml.safe_load(text)
    assert set(template["line_in"]) == set(LineInConfig.model_fields)
    assert all(f"#           {name}:" in text or f"  {name}:" in text for name in PlayAction.model_fields)
    for model in (LineInConfig, PlayAction):
        assert model.model_config["extra"] == "forbid"
        assert all(field.description for field in model.model_fields.values()), model

