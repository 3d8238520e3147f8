"""The batching mailbox that carries packets from a reading thread to one consumer thread."""
from __future__ import annotations

import threading
from collections import deque

from base.clock import Clocks


class _End:
    """Mailbox item: the stream ended or the connection was closed."""


END = _End()


class Mailbox:
    """Packets from a reading thread (the RTSP loop, or one PyAV reader) to one consumer, taken in batches.

    The producer appends without waking anyone, unless the consumer waits in `take`; the consumer
    takes whatever gathered at most every `batch_s`. Both check the other's side after publishing
    their own, so nothing is left unseen.
    """

    def __init__(self, *, batch_s: float, bound: int, clocks: Clocks):
        self.items: deque[object] = deque()
        self._clocks = clocks
        self.bound = bound
        self._batch_s = batch_s
        self._ready = threading.Event()
        self._consumer_waiting = False
        self.stopping = threading.Event()

    @property
    def full(self) -> bool:
        return len(self.items) >= self.bound

    def put(self, item: object) -> None:
        self.items.append(item)
        if self._consumer_waiting:
            self._ready.set()

    def put_many(self, items: list[object]) -> None:
        self.items.extend(items)
        if self._consumer_waiting:
            self._ready.set()

    def stop(self) -> None:
        self.stopping.set()
        self.items.append(END)
        self._ready.set()

    def take(self, timeout_s: float) -> list[object] | None:
        """Everything gathered, after letting it gather for `batch_s`; None if nothing came in `timeout_s`."""
        deadline_us = self._clocks.monotonic_us() + round(timeout_s * 1e6)
        if self._batch_s:
            self.stopping.wait(self._batch_s)  # the batching: stop() cuts it short
        items = self.items
        while not items:
            remaining = (deadline_us - self._clocks.monotonic_us()) / 1e6
            if remaining <= 0:
                return None
            self._ready.clear()
            self._consumer_waiting = True
            if not items:
                self._clocks.wait(self._ready, remaining)
            self._consumer_waiting = False
        return [items.popleft() for _ in range(len(items))]

    def put_bounded(self, item: object) -> None:
        """`put`, but first wait (polling `stopping`) while the mailbox is full: a producer that owns its
        reading thread stops reading meanwhile, and TCP holds the camera back. Dropped once stopping."""
        while self.full:
            if self.stopping.wait(0.05):
                return
        self.put(item)
