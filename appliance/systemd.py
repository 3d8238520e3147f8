"""systemd service integration: sd_notify spoken over $NOTIFY_SOCKET, and the watchdog loop of `nvr run`.

`nvr.service` is `Type=notify` with `WatchdogSec=`: systemd counts the service as started when it
sends READY=1 (after the index recovery pass, once recording runs) and kills and restarts it when
WATCHDOG=1 pings stop. The pings come from `ServiceWatchdog`'s loop, and only while every recording
thread is alive and no connected stream has stopped delivering frames, so a hung recorder is
restarted by systemd. The loop also tells the recorder's alarm board when NTP first synchronises the
clock (systemd-timesyncd's `/run/systemd/timesync/synchronized`), which matters on boards without a
real-time clock.

The protocol is one datagram per message of newline-separated `KEY=value` lines to the unix socket
named in $NOTIFY_SOCKET (a path, or `@name` for the abstract namespace); no library is needed. Outside
systemd (no $NOTIFY_SOCKET) everything here does nothing.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from base.clock import Clocks

log = logging.getLogger("nvr.systemd")

TIMESYNC_DIR = Path("/run/systemd/timesync")
DEFAULT_STALL_S = 60.0


class Notifier(Protocol):
    """Somewhere sd_notify messages go."""

    def notify(self, message: str) -> bool: ...


class SocketNotifier:
    """Sends sd_notify datagrams to one unix socket address. A failed send is counted and logged once,
    never raised: a service manager that went away must not stop recording."""

    def __init__(self, address: str):
        if not address or address[0] not in "/@":
            raise ValueError(f"NOTIFY_SOCKET must be an absolute path or @abstract name, got {address!r}")
        self.address = address
        self._target = "\0" + address[1:] if address.startswith("@") else address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> SocketNotifier | None:
        """The notifier systemd asked for, or None when not run by systemd (or the address is unusable)."""
        address = environ.get("NOTIFY_SOCKET", "")
        if not address:
            return None
        try:
            return cls(address)
        except ValueError as exc:
            log.error("ignoring NOTIFY_SOCKET: %s", exc)
            return None

    def notify(self, message: str) -> bool:
        with self._lock:
            try:
                self._sock.sendto(message.encode(), self._target)
            except OSError as exc:
                self.failed += 1
                if self.failed == 1:
                    log.error("cannot notify systemd at %s: %s", self.address, exc)
                return False
            self.sent += 1
            return True

    def close(self) -> None:
        self._sock.close()

    def statistics(self) -> dict:
        return {"sent": self.sent, "failed": self.failed}


def status_message(text: str, **fields: str) -> str:
    """`KEY=value` lines with STATUS last; newlines in the text would start a new key, so they go."""
    lines = [f"{key}={value}" for key, value in fields.items()]
    lines.append("STATUS=" + " ".join(text.split()))
    return "\n".join(lines)


def watchdog_ping_interval_s(environ: Mapping[str, str] = os.environ, *, pid: int | None = None) -> float | None:
    """Half of systemd's watchdog timeout (WATCHDOG_USEC), or None when no watchdog is asked of this process
    (unset, malformed, or WATCHDOG_PID naming another process)."""
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    wanted_pid = environ.get("WATCHDOG_PID", "")
    if wanted_pid and wanted_pid != str(os.getpid() if pid is None else pid):
        return None
    return int(usec) / 2e6


class _Recorder(Protocol):
    label: str
    connected: bool

    def is_alive(self) -> bool: ...

    def statistics(self) -> dict: ...


class _FaultSink(Protocol):
    def raise_fault(self, kind: str, message: str, *, channel: int | None = None, disk: str | None = None) -> None: ...

    def clear_fault(self, kind: str, *, channel: int | None = None, disk: str | None = None) -> None: ...


class ServiceWatchdog:
    """The loop that pings systemd's watchdog while recording is healthy and keeps STATUS= current.

    Healthy means: every recorder's thread is alive, and every connected stream has recorded a frame in
    the last `stall_s` seconds (a disconnected stream is the reconnect loop's business, not a hang).
    `tick()` is one pass of the loop, so tests drive it without threads or sleeping.
    """

    def __init__(self, *, notifier: Notifier, recorders: Callable[[], Sequence[_Recorder]],
                 interval_s: float | None, faults: _FaultSink | None = None, stall_s: float = DEFAULT_STALL_S,
                 clocks: Clocks, timesync_dir: Path | None = TIMESYNC_DIR):
        self._notifier, self._recorders, self._faults = notifier, recorders, faults
        self.interval_s = interval_s
        self._stall_s, self._clocks, self._timesync_dir = stall_s, clocks, timesync_dir
        self._progress: dict[int, tuple[int, float]] = {}  # id(recorder) -> (frames, when they last grew)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pings = 0
        self.withheld = 0
        self.last_problem: str | None = None
        self.clock_synced = False
        self._clock_alarm_raised = False

    def problems(self) -> list[str]:
        """Why the appliance is not healthy now (empty when it is)."""
        now = self._clocks.monotonic_us() / 1e6
        found = []
        for recorder in self._recorders():
            if not recorder.is_alive():
                found.append(f"{recorder.label}: recording thread is not running")
                continue
            frames = int(recorder.statistics().get("frames_recorded", 0))
            last_frames, since = self._progress.get(id(recorder), (-1, now))
            if frames != last_frames or not recorder.connected:
                self._progress[id(recorder)] = (frames, now)
            elif now - since > self._stall_s:
                found.append(f"{recorder.label}: no frame recorded for {now - since:.0f} s while connected")
        return found

    def tick(self) -> bool:
        """One pass: check health, ping (or withhold the ping) and update STATUS. True if it pinged."""
        self._check_clock()
        problems = self.problems()
        recorders = self._recorders()
        if problems:
            self.withheld += 1
            if problems[0] != self.last_problem:
                log.error("withholding the watchdog ping: %s", "; ".join(problems))
            self.last_problem = problems[0]
            self._notifier.notify(status_message("unhealthy: " + "; ".join(problems)))
            return False
        self.last_problem = None
        connected = sum(1 for r in recorders if r.connected)
        text = f"recording {connected}/{len(recorders)} stream(s)"
        if self._timesync_dir is not None and self._timesync_dir.exists() and not self.clock_synced:
            text += "; clock not yet synchronised"
        fields = {"WATCHDOG": "1"} if self.interval_s else {}
        self._notifier.notify(status_message(text, **fields))
        if self.interval_s:
            self.pings += 1
        return bool(self.interval_s)

    def _check_clock(self) -> None:
        if self.clock_synced or self._timesync_dir is None or not self._timesync_dir.exists():
            return  # no systemd-timesyncd here: nothing to wait for
        if (self._timesync_dir / "synchronized").exists():
            self.clock_synced = True
            log.info("the system clock is synchronised by NTP")
            if self._faults is not None:
                self._faults.clear_fault("clock_unsynced")
        elif self._faults is not None and not self._clock_alarm_raised:
            self._clock_alarm_raised = True
            self._faults.raise_fault("clock_unsynced", "the system clock has not been synchronised by NTP yet; "
                                     "recording times may be wrong until it is")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="systemd-watchdog", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        period_s = min(self.interval_s or 10.0, 10.0)
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the loop must outlive a bug in one pass; the missing ping reports it
                log.exception("watchdog pass failed")
            self._stop.wait(period_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def statistics(self) -> dict:
        return {"interval_s": self.interval_s, "pings": self.pings, "withheld": self.withheld,
                "last_problem": self.last_problem, "clock_synced": self.clock_synced}


class ServiceIntegration:
    """What `nvr run` holds while it runs under systemd: READY=1 at start, the watchdog loop, STOPPING=1."""

    def __init__(self, notifier: Notifier | None, watchdog: ServiceWatchdog | None):
        self.notifier, self.watchdog = notifier, watchdog

    def stop(self) -> None:
        if self.watchdog is not None:
            self.watchdog.stop()
        if self.notifier is not None:
            self.notifier.notify(status_message("stopping: closing open segments", STOPPING="1"))


class _Summary(Protocol):
    def summary(self) -> str: ...


class RecordingHealth(Protocol):
    """What the integration reads of the recording (`appliance.supervisor.Supervisor` meets it)."""

    @property
    def recovery(self) -> _Summary | None: ...  # the start-up recovery pass, None before it ran

    @property
    def recorders(self) -> Sequence[_Recorder]: ...

    @property
    def faults(self) -> _FaultSink: ...

    @property
    def clocks(self) -> Clocks: ...


def start_service_integration(recording: RecordingHealth, environ: Mapping[str, str] = os.environ) -> ServiceIntegration:
    """Tell systemd the appliance is ready and start the watchdog loop: the last step of
    `appliance.app.Appliance.start`, once recovery ran and every part runs. Does nothing when not run
    by systemd."""
    notifier = SocketNotifier.from_environment(environ)
    if notifier is None:
        return ServiceIntegration(None, None)
    recovery = recording.recovery.summary() if recording.recovery else "no recovery pass"
    notifier.notify(status_message(f"ready; recovery: {recovery}", READY="1", MAINPID=str(os.getpid())))
    watchdog = ServiceWatchdog(notifier=notifier, recorders=lambda: recording.recorders,
                               interval_s=watchdog_ping_interval_s(environ), faults=recording.faults,
                               clocks=recording.clocks)
    watchdog.start()
    log.info("systemd notified: ready%s", f"; watchdog pings every {watchdog.interval_s:.1f} s"
             if watchdog.interval_s else "")
    return ServiceIntegration(notifier, watchdog)
