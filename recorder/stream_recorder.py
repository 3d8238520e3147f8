"""The loop that keeps one stream recording: connect, record, and reconnect with capped backoff."""
from __future__ import annotations

import logging
import threading

from base.clock import Clocks
from recorder.alarms import AlarmSink
from recorder.errors import VideoLoss
from recorder.audio_transcode import AudioTranscoder, recordable, transcoded
from recorder.live import LiveStream
from recorder.segmenter import Segmenter
from recorder.source import PacketSource

log = logging.getLogger("nvr.stream")

STABLE_RUN_S = 30.0  # a connection that lasted this long resets the backoff


class StreamRecorder:
    """Records `source` through `segmenter` on its own thread until `stop`.

    Any failure of the source (refused, dropped, stalled, ended) ends the run; the loop waits
    (1 s, doubling, capped at `reconnect_max_s`) and connects again, raising `source_lost` while the
    stream is down. A `VideoLoss` (an analog input lost its picture) ends the run too, but the source
    is opened again at once and no `source_lost` is raised: the source raised `video_loss` and waits
    for the picture itself (recorder.video_loss). An unexpected exception is logged with its traceback
    and treated the same way: the thread never dies while the appliance runs.
    """

    def __init__(self, *, source: PacketSource, segmenter: Segmenter, alarms: AlarmSink, clocks: Clocks,
                 reconnect_min_s: float = 1.0, reconnect_max_s: float = 30.0, live: LiveStream | None = None):
        self.source, self.segmenter, self._alarms, self._clocks = source, segmenter, alarms, clocks
        self.live = live or LiveStream(segmenter.channel, segmenter.stream)
        self._min_s, self._max_s = reconnect_min_s, reconnect_max_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connects = 0
        self.failures = 0
        self.last_error: str | None = None
        self.connected = False
        self._reopen_at_once = False
        self.transcoder: AudioTranscoder | None = None

    @property
    def label(self) -> str:
        return f"channel {self.segmenter.channel} {self.segmenter.stream}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"rec-{self.segmenter.channel}-{self.segmenter.stream}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop recording; the open segment is closed and indexed before this returns."""
        self.request_stop()
        self.join(timeout_s)

    def is_alive(self) -> bool:
        """True while the recording thread runs (the service watchdog pings only while every one does)."""
        return self._thread is not None and self._thread.is_alive()

    def request_stop(self) -> None:
        """Ask the thread to stop and return at once (so that many streams stop together)."""
        self._stop.set()
        self.source.close()

    def join(self, timeout_s: float = 10.0) -> None:
        """Wait for the thread to finish (after `request_stop`)."""
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("%s: recording thread did not stop within %.0f s", self.label, timeout_s)

    def _loop(self) -> None:
        delay = self._min_s
        while not self._stop.is_set():
            started_us = self._clocks.monotonic_us()
            self._record_once()
            if self._stop.is_set():
                break
            if self._reopen_at_once:  # video loss: the source raised its alarm and waits for the picture
                self._reopen_at_once, delay = False, self._min_s
                continue
            if self._clocks.monotonic_us() - started_us >= STABLE_RUN_S * 1e6:
                delay = self._min_s
            log.info("%s: reconnecting in %.1f s", self.label, delay)
            self._stop.wait(delay)
            delay = min(delay * 2, self._max_s)  # the first wait is reconnect_min_s, then it doubles

    def _record_once(self) -> None:
        try:
            info, self.transcoder = recordable(self.source.open(), label=self.label)  # G.711 becomes AAC here
            self.connects += 1
            self.connected = True
            self._alarms.clear_alarm("source_lost", channel=self.segmenter.channel)
            log.info("%s: connected to %s (%s %dx%d)", self.label, self.source.name, info.codec, info.width, info.height)
            self.segmenter.start_run(info)
            self.live.publish_run(info)
            push, publish = self.segmenter.push, self.live.publish
            packets = self.source.packets()
            if self.transcoder is not None:
                packets = transcoded(packets, self.transcoder)
            for packet in packets:
                if self._stop.is_set():
                    return
                push(packet)
                publish(packet)
            raise ConnectionError("the stream ended")
        except Exception as exc:
            self._failed(exc)
        finally:
            self.connected = False
            self._finish()

    def _failed(self, exc: Exception) -> None:
        if self._stop.is_set():
            return  # closing the source to stop makes it fail; that is not an outage
        if isinstance(exc, VideoLoss):
            self.last_error, self._reopen_at_once = str(exc), True
            return
        self.failures += 1
        self.last_error = str(exc) or type(exc).__name__
        if isinstance(exc, (ConnectionError, TimeoutError, OSError, ValueError)):
            log.warning("%s: %s", self.label, self.last_error)
        else:
            log.exception("%s: unexpected failure; recording will restart", self.label)
        self._alarms.raise_alarm("source_lost", f"{self.label}: {self.last_error}", channel=self.segmenter.channel)

    def _finish(self) -> None:
        try:
            if self.transcoder is not None:  # its last quarter second belongs to this run
                for packet in self.transcoder.flush():
                    self.segmenter.push(packet)
            self.segmenter.finish()
        except Exception:
            log.exception("%s: closing the segment failed", self.label)
        try:
            self.source.close()
        except Exception:
            log.exception("%s: closing the source failed", self.label)

    def statistics(self) -> dict:
        stats = self.segmenter.stats
        out = {
            "connected": self.connected, "connects": self.connects, "failures": self.failures,
            "last_error": self.last_error, **{k: getattr(stats, k) for k in stats.__slots__},
        }
        source_stats = getattr(self.source, "statistics", None)
        if source_stats is not None:
            out["source_stats"] = source_stats()
        if self.transcoder is not None:
            out.update(self.transcoder.statistics())
        return out
