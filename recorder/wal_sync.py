"""Make an SQLite write-ahead log durable off the writer's path: one thread fsyncs the `-wal` file on request.

A WAL-mode commit under `synchronous=NORMAL` is atomic and survives the process dying (`kill -9`: the
pages are in the kernel), but not a power cut until the log is synced. The index commits alarm events
that way, so an alarm input's rule never waits on the disk (an HDD's fsync is 10-30 ms), and asks this
syncer to make them durable at once: the loss window after a power cut is one fsync, not a checkpoint.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class WalSyncer:
    """fsyncs `<database>-wal` whenever `request()` is called; `wait(ticket)` blocks until that sync is done.

    Requests that arrive while a sync runs are served by the next one, so a burst costs two fsyncs.
    A failing fsync is logged and counted; the next request tries again (the rows are still committed).
    """

    def __init__(self, database: Path):
        self.wal_path = Path(f"{database}-wal")
        self._cond = threading.Condition()
        self._requested = 0  # tickets handed out
        self._synced = 0     # every ticket up to this one is durable
        self._fd: int | None = None
        self._closed = False
        self.syncs = 0
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name=f"wal-sync {database.name}", daemon=True)
        self._thread.start()

    def request(self) -> int:
        """Ask for a sync of everything committed so far; returns the ticket to `wait` on."""
        with self._cond:
            self._requested += 1
            self._cond.notify_all()
            return self._requested

    def wait(self, ticket: int, timeout_s: float | None = None) -> bool:
        """True once what was committed before `request()` returned `ticket` is on the disk."""
        with self._cond:
            return self._cond.wait_for(lambda: self._synced >= ticket or self._closed, timeout_s) and self._synced >= ticket

    def close(self) -> None:
        """Sync what is pending, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=10)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._requested > self._synced or self._closed)
                if self._requested <= self._synced and self._closed:
                    return
                target = self._requested
            ok = self._sync()
            with self._cond:
                if ok:
                    self._synced = max(self._synced, target)
                self._cond.notify_all()
                if not ok:  # try again on the next request, not in a tight loop
                    if self._closed:
                        return
                    self._cond.wait_for(lambda: self._requested > target or self._closed, 1.0)

    def _sync(self) -> bool:
        try:
            fd = self._wal_fd()
            if fd is not None:  # no log: everything was checkpointed into the database, which SQLite synced
                os.fsync(fd)
            self.syncs += 1
            return True
        except OSError as exc:
            self.errors += 1
            log.error("syncing %s failed: %s; committed alarm events are not yet safe from a power cut",
                      self.wal_path, exc)
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            return False

    def _wal_fd(self) -> int | None:
        """An fd on the current log file: fsync flushes the inode's pages whichever fd wrote them."""
        try:
            current = os.stat(self.wal_path)
        except FileNotFoundError:
            return None
        if self._fd is not None:
            mine = os.fstat(self._fd)
            if (mine.st_dev, mine.st_ino) == (current.st_dev, current.st_ino):
                return self._fd
            os.close(self._fd)  # the log was removed and made again (every connection closed meanwhile)
        self._fd = os.open(self.wal_path, os.O_RDONLY | os.O_CLOEXEC)
        return self._fd
