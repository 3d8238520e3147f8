"""Blocking file I/O off the caller's thread: a disk whose writes hang holds no recording thread in the kernel.

A dying USB disk or a bridge that stops answering does not fail a write: the write (or its fsync) waits
in the kernel, uninterruptibly, for as long as the device is silent. A recording thread that made the
call itself would be stuck there with it, and its channel with it. Here the calls run in order on the
worker's own (daemon) thread. A caller either queues a job and goes on (`submit`, the results read
later with `settle`), or waits for one (`call`). A job that has run `stall_s` without returning makes the
worker *stuck* (`settle` and `wait_all` notice it, `stuck` says so, `submit` and `call` raise `WriteStalled`,
a StorageError like any failed write), so a writer's failover path (another disk, the frames kept in
memory) takes over.

A stuck worker is abandoned, never joined (a thread in the kernel's D state cannot be interrupted; it is
a daemon thread, so it does not hold up the process's exit). Its queued jobs are dropped and any call to it
fails at once, so no second thread waits behind the first and no more jobs pile up. When the device
answers again the stuck job returns, its result is dropped, the `after_stall` callbacks run on that thread
(a writer releases the file descriptor it left there), and the worker takes jobs again.

The queue holds at most `max_queued` jobs (MAX_QUEUED_JOBS: a writer queues one fragment a second, so
16 s of a slow disk's backlog). A caller that finds it full waits for room, as long as the disk is moving:
while the running job is younger than `stall_s`; after that the worker is stuck (WriteStalled). So memory
is bounded by `max_queued` jobs and a caller's wait by `stall_s`.
"""
from __future__ import annotations

import errno
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from base.clock import Clocks, RealClocks
from recorder.errors import StorageError

log = logging.getLogger("nvr.io")

WRITE_STALL_S = 10.0  # a write or sync that has not returned after this long: the disk's writes hang
IDLE_EXIT_S = 30.0  # a worker's thread ends after this long without a job (the next job starts another)
MAX_QUEUED_JOBS = 16  # jobs waiting for a worker's thread, at most (a writer: one fragment each)

T = TypeVar("T")


class WriteStalled(StorageError):
    """A write or sync did not return within the stall bound: the disk's writes hang (its thread is abandoned)."""


class IoWorker:
    """Runs blocking I/O jobs one at a time, in order, on a daemon thread. Thread-safe.

    The thread starts with a job and ends after IDLE_EXIT_S without one (or at `close`), so a writer that
    is dropped leaves no thread behind."""

    def __init__(self, name: str, *, stall_s: float = WRITE_STALL_S, max_queued: int = MAX_QUEUED_JOBS,
                 clocks: Clocks | None = None):
        """`clocks`: what the stall bound is measured on. Real time unless a test drives it: a writer under
        simulated clocks still gives its worker real ones, since a kernel write takes real time however
        fast the simulated clock runs (a simulated jump past the bound would fail a healthy disk)."""
        self.name, self.stall_s, self.max_queued = name, stall_s, max_queued
        self._clocks = clocks or RealClocks()
        self._cond = threading.Condition()
        self._queue: deque[tuple[int, Callable[..., Any], tuple]] = deque()
        self._finished: dict[int, tuple[bool, Any]] = {}  # ticket -> (ok, value or exception), in order
        self._tickets = 0
        self._busy_since: float | None = None  # monotonic time the running job began
        self._stuck = False  # the running job outlived the stall bound
        self._closed = False
        self._after_stall: list[Callable[[], None]] = []
        self._thread: threading.Thread | None = None

    @property
    def stuck(self) -> bool:
        """Whether a job outlived the stall bound and has still not returned (the disk's writes hang)."""
        with self._cond:
            return self._stuck

    def submit(self, fn: Callable[..., Any], *args) -> int:
        """Queue `fn(*args)` and return its ticket without waiting for it (its outcome comes from `settle`).
        With the queue full, waits for room while the disk moves. WriteStalled if the worker is stuck."""
        with self._cond:
            self._raise_if_stuck()
            if not self._wait_moving(lambda: len(self._queue) < self.max_queued):
                raise self._stalled()
            self._tickets += 1
            self._queue.append((self._tickets, fn, args))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"io {self.name}", daemon=True)
                self._thread.start()
            self._cond.notify_all()
            return self._tickets

    def settle(self) -> list[tuple[bool, Any]]:
        """The outcomes (ok, value or exception) of the submitted jobs finished since the last `settle`, in
        order. Never waits; if the job running now has run past the stall bound the worker becomes stuck
        (and the jobs queued after it are dropped): see `stuck`."""
        with self._cond:
            if self._busy_since is not None and self._now_s() - self._busy_since >= self.stall_s:
                self._mark_stuck()
            return self._take_finished()

    def wait_all(self) -> list[tuple[bool, Any]]:
        """Wait until every submitted job has finished, as long as the disk moves, and return their outcomes
        as `settle` does (if one hangs, those before it; the worker is then `stuck`)."""
        with self._cond:
            self._wait_moving(lambda: not self._queue and self._busy_since is None)
            return self._take_finished()

    def stalled_error(self) -> WriteStalled:
        """The error that says the worker's disk hangs."""
        with self._cond:
            return self._stalled()

    def call(self, fn: Callable[..., T], *args) -> T:
        """`fn(*args)` on the worker's thread, after the jobs queued before it: its result, or its exception
        raised here. WriteStalled if it (or a job before it) does not return within the stall bound."""
        ticket = self.submit(fn, *args)
        with self._cond:
            if not self._wait_moving(lambda: ticket in self._finished):
                raise self._stalled()
            ok, value = self._finished.pop(ticket)
        if not ok:
            raise value
        return value

    def after_stall(self, fn: Callable[[], None]) -> bool:
        """Run `fn` on the worker's thread once the stuck job returns (to release what it held). False (and
        `fn` is not kept) if no job is stuck: the caller may do it itself."""
        with self._cond:
            if not self._stuck:
                return False
            self._after_stall.append(fn)
            return True

    def close(self) -> None:
        """Let the thread end as soon as it is idle (a stuck one once its job returns), not after IDLE_EXIT_S.
        Never waits. A job submitted later still runs (on a thread that ends after it)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # with self._cond held

    def _wait_moving(self, predicate: Callable[[], bool]) -> bool:
        """Wait for `predicate` while the running job is younger than the stall bound; False (the worker is
        then stuck) when one is not."""
        while not predicate():
            if self._stuck:
                return False
            since = self._busy_since
            if since is not None and self._now_s() - since >= self.stall_s:
                self._mark_stuck()
                return False
            self._cond.wait(self.stall_s if since is None else self.stall_s - (self._now_s() - since))
        return True

    def _take_finished(self) -> list[tuple[bool, Any]]:
        outcomes = list(self._finished.values())
        self._finished.clear()
        return outcomes

    def _mark_stuck(self) -> None:
        if self._stuck:
            return
        self._stuck = True
        dropped = len(self._queue)
        self._queue.clear()
        log.error("%s: a write has not returned in %.0f s: the disk's writes hang; its thread is abandoned "
                  "(%d queued jobs dropped)", self.name, self.stall_s, dropped)
        self._cond.notify_all()

    def _raise_if_stuck(self) -> None:
        if self._stuck:
            raise self._stalled()

    def _stalled(self) -> WriteStalled:
        since = self._busy_since
        waited = self.stall_s if since is None else max(self.stall_s, self._now_s() - since)
        return WriteStalled(errno.ETIMEDOUT, f"writes hang: no write finished in {waited:.0f} s ({self.name})")

    def _now_s(self) -> float:
        return self._clocks.monotonic_us() / 1e6

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closed, IDLE_EXIT_S)
                if not self._queue:
                    self._thread = None  # idle or closed: the next job starts a thread again
                    return
                ticket, fn, args = self._queue.popleft()
                self._busy_since = self._now_s()
            try:
                outcome = (True, fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, who decides
                outcome = (False, exc)
            with self._cond:
                self._busy_since = None
                if not self._stuck:
                    self._finished[ticket] = outcome
                    self._cond.notify_all()
                    continue
                log.warning("%s: the write that hung returned after all; the worker takes jobs again", self.name)
                cleanups, self._after_stall = self._after_stall, []
                self._stuck = False
                self._cond.notify_all()
            for cleanup in cleanups:
                try:
                    cleanup()
                except Exception:  # noqa: BLE001 - releasing after a hang is best effort; say so
                    log.exception("%s: releasing what the hung write held failed", self.name)
