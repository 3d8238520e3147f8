"""`nvr ptz`: one command straight to a channel's dome, against a simulated dome behind a real pty."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.config.model import load_config
from appliance.app import Appliance
from drivers.pelco.protocol import STOP, Move, Preset
from base.clock import RealClocks
from hal.serial_port import open_serial_port
from support.ptz import DomeRig
from support.waiting import wait_for

NVR = Path(sys.executable).with_name("nvr")


@pytest.fixture(params=["pelco-d", "pelco-p"])
def rig(request):
    rig = DomeRig(request.param)
    yield rig
    rig.close()


def write_config(tmp_path: Path, rig: DomeRig, *, dwell_s: float = 1) -> Path:
    path = tmp_path / "nvr.yaml"
    path.write_text(textwrap.dedent(f"""\
        storage: {{path: {tmp_path / 'data'}}}
        channels:
          - id: 3
            enabled: false
            source: {{type: test-pattern}}
            ptz:
              port: rs485
              address: 1
              tours:
                - name: patrol
                  steps: [{{preset: 1, dwell_s: {dwell_s}}}, {{preset: 2, dwell_s: {dwell_s}}}]
          - id: 4
            enabled: false
            source: {{type: test-pattern}}
        ptz:
          ports:
            - id: rs485
              url: {rig.path}
              protocol: {rig.bus.protocol}
              baud: 9600
        """))
    return path


def nvr_ptz(config: Path, *args: str) -> int:
    return main(["ptz", "--config", str(config), *args])


def test_moves_and_presets_reach_the_dome_and_print_their_frames(tmp_path, rig, capsys):
    config = write_config(tmp_path, rig)
    assert nvr_ptz(config, "--channel", "3", "left", "--speed", "32") == 0
    rig.wait_commands(1)
    rig.clocks.advance(2)  # the dome keeps turning after the command has exited
    assert nvr_ptz(config, "--channel", "3", "stop") == 0
    for action in ("preset-set", "right", "stop", "preset-go"):
        assert nvr_ptz(config, "--channel", "3", action, *(["1"] if action.startswith("preset") else [])) == 0
    rig.wait_commands(6)

    assert rig.dome().commands == [Move(pan=-1, pan_speed=32), STOP, Preset("set", 1), Move(pan=1, pan_speed=32),
                                   STOP, Preset("go", 1)]
    assert rig.dome().position.pan_deg == pytest.approx(296.0)
    first = capsys.readouterr().out.splitlines()[0]
    literal = "FF 01 00 04 20 00 25" if rig.bus.protocol == "pelco-d" else "A0 01 00 04 20 00 AF 2A"
    assert first == f"sent left to address 1 on {rig.path} ({rig.bus.protocol}, 9600 baud): {literal}"


def test_lens_actions_and_timed_moves(tmp_path, rig):
    config = write_config(tmp_path, rig)
    for action in ("zoom-in", "zoom-out", "focus-near", "focus-far", "iris-open", "iris-close"):
        assert nvr_ptz(config, "--channel", "3", action, "--for", "0.01") == 0
    rig.wait_commands(12)
    assert rig.dome().commands[::2] == [Move(zoom=1), Move(zoom=-1), Move(focus=-1), Move(focus=1),
                                        Move(iris=1), Move(iris=-1)]
    assert set(rig.dome().commands[1::2]) == {STOP}


def test_position_prints_where_the_dome_points(tmp_path, rig, capsys):
    config = write_config(tmp_path, rig)
    assert nvr_ptz(config, "--channel", "3", "down", "--speed", "10") == 0
    rig.wait_commands(1)
    rig.clocks.advance(3)
    assert nvr_ptz(config, "--channel", "3", "position") == 0
    assert "pan 0.00 deg, tilt -30.00 deg, zoom 0.0%" in capsys.readouterr().out


def test_the_running_service_holding_the_port_is_named_with_its_pid(tmp_path, rig, capsys):
    config_path = write_config(tmp_path, rig)
    nvr = Appliance(load_config(config_path), clocks=RealClocks(), sync=False)
    nvr.start()
    try:
        assert nvr.status()["ptz"]["ports"]["rs485"]["open"]
        assert nvr_ptz(config_path, "--channel", "3", "left") == 1
    finally:
        nvr.stop()
    err = capsys.readouterr().err
    assert f"{rig.path} is held by the running nvr service (pid {os.getpid()}" in err
    assert "stop the service first" in err
    assert nvr_ptz(config_path, "--channel", "3", "left") == 0  # released on stop


def test_another_program_holding_the_port_is_reported(tmp_path, rig, capsys):
    config = write_config(tmp_path, rig)
    holder = open_serial_port(rig.path, baud=9600)
    try:
        assert nvr_ptz(config, "--channel", "3", "stop") == 1
    finally:
        holder.close()
    assert "is in use by another program" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (["--channel", "4", "left"], "channel 4 has no ptz: section"),
    (["--channel", "9", "left"], "channel 9 does not exist"),
    (["--channel", "3", "preset-go"], "preset-go needs a preset number"),
    (["--channel", "3", "preset-go", "256"], "expected a preset number from 1 to 255, got '256'"),
    (["--channel", "3", "left", "--speed", "64"], "--speed must be from 0 to 63, got 64"),
    (["--channel", "3", "stop", "now"], "stop takes no argument"),
    (["--channel", "3", "preset-go", "1", "--for", "2"], "--for SECONDS goes with a move"),
])
def test_mistakes_are_explained_and_nothing_is_sent(tmp_path, rig, capsys, args, message):
    assert nvr_ptz(write_config(tmp_path, rig), *args) == 2
    assert message in capsys.readouterr().err
    assert rig.bus.received == []


@pytest.mark.skipif(not NVR.exists(), reason="the nvr entry point is not installed in this environment")
@pytest.mark.parametrize("rig", ["pelco-d"], indirect=True)  # a real process and real dwell times: once
def test_tour_start_runs_until_interrupted(tmp_path, rig):
    config = write_config(tmp_path, rig, dwell_s=1)
    process = subprocess.Popen([str(NVR), "ptz", "--config", str(config), "--channel", "3", "tour-start", "patrol"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(rig.dome().commands) >= 2, timeout_s=15, what="two tour steps")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert rig.dome().commands[:2] == [Preset("go", 1), Preset("go", 2)]
    assert "touring 'patrol': presets 1, 2" in out and "tour 'patrol' stopped" in out
