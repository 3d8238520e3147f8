"""The wall on the offscreen display: 4- and 16-tile walls of test-pattern channels, checked pixel region by region."""
from __future__ import annotations

import time

import numpy as np
import pytest

from base.clock import RealClocks
from hal.display.offscreen import OffscreenDisplay
from recorder.faults import FaultBoard
from recorder.live import LiveHub

import appliance.monitor.monitor as monitor_module
from appliance.config.monitor import MonitorConfig
from appliance.monitor import ChannelInfo, Monitor
from appliance.monitor.layouts import tile_rects, wall_rect
from appliance.monitor.osd import NO_SIGNAL_BG, TEXT_BOX, WHITE
from support.screens import closest, save_png
from support.walls import PatternChannels, colour_fraction, pattern_of, pattern_signatures, region
from support.waiting import DEFAULT_TIMEOUT_S, wait_for


@pytest.fixture
def clocks():
    return RealClocks()


@pytest.fixture
def hub():
    return LiveHub()


@pytest.fixture
def patterns(hub, clocks):
    channels = PatternChannels(hub, clocks=clocks)
    yield channels
    channels.stop()
    assert not channels.errors


def start_monitor(config: MonitorConfig, channels: list[ChannelInfo], hub, clocks, display, **kwargs) -> Monitor:
    monitor = Monitor(config, channels=channels, live=hub, clocks=clocks, open_display=lambda: display, **kwargs)
    monitor.start()
    return monitor


def wait_for_pictures(monitor: Monitor, display: OffscreenDisplay, channels: set[int],
                      timeout_s: float = 60) -> np.ndarray:
    """The first frame shown after every feed of `channels` has scaled a picture."""
    def scaled() -> bool:
        feeds = {f["channel"]: f for f in monitor.statistics()["feeds"]}
        return all(feeds.get(c, {}).get("frames_scaled", 0) >= 2 for c in channels)
    wait_for(scaled, timeout_s=timeout_s, what=f"pictures from channels {sorted(channels)}",
             details=lambda: monitor.statistics()["feeds"])
    return next_frame(display)


def next_frame(display: OffscreenDisplay) -> np.ndarray:
    """A frame composed after this call (the one being composed now may predate it: wait for two)."""
    assert display.wait_for_frames(display.frames_shown + 2, timeout_s=DEFAULT_TIMEOUT_S)
    return display.last_frame()


def assert_tile_shows_pattern(frame, rect, channel, references):
    tile = region(frame, rect)
    assert closest(tile, references) == pattern_of(channel), f"tile of channel {channel}"


def assert_osd_name_drawn(frame, rect):
    corner = region(frame, rect, right=0.5, bottom=0.2)
    assert colour_fraction(corner, TEXT_BOX) > 0.01, "the name's box"
    assert colour_fraction(corner, WHITE) > 0.005, "the name's letters"


def assert_no_signal(frame, rect):
    centre = region(frame, rect, left=0.1, top=0.25, right=0.9, bottom=0.9)
    assert colour_fraction(centre, NO_SIGNAL_BG) > 0.8
    assert colour_fraction(centre, WHITE) > 0.002, "the NO SIGNAL text"


def test_four_tile_wall_shows_each_channel_its_osd_and_the_no_signal_screen(hub, clocks, patterns):
    patterns.add(1, raw=True)               # analog: shown from the raw capture, no decode
    patterns.add(2, raw=False)              # encoded main stream, decoded for the tile
    patterns.add(3, raw=False, stream="sub")  # a camera with a sub stream: the tile decodes the sub
    faults = FaultBoard(clocks=clocks)
    faults.raise_fault("video_loss", "no video on BNC 4", channel=4)
    display = OffscreenDisplay(width=640, height=480)
    channels = [ChannelInfo(1, "Front", raw=True), ChannelInfo(2, "Back"), ChannelInfo(3, "Yard", has_sub=True),
                ChannelInfo(4, "Gate", raw=True)]
    monitor = start_monitor(MonitorConfig(layout=4, backend="offscreen"), channels, hub, clocks, display,
                            faults=faults)
    try:
        frame = wait_for_pictures(monitor, display, {1, 2, 3})
        kinds = {f["channel"]: f["kind"] for f in monitor.statistics()["feeds"]}
    finally:
        monitor.stop()
    save_png(frame, "monitor_wall_4")
    rects = tile_rects(4, wall_rect(640, 480))
    references = pattern_signatures(rects[0].width, rects[0].height)
    for channel, rect in zip((1, 2, 3), rects):
        assert_tile_shows_pattern(frame, rect, channel, references)
        assert_osd_name_drawn(frame, rect)
    assert_no_signal(frame, rects[3])
    status_bar = frame[rects[2].y + rects[2].height + 2:]
    assert colour_fraction(status_bar, WHITE) > 0.01, "status bar text"
    assert kinds == {1: "raw", 2: "decoded", 3: "decoded", 4: "raw"}


def test_sixteen_tile_wall_with_a_silent_channel(hub, clocks, patterns, monkeypatch):
    monkeypatch.setattr(monitor_module, "STALE_S", 1.0)
    encoded = {2, 7}
    for channel in range(1, 16):
        patterns.add(channel, raw=channel not in encoded)
    display = OffscreenDisplay(width=1280, height=720)
    channels = [ChannelInfo(c, f"Cam {c}", raw=c not in encoded) for c in range(1, 17)]
    monitor = start_monitor(MonitorConfig(layout=16, fps=10, backend="offscreen"), channels, hub, clocks, display)
    try:
        wait_for_pictures(monitor, display, set(range(1, 16)))
        # Channel 16 never sends a frame: once STALE_S has passed since its feed started (before the
        # pictures above), it is video loss in every frame composed after that.
        time.sleep(monitor_module.STALE_S)
        frame = next_frame(display)
    finally:
        monitor.stop()
    save_png(frame, "monitor_wall_16")
    rects = tile_rects(16, wall_rect(1280, 720))
    references = pattern_signatures(rects[0].width, rects[0].height)
    for channel, rect in zip(range(1, 16), rects):
        assert_tile_shows_pattern(frame, rect, channel, references)
        assert_osd_name_drawn(frame, rect)
    assert_no_signal(frame, rects[15])


def test_full_screen_decodes_the_main_stream_at_the_wall_size_and_layouts_change_at_run_time(hub, clocks, patterns):
    patterns.add(1, raw=False, stream="sub")
    patterns.add(1, raw=False, stream="main")
    display = OffscreenDisplay(width=640, height=360)
    monitor = start_monitor(MonitorConfig(layout=4, tiles=[1], backend="offscreen"),
                            [ChannelInfo(1, "Lobby", has_sub=True)], hub, clocks, display)
    try:
        wait_for_pictures(monitor, display, {1})
        monitor.full_screen(1)
        next_frame(display)  # composed full screen: the sub stream's feed is replaced by the main's
        frame = wait_for_pictures(monitor, display, {1})
        feeds = monitor.statistics()["feeds"]
        monitor.set_layout(9)
        assert monitor.statistics()["layout"] == 9 and len(monitor.view()) == 9
        next_frame(display)  # and the thread draws the new layout
        assert monitor.statistics()["display_errors"] == 0
    finally:
        monitor.stop()
    save_png(frame, "monitor_full_screen")
    assert [f["kind"] for f in feeds] == ["decoded"] and feeds[0]["frames_decoded"] > 0
    area = wall_rect(640, 360)
    assert_tile_shows_pattern(frame, area, 1, pattern_signatures(area.width, area.height))
