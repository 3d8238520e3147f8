"""The live tap: what a stream records, handed as it happens to viewers (web live view, HDMI monitor, motion).

The recording thread publishes and never waits for a viewer. Each subscription is a bounded queue;
a viewer that falls behind loses packets up to the next keyframe (counted in `dropped`), so it can
always resume decoding and the recorder's memory stays bounded. Raw frames (analog channels, before
encoding) are kept latest-only: a viewer wants the newest picture, not a backlog.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from base.media import EncodedPacket, RawFrame, StreamInfo


@dataclass(frozen=True, slots=True)
class RunStarted:
    """A new run (connection) began: decoders must restart with this stream info."""

    info: StreamInfo


class Subscription:
    """One viewer's queue of `RunStarted` and `EncodedPacket` items, in publish order.

    `get` blocks up to `timeout_s` and returns None on timeout or once closed. After an overflow the
    queue skips packets until the next video keyframe, so what a viewer gets always decodes.
    """

    def __init__(self, hub: LiveStream, max_items: int):
        self._hub, self._max = hub, max_items
        self._items: deque[RunStarted | EncodedPacket] = deque()
        self._cond = threading.Condition()
        self._waiting_keyframe = True
        self._closed = False
        self.dropped = 0

    def _offer(self, item: RunStarted | EncodedPacket) -> None:
        with self._cond:
            if isinstance(item, RunStarted):
                self._waiting_keyframe = True
            elif self._waiting_keyframe:
                if item.track != "video" or not item.keyframe:
                    self.dropped += 1
                    return
                self._waiting_keyframe = False
            if len(self._items) >= self._max:
                self.dropped += len(self._items) + 1
                self._items.clear()
                self._waiting_keyframe = True
                return
            self._items.append(item)
            self._cond.notify()

    def get(self, timeout_s: float | None = None) -> RunStarted | EncodedPacket | None:
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout_s)
            return self._items.popleft() if self._items else None

    def close(self) -> None:
        self._hub._unsubscribe(self)
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LiveStream:
    """The tap of one (channel, stream). Thread-safe; publishing costs nothing with no subscribers."""

    def __init__(self, channel: int, stream: str):
        self.channel, self.stream = channel, stream
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []
        self.info: StreamInfo | None = None
        self._frame: RawFrame | None = None
        self._frame_cond = threading.Condition()

    def subscribe(self, *, max_items: int = 256) -> Subscription:
        """A new subscription; it starts with the current run's info (if any) and the next keyframe."""
        sub = Subscription(self, max_items)
        with self._lock:
            if self.info is not None:
                sub._offer(RunStarted(self.info))
            self._subs.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def publish_run(self, info: StreamInfo) -> None:
        with self._lock:
            self.info = info
            subs = list(self._subs)
        for sub in subs:
            sub._offer(RunStarted(info))

    def publish(self, packet: EncodedPacket) -> None:
        if not self._subs:
            return
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub._offer(packet)

    def publish_frame(self, frame: RawFrame) -> None:
        """The newest raw captured picture (analog channels); replaces the one before."""
        with self._frame_cond:
            self._frame = frame
            self._frame_cond.notify_all()

    def latest_frame(self, *, newer_than: int = -1, timeout_s: float = 0.0) -> RawFrame | None:
        """The newest raw frame whose `sequence` is above `newer_than`, waiting up to `timeout_s`."""
        with self._frame_cond:
            if self._frame is None or self._frame.sequence <= newer_than:
                self._frame_cond.wait(timeout_s)
            frame = self._frame
        return frame if frame is not None and frame.sequence > newer_than else None

    @property
    def subscribers(self) -> int:
        return len(self._subs)


class LiveHub:
    """Every stream's tap, by (channel, stream). The supervisor owns one and hands it to each recorder."""

    def __init__(self):
        self._lock = threading.Lock()
        self._streams: dict[tuple[int, str], LiveStream] = {}

    def stream(self, channel: int, stream: str = "main") -> LiveStream:
        """The tap of (channel, stream), created on first use so viewers may subscribe before it runs."""
        with self._lock:
            key = (channel, stream)
            if key not in self._streams:
                self._streams[key] = LiveStream(channel, stream)
            return self._streams[key]

    def streams(self) -> list[LiveStream]:
        with self._lock:
            return list(self._streams.values())
