"""The one thread that reads every native RTSP connection (`RtspLoop`), and the mailbox (`Mailbox`) that
hands a connection's packets to its consumer in batches.

Why one thread: with a reader thread per camera, each RTP packet costs a wake-up and GIL hand-offs;
here one `selectors` loop serves all cameras and paces itself (`poll_interval_s`, 100 ms), so it
wakes at most ~10 times a second whatever the camera count, and each wake-up reads what every
ready socket gathered in large chunks (the kernel's socket buffer holds them meanwhile). Wake-ups
are what costs at few cameras (on a loaded 2-core VM: 20 ms pacing used 1.0 %, 50 ms 0.6 % and
100 ms 0.4 % of a core for one 4 Mb/s camera), and the latency added (≤ 100 ms) is small next
to a recording's one-second fragments and the consumer's 200 ms batches.

What one camera may cost the others (design/camera-isolation.md): every call into a connection is
timed. A connection that used more than CPU_SHARE of a core over a SHARE_WINDOW_S window is not read
for a while (TCP holds its camera back). A watchdog thread names the camera whose call holds the
loop past SLOW_CALL_S (log and `statistics()`), and past ABORT_CALL_S raises `LoopOverrun` inside
that call, which drops that connection only: its recorder sees a CameraError and reconnects.
"""
from __future__ import annotations

import ctypes
import logging
import selectors
import socket
import threading
from typing import Protocol

from base.clock import Clocks, RealClocks

log = logging.getLogger("nvr.rtsp")

POLL_INTERVAL_S = 0.1
TICK_S = 0.5  # how often connections get `on_tick` (keep-alives, receiver reports)
SLOW_CALL_S = 0.5  # one call into one connection longer than this is logged with the camera's name
ABORT_CALL_S = 2.0  # ... longer than this is interrupted (LoopOverrun) and the connection dropped
WATCHDOG_INTERVAL_S = 0.25
CPU_SHARE = 0.25  # of one core: a connection that used more over SHARE_WINDOW_S rests until back under it
SHARE_WINDOW_S = 1.0


class LoopOverrun(Exception):
    """Raised inside a connection's call that held the shared loop longer than ABORT_CALL_S."""


class LoopConnection(Protocol):
    """What the loop drives. All three are called on the loop thread only."""

    sock: socket.socket

    def on_readable(self, now_s: float) -> bool:
        """Read what arrived; False when the connection is finished (the loop then drops it)."""

    def on_tick(self, now_s: float) -> bool:
        """Periodic work (keep-alives, RTCP); False when the connection is finished."""

    def on_removed(self, error: BaseException | None = None) -> None:
        """The loop no longer reads it: say goodbye to the server (best effort) and close the socket.
        `error` is why the loop dropped it, when one of its calls raised."""


class RtspLoop:
    """A selector thread serving many connections; `add` and `remove` from any thread.

    The thread starts with the first `add` and lives for the process (a daemon); `statistics()` says
    how often it woke and how long it worked.
    """

    def __init__(self, *, clocks: Clocks, poll_interval_s: float = POLL_INTERVAL_S, name: str = "rtsp-loop"):
        self.poll_interval_s, self._clocks = poll_interval_s, clocks
        self.name = name
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._changes: list[tuple[bool, LoopConnection]] = []
        self._connections: set[LoopConnection] = set()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread: threading.Thread | None = None
        self.wakeups = 0
        self.busy_s = 0.0
        self.failures = 0
        self.slow_calls = 0  # calls over SLOW_CALL_S (seen by the watchdog or when they returned)
        self.aborted_calls = 0  # calls interrupted after ABORT_CALL_S
        self.throttled = 0  # times a connection was rested for using over CPU_SHARE
        self.slowest_call_s = 0.0
        self.slowest_camera: str | None = None
        self.last_slow_camera: str | None = None
        self._current: tuple[int, LoopConnection, float] | None = None  # the call running now: (number, whom, since)
        self._calls = 0
        self._watched = 0  # the number of the last call the watchdog reported
        self._usage: dict[LoopConnection, list[float]] = {}  # [window start, busy seconds in it]
        self._resting: dict[LoopConnection, float] = {}  # not read until this monotonic time
        self._watchdog: threading.Thread | None = None

    def add(self, connection: LoopConnection) -> None:
        """Start reading `connection` (its socket must be non-blocking)."""
        self._change(True, connection)

    def remove(self, connection: LoopConnection) -> None:
        """Stop reading it; `on_removed` follows on the loop thread (at once if it was never added)."""
        self._change(False, connection)

    def statistics(self) -> dict[str, object]:
        current = self._current
        holding = None
        if current is not None and self._clocks.monotonic_us() / 1e6 - current[2] >= SLOW_CALL_S:
            holding = {"camera": _name(current[1]), "for_s": round(self._clocks.monotonic_us() / 1e6 - current[2], 3)}
        return {"connections": len(self._connections), "wakeups": self.wakeups, "busy_s": round(self.busy_s, 3),
                "failures": self.failures, "slow_calls": self.slow_calls, "aborted_calls": self.aborted_calls,
                "throttled": self.throttled, "slowest_call_s": round(self.slowest_call_s, 3),
                "slowest_camera": self.slowest_camera, "last_slow_camera": self.last_slow_camera,
                "holding_now": holding}

    def _change(self, add: bool, connection: LoopConnection) -> None:
        with self._lock:
            self._changes.append((add, connection))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            if self._watchdog is None:
                self._watchdog = threading.Thread(target=self._watch, name=f"{self.name}-watchdog", daemon=True)
                self._watchdog.start()
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass  # the loop is awake already (its wake-up socket is full)

    def _apply_changes(self) -> None:
        with self._lock:
            changes, self._changes = self._changes, []
        for add, connection in changes:
            if add and connection not in self._connections:
                try:
                    self._selector.register(connection.sock, selectors.EVENT_READ, connection)
                except (ValueError, OSError, KeyError):  # closed meanwhile
                    self._finish(connection, registered=False)
                    continue
                self._connections.add(connection)
            elif not add:
                self._drop(connection)

    def _drop(self, connection: LoopConnection, error: BaseException | None = None) -> None:
        registered = connection in self._connections
        self._connections.discard(connection)
        self._usage.pop(connection, None)
        self._resting.pop(connection, None)
        self._finish(connection, registered=registered, error=error)

    def _finish(self, connection: LoopConnection, *, registered: bool, error: BaseException | None = None) -> None:
        if registered:
            try:
                self._selector.unregister(connection.sock)
            except (KeyError, ValueError, OSError):
                pass
        try:
            connection.on_removed(error)
        except Exception:  # noqa: BLE001 - one connection's failure never stops the loop
            self.failures += 1
            log.exception("rtsp loop: closing a connection failed")

    def _run(self) -> None:
        next_tick = self._clocks.monotonic_us() / 1e6
        while True:
            try:
                next_tick = self._iteration(next_tick)
            except Exception:  # noqa: BLE001 - the loop serves every camera: it must go on
                self.failures += 1
                log.exception("rtsp loop: an iteration failed")
                self._clocks.sleep(self.poll_interval_s)

    def _iteration(self, next_tick: float) -> float:
        """Apply adds/removes, read every ready socket, tick when due, then pause; returns the next tick."""
        self._apply_changes()
        timeout = max(0.0, next_tick - self._clocks.monotonic_us() / 1e6)
        events = self._selector.select(timeout)
        started = self._clocks.monotonic_us() / 1e6
        self.wakeups += 1
        resting = self._resting
        for key, _ in events:
            if key.data is None:
                self._drain_wake()
            elif resting and started < resting.get(key.data, 0.0):
                continue  # over its CPU share: its bytes wait in the socket, TCP slows its camera
            else:
                self._call(key.data, key.data.on_readable, started)
        if started >= next_tick:
            for connection in list(self._connections):
                self._call(connection, connection.on_tick, started)
            next_tick = started + TICK_S
        done = self._clocks.monotonic_us() / 1e6
        self.busy_s += done - started
        pause = self.poll_interval_s - (done - started)
        if pause > 0:
            self._clocks.sleep(pause)  # let data gather: fewer, larger reads
        return next_tick

    def _call(self, connection: LoopConnection, method, now_s: float) -> None:
        if connection not in self._connections:
            return
        self._calls += 1
        begin = self._clocks.monotonic_us() / 1e6
        self._current = (self._calls, connection, begin)
        try:
            keep = method(now_s)
        except LoopOverrun:
            self._current = None
            self._account(connection, begin)
            error = LoopOverrun(f"{_name(connection)}: handling its data held the shared RTSP loop over "
                                f"{ABORT_CALL_S:g} s; dropped")
            log.error("rtsp loop: %s", error)
            self._drop(connection, error)
            return
        except Exception as exc:  # noqa: BLE001 - a bug in one connection must not stop the others
            self._current = None
            self._account(connection, begin)
            self.failures += 1
            log.exception("rtsp loop: %s failed", _name(connection))
            self._drop(connection, exc)
            return
        self._current = None
        self._account(connection, begin)
        if not keep:
            self._drop(connection)

    def _account(self, connection: LoopConnection, begin: float) -> None:
        """Charge a call's time to its connection: name it if it was slow, rest it if over its share."""
        now = self._clocks.monotonic_us() / 1e6
        spent = now - begin
        if spent >= SLOW_CALL_S:
            self._slow(connection, spent, returned=True)
        usage = self._usage.get(connection)
        if usage is None or now - usage[0] >= SHARE_WINDOW_S:
            usage = self._usage[connection] = [begin, 0.0]
        usage[1] += spent
        if usage[1] > CPU_SHARE * SHARE_WINDOW_S:
            # Rest until its share over the window is back under CPU_SHARE.
            self._resting[connection] = usage[0] + usage[1] / CPU_SHARE
            self._usage[connection] = [self._resting[connection], 0.0]
            self.throttled += 1
            log.warning("rtsp loop: %s used %.0f ms of CPU in %.1f s; not read for %.1f s", _name(connection),
                        usage[1] * 1000, now - usage[0], self._resting[connection] - now)

    def _slow(self, connection: LoopConnection, spent: float, *, returned: bool) -> None:
        name = _name(connection)
        if not returned or self._watched != self._calls:
            self.slow_calls += 1
        self.last_slow_camera = name
        if spent > self.slowest_call_s:
            self.slowest_call_s, self.slowest_camera = spent, name
        log.warning("rtsp loop: %s %s the loop for %.2f s (every camera waits meanwhile)", name,
                    "held" if returned else "is holding", spent)

    def _watch(self) -> None:
        """The watchdog: notices a call that runs long while it runs (a call in Python code; one stuck
        in C holding the GIL is named when it returns), and interrupts it past ABORT_CALL_S."""
        aborted = 0
        while True:
            self._clocks.sleep(WATCHDOG_INTERVAL_S)
            current = self._current
            if current is None:
                continue
            number, connection, begin = current
            held = self._clocks.monotonic_us() / 1e6 - begin
            if held >= SLOW_CALL_S and self._watched != number:
                self._watched = number
                self._slow(connection, held, returned=False)
            if held >= ABORT_CALL_S and aborted != number and self._current is current:
                aborted = number
                self.aborted_calls += 1
                thread = self._thread
                if thread is not None and thread.ident is not None:
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident),
                                                               ctypes.py_object(LoopOverrun))

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass


def _name(connection: LoopConnection) -> str:
    """The camera a connection reads, for messages (its URL, password masked)."""
    return str(getattr(connection, "where", None) or repr(connection))


_default: RtspLoop | None = None
_default_lock = threading.Lock()


def default_loop() -> RtspLoop:
    """The process's shared loop (created on first use), on the real clocks: it serves every camera, and
    its pacing is about the CPU's wake-ups, which only real time makes."""
    global _default
    with _default_lock:
        if _default is None:
            _default = RtspLoop(clocks=RealClocks())
        return _default
