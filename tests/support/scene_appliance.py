"""A whole `Appliance` on real clocks whose channels record synthetic scenes (support.alarm_rig.IntruderScene,
160x120 at 10 fps, encoded by x264 in 2 s segments) and whose GPIO is gpiozero's mock pins: the rig of the
module-scoped alarm, MQTT and ONVIF appliance tests."""
from __future__ import annotations

from pathlib import Path

from gpiozero.pins.mock import MockFactory

from appliance.app import Appliance
from appliance.config.model import Config, parse_config
from base.clock import Clocks, RealClocks
from hal.gpio import GpiozeroGpio
from recorder.encode import EncodedCapture
from support.alarm_rig import IntruderScene

SEGMENT_S = 2
SCENE_WIDTH, SCENE_HEIGHT, SCENE_FPS = 160, 120, 10
US_PER_S = 1_000_000


def scene_config(data: Path, rest_yaml: str) -> Config:
    """`rest_yaml` (channels, alarms, rules...) after a storage section at `data` with SEGMENT_S segments and
    a retention that deletes nothing while a test runs."""
    storage = (f"storage:\n  path: {data}\n  segment_seconds: {SEGMENT_S}\n"
               "  retention: {max_used_percent: 99, min_free_bytes: 0, locked_floor_bytes: 0}\n")
    return parse_config(storage + rest_yaml)


def start_scene_appliance(config: Config, *, pins: MockFactory, clocks: Clocks | None = None,
                          scenes: dict[int, IntruderScene] | None = None) -> Appliance:
    """Start an Appliance for `config` whose every channel's main stream is an IntruderScene (kept in
    `scenes` by channel id, to let an intruder in) and whose GPIO is `pins`. The caller stops it."""
    clocks = clocks or RealClocks()

    def sources(channel):
        scene = IntruderScene(width=SCENE_WIDTH, height=SCENE_HEIGHT, fps=SCENE_FPS, clocks=clocks)
        if scenes is not None:
            scenes[channel.id] = scene
        return {"main": EncodedCapture(scene, name="synthetic scene", clocks=clocks, bitrate=200_000,
                                       keyframe_interval_s=0.5, preset="ultrafast")}

    app = Appliance(config, clocks=clocks, sources=sources, gpio=GpiozeroGpio(pin_factory=pins))
    app.start()
    return app


def recorded_s(app: Appliance, channel: int = 1) -> float:
    """Seconds from the start of the first indexed segment of `channel` to the end of the last (0 before any)."""
    segments = app.index.segments(channel=channel)
    return (segments[-1].end_us - segments[0].start_us) / US_PER_S if segments else 0.0
