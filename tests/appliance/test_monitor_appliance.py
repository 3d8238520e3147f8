"""The Appliance starts the monitor after recording when monitor.enabled, reports it in status(), and stops it
before recording."""
from __future__ import annotations

from base.clock import RealClocks

from appliance.config.model import parse_config
from appliance.app import Appliance
from support.waiting import wait_for


def config_text(root, monitor: str) -> str:
    return (f"storage: {{path: '{root}', segment_seconds: 2}}\n"
            "channels:\n"
            "  - {id: 1, name: Till, source: {type: test-pattern, width: 160, height: 120, fps: 10}}\n"
            f"monitor: {monitor}\n")


def test_the_appliance_runs_the_wall_next_to_recording_and_stops_it(tmp_path):
    config = parse_config(config_text(tmp_path, "{enabled: true, backend: offscreen, resolution: 320x240, layout: 1}"))
    nvr = Appliance(config, clocks=RealClocks(), sync=False)
    nvr.start()
    try:
        def pictures_scaled() -> bool:
            monitor = nvr.status()["monitor"]
            return bool(monitor["feeds"]) and monitor["feeds"][0]["frames_scaled"] > 3
        wait_for(pictures_scaled, what="the wall to show the channel", details=lambda: nvr.status()["monitor"])
        status = nvr.status()
    finally:
        nvr.stop()
    monitor = status["monitor"]
    assert monitor["backend"] == "offscreen" and monitor["mode"][:2] == [320, 240]
    assert monitor["feeds"][0]["kind"] == "raw"  # the analog channel is shown before encoding
    assert status["streams"][0]["connected"]
    assert not nvr.monitor._thread.is_alive()


def test_a_disabled_monitor_costs_nothing(tmp_path):
    nvr = Appliance(parse_config(config_text(tmp_path, "{enabled: false}")), clocks=RealClocks(), sync=False)
    nvr.start()
    try:
        assert nvr.monitor is None and nvr.status()["monitor"] is None
    finally:
        nvr.stop()


def test_a_monitor_that_cannot_even_be_built_leaves_recording_running(tmp_path, monkeypatch):
    import appliance.monitor

    def broken(sources):
        raise RuntimeError("no display libraries on this image")

    monkeypatch.setattr(appliance.monitor, "build_monitor", broken)
    config = parse_config(config_text(tmp_path, "{enabled: true, backend: offscreen}"))
    nvr = Appliance(config, clocks=RealClocks(), sync=False)
    nvr.start()
    try:
        assert nvr.monitor is None and nvr.supervisor.recorders
    finally:
        nvr.stop()
