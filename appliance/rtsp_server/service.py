"""RtspServerService: runs the RTSP engine process and feeds it the live taps' packets, one thread per watched stream.

    service = RtspServerService(config, live=hub, users=store); service.start(); ...; service.stop()

The engine (gst_engine.py under the system Python, which has GStreamer's bindings) says `WANT /ch1/main`
when a stream gets its first viewer; a feeder then subscribes to that stream's live tap and writes its
access units to the engine's stdin until `DROP`. Feeding never slows recording: a subscription is a
bounded queue that skips to the next keyframe when the engine falls behind (`recorder.live`).
Access units go out as Annex B with the stream's SPS/PPS in front of every keyframe, so a viewer can
start at any keyframe; the slices are the bytes the recorder writes to disk. A stream with AAC sound
(recorded as such, or G.711 already transcoded once by the recorder) also gets its AAC frames, and the
engine is told (INFO, checked every INFO_CHECK_S) so new viewers get a sound track.
The user list (name, HA1) is sent at start and again whenever it changes (checked every USERS_CHECK_S).
If the engine dies it is started again after RESTART_DELAYS_S; its stderr goes to the log.

Errors: RtspServerError (an OSError: the engine process cannot be started or does not listen).
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import threading
from fractions import Fraction
from pathlib import Path

from appliance.config.model import Config
from appliance.rtsp_server import wire
from appliance.rtsp_server.mounts import mounts
from appliance.web.users import DIGEST_REALM, UserStore
from recorder.aac import AacError, split_adts
from base.h264 import ANNEX_B, H264Error, parameter_sets, split_length_prefixed, stream_framing, to_mp4_sample
from base.media import EncodedPacket, StreamInfo
from recorder.live import LiveHub, RunStarted

log = logging.getLogger("nvr.rtsp_server")

SYSTEM_PYTHON = "/usr/bin/python3"  # has python3-gi; the appliance's virtualenv has not
ENGINE_SCRIPT = Path(__file__).with_name("gst_engine.py")
READY_TIMEOUT_S = 20.0
USERS_CHECK_S = 1.0  # a user added or changed on the web can use RTSP within this (one small query)
INFO_CHECK_S = 1.0  # how soon a stream's sound (AAC) reaches new viewers after it appears
RESTART_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0)
STOP_WAIT_S = 3.0  # for the engine to end after its stdin closes, then after SIGTERM
SUBSCRIPTION_ITEMS = 128  # access units a feeder may fall behind before it skips to the next keyframe
START_CODE = b"\x00\x00\x00\x01"


class RtspServerError(OSError):
    """The RTSP engine cannot run: GStreamer's RTSP server is missing, or the port is taken."""


def annexb_unit(packet: EncodedPacket, length_size: int, sps: bytes | None, pps: bytes | None) -> tuple[bytes, bytes | None, bytes | None]:
    """(Annex B access unit, sps, pps): the packet's slices with start codes, with the latest parameter
    sets in front when it is a keyframe. The parameter sets it carries itself replace the ones known."""
    unit = to_mp4_sample(packet.data, length_size)
    sps, pps = unit.sps or sps, unit.pps or pps
    nals = split_length_prefixed(unit.sample, 4) if unit.sample else []
    if (packet.keyframe or unit.idr) and sps and pps:
        nals = [sps, pps, *nals]
    return b"".join(START_CODE + nal for nal in nals), sps, pps


def aac_of(info: StreamInfo | None) -> dict | None:
    """What the engine needs to give viewers a stream's sound: AAC with its AudioSpecificConfig, else None."""
    audio = info.audio if info is not None else None
    if audio is None or audio.codec != "aac" or not audio.extradata:
        return None
    return {"asc": audio.extradata.hex(), "rate": audio.sample_rate, "channels": audio.channels}


class _Feeder:
    """One stream's packets to the engine while it has viewers."""

    def __init__(self, service: RtspServerService, index: int, channel: int, stream: str):
        self._service, self._index = service, index
        self._subscription = service.live.stream(channel, stream).subscribe(max_items=SUBSCRIPTION_ITEMS)
        self._stop = threading.Event()
        self.sent = self.bad = 0
        self._thread = threading.Thread(target=self._run, name=f"rtsp feed ch{channel} {stream}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._subscription.close()

    @property
    def dropped(self) -> int:
        return self._subscription.dropped

    def _run(self) -> None:
        length_size, sps, pps, scale = ANNEX_B, None, None, Fraction(1, 90_000)
        audio_scale: Fraction | None = None
        while not self._stop.is_set():
            item = self._subscription.get(timeout_s=0.5)
            if isinstance(item, RunStarted):
                length_size, sps, pps, scale = self._start_run(item.info)
                audio_scale = Fraction(item.info.audio.time_base) if aac_of(item.info) else None
            elif isinstance(item, EncodedPacket) and item.track == "audio" and audio_scale is not None:
                self._send_audio(item, audio_scale)
            elif isinstance(item, EncodedPacket) and item.track == "video":
                try:
                    data, sps, pps = annexb_unit(item, length_size, sps, pps)
                except H264Error as exc:
                    self.bad += 1
                    log.debug("skipping a malformed access unit: %s", exc)
                    continue
                cto_ns = int((item.pts - item.dts) * scale * 1_000_000_000)
                if data and self._service._send(wire.video_frame(self._index, int(item.dts * scale * 1_000_000_000),
                                                                 cto_ns, item.keyframe, data)):
                    self.sent += 1

    def _send_audio(self, packet: EncodedPacket, scale: Fraction) -> None:
        try:
            adts = split_adts(packet.data)
        except AacError:
            self.bad += 1
            return
        data = packet.data if adts is None else adts[0]
        self._service._send(wire.audio_frame(self._index, int(packet.pts * scale * 1_000_000_000), data))

    def _start_run(self, info: StreamInfo) -> tuple[int, bytes | None, bytes | None, Fraction]:
        try:
            sps, pps = parameter_sets(info.extradata)
            return stream_framing(info.extradata), sps, pps, Fraction(info.time_base)
        except H264Error:
            self.bad += 1
            return ANNEX_B, None, None, Fraction(info.time_base)


class RtspServerService:
    """The engine process, the mounts of `config`'s channels, and a feeder per watched mount."""

    def __init__(self, config: Config, *, live: LiveHub, users: UserStore, python: str = SYSTEM_PYTHON):
        self.live, self._users, self._python = live, users, python
        self._listen = config.rtsp_server.listen
        self._lock = threading.Lock()
        self._mounts: dict[str, tuple[int, int, str]] = {}  # path -> (index on the wire, channel, stream)
        self._paths: list[str] = []  # by wire index; a removed mount leaves "" so indexes never change meaning
        self._set_mounts(config)
        self._write_lock = threading.Lock()
        self._feeders: dict[str, _Feeder] = {}
        self._process: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._sent_users: list | None = None
        self._sent_info: dict[int, dict | None] = {}  # mount index -> the sound track last told to the engine
        self.port: int | None = None
        self.restarts = 0
        self.last_error: str | None = None

    def start(self) -> None:
        """Start the engine and wait until it listens; RtspServerError if it cannot."""
        if not os.access(self._python, os.X_OK):
            raise RtspServerError(f"{self._python} not found: the RTSP server needs Debian's python3-gi and "
                                  "gir1.2-gst-rtsp-server-1.0")
        self._spawn()
        threading.Thread(target=self._watch_users, name="rtsp users", daemon=True).start()
        threading.Thread(target=self._watch_streams, name="rtsp streams", daemon=True).start()

    def _spawn(self) -> None:
        host, _, port = self._listen.rpartition(":")
        listen = f"{host}:{self.port if self.port else port}"  # a restart keeps the port it had
        process = subprocess.Popen([self._python, str(ENGINE_SCRIPT), "--listen", listen], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        line = self._ready_line(process)
        if not line.startswith("READY "):
            process.kill()
            process.wait()
            why = line.removeprefix("ERROR ") or process.stderr.read(2000).decode(errors="replace").strip()
            raise RtspServerError(f"the RTSP server did not start on {listen}: {why}")
        self.port = int(line.split()[1])
        self._process, self._sent_users, self._sent_info = process, None, {}
        self._send_mounts()
        self._send_info()
        self._send_users()
        if not self._ready_line(process).startswith("USERS "):  # so no viewer is refused for want of the list
            process.kill()
            process.wait()
            raise RtspServerError(f"the RTSP server on {listen} did not take its user list")
        threading.Thread(target=self._read_events, args=(process,), name="rtsp events", daemon=True).start()
        threading.Thread(target=self._log_stderr, args=(process,), name="rtsp stderr", daemon=True).start()
        log.info("RTSP server on %s, %d streams", listen, len(self._mounts))

    def _set_mounts(self, config: Config) -> list[str]:
        """Take `config`'s mounts; returns the paths that went away."""
        current = {path: (channel, stream) for path, channel, stream in mounts(config)}
        with self._lock:
            gone = [path for path in self._mounts if path not in current]
            for path in gone:
                self._paths[self._mounts.pop(path)[0]] = ""
            for path, (channel, stream) in current.items():
                if path not in self._mounts:
                    self._mounts[path] = (len(self._paths), channel, stream)
                    self._paths.append(path)
        return gone

    def _send_mounts(self) -> None:
        with self._lock:
            paths = list(self._paths)
        self._send(wire.frame(wire.MOUNTS, json.dumps({"mounts": paths}).encode()))

    def update(self, config: Config) -> None:
        """Serve the channels of `config` (after the config page changed them): new ones appear, removed
        ones end, others go on undisturbed."""
        for path in self._set_mounts(config):
            self._drop(path)
        self._send_mounts()

    def _ready_line(self, process: subprocess.Popen) -> str:
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(process.stdout.readline().decode(errors="replace")))
        reader.start()
        reader.join(READY_TIMEOUT_S)
        return result[0].strip() if result else "ERROR no answer within READY_TIMEOUT_S"

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            feeders, self._feeders = list(self._feeders.values()), {}
        for feeder in feeders:
            feeder.stop()
        process = self._process
        if process is None:
            return
        process.stdin.close()  # the engine's end of the pipe closes: it stops by itself
        for signal_it in (lambda: None, process.terminate, process.kill):
            signal_it()
            try:
                process.wait(STOP_WAIT_S)
                return
            except subprocess.TimeoutExpired:
                continue

    def _send(self, data: bytes) -> bool:
        """Write to the engine; False when it is gone (its watcher restarts it)."""
        process = self._process
        if process is None:
            return False
        try:
            with self._write_lock:
                process.stdin.write(data)
            return True
        except (BrokenPipeError, ValueError, OSError):
            return False

    def _send_users(self) -> None:
        users = sorted([user.name, ha1] for user, ha1 in self._users.digest_credentials())
        if users != self._sent_users and self._send(
                wire.frame(wire.USERS, json.dumps({"realm": DIGEST_REALM, "users": users}).encode())):
            self._sent_users = users

    def _watch_users(self) -> None:
        while not self._stopping.wait(USERS_CHECK_S):
            try:
                self._send_users()
            except Exception:  # a locked or closed user store: try again next time
                log.exception("the RTSP user list could not be read")

    def _watch_streams(self) -> None:
        while not self._stopping.wait(INFO_CHECK_S):
            self._send_info()

    def _send_info(self) -> None:
        """Tell the engine which streams have sound, when that changes (a camera's audio came or went)."""
        with self._lock:
            mounts = list(self._mounts.values())
        for index, channel, stream in mounts:
            aac = aac_of(self.live.stream(channel, stream).info)
            if self._sent_info.get(index, False) != aac and \
                    self._send(wire.frame(wire.INFO, json.dumps({"mount": index, "aac": aac}).encode())):
                self._sent_info[index] = aac

    def _read_events(self, process: subprocess.Popen) -> None:
        for raw in process.stdout:
            line = raw[:wire.MAX_LINE_CHARS].decode(errors="replace").strip()
            verb, _, path = line.partition(" ")
            if verb == "WANT":
                self._want(path)
            elif verb == "DROP":
                self._drop(path)
            elif verb == "ERROR":
                self.last_error = path
                log.error("RTSP server: %s", path)
        for path in list(self._feeders):
            self._drop(path)
        if not self._stopping.is_set():
            self._restart(process)

    def _log_stderr(self, process: subprocess.Popen) -> None:
        for raw in process.stderr:
            log.warning("RTSP engine: %s", raw[:1000].decode(errors="replace").rstrip())

    def _want(self, path: str) -> None:
        with self._lock:
            found = self._mounts.get(path)
            if found is None or path in self._feeders or self._stopping.is_set():
                return
            self._feeders[path] = _Feeder(self, *found)

    def _drop(self, path: str) -> None:
        with self._lock:
            feeder = self._feeders.pop(path, None)
        if feeder is not None:
            feeder.stop()

    def _restart(self, process: subprocess.Popen) -> None:
        process.wait()
        self.last_error = f"the RTSP engine exited with status {process.returncode}"
        log.error("%s; starting it again", self.last_error)
        for delay_s in itertools.chain(RESTART_DELAYS_S, itertools.repeat(RESTART_DELAYS_S[-1])):
            if self._stopping.wait(delay_s):
                return
            try:
                self.restarts += 1
                self._spawn()
                return
            except RtspServerError as exc:
                self.last_error = str(exc)
                log.error("%s; trying again in a while", exc)

    def statistics(self) -> dict:
        """For the health page and bench/: the engine's port, restarts and each watched stream's counters."""
        with self._lock:
            feeds = {path: {"sent": f.sent, "dropped": f.dropped, "bad": f.bad} for path, f in self._feeders.items()}
        return {"port": self.port, "restarts": self.restarts, "last_error": self.last_error,
                "engine_pid": self._process.pid if self._process else None, "watched": feeds}
