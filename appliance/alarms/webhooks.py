"""Work the alarm path hands off so it never waits: a bounded background worker, and webhooks on top of it.

A slow web server or a PTZ dome on a 2400-baud bus must not delay the next relay or event row: the
rule engine only enqueues. A full queue drops the new job and counts it (a flood of alarms must not
grow memory without bound); each job's failure is logged and counted, never raised.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from base.credentials import mask_credentials

log = logging.getLogger("nvr.notify")


class BoundedWorker:
    """One thread running queued jobs in order; `submit` never blocks (False when the job was dropped)."""

    def __init__(self, *, name: str, max_jobs: int = 64):
        self.name = name
        self._queue: queue.Queue = queue.Queue(maxsize=max_jobs)
        self._thread: threading.Thread | None = None
        self.done = self.failed = self.dropped = 0
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Finish the queued jobs (up to `timeout_s`), then end the thread."""
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            log.warning("%s: stopping with %d job(s) still queued", self.name, self._queue.qsize())
        self._thread.join(timeout_s)
        self._thread = None

    def submit(self, job: Callable[[], Any]) -> bool:
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.dropped += 1
            log.warning("%s: queue full; a job was dropped", self.name)
            return False
        return True

    def join(self, timeout_s: float = 5.0) -> bool:
        """Wait until every job queued so far has run (tests, shutdown)."""
        done = threading.Event()
        if not self.submit(done.set):
            return False
        return done.wait(timeout_s)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                job()
                self.done += 1
            except Exception as exc:
                self.failed += 1
                self.last_error = str(exc) or type(exc).__name__
                log.warning("%s: job failed: %s", self.name, self.last_error)

    def statistics(self) -> dict:
        return {"queued": self._queue.qsize(), "done": self.done, "failed": self.failed, "dropped": self.dropped,
                "last_error": self.last_error}


def fill_template(value: Any, fields: dict[str, Any]) -> Any:
    """`value` with ``{name}`` placeholders in its text filled from `fields`; a text that is exactly one
    placeholder takes the field's own JSON type. Unknown placeholders are left as written."""
    if isinstance(value, dict):
        return {key: fill_template(item, fields) for key, item in value.items()}
    if isinstance(value, list):
        return [fill_template(item, fields) for item in value]
    if not isinstance(value, str):
        return value
    if value.startswith("{") and value.endswith("}") and value[1:-1] in fields:
        return fields[value[1:-1]]
    for name, field in fields.items():
        value = value.replace("{" + name + "}", str(field))
    return value


class WebhookSender:
    """POSTs JSON bodies on a `BoundedWorker`. `send` returns at once."""

    def __init__(self, *, max_jobs: int = 64, user_agent: str = "nvr-appliance"):
        self.worker = BoundedWorker(name="webhooks", max_jobs=max_jobs)
        self._user_agent = user_agent
        self.delivered = 0

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()

    def send(self, url: str, body: Any, *, timeout_s: float = 5.0) -> bool:
        data = json.dumps(body, separators=(",", ":")).encode()
        return self.worker.submit(lambda: self._post(url, data, timeout_s))

    def _post(self, url: str, data: bytes, timeout_s: float) -> None:
        shown = mask_credentials(url)
        request = urllib.request.Request(url, data=data, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": self._user_agent})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                response.read(65536)
        except urllib.error.HTTPError as exc:
            raise ConnectionError(f"webhook {shown}: the server answered {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ConnectionError(f"webhook {shown}: {getattr(exc, 'reason', exc)}") from exc
        self.delivered += 1

    def statistics(self) -> dict:
        return {"delivered": self.delivered, **self.worker.statistics()}
