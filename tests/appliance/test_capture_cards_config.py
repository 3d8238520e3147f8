"""Config rules for analog capture cards: one channel per device node, and the video-loss timeout."""
from __future__ import annotations

import pytest

from appliance.config.model import ConfigError, Problem, parse_config
from appliance.sources import channel_sources
from base.clock import SimulatedClocks
from recorder.faults import FaultBoard
from recorder.video_loss import VideoLossGuard


def channels(*sources: str, disabled: tuple[int, ...] = ()) -> str:
    lines = ["channels:"]
    for number, source in enumerate(sources, start=1):
        lines += [f"  - id: {number}", f"    enabled: {'false' if number in disabled else 'true'}",
                  f"    source: {{{source}}}"]
    return "\n".join(lines) + "\n"


def problems_of(text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="nvr.yaml")
    return caught.value.problems


def test_two_channels_on_one_device_node_are_refused_naming_the_key_path_and_line():
    text = channels("type: v4l2, device: /dev/video0, input: 0", "type: v4l2, device: /dev/video1, input: 0",
                    "type: v4l2, device: /dev/video0, input: 2")
    [problem] = problems_of(text)
    assert (problem.path, problem.line) == ("channels[2].source.device", 10)
    assert problem.message.startswith("/dev/video0 is already recorded by channels[0] (channel 1, input 0); "
                                      "a capture device node streams one input at a time.")
    assert "TW6869/TW68" in problem.message and "stk1160" in problem.message
    assert problem.format("nvr.yaml").startswith("nvr.yaml:10: channels[2].source.device: /dev/video0 is already")


def test_a_by_path_link_and_the_node_it_names_are_the_same_device(tmp_path):
    node = tmp_path / "video0"
    node.touch()
    (tmp_path / "by-path").mkdir()
    link = tmp_path / "by-path" / "pci-0000:01:00.0-video-index0"
    link.symlink_to(node)
    [problem] = problems_of(channels(f"type: v4l2, device: '{link}'", f"type: v4l2, device: '{node}', input: 1"))
    assert problem.path == "channels[1].source.device"


def test_a_disabled_channel_may_name_a_device_another_channel_records():
    config = parse_config(channels("type: v4l2, device: /dev/video0, input: 0",
                                   "type: v4l2, device: /dev/video0, input: 1", disabled=(2,)))
    assert [c.enabled for c in config.channels] == [True, False]


def test_each_input_of_a_parallel_card_has_its_own_node_and_is_accepted():
    config = parse_config(channels(*(f"type: v4l2, device: /dev/video{n}" for n in range(4))))
    assert len(config.channels) == 4


def test_video_loss_timeout_defaults_to_2_s_and_is_bounded():
    config = parse_config(channels("type: v4l2, device: /dev/video0"))
    assert config.channels[0].source.video_loss_s == 2.0
    [problem] = problems_of(channels("type: v4l2, device: /dev/video0, video_loss_s: 0.1"))
    assert problem.path == "channels[0].source.video_loss_s"
    assert problem.message == "expected a number from 0.5 to 60, got 0.1"


@pytest.mark.parametrize("source", ["type: v4l2, device: /dev/video0, video_loss_s: 3.5",
                                    "type: test-pattern, width: 64, height: 48"])
def test_analog_channels_are_built_behind_the_video_loss_guard(source):
    config = parse_config(channels(source))
    faults = FaultBoard(clocks=SimulatedClocks())
    [(stream, built)] = channel_sources(config.channels[0], clocks=SimulatedClocks(), faults=faults).items()
    assert stream == "main" and isinstance(built, VideoLossGuard)
    assert built.channel == 1 and built._faults is faults
    if "v4l2" in source:
        assert built.capture._frame_timeout_s == 3.5
