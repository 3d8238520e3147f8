"""Local control of the monitor: keys (keyboard, IR remote) and mouse clicks turned into monitor orders.

    F1-F5           layout 1, 4, 8, 9, 16          L / Tab      next layout
    1-9, 0          channel 1-10 full-screen       Enter        full-screen the selected tile
    arrows          move the selection; PTZ pan/tilt on a full-screen channel when unlocked
    + / -           PTZ zoom (unlocked)            PgUp / PgDn  previous / next page of channels
    S               tour on/off                    P            play back the last minutes (unlocked)
    U / M           enter the PIN                  K            lock now
    T (held)        LINE IN intercom to its output (AUDIO OUT or a camera), while held (autorepeat renews it)
    Esc / Backspace back: leave playback, the pop-up, full-screen
    mouse           left click selects, double click toggles full-screen, right click is back,
                    wheel zooms a PTZ camera
"""
from __future__ import annotations

import logging

from hal.display import InputEvent

from appliance.monitor.layouts import LAYOUTS

log = logging.getLogger("nvr.monitor")

DOUBLE_CLICK_US = 400_000
PTZ_STEP_S = 0.4  # a key press moves the camera this long (remotes send no key-up)
# T holds the intercom open this long; the key's autorepeat (the kernel's first one after 250 ms, then
# every 33 ms; a remote's every ~110 ms) renews it, so it closes this long after the key is let go.
TALK_HOLD_S = 0.5
_LAYOUT_KEYS = {f"f{n}": layout for n, layout in enumerate(LAYOUTS, start=1)}
_ARROWS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


def _safe_channels(ptz) -> list[int]:
    try:
        return list(ptz.channels())
    except Exception:  # a PTZ service in trouble: treat as no PTZ rather than break the keys
        log.exception("PTZ channels could not be listed")
        return []


class Controls:
    """Input handling for one `Monitor`; called from the monitor's thread only."""

    def __init__(self, monitor):
        self._monitor = monitor
        self._last_click: tuple[int, int] | None = None  # (tile index, monotonic us)
        self.handled = 0

    def handle(self, event: InputEvent) -> None:
        monitor = self._monitor
        monitor.lock.touch()
        self.handled += 1
        with monitor._mutex:
            if event.kind == "click":
                self._click(event)
            elif monitor.prompt is not None:
                self._pin_key(event.key)
            else:
                self._key(event.key)

    def banner(self) -> list[str] | None:
        monitor = self._monitor
        if monitor.prompt is not None:
            return ["ENTER PIN", "*" * len(monitor.prompt) or "-", "ENTER = OK  ESC = CANCEL"]
        if monitor.message is not None:
            return [monitor.message[0]]
        return None

    # --- keys ---

    def _key(self, key: str) -> None:
        monitor = self._monitor
        if key in _LAYOUT_KEYS:
            monitor.tour(False)
            monitor.set_layout(_LAYOUT_KEYS[key])
        elif key in ("l", "tab"):
            monitor.tour(False)
            monitor.set_layout(LAYOUTS[(LAYOUTS.index(monitor.layout) + 1) % len(LAYOUTS)])
        elif key.isdigit() and len(key) == 1:
            self._channel_key(int(key) or 10)
        elif key in ("escape", "backspace"):
            self._back()
        elif key == "s":
            monitor.tour()
            monitor.say("TOUR ON" if monitor.touring else "TOUR OFF")
        elif key == "enter":
            self._toggle_full(monitor.selected)
        elif key in _ARROWS or key in ("plus", "minus"):
            self._arrow_or_ptz(key)
        elif key in ("pageup", "pagedown"):
            self._page(-1 if key == "pageup" else 1)
        elif key == "p":
            self._playback()
        elif key in ("u", "m"):
            self._open_prompt()
        elif key == "k":
            monitor.lock.lock()
            monitor.say("LOCKED")
        elif key == "t":
            self._talk()

    def _talk(self) -> None:
        monitor = self._monitor
        if monitor.intercom is None:
            monitor.say("NO INTERCOM: SET line_in (AND audio_out OR line_in.channel)")
            return
        try:
            if monitor.intercom.hold("monitor", TALK_HOLD_S):
                monitor.say("TALKING (HOLD T)")
        except RuntimeError as exc:  # IntercomBusy: shown, never fatal to the keys
            monitor.say(str(exc).upper())

    def _channel_key(self, channel: int) -> None:
        monitor = self._monitor
        if channel not in monitor.channels:
            monitor.say(f"NO CHANNEL {channel}")
            return
        monitor.tour(False)
        monitor.full_screen(channel)

    def _back(self) -> None:
        monitor = self._monitor
        if monitor.playback is not None:
            monitor.stop_playback()
        elif monitor.popup_state is not None:
            monitor.popup_state = None
        else:
            monitor.full_screen(None)

    def _toggle_full(self, tile: int) -> None:
        monitor = self._monitor
        if monitor.full_channel is not None or monitor.popup_state is not None:
            self._back()
        elif 0 <= tile < len(monitor.tiles) and monitor.tiles[tile] is not None:
            monitor.tour(False)
            monitor.full_screen(monitor.tiles[tile])

    def _arrow_or_ptz(self, key: str) -> None:
        monitor = self._monitor
        if monitor.full_channel is not None and monitor.playback is None:
            self._ptz(monitor.full_channel, key)
        elif key in _ARROWS:
            self._move_selection(*_ARROWS[key])

    def _move_selection(self, dx: int, dy: int) -> None:
        monitor = self._monitor
        side = {1: 1, 4: 2, 8: 4, 9: 3, 16: 4}[monitor.layout]
        step = dx + dy * (side if monitor.layout != 8 else 1)
        monitor.selected = (monitor.selected + step) % monitor.layout

    def _page(self, direction: int) -> None:
        monitor = self._monitor
        ids = sorted(monitor.channels)
        if not ids:
            return
        first = next((c for c in monitor.tiles if c is not None), ids[0])
        start = (ids.index(first) if first in ids else 0) + direction * monitor.layout
        start %= len(ids)
        monitor.tour(False)
        monitor.set_tiles([ids[(start + n) % len(ids)] if n < len(ids) else None for n in range(monitor.layout)])

    # --- PTZ, playback, PIN ---

    def _ptz(self, channel: int, key: str) -> None:
        monitor = self._monitor
        if monitor.ptz is None or channel not in _safe_channels(monitor.ptz):
            monitor.say(f"NO PTZ ON CHANNEL {channel}")
            return
        if not monitor.lock.unlocked:
            self._open_prompt()
            return
        pan, down = _ARROWS.get(key, (0, 0))
        try:
            if key in ("plus", "minus"):
                monitor.ptz.zoom(channel, 1 if key == "plus" else -1)
            else:
                monitor.ptz.move(channel, pan, -down)  # screen 'down' is tilt -1
        except Exception as exc:  # a PTZ fault is shown, never fatal to the monitor
            log.warning("PTZ on channel %d failed: %s", channel, exc)
            monitor.say(f"PTZ FAILED: {exc}")
            return
        monitor.ptz_stop = (channel, monitor.clocks.monotonic_us() + int(PTZ_STEP_S * 1e6))

    def ptz_halt(self, channel: int) -> None:
        try:
            self._monitor.ptz.stop(channel)
        except Exception as exc:
            log.warning("PTZ stop on channel %d failed: %s", channel, exc)

    def _playback(self) -> None:
        monitor = self._monitor
        channel = monitor.full_channel
        if channel is None and 0 <= monitor.selected < len(monitor.tiles):
            channel = monitor.tiles[monitor.selected]
        if channel is None:
            monitor.say("SELECT A CHANNEL FIRST")
            return
        result = monitor.start_playback(channel)
        if result == "locked":
            self._open_prompt()
        elif result == "unavailable":
            monitor.say("NO RECORDINGS TO PLAY")

    def _open_prompt(self) -> None:
        monitor = self._monitor
        if not monitor.lock.configured:
            monitor.say("NO PIN SET: LIVE VIEW ONLY")
            return
        monitor.prompt = ""

    def _pin_key(self, key: str) -> None:
        monitor = self._monitor
        if key.isdigit() and len(key) == 1 and len(monitor.prompt) < 12:
            monitor.prompt += key
        elif key in ("backspace", "delete"):
            monitor.prompt = monitor.prompt[:-1]
        elif key == "escape":
            monitor.prompt = None
        elif key == "enter":
            pin, monitor.prompt = monitor.prompt, None
            result = monitor.lock.try_unlock(pin)
            monitor.say({"unlocked": "UNLOCKED", "wrong": "WRONG PIN",
                         "refused": "TOO MANY TRIES: WAIT A MINUTE"}.get(result, "NO PIN SET"))

    # --- mouse ---

    def _click(self, event: InputEvent) -> None:
        monitor = self._monitor
        if event.button == 3:
            self._back()
            return
        if event.button in (4, 5):
            if monitor.full_channel is not None:
                self._ptz(monitor.full_channel, "plus" if event.button == 4 else "minus")
            return
        tile = monitor.tile_at(event.x, event.y)
        if tile is None or event.button != 1:
            return
        now = monitor.clocks.monotonic_us()
        last = self._last_click
        double = last is not None and last[0] == tile and now - last[1] < DOUBLE_CLICK_US
        self._last_click = None if double else (tile, now)
        if double:
            self._toggle_full(tile)
        elif monitor.full_channel is None and monitor.popup_state is None:
            monitor.selected = tile
