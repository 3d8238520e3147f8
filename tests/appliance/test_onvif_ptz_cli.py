"""`nvr ptz` on a channel whose camera speaks ONVIF: the command goes over the network to the camera (the
replaying responder of tests/support/onvif_events.py), and what it cannot do is refused plainly."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from appliance.cli import main
from support.onvif_events import PTZ_NS, OnvifResponder


@pytest.fixture
def camera():
    with OnvifResponder() as responder:
        yield responder


def write_config(tmp_path: Path, camera: OnvifResponder) -> Path:
    path = tmp_path / "nvr.yaml"
    path.write_text(textwrap.dedent(f"""\
        storage: {{path: {tmp_path / 'data'}}}
        channels:
          - id: 2
            source:
              type: rtsp
              url: rtsp://127.0.0.1:9/unused
              onvif: {{url: "{camera.base}", username: admin, password: secret}}
        """))
    return path


def nvr_ptz(config: Path, *args: str) -> int:
    return main(["ptz", "--config", str(config), *args])


def test_a_move_for_some_seconds_then_stop_and_a_preset_reach_the_camera(tmp_path, camera, capsys):
    config = write_config(tmp_path, camera)
    assert nvr_ptz(config, "--channel", "2", "right", "--speed", "63", "--for", "0.2") == 0
    assert nvr_ptz(config, "--channel", "2", "preset-go", "1") == 0
    assert nvr_ptz(config, "--channel", "2", "home") == 0
    sent = [r for r in camera.requests if r.action in ("ContinuousMove", "Stop", "GotoPreset", "GotoHomePosition")]
    assert [r.action for r in sent] == ["ContinuousMove", "Stop", "GotoPreset", "GotoHomePosition"]
    pan_tilt = sent[0].soap_body().find(f"{{{PTZ_NS}}}Velocity/{{http://www.onvif.org/ver10/schema}}PanTilt")
    assert (pan_tilt.get("x"), pan_tilt.get("y")) == ("1.0", "0.0")
    assert sent[2].soap_body().findtext(f"{{{PTZ_NS}}}PresetToken") == "1"
    printed = capsys.readouterr().out
    assert f"sent right to channel 2's camera at {camera.base}" in printed and "sent preset-go 1" in printed


def test_what_only_a_dome_does_is_refused_with_what_the_camera_takes(tmp_path, camera, capsys):
    config = write_config(tmp_path, camera)
    assert nvr_ptz(config, "--channel", "2", "focus-near") == 2
    assert "channel 2 is an ONVIF camera: focus-near is for RS-485 domes" in capsys.readouterr().err
    assert camera.requests == []


def test_a_camera_that_refuses_exits_1_with_its_reason(tmp_path, camera, capsys):
    config = write_config(tmp_path, camera)
    assert nvr_ptz(config, "--channel", "2", "preset-go", "42") == 1
    assert "did not take preset-go: the camera has no preset 42" in capsys.readouterr().err
