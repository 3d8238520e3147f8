"""`LoopThread`: one asyncio event loop on its own thread, where the appliance's threads run ONVIF calls.

The ONVIF client library (onvif-zeep-async) is asyncio only; the appliance is threads (the web handlers,
the alarm scheduler, the HDMI monitor, the PTZ worker). A thread hands a coroutine to the loop with
`submit` and gets a `concurrent.futures.Future`, the same currency as the Pelco bus's commands, so a
caller that must not block need not wait. Every coroutine runs under a timeout (a camera that does not
answer costs its caller `timeout_s`, never a thread), and the number of calls in flight is bounded:
past `max_pending` a submit fails at once with `LoopBusy` instead of queueing without end.

Long-running work (one PullPoint subscriber per camera) is started with `spawn` and cancelled by `stop`.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any

log = logging.getLogger("nvr.onvif.loop")

DEFAULT_TIMEOUT_S = 10.0
MAX_PENDING_CALLS = 64  # calls in flight over all cameras; a web page cannot pile up more behind a dead camera
STOP_TIMEOUT_S = 5.0


class LoopBusy(RuntimeError):
    """Too many ONVIF calls are in flight already (a camera that does not answer): try again later."""


class LoopStopped(RuntimeError):
    """The ONVIF loop is not running (the appliance is stopping or has not started it)."""


class LoopThread:
    """An asyncio loop on a daemon thread named `name`; `start()` before use, `stop()` at the end."""

    def __init__(self, *, name: str = "onvif", max_pending: int = MAX_PENDING_CALLS):
        self._name, self._max_pending = name, max_pending
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pending = 0
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task] = set()
        self.stats = {"calls": 0, "timeouts": 0, "refused": 0, "failed": 0}

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise LoopStopped("the ONVIF loop thread is not running; call start() first")
        return self._loop

    def start(self) -> None:
        """Start the loop's thread; returns once the loop runs."""
        if self._thread is not None:
            return
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, args=(ready,), name=self._name, daemon=True)
        self._thread.start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(ready.set)
        self._loop.run_forever()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Cancel the spawned tasks (each may clean up, e.g. Unsubscribe, within `timeout_s`), then end."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._cancel_all(timeout_s), loop).result(timeout_s + 1)
        except Exception:  # a task that would not end: the loop is stopped anyway
            log.exception("%s: tasks did not end within %.1f s", self._name, timeout_s)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
        if not thread.is_alive():
            loop.close()
        self._loop, self._thread = None, None

    async def _cancel_all(self, timeout_s: float) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)

    def submit(self, coro: Coroutine[Any, Any, Any], *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Future:
        """Run `coro` on the loop, cancelled after `timeout_s` (the Future then raises TimeoutError).

        Raises LoopBusy at once when `max_pending` calls are in flight, LoopStopped when not running.
        """
        loop = self._loop
        with self._lock:
            if loop is None:
                coro.close()
                raise LoopStopped("the ONVIF loop thread is not running")
            if self._pending >= self._max_pending:
                self.stats["refused"] += 1
                coro.close()
                raise LoopBusy(f"{self._pending} ONVIF calls are in flight already; a camera does not "
                               f"answer (see the ONVIF statistics): try again later")
            self._pending += 1
            self.stats["calls"] += 1
        future = asyncio.run_coroutine_threadsafe(self._bounded(coro, timeout_s), loop)
        future.add_done_callback(self._done)
        return future

    async def _bounded(self, coro: Coroutine[Any, Any, Any], timeout_s: float) -> Any:
        try:
            return await asyncio.wait_for(coro, timeout_s)
        except (TimeoutError, asyncio.TimeoutError) as exc:
            self.stats["timeouts"] += 1
            raise TimeoutError(f"the camera did not answer within {timeout_s:g} s") from exc
        except Exception:
            self.stats["failed"] += 1
            raise

    def _done(self, _future: Future) -> None:
        with self._lock:
            self._pending -= 1

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> Future:
        """Start a long-running task (no timeout); `stop()` cancels it. Returns a Future of its Task."""
        async def start() -> asyncio.Task:
            task = asyncio.get_running_loop().create_task(coro, name=name)
            self._tasks.add(task)
            task.add_done_callback(self._task_done)
            return task
        return asyncio.run_coroutine_threadsafe(start(), self.loop)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: task %s ended with %r", self._name, task.get_name(), task.exception())

    def statistics(self) -> dict:
        with self._lock:
            return {**self.stats, "pending": self._pending, "tasks": len(self._tasks)}
