"""Monitor orders and local control: layouts, tour, full-screen, alarm pop-up, the PIN lock, PTZ and playback."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from base.clock import RealClocks, SimulatedClocks
from hal.display import InputEvent
from hal.display.offscreen import OffscreenDisplay
from recorder.faults import FaultBoard
from recorder.live import LiveHub

from appliance.config.monitor import MonitorConfig
from appliance.monitor import ChannelInfo, Monitor
from appliance.monitor.layouts import Rect, fit_tiles, pages, tile_rects
from appliance.monitor.lock import LOCKOUT_S, MAX_ATTEMPTS, PinLock, hash_pin, verify_pin
from appliance.monitor.wall import Wall

FAST_HASH = hash_pin("2468", n=2**4)  # a cheap scrypt cost keeps the tests quick; the format is the same
CHANNELS = [ChannelInfo(n, f"Cam {n}", raw=True) for n in range(1, 11)]


class FakePtz:
    """Records calls the way appliance.ptz.service.PtzService takes them; domes on channels 5 and 6."""

    def __init__(self):
        self.calls = []

    def channels(self):
        return [5, 6]

    def move(self, channel, pan, tilt):
        self.calls.append(("move", channel, pan, tilt))

    def zoom(self, channel, direction):
        self.calls.append(("zoom", channel, direction))

    def stop(self, channel):
        self.calls.append(("stop", channel))


def make_monitor(clocks, *, ptz=None, **config) -> Monitor:
    settings = {"pin_hash": FAST_HASH, **config}
    return Monitor(MonitorConfig(**settings), channels=CHANNELS, live=LiveHub(), clocks=clocks,
                   open_display=lambda: None, ptz=ptz)


def key(name: str) -> InputEvent:
    return InputEvent("key", key=name)


def press(monitor: Monitor, *names: str) -> None:
    for name in names:
        monitor.controls.handle(key(name))


# --- layouts ---

@pytest.mark.parametrize("layout", [1, 4, 8, 9, 16])
def test_layout_tiles_cover_the_wall_without_overlap(layout):
    area = Rect(0, 0, 1280, 690)
    rects = tile_rects(layout, area)
    assert len(rects) == layout
    for index, a in enumerate(rects):
        assert a.width % 2 == 0 and a.height % 2 == 0
        assert a.x >= 0 and a.y >= 0 and a.x + a.width <= 1280 and a.y + a.height <= 690
        for b in rects[index + 1:]:
            assert a.x + a.width <= b.x or b.x + b.width <= a.x or a.y + a.height <= b.y or b.y + b.height <= a.y
    covered = sum(r.width * r.height for r in rects)
    assert covered > 0.97 * 1280 * 690


def test_layout_8_is_one_big_tile_and_seven_small():
    rects = tile_rects(8, Rect(0, 0, 800, 800))
    big, small = rects[0], rects[1:]
    assert big.width > 2.9 * small[0].width and big.height > 2.9 * small[0].height
    assert len({r.width for r in small}) == 1 and len(small) == 7


def test_pages_and_fitting():
    assert pages([1, 2, 3, 4, 5], 4) == [[1, 2, 3, 4], [5, None, None, None]]
    assert fit_tiles([1, 2], 4) == [1, 2, None, None]
    assert fit_tiles([1, 2, 3], 1) == [1]


# --- keys and orders ---

def test_keys_switch_layout_full_screen_a_channel_and_go_back(clocks):
    monitor = make_monitor(clocks)
    assert monitor.layout == 4 and monitor.tiles == [1, 2, 3, 4]
    press(monitor, "f5")
    assert monitor.layout == 16 and monitor.tiles[:10] == list(range(1, 11)) and monitor.tiles[10:] == [None] * 6
    press(monitor, "7")
    assert [(channel, how) for _, channel, how in monitor.view()] == [(7, "full")]
    press(monitor, "escape")
    assert len(monitor.view()) == 16
    press(monitor, "0")
    assert monitor.full_channel == 10
    press(monitor, "escape", "l")
    assert monitor.layout == 1
    press(monitor, "9")  # a channel that exists
    press(monitor, "escape")
    monitor.controls.handle(key("8"))
    assert monitor.full_channel == 8


def test_selection_moves_with_arrows_and_enter_full_screens_it(clocks):
    monitor = make_monitor(clocks)
    press(monitor, "right", "down", "enter")
    assert monitor.full_channel == 4
    press(monitor, "enter")
    assert monitor.full_channel is None


def test_paging_through_channels(clocks):
    monitor = make_monitor(clocks)
    press(monitor, "pagedown")
    assert monitor.tiles == [5, 6, 7, 8]
    press(monitor, "pagedown")
    assert monitor.tiles == [9, 10, 1, 2]
    press(monitor, "pageup")
    assert monitor.tiles == [5, 6, 7, 8]


def test_tour_cycles_pages_with_the_dwell_time(clocks):
    monitor = make_monitor(clocks, layout=4, sequence={"enabled": True, "dwell_s": 5})
    monitor._advance_timers()
    assert monitor.tiles == [1, 2, 3, 4]
    clocks.advance(4.9)
    monitor._advance_timers()
    assert monitor.tiles == [1, 2, 3, 4]
    clocks.advance(0.2)
    monitor._advance_timers()
    assert monitor.tiles == [5, 6, 7, 8]
    clocks.advance(5)
    monitor._advance_timers()
    assert monitor.tiles == [9, 10, None, None]
    press(monitor, "s")
    assert not monitor.touring


def test_tour_steps_from_the_config_change_layouts(clocks):
    steps = [{"layout": 1, "tiles": [3]}, {"layout": 9, "tiles": [1, 2]}]
    monitor = make_monitor(clocks, sequence={"enabled": True, "dwell_s": 2, "steps": steps})
    monitor._advance_timers()
    assert (monitor.layout, monitor.tiles) == (1, [3])
    clocks.advance(2)
    monitor._advance_timers()
    assert monitor.layout == 9 and monitor.tiles[:3] == [1, 2, None]


def test_a_tour_step_without_channels_pages_through_all_of_them(clocks):
    steps = [{"layout": 9}, {"layout": 1, "tiles": [4]}]
    monitor = make_monitor(clocks, sequence={"enabled": True, "dwell_s": 2, "steps": steps})
    seen = []
    for _ in range(4):
        monitor._advance_timers()
        seen.append((monitor.layout, [c for c in monitor.tiles if c is not None]))
        clocks.advance(2)
    assert seen == [(9, list(range(1, 10))), (9, [10]), (1, [4]), (9, list(range(1, 10)))]


def test_popup_shows_the_channel_full_screen_for_its_duration(clocks):
    monitor = make_monitor(clocks)
    monitor.popup(6, duration_s=10)
    assert [(c, how) for _, c, how in monitor.view()] == [(6, "full")]
    clocks.advance(10.1)
    monitor._advance_timers()
    assert len(monitor.view()) == 4


def test_alarm_on_the_board_pops_up_its_channel_when_configured(clocks):
    board = FaultBoard(clocks=clocks)
    monitor = Monitor(MonitorConfig(alarm_popup={"enabled": True, "kinds": ["alarm_input"], "duration_s": 5}),
                      channels=CHANNELS, live=LiveHub(), clocks=clocks, open_display=lambda: None, faults=board)
    board.raise_fault("disk_full", "full")            # no channel: no pop-up
    board.raise_fault("motion", "moved", channel=2)   # not a pop-up kind
    monitor._advance_timers()
    assert monitor.popup_state is None
    board.raise_fault("alarm_input", "door forced", channel=3)
    clocks.advance(1.1)
    monitor._advance_timers()
    assert monitor.popup_state[0] == 3
    clocks.advance(5.1)
    monitor._advance_timers()
    assert monitor.popup_state is None  # the same alarm, still active, does not pop up again
    clocks.advance(1.1)
    monitor._advance_timers()
    assert monitor.popup_state is None


# --- the lock, PTZ, playback ---

def test_pin_hashes_verify_and_reject():
    pin_hash = hash_pin("1234", n=2**4)
    assert pin_hash.startswith("scrypt$16$8$1$")
    assert verify_pin("1234", pin_hash) and not verify_pin("1235", pin_hash)
    assert not verify_pin("1234", "scrypt$garbage")
    assert hash_pin("1234", n=2**4) != pin_hash  # salted
    with pytest.raises(ValueError, match="4 to 12 digits"):
        hash_pin("12ab")


def test_lock_times_out_and_locks_out_after_too_many_wrong_pins(clocks):
    lock = PinLock(pin_hash=FAST_HASH, clocks=clocks, unlock_timeout_s=60)
    assert not lock.unlocked
    assert lock.try_unlock("2468") == "unlocked" and lock.unlocked
    clocks.advance(59)
    lock.touch()
    clocks.advance(59)
    assert lock.unlocked
    clocks.advance(2)
    assert not lock.unlocked
    for _ in range(MAX_ATTEMPTS):
        assert lock.try_unlock("0000") == "wrong"
    assert lock.try_unlock("2468") == "refused"
    clocks.advance(LOCKOUT_S + 1)
    assert lock.try_unlock("2468") == "unlocked"
    assert PinLock(pin_hash=None, clocks=clocks, unlock_timeout_s=60).try_unlock("2468") == "no-pin"


def test_ptz_on_a_full_screen_channel_needs_the_pin_and_stops_after_a_step(clocks):
    ptz = FakePtz()
    monitor = make_monitor(clocks, ptz=ptz)
    press(monitor, "5", "left")
    assert ptz.calls == [] and monitor.prompt == ""  # locked: the PIN prompt opens instead
    assert "ENTER PIN" in monitor.controls.banner()
    press(monitor, "2", "4", "6", "8", "enter")
    assert monitor.lock.unlocked and monitor.prompt is None
    press(monitor, "left")
    assert ptz.calls == [("move", 5, -1, 0)]
    press(monitor, "up")
    assert ptz.calls[-1] == ("move", 5, 0, 1)
    press(monitor, "plus")
    assert ptz.calls[-1] == ("zoom", 5, 1)
    clocks.advance(1)
    monitor._advance_timers()
    assert ptz.calls[-1] == ("stop", 5)
    press(monitor, "escape", "2", "left")  # channel 2 has no dome
    assert ptz.calls[-1] == ("stop", 5) and monitor.message[0] == "NO PTZ ON CHANNEL 2"


def test_wrong_pin_says_so_and_no_pin_configured_means_live_only(clocks):
    monitor = make_monitor(clocks)
    press(monitor, "u", "1", "1", "1", "1", "enter")
    assert monitor.message[0] == "WRONG PIN" and not monitor.lock.unlocked
    open_monitor = Monitor(MonitorConfig(), channels=CHANNELS, live=LiveHub(), clocks=clocks,
                           open_display=lambda: None)
    press(open_monitor, "u")
    assert open_monitor.prompt is None and "NO PIN" in open_monitor.message[0]
    assert open_monitor.start_playback(1) == "locked"


def test_playback_needs_the_pin_and_an_index(clocks):
    monitor = make_monitor(clocks)
    assert monitor.start_playback(1) == "locked"
    monitor.lock.try_unlock("2468")
    assert monitor.start_playback(1) == "unavailable"


def test_clicks_select_and_double_clicks_toggle_full_screen():
    clocks = SimulatedClocks()
    monitor = make_monitor(clocks)
    monitor.display = OffscreenDisplay(width=640, height=480)
    monitor._compose(Wall(640, 480))
    right_bottom = monitor._rects[3]
    click = InputEvent("click", x=right_bottom.x + 10, y=right_bottom.y + 10, button=1)
    monitor.controls.handle(click)
    assert monitor.selected == 3 and monitor.full_channel is None
    clocks.advance(0.1)
    monitor.controls.handle(click)
    assert monitor.full_channel == 4
    monitor.controls.handle(InputEvent("click", x=5, y=5, button=3))
    assert monitor.full_channel is None
    monitor._close_feeds()


@pytest.fixture
def clocks():
    return SimulatedClocks()


def test_monitor_survives_a_status_source_that_fails():
    def broken():
        raise RuntimeError("index is gone")

    monitor = Monitor(MonitorConfig(), channels=CHANNELS, live=LiveHub(), clocks=RealClocks(),
                      open_display=lambda: None, status=broken,
                      faults=SimpleNamespace(active=lambda: (_ for _ in ()).throw(OSError("boom"))))
    monitor._poll_state()
    assert "DISK ?" in monitor._status_line().right


@pytest.mark.parametrize("backend, expected_layout", [("kmsdrm", 16), ("x11", 1)])
def test_on_the_console_keys_come_from_evdev_alone_and_on_x11_from_the_window(backend, expected_layout):
    clocks = SimulatedClocks()
    display = OffscreenDisplay(width=160, height=120)
    display.name = backend  # kmsdrm: the HDMI console, where SDL reads the same keyboards as evdev
    display.push_event(key("f1"))                      # the same key press as SDL reports it...
    evdev_presses = [[key("f5")]]                      # ...and as evdev does: one of them must win
    monitor = Monitor(MonitorConfig(backend="offscreen"), channels=CHANNELS, live=LiveHub(), clocks=clocks,
                      open_display=lambda: display, keys=lambda: evdev_presses.pop() if evdev_presses else [])
    monitor.display = display
    try:
        monitor._tick(display, Wall(160, 120))
    finally:
        monitor._close_feeds()
    assert monitor.layout == expected_layout
