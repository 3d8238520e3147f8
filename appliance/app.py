"""The running appliance: the one object that builds, starts and stops every part of `nvr run`.

`nvr run`, the tests and the benchmarks all assemble the appliance through `Appliance`. Its parts
start in this order, and `stop()` stops them in the reverse order:

1. recorder (`Supervisor`): locks the data root, opens the index, runs recovery and retention, starts
   every enabled channel. Another process on the data root raises `DataRootBusy`: nothing started.
2. ONVIF connections, when a channel has an ONVIF endpoint: the asyncio loop thread on which the
   cameras' PTZ and events are spoken (`appliance.onvif_cameras`); cameras connect on first use.
   PTZ service: the RS-485 buses and the ONVIF cameras' PTZ, which linkage rules and the monitor
   steer domes through.
3. alarm I/O: contacts and relays, motion and health watches, the rule engine (it needs the index,
   the fault board, the live taps and PTZ). Its health watch reports the recordings disk coming or
   going under `storage.require_mount`: the appliance then sets `disk_changed` and `stop_requested`,
   and `nvr run` exits to be started again on (or off) the disk.
   Its alarm sounds (rules' `play`) go to the AUDIO OUT through the appliance's shared sound outputs
   (`audio_outputs`: one player per ALSA device, whoever plays on it: monitor, alarms, talk, intercom).
3b. LINE IN intercom, when `line_in.device` is set: its thread, idle until someone holds it open.
4. MQTT, when `mqtt.enabled`: the broker connection, Home Assistant discovery, the alarm side's
   changes on the bus and the allow-listed commands (appliance/mqtt/). It never waits for the broker:
   one that is down or refuses us shows in the health page while everything else runs.
   Then the RTSP server, when `rtsp_server.enabled` (appliance/rtsp_server/): an engine process serving
   the live taps to the web users; if it cannot start, that is logged and recording goes on. Then the
   ONVIF service and WS-Discovery, when `onvif_server.enabled` (appliance/onvif_server/), likewise.
5. HDMI monitor, when `monitor.enabled`: a thread of its own. If it cannot even be built or started,
   that is logged and recording goes on without it.
6. web server, when `listen` is given: serves the app built at construction.
7. systemd: READY=1 and the watchdog loop (nothing outside systemd).

Stopping: systemd hears STOPPING=1 and the watchdog ends; the web server stops (new connections are
refused); the monitor; MQTT (queued messages sent for up to 2 s, `offline` published, a clean
disconnect); alarm I/O (outputs back to their safe state, open events ended, the cameras' event
subscriptions ended); PTZ; the ONVIF connections; the
recorder (every open segment closed and indexed, the index closed, the data root released); last the
web's own stores (users, exports, its reader connection). A failure while starting one part stops
that part and the parts already started, in reverse, and is raised.

Built at construction, before anything runs: the supervisor, the PTZ service, and the web app with
its server, because importing and building FastAPI and uvicorn costs CPU that the first frames of
every channel need.

The Appliance meets the narrow views its faces need: `appliance.web.views.ApplianceView` for the
web routes and `appliance.monitor.MonitorSources` for the wall; neither sees the supervisor.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from base.clock import Clocks
from hal.audio_out import AudioPlayback, make_audio_playback
from hal.gpio import Gpio
from recorder.faults import FaultBoard
from recorder.index import Index, Segment
from recorder.live import LiveHub

from appliance.alarms.io import AlarmIO
from appliance.alarms.rules import PtzPresets
from appliance.config.model import Config
from appliance.config.talk import play_target
from appliance.ptz.service import PtzService
from appliance.onvif_cameras import Connector, OnvifCameras, connect_endpoint
from appliance.sound.output import TALK, AudioOutputs
from appliance.supervisor import DataRootBusy, SourceFactory, Supervisor
from appliance.systemd import ServiceIntegration, start_service_integration
from appliance.talk.camera_urls import CameraUrls
from appliance.talk.session import TalkHub
from appliance.web.views import StreamState

if TYPE_CHECKING:  # the web's modules (FastAPI, uvicorn) load only when the appliance serves the web
    from fastapi import FastAPI

    from appliance.web.app import WebContext
    from appliance.web.server import WebServer
    from appliance.web.users import UserStore

__all__ = ["Appliance", "DataRootBusy"]

log = logging.getLogger("nvr")


@dataclass(frozen=True)
class _Part:
    name: str
    start: Callable[[], None]
    stop: Callable[[], None]


INTERCOM_TALKER = "intercom (LINE IN)"  # the intercom's name where it holds a camera's speaker (busy messages)


class Appliance:
    """Every running part of one appliance, started and stopped in the order of the module docstring.

    `listen` (host, port): where the web server serves; None runs no web server (tests of recording,
    alarms or the monitor). `sources`, `sync`, `gpio` and `ptz_presets` are injected for tests and
    benchmarks (see `Supervisor` and `AlarmIO`); `environ` is where systemd's variables are read;
    `onvif_connect` connects an ONVIF channel's camera (see `appliance.onvif_cameras`).
    `stop_requested` ends `wait()`: a signal handler sets it, and so does the appliance when the
    recordings disk comes or goes.
    """

    def __init__(self, config: Config, *, clocks: Clocks, listen: tuple[str, int] | None = None,
                 tls_cert: Path | None = None, tls_key: Path | None = None, users: UserStore | None = None,
                 sources: SourceFactory | None = None, sync: bool = True, gpio: Gpio | None = None,
                 ptz_presets: PtzPresets | None = None, environ: Mapping[str, str] = os.environ,
                 stop_requested: threading.Event | None = None,
                 audio_playback: Callable[[str], AudioPlayback] = make_audio_playback,
                 onvif_connect: Connector = connect_endpoint):
        """`audio_playback` opens a sound output by its ALSA name (tests: a simulated speaker)."""
        self.clocks = clocks
        self.audio_outputs = AudioOutputs(playback=audio_playback)
        # Who talks where: the web's push-to-talk, the rules' camera-speaker sounds and the intercom share it.
        # Its AUDIO OUT is a TALK source on the shared outputs: talk interrupts alarm sounds and the monitor's.
        self.talk = TalkHub(playback=self.audio_outputs.playback_by_device(name="talk", priority=TALK))
        self.intercom = _intercom(config, self.audio_outputs, self.talk, clocks)
        self.supervisor = Supervisor(config, clocks=clocks, sources=sources, sync=sync)
        # An ONVIF camera's speaker is dialled at the RTSP URL its recorder learnt (or the camera names).
        self.talk.camera_url = CameraUrls(lambda: self.supervisor.config, learnt=self.supervisor.learnt_stream_url)
        self.onvif_cameras = OnvifCameras(config, connect=onvif_connect)  # PTZ and events of ONVIF cameras
        self.ptz: PtzService = PtzService(config, clocks=clocks, faults=self.supervisor.faults,
                                          onvif=self.onvif_cameras)
        self.alarm_io: AlarmIO | None = None
        self.monitor = None  # appliance.monitor.Monitor while it runs
        self.mqtt = None  # appliance.mqtt.service.MqttService while it runs
        self._mqtt_error: str | None = None
        self.rtsp_server = None  # appliance.rtsp_server.service.RtspServerService while it runs
        self.onvif_server = None  # appliance.onvif_server.service.OnvifServer while it runs
        self.service: ServiceIntegration | None = None
        self.stop_requested = stop_requested or threading.Event()
        self.disk_changed = threading.Event()
        self._gpio, self._ptz_presets, self._environ = gpio, ptz_presets, environ
        self.web_context: WebContext | None = None
        self.web_app: FastAPI | None = None  # the web UI and REST API, when listening
        self.web_server: WebServer | None = None
        if listen is not None:
            self._build_web(listen, tls_cert, tls_key, users)
        self._parts = [
            _Part("recorder", self.supervisor.start, self.supervisor.stop),
            *([_Part("ONVIF connections", self.onvif_cameras.start, self.onvif_cameras.stop)]
              if self.onvif_cameras.endpoints else []),
            _Part("PTZ service", self.ptz.start, self.ptz.shutdown),
            _Part("alarm I/O", self._start_alarm_io, self._stop_alarm_io),
            *([_Part("intercom", self.intercom.start, self.intercom.close)] if self.intercom is not None else []),
            *([_Part("MQTT", self._start_mqtt, self._stop_mqtt)] if config.mqtt.enabled else []),
            *([_Part("RTSP server", self._start_rtsp_server, self._stop_rtsp_server)]
              if config.rtsp_server.enabled else []),
            *([_Part("ONVIF service", self._start_onvif, self._stop_onvif)] if config.onvif_server.enabled else []),
            *([_Part("monitor", self._start_monitor, self._stop_monitor)] if config.monitor.enabled else []),
            *([_Part("web server", self._start_web, self._stop_web)] if self.web_server is not None else []),
            _Part("systemd integration", self._start_service, self._stop_service),
        ]
        self._started: list[_Part] = []

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start every part in order; returns once all run. If one fails, it and the parts already
        started are stopped (in reverse; the failing one may have started threads before it failed)
        and the error is raised."""
        for part in self._parts:
            self._started.append(part)
            try:
                part.start()
            except BaseException:
                log.error("starting the %s failed: stopping it and the parts already started", part.name)
                self.stop()
                raise
            log.debug("started the %s", part.name)

    def stop(self) -> None:
        """Stop every started part in reverse order, then close the web's stores. One part failing to
        stop is logged and the others still stop. Safe to call twice."""
        while self._started:
            part = self._started.pop()
            try:
                part.stop()
            except Exception:
                log.exception("stopping the %s failed; stopping the rest", part.name)
                continue
            log.debug("stopped the %s", part.name)
        if self.web_context is not None:
            self.web_context.close()
            self.web_context = None

    def request_stop(self) -> None:
        """Make `wait()` return (from any thread or a signal handler)."""
        self.stop_requested.set()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until a stop is requested (or `timeout_s` passes); True if one was."""
        return self.stop_requested.wait(timeout_s)

    @property
    def running(self) -> list[str]:
        """The parts started, in order (empty before `start` and after `stop`)."""
        return [part.name for part in self._started]

    # --- the parts ------------------------------------------------------------------------------

    def _start_alarm_io(self) -> None:
        s = self.supervisor
        self.alarm_io = AlarmIO(s.config, clocks=self.clocks, index=s.index, faults=s.faults, live=s.live,
                                data_root=s.root, gpio=self._gpio,
                                ptz=self._ptz_presets if self._ptz_presets is not None else self.ptz,
                                on_mount_change=self._mount_changed, on_disk_check=s.recheck_disk_writes,
                                outputs=self.audio_outputs, talk=self.talk,
                                onvif=self.onvif_cameras)
        self.alarm_io.start()

    def _stop_alarm_io(self) -> None:
        if self.alarm_io is not None:
            self.alarm_io.stop()

    def _mount_changed(self, mounted: bool) -> None:
        """Restart when the recordings disk is there while we record nothing (it came, perhaps between
        the supervisor's check at construction and the health watch's first), or gone while we record
        onto it: start afresh rather than switch a running recorder's storage."""
        if mounted == self.supervisor.disk_absent:
            log.warning("the recordings disk was %s on %s: restarting to %s", "mounted" if mounted else "unmounted",
                        self.config.storage.path, "record onto it" if mounted else "stop writing where it was")
            self.disk_changed.set()
            self.stop_requested.set()

    def _start_mqtt(self) -> None:
        from appliance.mqtt.box import ApplianceBox  # paho loads only when MQTT is on
        from appliance.mqtt.service import MqttService
        try:
            service = MqttService(ApplianceBox(self, disk_absent=lambda: self.supervisor.disk_absent), clocks=self.clocks)
            service.start()
        except Exception as exc:  # a TLS file that cannot be read, ...: recording and alarms go on without MQTT
            log.exception("MQTT could not be started; the appliance runs without it")
            self._mqtt_error = f"MQTT could not be started: {exc}"
            return
        self.mqtt = service

    def _stop_mqtt(self) -> None:
        if self.mqtt is not None:
            self.mqtt.stop()
            self.mqtt = None

    def _start_rtsp_server(self) -> None:
        from appliance.rtsp_server.service import RtspServerService
        if self.users is None:
            log.error("the RTSP server needs the web's users (a web listen address); it is not started")
            return
        try:
            service = RtspServerService(self.config, live=self.live, users=self.users)
            service.start()
        except Exception:  # RtspServerError, or anything else: recording goes on without it
            log.exception("the RTSP server could not be started; the appliance runs without it")
            return
        self.rtsp_server = service

    def _stop_rtsp_server(self) -> None:
        if self.rtsp_server is not None:
            self.rtsp_server.stop()
            self.rtsp_server = None

    def _start_onvif(self) -> None:
        from appliance.onvif_server.service import OnvifServer
        if self.rtsp_server is None:
            log.error("the ONVIF service hands out the RTSP server's URIs, and it is not running; not started")
            return
        try:
            server = OnvifServer(self.config, live=self.live, users=self.users, rtsp_port=self.rtsp_server.port,
                                 clocks=self.clocks)
            server.start()
        except Exception:  # the port is taken, ...: recording goes on without it
            log.exception("the ONVIF service could not be started; the appliance runs without it")
            return
        self.onvif_server = server

    def _stop_onvif(self) -> None:
        if self.onvif_server is not None:
            self.onvif_server.stop()
            self.onvif_server = None

    def _start_monitor(self) -> None:
        try:
            from appliance.monitor import build_monitor  # the wall's code loads only when wanted
            monitor = build_monitor(self)
            monitor.start()  # its own thread; a missing or failing screen never reaches recording
        except Exception:  # not even a broken monitor build may stop recording
            log.exception("the local monitor could not be started; recording goes on without it")
            return
        self.monitor = monitor

    def _stop_monitor(self) -> None:
        if self.monitor is not None:
            self.monitor.stop()

    def _build_web(self, listen: tuple[str, int], tls_cert: Path | None, tls_key: Path | None,
                   users: UserStore | None) -> None:
        from appliance.web.app import build_app
        from appliance.web.server import WebServer, web_context

        host, port = listen
        self.web_context = web_context(self, users=users, listen_host=host)  # with self.talk
        self.web_app = build_app(self.web_context)
        self.web_server = WebServer(self.web_app, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key)

    def _start_web(self) -> None:
        self.web_server.start()
        log.info("web UI on %s (config: %s)", self.web_server.address, self.config.source_name)
        if not self.web_context.users.has_users():
            log.warning("no web user yet: open %s to set the administrator's password (or use `nvr user add`)",
                        self.web_server.address)

    def _stop_web(self) -> None:
        self.web_server.stop()

    def _start_service(self) -> None:
        self.service = start_service_integration(self.supervisor, self._environ)

    def _stop_service(self) -> None:
        if self.service is not None:
            self.service.stop()

    # --- what the web routes and the monitor see (web.views.ApplianceView, monitor.MonitorSources) ---

    @property
    def config(self) -> Config:
        """The running config (the config page may replace it with changed channels)."""
        return self.supervisor.config

    @property
    def root(self) -> Path:
        return self.supervisor.root

    @property
    def live(self) -> LiveHub:
        return self.supervisor.live

    @property
    def faults(self) -> FaultBoard:
        """The fault board: disk, source, video loss, clock, temperature faults and manual alarms."""
        return self.supervisor.faults

    @property
    def index(self) -> Index | None:
        """The recorder's index connection, None before the recorder started."""
        return self.supervisor.index

    @property
    def users(self) -> UserStore | None:
        return self.web_context.users if self.web_context is not None else None

    @property
    def url(self) -> str | None:
        """The web server's address, e.g. http://127.0.0.1:8080/; None without a web server."""
        return self.web_server.address if self.web_server is not None else None

    def streams(self) -> list[StreamState]:
        return [StreamState(r.segmenter.channel, r.segmenter.stream, r.connected) for r in list(self.supervisor.recorders)]

    def eject_disk(self, label: str) -> dict:
        """Eject a recording disk safely (the supervisor's `eject_disk`)."""
        return self.supervisor.eject_disk(label)

    def open_segments(self, *, channel: int | None = None, stream: str | None = None) -> list[Segment]:
        rows = []
        for recorder in list(self.supervisor.recorders):
            segmenter = recorder.segmenter
            if (channel is None or segmenter.channel == channel) and (stream is None or segmenter.stream == stream):
                row = segmenter.open_segment_row() if hasattr(segmenter, "open_segment_row") else None
                if row is not None:
                    rows.append(row)
        return rows

    def restart_channels(self, config: Config, channel_ids: list[int]) -> list[int]:
        """See `Supervisor.restart_channels`: only the changed channels restart; the RTSP and ONVIF
        servers then serve the new channel list."""
        started = self.supervisor.restart_channels(config, channel_ids)
        if self.rtsp_server is not None:
            self.rtsp_server.update(config)
        if self.onvif_server is not None:
            self.onvif_server.device.config = config
        return started

    def status(self, *, index: Index | None = None) -> dict:
        """Everything the health page shows, as plain data: the recorder's status plus PTZ, alarm I/O,
        the monitor, MQTT and the RTSP/ONVIF servers. `index`: a reader connection to count through (the web's)."""
        return {**self.supervisor.status(index=index), "ptz": self.ptz.statistics(),
                "alarm_io": self.alarm_io.statistics() if self.alarm_io else None,
                "monitor": self.monitor.statistics() if self.monitor else None,
                "sound": {"outputs": self.audio_outputs.statistics(),
                          "intercom": self.intercom.statistics() if self.intercom else None},
                "mqtt": self.mqtt.statistics() if self.mqtt else
                ({"connected": False, "last_error": self._mqtt_error} if self._mqtt_error else None),
                "rtsp_server": self.rtsp_server.statistics() if self.rtsp_server else None,
                "onvif_server": self.onvif_server.statistics() if self.onvif_server else None}


def _intercom(config: Config, outputs: AudioOutputs, talk: TalkHub, clocks: Clocks):
    """The LINE IN intercom when the config has a LINE IN, heard where `line_in.channel` says: the AUDIO OUT,
    or that channel's talk output (its camera's speaker, held in `talk` as push-to-talk is). The config
    check saw that the output exists."""
    line_in = config.line_in
    kind, where = play_target(line_in.channel, config)
    if line_in.device is None or where is None:
        return None
    from appliance.sound.intercom import Intercom
    from hal.audio import make_audio_capture

    def microphone():
        return make_audio_capture(line_in.device, sample_rate=line_in.sample_rate, channels=line_in.channels,
                                  clocks=clocks)

    if kind != "camera":
        return Intercom(microphone=microphone, speaker=outputs.speaker(where, name="intercom", priority=TALK),
                        clocks=clocks, output=f"the AUDIO OUT {where}")
    from appliance.talk.camera_playback import CameraSpeakerPlayback
    from appliance.talk.sinks import TALK_RATE

    channel, output = line_in.channel, ("camera", where)

    def busy() -> str | None:
        holder = talk.holder(output)
        return holder.user if holder is not None and holder.user != INTERCOM_TALKER else None

    # One speaker for every hold: held again while the last hold's sound plays out, it goes on in that
    # session (appliance.talk.camera_playback) rather than finding the camera busy with itself.
    speaker = CameraSpeakerPlayback(where, hub=talk, channel=channel, clocks=clocks, name=INTERCOM_TALKER)
    return Intercom(microphone=microphone, clocks=clocks, speaker_format=(TALK_RATE, 1), busy=busy,
                    speaker=lambda: speaker, output=f"channel {channel}'s camera speaker")
