"""End to end: `nvr run` with `monitor.backend: x11` under Xvfb shows the configured wall (a real screenshot),
and killing the X server leaves recording untouched while the monitor comes back with the server."""
from __future__ import annotations

import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from appliance.monitor.layouts import tile_rects, wall_rect
from appliance.monitor.osd import NO_SIGNAL_BG, WHITE
from appliance.web.client import ApiClient
from support.waiting import wait_for
from support.nvr_process import nvr_command
from support.web import WEB_USER, add_web_user, free_port
from support.screens import Xvfb, closest, have_xvfb, save_png
from support.walls import colour_fraction, pattern_of, pattern_signatures, region

pytestmark = pytest.mark.skipif(not have_xvfb(), reason="Xvfb and xwd (Debian xvfb, x11-apps) are not installed")

SIZE = (1280, 720)


_clients: dict[int, ApiClient] = {}


def health(port: int) -> dict | None:
    """The appliance's status (the health API needs a login: the test's user is added before the start)."""
    client = _clients.setdefault(port, ApiClient(f"http://127.0.0.1:{port}", *WEB_USER, timeout_s=2))
    try:
        return client.get_json("/api/health")
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def wait_for_status(proc: subprocess.Popen, port: int, log: Path, condition, what: str, timeout_s: float = 60) -> dict:
    """The first health status that meets `condition`; fails at once if `nvr run` exits."""
    def met() -> dict | None:
        if proc.poll() is not None:
            pytest.fail(f"nvr run exited with {proc.returncode}:\n{log.read_text()}")
        status = health(port)
        return status if status and condition(status) else None
    return wait_for(met, timeout_s=timeout_s, what=what, poll_s=0.2,
                    details=lambda: f"{health(port)}:\n{log.read_text()[-3000:]}")


def wall_drawn(proc: subprocess.Popen, port: int, log: Path, status: dict) -> None:
    """Return once two more frames have been shown than in `status`: the screen holds a composed wall."""
    shown = status["monitor"]["frames_shown"]
    wait_for_status(proc, port, log, lambda s: (s["monitor"] or {}).get("frames_shown", 0) >= shown + 2,
                    "two more frames shown")


def showing_wall(status: dict) -> bool:
    monitor = status.get("monitor") or {}
    feeds = [f for f in monitor.get("feeds", []) if f["channel"] in (1, 2)]
    return monitor.get("backend") == "x11" and len(feeds) == 2 and all(f["frames_scaled"] >= 3 for f in feeds)


def packets_recorded(status: dict) -> int:
    return sum(s["packets"] for s in status["streams"])  # every packet the segmenters took


def assert_wall(shot, name: str) -> None:
    save_png(shot, name)
    rects = tile_rects(4, wall_rect(*SIZE))
    references = pattern_signatures(rects[0].width, rects[0].height)
    for channel, rect in zip((1, 2), rects):
        assert closest(region(shot, rect), references) == pattern_of(channel), f"channel {channel} in {name}"
    no_channel = region(shot, rects[2], left=0.1, top=0.25, right=0.9, bottom=0.9)
    assert colour_fraction(no_channel, NO_SIGNAL_BG) > 0.8 and colour_fraction(no_channel, WHITE) > 0.002
    assert colour_fraction(shot[rects[2].y + rects[2].height + 2:], WHITE) > 0.01, "status bar text"


def test_nvr_run_shows_the_wall_under_xvfb_and_recording_survives_the_x_server(tmp_path):
    xvfb = Xvfb(width=SIZE[0], height=SIZE[1]).start()
    config = tmp_path / "nvr.yaml"
    config.write_text(
        "storage: {path: ./data, segment_seconds: 4}\n"
        "channels:\n"
        "  - {id: 1, name: Shop floor, source: {type: test-pattern, width: 352, height: 288, fps: 10}}\n"
        "  - {id: 2, name: Back door, source: {type: test-pattern, width: 352, height: 288, fps: 10}}\n"
        f"monitor: {{enabled: true, backend: x11, x_display: '{xvfb.display}', layout: 4, tiles: [1, 2, 9],"
        " fps: 10, evdev: false}\n")
    port, log = free_port(), tmp_path / "nvr.log"
    add_web_user(tmp_path / "data")
    with open(log, "wb") as out:
        proc = subprocess.Popen([*nvr_command(), "run", "--config", str(config), "--listen", f"127.0.0.1:{port}"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        wall_drawn(proc, port, log, wait_for_status(proc, port, log, showing_wall, "the wall on the X display"))
        assert_wall(xvfb.screenshot(), "nvr_run_x11_wall")

        before = packets_recorded(health(port))
        xvfb.stop()  # the monitor is gone: Xlib kills the display child, never nvr
        lost = wait_for_status(proc, port, log, lambda s: s["monitor"]["backend"] is None,
                               "noticing the X server is gone")
        # `lost` can come within one frame of `before` (a busy machine notices at once), so a later
        # sample, still without a screen, must have grown: recording went on while the screen was gone.
        during = wait_for_status(
            proc, port, log, lambda s: packets_recorded(s) > max(packets_recorded(lost), before) + 10
            or s["monitor"]["backend"] is not None, "recording to go on without the screen")
        assert during["monitor"]["backend"] is None, "the X display came back by itself"
        assert all(s["connected"] for s in during["streams"])

        xvfb.start()
        back = wait_for_status(proc, port, log, lambda s: s["monitor"]["display_opens"] >= 2 and showing_wall(s),
                               "the wall coming back")
        wall_drawn(proc, port, log, back)
        assert_wall(xvfb.screenshot(), "nvr_run_x11_wall_after_restart")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
            xvfb.stop()
    assert code == 0, log.read_text()[-3000:]
