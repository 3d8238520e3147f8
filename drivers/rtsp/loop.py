"""The one thread that reads every native RTSP connection (`RtspLoop`), and the mailbox (`Mailbox`) that
hands a connection's packets to its consumer in batches.

Why one thread: with a reader thread per camera, each RTP packet costs a wake-up and GIL hand-offs;
here one `selectors` loop serves all cameras and paces itself (`poll_interval_s`, 100 ms), so it
wakes at most ~10 times a second whatever the camera count, and each wake-up reads what every
ready socket gathered in large chunks (the kernel's socket buffer holds them meanwhile). Wake-ups
are what costs at few cameras (on a loaded 2-core VM: 20 ms pacing used 1.0 %, 50 ms 0.6 % and
100 ms 0.4 % of a core for one 4 Mb/s camera), and the latency added (≤ 100 ms) is small next
to a recording's one-second fragments and the consumer's 200 ms batches.
"""
from __future__ import annotations

import logging
import selectors
import socket
import threading
from typing import Protocol

from base.clock import Clocks, RealClocks

log = logging.getLogger("nvr.rtsp")

POLL_INTERVAL_S = 0.1
TICK_S = 0.5  # how often connections get `on_tick` (keep-alives, receiver reports)


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

    def add(self, connection: LoopConnection) -> None:
        """Start reading `connection` (its socket must be non-blocking)."""
        self._change(True, connection)

    def remove(self, connection: LoopConnection) -> None:
        """Stop reading it; `on_removed` follows on the loop thread (at once if it was never added)."""
        self._change(False, connection)

    def statistics(self) -> dict[str, object]:
        return {"connections": len(self._connections), "wakeups": self.wakeups, "busy_s": round(self.busy_s, 3),
                "failures": self.failures}

    def _change(self, add: bool, connection: LoopConnection) -> None:
        with self._lock:
            self._changes.append((add, connection))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
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
        for key, _ in events:
            if key.data is None:
                self._drain_wake()
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
        try:
            keep = method(now_s)
        except Exception as exc:  # noqa: BLE001 - a bug in one connection must not stop the others
            self.failures += 1
            log.exception("rtsp loop: a connection failed")
            self._drop(connection, exc)
            return
        if not keep:
            self._drop(connection)

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass


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
