"""The local monitor: a thread that keeps the wall on the screen, survives the screen going away, and takes orders.

The monitor never touches recording: it reads the live taps, the alarm board and `status()` only.
Its thread opens the display, redraws at `fps`, and on any display failure (monitor unplugged, X
server killed, backend crash) closes it, stops every decoder (no screen, no CPU) and tries again
with a backoff from 1 s to 30 s. Public methods may be called from any thread (linkage rules, web).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from base.clock import Clocks
from hal.audio_out import AudioPlayback, make_audio_playback
from hal.display import Display, DisplayError, InputEvent
from recorder.index import Index
from recorder.live import LiveHub

from appliance.config.monitor import MonitorConfig
from appliance.monitor.control import Controls
from appliance.monitor.feeds import Feed, LiveFeed, RawFeed
from appliance.monitor.layouts import LAYOUTS, Rect, fit_tiles, pages, tile_rects, wall_rect
from appliance.monitor.lock import PinLock
from appliance.monitor.osd import TileOsd
from appliance.monitor.playback import PlaybackFeed, local_time_text
from appliance.monitor.sound import SoundFeed
from appliance.monitor.wall import StatusLine, TileView, Wall
from appliance.sound.intercom import Intercom
from appliance.ptz.control import PtzControl

log = logging.getLogger("nvr.monitor")

BACKOFF_MIN_S, BACKOFF_MAX_S = 1.0, 30.0
STATE_POLL_S = 1.0
REPROBE_S = 30.0  # with backend auto and no screen, look for one this often
STALE_S = 3.0  # no frame for this long: the tile shows NO SIGNAL
LOSS_KINDS = ("video_loss", "source_lost")
EVDEV_KEY_BACKENDS = ("drm", "kmsdrm", "fbdev")  # on X11 the X server owns the keyboard


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """What the monitor knows of a channel: `raw` channels (analog) are shown from the capture before
    encoding; others are decoded from `sub` when they have one, else from `main`."""

    id: int
    name: str
    raw: bool = False
    has_sub: bool = False


class ActiveFaults(Protocol):
    """The faults shown on the wall (`recorder.faults.FaultBoard` meets it)."""

    def active(self) -> list: ...


class Monitor:
    """The wall on the local screen. See the module docstring for what it guarantees."""

    def __init__(self, config: MonitorConfig, *, channels: list[ChannelInfo], live: LiveHub, clocks: Clocks,
                 open_display: Callable[[], Display], faults: ActiveFaults | None = None,
                 status: Callable[[], dict] | None = None, ptz: PtzControl | None = None,
                 index: Callable[[], Index | None] | None = None, root: Path | None = None,
                 keys: Callable[[], list[InputEvent]] | None = None,
                 speaker: Callable[[], AudioPlayback] | None = None, intercom: Intercom | None = None):
        """`speaker` makes the speaker the full-screen channel's sound plays on (default: the
        `audio_out` device of the config; no sound when that is null). `intercom`: the LINE IN intercom
        its T key holds open, when the box has one."""
        self.config, self.clocks = config, clocks
        if speaker is None and config.audio_out is not None:
            speaker = lambda: make_audio_playback(config.audio_out)  # noqa: E731
        self._speaker = speaker
        self.intercom = intercom
        self._sound: SoundFeed | None = None
        self.channels = {channel.id: channel for channel in channels}
        self._live, self._open_display, self._faults, self._status = live, open_display, faults, status
        self.ptz, self._index, self._root, self._keys = ptz, index, root, keys
        self.lock = PinLock(pin_hash=config.pin_hash, clocks=clocks, unlock_timeout_s=config.unlock_timeout_s)
        self._mutex = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._feeds: dict[tuple, Feed] = {}
        self.display: Display | None = None
        self._rects: list[Rect] = []
        self._alarm_state: dict[int, set[str]] = {}
        self._global_alarms: list[str] = []
        self._seen_alarms: set[tuple] = set()
        self._recording: set[int] = set()
        self._status_right = ""
        self._next_poll_us = 0
        self._stats = {"frames_shown": 0, "display_opens": 0, "display_errors": 0, "compose_s": 0.0, "show_s": 0.0}
        self._last_error = ""
        self._state_error = [""]  # the last error reading alarms or status, logged once
        self._fps_window: list[int] = []
        self.controls = Controls(self)
        self._init_view()

    def _init_view(self) -> None:
        self.layout = self.config.layout
        self.tiles = fit_tiles(self.config.tiles or self._enabled_ids(), self.layout)
        self.selected = 0
        self.full_channel: int | None = None
        self.popup_state: tuple[int, int] | None = None  # (channel, until monotonic us)
        self.playback: PlaybackFeed | None = None
        self.prompt: str | None = None
        self.message: tuple[str, int] | None = None
        self.ptz_stop: tuple[int, int] | None = None
        self.touring = False
        self._tour_index = -1
        self._tour_next_us = 0
        if self.config.sequence.enabled:
            self.tour(True)

    def _enabled_ids(self) -> list[int]:
        return sorted(self.channels)

    # --- lifecycle ---

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._close_feeds()
        self.stop_playback()

    def statistics(self) -> dict:
        with self._mutex:
            shown = self._stats["frames_shown"]
            display = self.display
            stats = self._stats
            return {
                "frames_shown": shown, "display_opens": stats["display_opens"],
                "display_errors": stats["display_errors"],
                "compose_ms_avg": round(stats["compose_s"] * 1000 / max(shown, 1), 2),
                "show_ms_avg": round(stats["show_s"] * 1000 / max(shown, 1), 2),
                "fps": self._measured_fps(), "backend": display.name if display else None,
                "mode": [display.mode.width, display.mode.height, display.mode.refresh_hz] if display else None,
                "last_error": self._last_error, "layout": self.layout, "tiles": list(self.tiles),
                "full_screen": self.full_channel, "touring": self.touring, "locked": not self.lock.unlocked,
                "feeds": [feed.statistics() for feed in self._feeds.values()],
                "sound": self._sound.statistics() if self._sound is not None else None,
            }

    # --- orders (any thread) ---

    def set_layout(self, layout: int, tiles: list[int | None] | None = None) -> None:
        """Show `layout` tiles, with `tiles` (default: the channels from the current first tile on)."""
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; choose one of: {', '.join(map(str, LAYOUTS))}")
        with self._mutex:
            if tiles is None:
                start = next((c for c in self.tiles if c is not None), None)
                ids = self._enabled_ids()
                tiles = ids[ids.index(start):] + ids[:ids.index(start)] if start in ids else ids
            self.layout, self.tiles = layout, fit_tiles(tiles, layout)
            self.full_channel, self.selected = None, min(self.selected, layout - 1)

    def set_tiles(self, tiles: list[int | None]) -> None:
        with self._mutex:
            self.tiles = fit_tiles(tiles, self.layout)

    def full_screen(self, channel: int | None) -> None:
        """Show `channel` alone (main stream), or back to the wall with None."""
        with self._mutex:
            self.full_channel = channel

    def popup(self, channel: int, duration_s: float | None = None) -> None:
        """The alarm pop-up: `channel` full-screen for `duration_s` (default monitor.alarm_popup.duration_s),
        over whatever was shown; the wall comes back afterwards. Linkage rules call this."""
        duration_s = duration_s if duration_s is not None else self.config.alarm_popup.duration_s
        with self._mutex:
            self.popup_state = (channel, self.clocks.monotonic_us() + int(duration_s * 1e6))
        log.info("alarm pop-up of channel %d for %.0f s", channel, duration_s)

    def tour(self, on: bool | None = None) -> None:
        """Start (True), stop (False) or toggle (None) the sequence mode."""
        with self._mutex:
            self.touring = (not self.touring) if on is None else on
            self._tour_next_us = 0

    def start_playback(self, channel: int, minutes: float | None = None) -> str:
        """Play `channel` from `minutes` ago (default monitor.playback_minutes); needs the PIN.
        Returns 'playing', 'locked' or 'unavailable' (no recordings index)."""
        if not self.lock.unlocked:
            return "locked"
        index = self._index() if self._index else None
        if index is None or self._root is None:
            return "unavailable"
        minutes = minutes if minutes is not None else self.config.playback_minutes
        start_us = self.clocks.utc_now_us() - int(minutes * 60e6)
        with self._mutex:
            self.stop_playback()
            self.playback = PlaybackFeed(channel=channel, index=index, root=self._root, start_us=start_us,
                                         fps=self.config.fps, clocks=self.clocks)
            self.playback.start()
        return "playing"

    def stop_playback(self) -> None:
        with self._mutex:
            if self.playback is not None:
                self.playback.close()
                self.playback = None

    def say(self, text: str, seconds: float = 3.0) -> None:
        with self._mutex:
            self.message = (text, self.clocks.monotonic_us() + int(seconds * 1e6))

    # --- the thread ---

    def _run(self) -> None:
        backoff_s = BACKOFF_MIN_S
        while not self._stop.is_set():
            try:
                display = self._open_display()
            except Exception as exc:  # DisplayError, or a backend bug: either way, try again later
                self._note_error(f"cannot open the display: {exc}")
                self._stop.wait(backoff_s)
                backoff_s = min(backoff_s * 2, BACKOFF_MAX_S)
                continue
            backoff_s = BACKOFF_MIN_S
            self._serve(display)
            if not self._stop.is_set():
                self._stop.wait(BACKOFF_MIN_S)

    def _serve(self, display: Display) -> None:
        with self._mutex:
            self.display = display
            self._stats["display_opens"] += 1
        try:
            if display.name == "offscreen" and self.config.backend == "auto":
                self._wait_for_a_screen()
            else:
                self._show_loop(display, Wall(display.mode.width, display.mode.height))
        except Exception as exc:  # the screen went away or the backend broke; recording never notices
            self._note_error(f"display {display.name} failed: {exc}", error=not isinstance(exc, DisplayError))
        finally:
            with self._mutex:
                self.display = None
            try:
                display.close()
            except Exception:
                log.exception("closing display %s", display.name)
            self._close_feeds()

    def _wait_for_a_screen(self) -> None:
        """`auto` found no screen: compose nothing (nobody would see it, and decoding costs CPU the
        recorder may need), and look again every REPROBE_S for a monitor plugged in meanwhile."""
        with self._mutex:
            self._last_error = "no screen found (auto); looking again periodically"
        self._stop.wait(REPROBE_S)

    def _note_error(self, text: str, *, error: bool = False) -> None:
        with self._mutex:
            self._stats["display_errors"] += 1
            repeated = text == self._last_error
            self._last_error = text
        if error:
            log.exception("monitor: %s", text)
        elif not repeated:
            log.warning("monitor: %s; retrying", text)

    def _show_loop(self, display: Display, wall: Wall) -> None:
        period_us = int(1_000_000 / min(self.config.fps, display.mode.refresh_hz or self.config.fps))
        next_us = self.clocks.monotonic_us()
        while not self._stop.is_set():
            self._tick(display, wall)
            next_us += period_us
            now_us = self.clocks.monotonic_us()
            if now_us - next_us > period_us:
                next_us = now_us  # fell behind: skip frames, never burst to catch up
            if next_us > now_us:
                self._stop.wait((next_us - now_us) / 1e6)

    def _tick(self, display: Display, wall: Wall) -> None:
        events = display.poll_events()
        if self._keys is not None and display.name in EVDEV_KEY_BACKENDS:
            # On the console SDL would read the same keyboards; take keys from evdev alone (it also
            # knows the remote-control keys), and only the mouse from the display.
            events = [event for event in events if event.kind != "key"] + self._keys()
        for event in events:
            self.controls.handle(event)
        self._advance_timers()
        began = time.perf_counter()
        frame = self._compose(wall)
        composed = time.perf_counter()
        display.show(frame)
        with self._mutex:
            self._stats["compose_s"] += composed - began
            self._stats["show_s"] += time.perf_counter() - composed
            self._stats["frames_shown"] += 1
            self._fps_window = (self._fps_window + [self.clocks.monotonic_us()])[-64:]

    def _measured_fps(self) -> float:
        window = self._fps_window
        if len(window) < 2 or window[-1] == window[0]:
            return 0.0
        return round((len(window) - 1) * 1e6 / (window[-1] - window[0]), 1)

    # --- timers and state ---

    def _advance_timers(self) -> None:
        now = self.clocks.monotonic_us()
        if now >= self._next_poll_us:
            self._next_poll_us = now + int(STATE_POLL_S * 1e6)
            self._poll_state()
        with self._mutex:
            if self.popup_state and now >= self.popup_state[1]:
                self.popup_state = None
            if self.message and now >= self.message[1]:
                self.message = None
            if self.playback is not None and self.playback.ended:
                self.stop_playback()
                self.message = ("END OF RECORDING", now + 3_000_000)
            if self.ptz_stop and now >= self.ptz_stop[1]:
                self.controls.ptz_halt(self.ptz_stop[0])
                self.ptz_stop = None
            if self.touring and now >= self._tour_next_us:
                self._next_tour_page(now)

    def _next_tour_page(self, now_us: int) -> None:
        ids, steps = self._enabled_ids(), []
        for step in self.config.sequence.steps or [None]:
            layout = step.layout if step else self.config.layout
            if step and step.tiles:
                steps.append((layout, step.tiles))
            else:  # no channels named: page through all of them at this layout
                steps += [(layout, page) for page in pages(ids, layout)]
        self._tour_index = (self._tour_index + 1) % len(steps)
        layout, tiles = steps[self._tour_index]
        self.layout, self.tiles, self.full_channel = layout, fit_tiles(tiles, layout), None
        self._tour_next_us = now_us + int(self.config.sequence.dwell_s * 1e6)

    def _poll_state(self) -> None:
        """Alarms and recording state, once a second (status() reads the index)."""
        faults = _safe(lambda: list(self._faults.active()), [], self._state_error) if self._faults else []
        per_channel: dict[int, set[str]] = {}
        for alarm in faults:
            if alarm.channel is not None:
                per_channel.setdefault(alarm.channel, set()).add(alarm.kind)
        status = _safe(self._status, {}, self._state_error) if self._status else {}
        recording = {s["channel"] for s in status.get("streams", []) if s.get("connected")}
        with self._mutex:
            self._alarm_state, self._recording = per_channel, recording
            self._global_alarms = [a.kind for a in faults if a.channel is None]
            self._status_right = _status_right(status, faults)
        self._popup_on_new_alarms(faults)

    def _popup_on_new_alarms(self, faults: list) -> None:
        popup = self.config.alarm_popup
        current = {(a.kind, a.channel, a.since_us) for a in faults}
        new = [a for a in faults if (a.kind, a.channel, a.since_us) not in self._seen_alarms]
        self._seen_alarms = current
        for alarm in new:
            if popup.enabled and alarm.channel in self.channels and alarm.kind in popup.kinds:
                self.popup(alarm.channel)

    # --- what to draw ---

    def view(self) -> list[tuple[Rect, int | None, str]]:
        """The tiles now: (rect, channel, how) with how 'tile', 'full' or 'playback'."""
        with self._mutex:
            area = self._area()
            if self.playback is not None:
                return [(tile_rects(1, area)[0], self.playback.channel, "playback")]
            channel = self.popup_state[0] if self.popup_state else self.full_channel
            if channel is not None:
                return [(tile_rects(1, area)[0], channel, "full")]
            return [(rect, tile, "tile") for rect, tile in zip(tile_rects(self.layout, area), self.tiles)]

    def _area(self) -> Rect:
        display = self.display
        if display is None:
            return Rect(0, 0, 2, 2)
        return wall_rect(display.mode.width, display.mode.height)

    def _compose(self, wall: Wall):
        view = self.view()
        self._sync_feeds(view)
        now = self.clocks.monotonic_us()
        tiles = [self._tile_view(rect, channel, how, index, now) for index, (rect, channel, how) in enumerate(view)]
        with self._mutex:
            self._rects = [rect for rect, _, _ in view]
            banner = self.controls.banner()
        return wall.render(tiles, self._status_line(), banner)

    def _tile_view(self, rect: Rect, channel: int | None, how: str, index: int, now_us: int) -> TileView:
        selected = how == "tile" and index == self.selected and self.layout > 1
        if channel is None:
            return TileView(rect, None, None, None, selected=selected)
        info = self.channels.get(channel)
        if info is None:
            return TileView(rect, channel, None, TileOsd(f"CH{channel}"), f"NO CHANNEL {channel}", selected)
        feed = self._feeds.get(self._feed_key(channel, how))
        if feed is not None:
            feed.set_size(rect.width, rect.height)
        kinds = self._alarm_state.get(channel, set())
        lost = bool(kinds & set(LOSS_KINDS)) or _stale(feed, now_us)
        osd = TileOsd(info.name, recording=channel in self._recording, motion="motion" in kinds,
                      alarm=bool(kinds - set(LOSS_KINDS) - {"motion"}), video_loss=lost,
                      note=self.playback.note if how == "playback" and self.playback else "")
        message = "NO SIGNAL" if lost and how != "playback" else None
        return TileView(rect, channel, feed, osd, message, selected)

    def _status_line(self) -> StatusLine:
        with self._mutex:
            now_text = local_time_text(self.clocks.utc_now_us())
            recording = len(self._recording)
            mode = "TOUR" if self.touring else ""
            lock = "UNLOCKED" if self.lock.unlocked else "LOCKED"
            left = f"{now_text}  REC {recording}/{len(self.channels)}  {mode}".rstrip()
            return StatusLine(left, f"{self._status_right}  {lock}", alert=bool(self._global_alarms))

    # --- feeds ---

    def _feed_key(self, channel: int, how: str) -> tuple:
        if how == "playback":
            return ("playback", id(self.playback))
        info = self.channels[channel]
        if info.raw:
            return ("raw", channel)
        stream = "main" if how == "full" or not info.has_sub else "sub"
        return ("live", channel, stream, how == "full")

    def _sync_feeds(self, view: list[tuple[Rect, int | None, str]]) -> None:
        wanted = {self._feed_key(channel, how): (channel, how) for _, channel, how in view
                  if channel is not None and channel in self.channels}
        for key in [key for key in self._feeds if key not in wanted]:
            feed = self._feeds.pop(key)
            if feed is not self.playback:
                feed.close()
        for key, (channel, how) in wanted.items():
            if key not in self._feeds:
                self._feeds[key] = self._new_feed(key, channel)
        full = [channel for _, channel, how in view if how == "full" and channel in self.channels]
        self._sync_sound(full[0] if len(view) == 1 and full else None)

    def _sync_sound(self, channel: int | None) -> None:
        """The full-screen channel's sound on the speaker (when one is configured); none on the wall."""
        current = self._sound.channel if self._sound is not None else None
        if channel == current or self._speaker is None:
            return
        if self._sound is not None:
            self._sound.close()
            self._sound = None
        if channel is not None:
            self._sound = SoundFeed(channel=channel, live=self._live.stream(channel, "main"), speaker=self._speaker)
            self._sound.start()

    def _new_feed(self, key: tuple, channel: int) -> Feed:
        if key[0] == "playback":
            return self.playback
        if key[0] == "raw":
            feed = RawFeed(channel=channel, live=self._live.stream(channel, "main"), fps=self.config.fps,
                           clocks=self.clocks)
        else:
            feed = LiveFeed(channel=channel, live=self._live.stream(channel, key[2]), fps=self.config.fps,
                            clocks=self.clocks, decoder=self.config.decoder, full_screen=key[3])
        feed.start()
        return feed

    def _close_feeds(self) -> None:
        self._sync_sound(None)
        feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            if feed is not self.playback:
                feed.close()

    def tile_at(self, x: int, y: int) -> int | None:
        """The index of the tile under (x, y) in the last frame, if any."""
        with self._mutex:
            return next((index for index, rect in enumerate(self._rects) if rect.contains(x, y)), None)


def _stale(feed: Feed | None, now_us: int) -> bool:
    """No frame for STALE_S (or never, once the feed has had STALE_S to start)."""
    if feed is None:
        return True
    last = feed.last_frame_us if feed.last_frame_us is not None else feed.started_us
    return last is not None and now_us - last > STALE_S * 1e6


def _status_right(status: dict, faults: list) -> str:
    used = (status.get("retention") or {}).get("used_percent")
    disk = f"DISK {used:.0f}%" if isinstance(used, (int, float)) else "DISK ?"
    health = f"ALARMS {len(faults)}" if faults else "OK"
    return f"{disk}  {health}"


def _safe(call, default, last_error: list[str]):
    """`call()`, or `default` if it raises: a status source failing must not blank the screen. Each
    new error is logged with its traceback once (`last_error` remembers it), not every second."""
    try:
        return call()
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}"
        if text != last_error[0]:
            last_error[0] = text
            log.exception("monitor: reading state failed")
        return default
