"""Blocking file I/O run off the caller's thread, so that a disk whose writes hang costs a bounded wait.

A dying USB disk or a bridge that stops answering does not fail a write: the write (or its fsync) waits
in the kernel, uninterruptibly, for as long as the device is silent. A recording thread that made the
call itself would be stuck there with it, and its channel with it. Here the call is made on the
worker's own (daemon) thread; the caller waits for it at most `stall_s` and then gets `WriteStalled`,
a StorageError like any failed write, so the writer's failover path (another disk, the GOP kept in
memory) takes over at once.

A worker whose job has not returned is *stuck*: it is abandoned, never joined (a thread in the kernel's
D state cannot be interrupted; it is a daemon thread, so it does not hold up the process's exit). Any
call to a stuck worker fails at once with `WriteStalled`, so the abandoned thread never collects a
second job and no more than one thread per worker waits in the kernel. When the device answers again
the stuck job returns, its result is dropped, the `after_stall` callbacks run on that thread (a writer
releases the file descriptor it left there), and the worker takes jobs again.

The queue holds one job: `call` waits for its job, so a caller has at most one in flight and memory is
bounded by what that one job holds (a fragment). There is no full queue to handle: a second caller
(another thread) of the same worker waits for the first's job, bounded the same way.
"""
from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from recorder.errors import StorageError

log = logging.getLogger("nvr.io")

WRITE_STALL_S = 10.0  # a write or sync that has not returned after this long: the disk's writes hang
IDLE_EXIT_S = 30.0  # a worker's thread ends after this long without a job (the next call starts another)

T = TypeVar("T")


class WriteStalled(StorageError):
    """A write or sync did not return within the stall bound: the disk's writes hang (its thread is abandoned)."""


class IoWorker:
    """Runs one blocking I/O call at a time on a daemon thread, each bounded by `stall_s` for its caller.

    Thread-safe. The thread starts with a call and ends after IDLE_EXIT_S without one (or at `close`), so a
    writer that is dropped leaves no thread behind."""

    def __init__(self, name: str, *, stall_s: float = WRITE_STALL_S):
        self.name, self.stall_s = name, stall_s
        self._cond = threading.Condition()
        self._job: tuple[Callable[..., Any], tuple] | None = None
        self._result: tuple[bool, Any] | None = None  # (ok, value or exception) of the job just done
        self._busy_since: float | None = None  # monotonic time the running job began
        self._stuck = False  # the running job outlived its caller's wait
        self._closed = False
        self._after_stall: list[Callable[[], None]] = []
        self._caller = threading.Lock()  # one job at a time, in the order the callers came
        self._thread: threading.Thread | None = None

    @property
    def stuck(self) -> bool:
        """Whether a job outlived its wait and has still not returned (the disk's writes hang)."""
        with self._cond:
            return self._stuck

    def call(self, fn: Callable[..., T], *args) -> T:
        """`fn(*args)` on the worker's thread: its result, or its exception raised here. WriteStalled if it
        has not returned after `stall_s` (it is then abandoned there) or a job abandoned earlier has still
        not returned."""
        deadline = time.monotonic() + self.stall_s
        if not self._caller.acquire(timeout=self.stall_s):
            raise self._stalled(None)
        try:
            with self._cond:
                if self._stuck:
                    raise self._stalled(self._busy_since)
                if self._closed:
                    raise StorageError(errno.EIO, f"{self.name}: the I/O worker is closed")
                self._start()
                self._job, self._result = (fn, args), None
                self._cond.notify_all()
                done = self._cond.wait_for(lambda: self._result is not None, max(0.0, deadline - time.monotonic()))
                if not done:
                    self._stuck = True
                    log.error("%s: a write has not returned in %.0f s: the disk's writes hang; its thread is "
                              "abandoned", self.name, self.stall_s)
                    raise self._stalled(self._busy_since)
                (ok, value), self._result = self._result, None
        finally:
            self._caller.release()
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
        """Let the thread end once idle (a stuck one ends when its job returns). Never waits."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _stalled(self, since: float | None) -> WriteStalled:
        waited = self.stall_s if since is None else max(self.stall_s, time.monotonic() - since)
        return WriteStalled(errno.ETIMEDOUT, f"writes hang: no write finished in {waited:.0f} s ({self.name})")

    def _start(self) -> None:  # with self._cond held
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"io {self.name}", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._job is not None or self._closed, IDLE_EXIT_S)
                if self._job is None:
                    self._thread = None  # idle or closed: the next call starts a thread again
                    return
                (fn, args), self._job = self._job, None
                self._busy_since = time.monotonic()
            try:
                outcome = (True, fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, who decides
                outcome = (False, exc)
            with self._cond:
                self._busy_since = None
                if not self._stuck:
                    self._result = outcome
                    self._cond.notify_all()
                    continue
                log.warning("%s: the write that hung returned after all; the worker takes jobs again", self.name)
                cleanups, self._after_stall = self._after_stall, []
                self._stuck = False
            for cleanup in cleanups:
                try:
                    cleanup()
                except Exception:  # noqa: BLE001 - releasing after a hang is best effort; say so
                    log.exception("%s: releasing what the hung write held failed", self.name)
