"""bench/onvif_camera: a camera's ONVIF event -> rule fired and relay driven; ONVIF PTZ command round trips.

    ./dev bench onvif_camera [--events 200] [--commands 100]

1. Event latency: a running appliance (one simulated 352x288@25 channel recording to disk) whose channel
   names an ONVIF camera: the SOAP responder of tests/support/onvif_events.py on loopback, holding the
   appliance's PullMessages open (a long poll) and answering it as soon as a notification is queued.
   Each of `--events` Hikvision motion notifications (alternately start and end) is timed from being
   queued on the responder to the rule having fired (its relay switched and event row committed) and
   to the relay pin changing. Goal (issue 16): well under 1 s. What it includes: the HTTP answer on
   loopback, zeep's parse, ours, the hand-over to the alarm thread and the rule. A real camera adds its
   own detection delay and the LAN, neither of which the appliance controls.
2. PTZ: `--commands` web-style commands (ContinuousMove then Stop; GotoPreset by number, which first
   reads GetPresets) through `PtzService` to the responder, timed from the call to its Future resolving.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # support.onvif_events

from gpiozero import Device  # noqa: E402
from gpiozero.pins.mock import MockFactory  # noqa: E402

from appliance.app import Appliance  # noqa: E402
from appliance.config.model import parse_config  # noqa: E402
from base.clock import RealClocks  # noqa: E402
from bench.common import print_table  # noqa: E402
from hal.gpio import GpiozeroGpio  # noqa: E402
from support import onvif_events as cams  # noqa: E402
from support.onvif_events import OnvifResponder  # noqa: E402

OUTPUT_PIN = 22
CONFIG = """
storage:
  path: DATA
  segment_seconds: 10
  retention: {max_used_percent: 99, min_free_bytes: 0, locked_floor_bytes: 0}
channels:
  - id: 1
    source:
      type: rtsp
      url: rtsp://127.0.0.1:9/unused
      onvif: {url: "CAMERA", username: admin, password: secret}
alarms:
  outputs: [{id: siren, pin: 22, mode: latch}]
  temperature: {thermal_zones: false}
rules:
  - name: camera motion
    when: {motion: 1}
    do: [{output: {id: siren}}, {record: {channels: [1], pre_s: 10, post_s: 0, lock: true}}]
"""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Fired:
    def __init__(self):
        self.handled_us: list[int] = []
        self.ended = 0
        self.cond = threading.Condition()

    def signal_changed(self, signal) -> None:
        if not signal.active:
            with self.cond:
                self.ended += 1
                self.cond.notify_all()

    def rule_fired(self, firing) -> None:
        with self.cond:
            self.handled_us.append(firing.handled_us)
            self.cond.notify_all()

    def event_ended(self, *args) -> None:
        pass


def run(events: int, commands: int) -> None:
    from hal.video.simulated import TestPatternCapture
    from recorder.encode import EncodedCapture

    clocks = RealClocks()
    factory = MockFactory()
    Device.pin_factory = factory
    camera = OnvifResponder().start()

    def sources(channel):
        pattern = TestPatternCapture(width=352, height=288, fps=25, clocks=clocks)
        return {"main": EncodedCapture(pattern, name="pattern", clocks=clocks, bitrate=500_000,
                                       keyframe_interval_s=2, preset="ultrafast")}

    with tempfile.TemporaryDirectory() as data:
        text = CONFIG.replace("DATA", data).replace("CAMERA", camera.base)
        app = Appliance(parse_config(text), clocks=clocks, sources=sources, gpio=GpiozeroGpio(pin_factory=factory))
        app.start()
        try:
            fired = Fired()
            app.alarm_io.engine.subscribe(fired)
            camera.wait_for("PullMessages", timeout_s=30)
            event_rows(app, camera, fired, factory.pin(OUTPUT_PIN), events)
            ptz_rows(app, commands)
        finally:
            app.stop()
            camera.stop()


def event_rows(app, camera, fired, relay, count: int) -> None:
    to_rule, to_relay = [], []
    for number in range(count):
        active = number % 2 == 0
        if not active:  # motion ends; wait until the alarm side has it, or the next start is no change
            ended = fired.ended
            camera.emit(cams.hikvision_motion(False))
            with fired.cond:
                assert fired.cond.wait_for(lambda: fired.ended > ended, 5.0), "the motion did not end"
            app.alarm_io.clear_output("siren")
            while relay.state:
                time.sleep(0.0002)
            continue
        before = len(fired.handled_us)
        emitted_s = camera.emit(cams.hikvision_motion(True))
        while not relay.state and time.monotonic() - emitted_s < 5.0:  # polled every 0.2 ms
            time.sleep(0.0002)
        to_relay.append((time.monotonic() - emitted_s) * 1000)
        with fired.cond:
            assert fired.cond.wait_for(lambda: len(fired.handled_us) > before, 5.0), "the rule did not fire"
            handled_s = fired.handled_us[-1] / 1e6
        to_rule.append((handled_s - emitted_s) * 1000)
    rows = [(what, len(values), f"{percentile(values, 0.5):.1f}", f"{percentile(values, 0.99):.1f}",
             f"{max(values):.1f}") for what, values in (("event queued -> rule fired", to_rule),
                                                        ("event queued -> relay seen on", to_relay))]
    print_table("ONVIF motion event -> linkage (ms)", ("path", "n", "p50", "p99", "max"), rows)


def ptz_rows(app, count: int) -> None:
    moves, presets = [], []
    for _ in range(count):
        started = time.monotonic()
        app.ptz.move(1, 1, 0, 32).result(5)
        app.ptz.stop(1).result(5)
        moves.append((time.monotonic() - started) * 1000 / 2)
        started = time.monotonic()
        app.ptz.preset_go(1, 2).result(5)
        presets.append((time.monotonic() - started) * 1000)
    rows = [(what, len(values), f"{percentile(values, 0.5):.1f}", f"{percentile(values, 0.99):.1f}",
             f"{max(values):.1f}") for what, values in (("ContinuousMove or Stop", moves),
                                                        ("GotoPreset by number (GetPresets + GotoPreset)", presets))]
    print_table("ONVIF PTZ command -> answered (ms)", ("command", "n", "p50", "p99", "max"), rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--commands", type=int, default=100)
    args = parser.parse_args()
    run(args.events, args.commands)
    return 0


if __name__ == "__main__":
    sys.exit(main())
