"""Wires the alarm side of the appliance from config: GPIO inputs and relays, motion watchers, health watch,
the FaultBoard's signals and the rule engine, all started and stopped together by the Appliance (`appliance/app.py`).

A part that cannot be set up (no GPIO on this board, a pin in use, a sensor missing) raises an alarm
(`gpio_error`, ...) and the rest goes on: recording never depends on the alarm side.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import tzinfo
from pathlib import Path

from drivers.contacts import AlarmContact, ArmingWindow, Relay, Schedule
from base.clock import Clocks
from hal.gpio import Gpio, GpioError, open_gpio
from hal.sensors import Sht3x, ThermalZones
from base.timers import Scheduler
from recorder.faults import Fault, FaultBoard
from recorder.index import INDEX_FILE, Index
from recorder.live import LiveHub

from appliance.config.model import ChannelConfig, Config, OnvifSource, RtspSource
from appliance.config.alarms import ALL_DAYS, AlarmInputConfig, parse_clock
from appliance.alarms.health_watch import HealthWatch, Limits
from appliance.alarms.webhooks import BoundedWorker, WebhookSender
from appliance.alarms.rules import Firing, PtzPresets, RuleEngine
from appliance.alarms.camera_events import CameraEvents
from appliance.onvif_cameras import OnvifCameras
from appliance.sound.output import TALK, AudioOutputs
from appliance.talk.session import TalkHub

log = logging.getLogger("nvr.alarm_io")

# FaultBoard kinds that are rule signals: kind -> (signal kind, signal key; None = the alarm's channel)
BOARD_SIGNALS: dict[str, tuple[str, str | None]] = {
    "disk_full": ("disk", "full"),
    "disk_error": ("disk", "error"),
    "disk_missing": ("disk", "missing"),
    "disk_offline": ("disk", "missing"),  # one of several recording disks is away, failed or foreign
    "disk_failing": ("disk", "failing"),
    "disk_hot": ("disk", "hot"),
    "disk_errors": ("disk", "errors"),
    "video_loss": ("video_loss", None),
    "temperature": ("temperature", "out_of_range"),
}


class AlarmIO:
    """Everything alarm-related of one running appliance. `gpio` (e.g. over gpiozero's MockFactory) and
    `ptz` are injected; without `gpio` the board's own is opened when the config has pins."""

    def __init__(self, config: Config, *, clocks: Clocks, index: Index, faults: FaultBoard, live: LiveHub,
                 data_root: Path | None = None, gpio: Gpio | None = None, ptz: PtzPresets | None = None,
                 tz: tzinfo | None = None, on_fired: Callable[[Firing], None] | None = None,
                 on_mount_change: Callable[[bool], None] | None = None, outputs: AudioOutputs | None = None,
                 talk: TalkHub | None = None, onvif: OnvifCameras | None = None,
                 on_disk_check: Callable[[], None] | None = None):
        """`on_mount_change(mounted)`: the recordings disk came or went (with `storage.require_mount`).
        `on_disk_check()`: called at each of the health watch's disk checks (every few seconds).
        `outputs`: the box's shared sound outputs (the appliance's; a private set when left out).
        `talk`: who talks where, shared with the web's push-to-talk, so a rule's sound on a camera's
        speaker never speaks over an operator (one of its own on `outputs` when left out).
        `onvif`: the ONVIF channels' connections, whose cameras' events become signals (camera_events)."""
        self.config, self._clocks, self._index, self._faults, self._live = config, clocks, index, faults, live
        self._on_mount_change, self._on_disk_check = on_mount_change, on_disk_check
        self._root, self._gpio, self._owns_gpio, self._tz = data_root, gpio, False, tz
        self.scheduler = Scheduler(clocks=clocks, name="alarms")
        self.webhooks = WebhookSender()
        self.ptz_worker = BoundedWorker(name="ptz-presets", max_jobs=16)
        outputs = outputs if outputs is not None else AudioOutputs()
        if talk is None:
            talk = TalkHub(playback=outputs.playback_by_device(name="talk", priority=TALK))
        self.sounds = _rule_sounds(config, outputs, talk, clocks)
        self.relays: dict[str, Relay] = {}
        self.contacts: dict[str, AlarmContact] = {}
        self.motion: dict = {}  # channel -> recorder.motion.MotionWatcher
        self.health: HealthWatch | None = None
        self._onvif = onvif
        self.camera_events: CameraEvents | None = None
        self._signal_sources: dict[tuple[str, str], set[str]] = {}  # (kind, key) -> its sources active now
        self.engine = RuleEngine(rules=config.rules, index=index, relays=self.relays, scheduler=self.scheduler,
                                 clocks=clocks, webhooks=self.webhooks, ptz=ptz, ptz_worker=self.ptz_worker,
                                 on_fired=on_fired, sounds=self.sounds)
        self._board_counts: dict[tuple[str, str, str | None], int] = {}
        self._unsubscribe: Callable[[], None] | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        closed = self._index.end_open_events(end_us=self._clocks.utc_now_us())  # left open by a crash
        if closed:
            log.warning("closed %d event(s) left open by the last run", closed)
        self.scheduler.start()
        self.webhooks.start()
        self.ptz_worker.start()
        self._start_sounds()
        self._open_pins()
        self._unsubscribe = self._faults.subscribe(self._board_changed)
        for alarm in self._faults.active():  # raised before we listened
            self._board_changed(alarm, True)
        self._start_motion()
        self._start_camera_events()
        self._start_health()

    def stop(self) -> None:
        """Stop every source of signals, end open events, put every output in its safe state (off)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.camera_events is not None:
            self.camera_events.stop()
        for watcher in self.motion.values():
            watcher.stop()
        if self.health is not None:
            self.health.stop()
        for contact in self.contacts.values():
            contact.close()
        self.scheduler.stop()
        self.engine.close_all()
        for relay in self.relays.values():
            relay.close()
        if self._owns_gpio and self._gpio is not None:
            self._gpio.close()
        self.webhooks.stop()
        self.ptz_worker.stop()
        if self.sounds is not None:
            self.sounds.close()

    def _start_sounds(self) -> None:
        """Decode every `play` file now (the config check proved them), so no alarm waits for a decode."""
        if self.sounds is None:
            return
        for error in self.sounds.preload():
            self._faults.raise_fault("audio_out_error", error)
        self.sounds.start()

    # --- GPIO ----------------------------------------------------------------------------------

    def _open_pins(self) -> None:
        section = self.config.alarms
        if not section.inputs and not section.outputs:
            return
        if self._gpio is None:
            try:
                self._gpio = open_gpio(section.gpio, default_chip=section.gpio_chip)
                self._owns_gpio = True
            except GpioError as exc:
                self._faults.raise_fault("gpio_error", f"no GPIO for the alarm inputs and outputs: {exc}")
                return
        for output in section.outputs:
            self._guard(f"output {output.id}", self._open_output, output)
        for item in section.inputs:
            self._guard(f"input {item.id}", self._open_input, item)

    def _guard(self, what: str, fn: Callable, *args) -> None:
        try:
            fn(*args)
        except GpioError as exc:
            self._faults.raise_fault("gpio_error", f"{what}: {exc}")

    def _open_output(self, output) -> None:
        pin = self._gpio.output(output.pin, active_high=output.active_high, initial_active=False)
        self.relays[output.id] = Relay(id=output.id, pin=pin, mode=output.mode, pulse_s=output.pulse_s,
                                       scheduler=self.scheduler, clocks=self._clocks)

    def _open_input(self, item: AlarmInputConfig) -> None:
        pin = self._gpio.input(item.pin, pull_up=True)
        self.contacts[item.id] = AlarmContact(
            id=item.id, name=item.name or item.id, pin=pin, contact=item.contact, debounce_ms=item.debounce_ms,
            clocks=self._clocks, scheduler=self.scheduler, on_change=self._contact_changed,
            schedule=schedule_from_config(item, tz=self._tz))

    def _contact_changed(self, contact: AlarmContact, active: bool, at_us: int) -> None:
        self.engine.signal("alarm_input", contact.id, active, at_us=at_us, detail=contact.name)

    def trigger_output(self, output_id: str, for_s: float | None = None) -> None:
        """Manual trigger (web page, CLI): as a rule would, with the output's own mode."""
        self._relay(output_id).trigger(for_s)

    def clear_output(self, output_id: str) -> None:
        """Manual reset: off now (also ends a latched output)."""
        self._relay(output_id).clear()

    def set_armed(self, input_id: str, armed: bool) -> None:
        """Arm or disarm an input by hand (on top of its schedule); an alarm already reported goes on to its end."""
        if input_id not in self.contacts:
            raise KeyError(f"no alarm input {input_id!r}; configured: {', '.join(self.contacts) or 'none'}")
        self.contacts[input_id].armed = armed
        log.warning("input %s %s by hand", input_id, "armed" if armed else "disarmed")

    def set_schedule(self, input_id: str, follow: bool) -> None:
        """Make an input follow its arming schedule (the default) or set the schedule aside: armed at all
        hours while it is armed by hand. As a DVR's "arming schedule" switch per input."""
        if input_id not in self.contacts:
            raise KeyError(f"no alarm input {input_id!r}; configured: {', '.join(self.contacts) or 'none'}")
        self.contacts[input_id].follows_schedule = follow
        log.warning("input %s %s", input_id, "follows its schedule again" if follow else "armed at all hours by hand")

    def record_event(self, channel: int, *, duration_s: float, pre_s: float = 0.0, source: str = "manual") -> None:
        """A manual event recording: an event on `channel` from `pre_s` ago to `duration_s` from now, its
        segments locked like a rule's. Made on the alarm thread; returns at once."""
        self.scheduler.call_soon(self._record_event, channel, duration_s, pre_s, source,
                                 self._clocks.utc_now_us())

    def _record_event(self, channel: int, duration_s: float, pre_s: float, source: str, at_us: int) -> None:
        event = self._index.add_event(start_us=at_us - round(pre_s * 1e6), trigger_us=at_us, source=source,
                                      channels=[channel], locked=True)
        end_us = at_us + round(duration_s * 1e6)
        self.scheduler.call_later(duration_s, lambda: self._index.end_event(event.id, end_us=end_us))

    def _relay(self, output_id: str) -> Relay:
        if output_id not in self.relays:
            raise KeyError(f"no alarm output {output_id!r}; configured: {', '.join(self.relays) or 'none'}")
        return self.relays[output_id]

    # --- signals from the FaultBoard -----------------------------------------------------------

    def _board_changed(self, alarm: Fault, active: bool) -> None:
        """On the raiser's thread (a recorder, retention): hand over at once."""
        if alarm.kind in BOARD_SIGNALS:
            self.scheduler.call_soon(self._board_signal, alarm, active)

    def _board_signal(self, alarm: Fault, active: bool) -> None:
        """Board alarms to rule signals, on the scheduler thread. Each recording disk's alarm is its own
        source of the signal (a second disk failing fires the rules again); the alarms of one disk, or of
        none, that stand for one signal (disk_error per channel) count as one: active while any is."""
        kind, key = BOARD_SIGNALS[alarm.kind]
        key = key if key is not None else str(alarm.channel)
        counted = (kind, key, alarm.disk)
        count = self._board_counts.get(counted, 0) + (1 if active else -1)
        self._board_counts[counted] = max(0, count)
        if (active and count == 1) or (not active and count == 0):
            at_us = alarm.since_us if active else self._clocks.utc_now_us()
            self.engine.signal(kind, key, active, at_us=at_us, detail=alarm.message, disk=alarm.disk)

    # --- motion and health ---------------------------------------------------------------------

    def _start_motion(self) -> None:
        for channel in self.config.channels:
            if channel.enabled and channel.motion is not None and channel.motion.enabled:
                watcher = self._motion_watcher(channel)
                watcher.start()
                self.motion[channel.id] = watcher

    def _motion_watcher(self, channel: ChannelConfig):
        from recorder.motion import MotionDetector, MotionWatcher  # OpenCV only where motion is configured
        motion = channel.motion
        detector = MotionDetector(zones=[z.points for z in motion.zones], masks=[m.points for m in motion.masks],
                                  sensitivity=motion.sensitivity)
        if isinstance(channel.source, (RtspSource, OnvifSource)):
            has_sub = getattr(channel.source, "sub_url", None) or getattr(channel.source, "sub_profile", None)
            stream, source = ("sub" if has_sub else "main"), "packets"
            if stream == "main":
                log.warning("channel %d: no sub stream; motion detection decodes the main stream", channel.id)
        else:
            stream, source = "main", "frames"  # analog: the raw frames before encoding
        return MotionWatcher(channel=channel.id, live=self._live.stream(channel.id, stream), detector=detector,
                             clocks=self._clocks, on_motion=self._motion_changed, fps=motion.fps,
                             hold_s=motion.hold_s, source=source)

    def _motion_changed(self, channel: int, active: bool, at_us: int, score: float) -> None:
        self.scheduler.call_soon(self._source_changed, "motion", str(channel), "box", active, at_us,
                                 f"score {score:.4f}")

    # --- camera events (ONVIF) -----------------------------------------------------------------

    def _start_camera_events(self) -> None:
        if self._onvif is None or not self._onvif.channels():
            return
        self.camera_events = CameraEvents(self._onvif, on_change=self._camera_changed, clocks=self._clocks,
                                          faults=self._faults)
        self.camera_events.start()

    def _camera_changed(self, kind: str, key: str, source: str, active: bool, detail: str) -> None:
        """On the ONVIF loop thread: stamp the arrival and hand over at once."""
        self.scheduler.call_soon(self._source_changed, kind, key, source, active, self._clocks.utc_now_us(), detail)

    def _source_changed(self, kind: str, key: str, source: str, active: bool, at_us: int, detail: str) -> None:
        """On the scheduler thread. A signal fed by several sources (the box's motion detection and the
        camera's, a camera's several rules) is active while any of them is: only its edges reach the rules."""
        sources = self._signal_sources.setdefault((kind, key), set())
        was = bool(sources)
        if active:
            sources.add(source)
        else:
            sources.discard(source)
        if bool(sources) != was:
            self.engine.signal(kind, key, not was, at_us=at_us, detail=detail)

    def _start_health(self) -> None:
        temperature = self.config.alarms.temperature
        soc = [ThermalZones(root=temperature.thermal_root).read] if temperature.thermal_zones else []
        ambient = [Sht3x(bus=temperature.sht3x.bus, address=temperature.sht3x.address, clocks=self._clocks).read]\
            if temperature.sht3x is not None else []
        limits = Limits(min_c=temperature.min_c, max_c=temperature.max_c, max_soc_c=temperature.max_soc_c,
                        min_rh=temperature.min_rh, max_rh=temperature.max_rh, hysteresis=temperature.hysteresis)
        self.health = HealthWatch(faults=self._faults, limits=limits, interval_s=temperature.interval_s,
                                  soc_sensors=soc, ambient_sensors=ambient, data_root=self._root,
                                  index_file=INDEX_FILE, on_mount_change=self._on_mount_change,
                                  mount_point=self._index_mount_point(), on_disk_check=self._on_disk_check)
        self.health.start()

    def _index_mount_point(self) -> Path | None:
        """The folder whose mount the health watch follows: storage.path under storage.require_mount, unless
        storage.disks are listed (then each disk's mount is the disk set's business and storage.path, which
        keeps only the index, may be any folder)."""
        storage = self.config.storage
        return storage.path if storage.require_mount and not storage.disks else None

    def statistics(self) -> dict:
        return {
            "gpio": getattr(self._gpio, "backend", None),
            "inputs": [contact.statistics() for contact in self.contacts.values()],
            "outputs": [relay.statistics() for relay in self.relays.values()],
            "motion": [watcher.statistics() for watcher in self.motion.values()],
            "rules": self.engine.statistics(), "scheduler": self.scheduler.statistics(),
            "webhooks": self.webhooks.statistics(), "ptz": self.ptz_worker.statistics(),
            "sounds": self.sounds.statistics() if self.sounds is not None else None,
            "health": self.health.statistics() if self.health else None,
            "camera_events": self.camera_events.statistics() if self.camera_events else None,
        }


def play_files(config: Config) -> list[str]:
    """The sound files of the enabled rules' `play` actions, each once."""
    files = [action.play.file for rule in config.rules if rule.enabled for action in rule.do if action.play is not None]
    return list(dict.fromkeys(files))


def _rule_sounds(config: Config, outputs: AudioOutputs, talk: TalkHub, clocks: Clocks):
    """The rules' sound players (AUDIO OUT, cameras' speakers) when a rule plays a sound; else None."""
    if not play_files(config):
        return None
    from appliance.sound.rule_sounds import RuleSounds  # PyAV's decoders load only for a config with sounds

    return RuleSounds(config, outputs=outputs, talk=talk, clocks=clocks)


def schedule_from_config(item: AlarmInputConfig, *, tz: tzinfo | None = None) -> Schedule:
    windows = [ArmingWindow(frozenset(ALL_DAYS.index(day) for day in window.days), parse_clock(window.start),
                            parse_clock(window.end)) for window in item.schedule]
    return Schedule(windows, tz=tz)
