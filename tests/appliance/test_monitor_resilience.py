"""The monitor outlives its screen: open failures back off and retry, a failing display is reopened, feeds stop
while there is no screen; and local playback plays recorded segments from disk."""
from __future__ import annotations


import pytest

from base.clock import RealClocks, SimulatedClocks
from hal.display import DisplayUnavailable
from hal.display.offscreen import OffscreenDisplay
from recorder.index import Index
from recorder.live import LiveHub

import appliance.monitor.monitor as monitor_module
from appliance.config.monitor import MonitorConfig
from appliance.monitor import ChannelInfo, Monitor
from appliance.monitor.layouts import wall_rect
from appliance.monitor.lock import hash_pin
from appliance.monitor.osd import WHITE
from support.recording import make_segmenter, record
from support.screens import closest, save_png
from support.walls import PatternChannels, colour_fraction, pattern_of, pattern_signatures, region
from support.waiting import wait_for


@pytest.fixture
def fast_backoff(monkeypatch):
    monkeypatch.setattr(monitor_module, "BACKOFF_MIN_S", 0.05)
    monkeypatch.setattr(monitor_module, "BACKOFF_MAX_S", 0.2)


class FlakyScreen:
    """Opens fail `failures` times, then each open gives a new offscreen display."""

    def __init__(self, failures: int, error=DisplayUnavailable("no monitor connected")):
        self.failures, self.error, self.opened = failures, error, []

    def __call__(self):
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        display = OffscreenDisplay(width=320, height=240)
        self.opened.append(display)
        return display


def test_display_failures_are_retried_and_a_lost_display_is_reopened(fast_backoff):
    clocks, hub = RealClocks(), LiveHub()
    patterns = PatternChannels(hub, clocks=clocks, width=160, height=120)
    patterns.add(1, raw=True)
    screen = FlakyScreen(failures=2)
    monitor = Monitor(MonitorConfig(layout=1, backend="offscreen"), channels=[ChannelInfo(1, "Door", raw=True)],
                      live=hub, clocks=clocks, open_display=screen)
    monitor.start()
    try:
        wait_for(lambda: screen.opened and screen.opened[0].frames_shown > 3)
        first = screen.opened[0]
        first.fail_next()  # the monitor is unplugged mid-frame
        wait_for(lambda: len(screen.opened) == 2 and screen.opened[1].frames_shown > 3)
        screen.opened[1].fail_next(RuntimeError("a backend bug"))  # not even a DisplayError
        wait_for(lambda: len(screen.opened) == 3 and screen.opened[2].frames_shown > 3)
        stats = monitor.statistics()
    finally:
        monitor.stop()
        patterns.stop()
    assert first.closed
    assert stats["display_opens"] == 3 and stats["display_errors"] >= 4
    assert "a backend bug" in stats["last_error"]


def test_without_a_screen_no_feed_runs(fast_backoff):
    clocks, hub = RealClocks(), LiveHub()
    screen = FlakyScreen(failures=10**6)
    monitor = Monitor(MonitorConfig(layout=4, backend="offscreen"), channels=[ChannelInfo(1, "Door", raw=True)],
                      live=hub, clocks=clocks, open_display=screen)
    monitor.start()
    try:
        wait_for(lambda: monitor.statistics()["display_errors"] >= 3)
        stats = monitor.statistics()
    finally:
        monitor.stop()
    assert stats["feeds"] == [] and stats["backend"] is None and "no monitor connected" in stats["last_error"]


def test_local_playback_plays_the_last_seconds_from_disk_then_returns_to_live(tmp_path):
    real = RealClocks()
    # Three seconds recorded as if they had started 10 s ago, in 2 s segments.
    recording_clocks = SimulatedClocks(utc_start_us=real.utc_now_us() - 10_000_000)
    index = Index(tmp_path)
    record(make_segmenter(tmp_path, index, recording_clocks, channel=3, segment_seconds=2), recording_clocks,
           seconds=3, channel=3)
    assert len(index.segments(channel=3)) >= 2
    display = OffscreenDisplay(width=320, height=240)
    monitor = Monitor(MonitorConfig(layout=4, backend="offscreen", pin_hash=hash_pin("1357", n=2**4)),
                      channels=[ChannelInfo(3, "Till", raw=True)], live=LiveHub(), clocks=real,
                      open_display=lambda: display, index=lambda: index, root=tmp_path)
    monitor.start()
    try:
        assert monitor.start_playback(3, minutes=10 / 60) == "locked"
        assert monitor.lock.try_unlock("1357") == "unlocked"
        assert monitor.start_playback(3, minutes=10 / 60) == "playing"
        playback = monitor.playback
        wait_for(lambda: playback.frames_scaled > 5)
        frame = display.last_frame()
        wait_for(lambda: monitor.playback is None, what="the playback to end")
        ended_message = monitor.message
    finally:
        monitor.stop()
        index.close()
    save_png(frame, "monitor_playback")
    area = wall_rect(320, 240)
    assert closest(region(frame, area), pattern_signatures(area.width, area.height)) == pattern_of(3)
    note = region(frame, area, right=0.9, top=0.8)
    assert colour_fraction(note, WHITE) > 0.01, "the PLAYBACK time line"
    assert playback.segments_played >= 2 and playback.errors == 0
    assert ended_message is not None and ended_message[0] == "END OF RECORDING"


def test_auto_without_a_screen_decodes_nothing_and_looks_again_for_one(monkeypatch):
    monkeypatch.setattr(monitor_module, "REPROBE_S", 0.2)
    monkeypatch.setattr(monitor_module, "BACKOFF_MIN_S", 0.05)
    opened = []

    def open_auto():
        opened.append(OffscreenDisplay(width=160, height=120))  # what `auto` gives on a board with no screen
        return opened[-1]

    monitor = Monitor(MonitorConfig(backend="auto"), channels=[ChannelInfo(1, "Door", raw=True)], live=LiveHub(),
                      clocks=RealClocks(), open_display=open_auto)
    monitor.start()
    try:
        wait_for(lambda: len(opened) >= 3)
        stats = monitor.statistics()
    finally:
        monitor.stop()
    assert all(display.frames_shown == 0 for display in opened) and stats["feeds"] == []
    assert "no screen found" in stats["last_error"]
