"""The thread behind each sound player (alarm sounds, the intercom): started once, woken by orders from
any thread, stopped at close."""
from __future__ import annotations

import threading

CLOSE_WAIT_S = 5.0  # close() waits this long for the thread; a player stuck in a sound card is left behind


class SoundWorker:
    """A daemon thread running `self._run()` (the subclass's loop, which sleeps on `self._wake` and ends
    once `self._stop` is set). `start()` and `close()` may be called from any thread."""

    def __init__(self, name: str):
        self._worker_name = name
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._worker_name, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=CLOSE_WAIT_S)
