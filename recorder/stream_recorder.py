"""The loop that keeps one stream recording: connect, record, and reconnect (recorder.reconnect decides when)."""
from __future__ import annotations

import logging
import threading

from base.clock import Clocks
from recorder.faults import FaultSink
from recorder.errors import TracksChanged, VideoLoss
from recorder.audio_transcode import AudioTranscoder, recordable, transcoded
from recorder.live import LiveStream
from recorder.reconnect import RETRY_MAX_S, ReconnectPolicy, Step
from recorder.segmenter import Segmenter
from recorder.source import PacketSource

log = logging.getLogger("nvr.stream")


class StreamRecorder:
    """Records `source` through `segmenter` on its own thread until `stop`.

    Any failure of the source (refused, dropped, stalled, ended) ends the run; the loop waits and
    connects again, raising `source_lost` while the stream is down. The waits (recorder.reconnect):
    from `reconnect_min_s`, doubling up to `reconnect_max_s` for a camera that answers and refuses
    (the source's error has `refused` set), up to RETRY_MAX_S for any other failure; meanwhile the
    source's `probe()` (if it has one: a TCP connect) is tried, and a camera seen answering again
    after silence is opened at once. A `VideoLoss` (an analog input lost its picture) ends the run
    too, but the source is opened again at once and no `source_lost` is raised: the source raised
    `video_loss` and waits for the picture itself (recorder.video_loss). `TracksChanged` (a microphone
    came back) also ends the run and reopens at once. An unexpected exception is logged with its traceback
    and treated the same way: the thread never dies while the appliance runs.
    """

    def __init__(self, *, source: PacketSource, segmenter: Segmenter, faults: FaultSink, clocks: Clocks,
                 reconnect_min_s: float = 1.0, reconnect_max_s: float = 30.0, live: LiveStream | None = None):
        self.source, self.segmenter, self._faults, self._clocks = source, segmenter, faults, clocks
        self.live = live or LiveStream(segmenter.channel, segmenter.stream)
        retry_max_s = max(reconnect_min_s, min(RETRY_MAX_S, reconnect_max_s))
        self.policy = ReconnectPolicy(min_s=reconnect_min_s, retry_max_s=retry_max_s,
                                      refused_max_s=max(reconnect_max_s, reconnect_min_s))
        self.probes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connects = 0
        self.failures = 0
        self.last_error: str | None = None
        self.connected = False
        self._reopen_at_once = False
        self._last_refused = False
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
        policy = self.policy
        probe = getattr(self.source, "probe", None)
        while not self._stop.is_set():
            policy.attempting()
            started = self._clocks.monotonic_us() / 1e6
            self._last_refused = False
            self._record_once()
            if self._stop.is_set():
                break
            if self._reopen_at_once:  # video loss: the source raised its alarm and waits for the picture
                self._reopen_at_once = False
                continue
            now = self._clocks.monotonic_us() / 1e6
            delay = policy.failed(now, refused=self._last_refused, lasted_s=now - started)
            log.info("%s: reconnecting in at most %.1f s%s", self.label, delay,
                     " (the camera refused)" if self._last_refused else "")
            self._wait_for_attempt(policy, probe)

    def _wait_for_attempt(self, policy: ReconnectPolicy, probe) -> None:
        """Wait until the policy says attempt (probing the camera meanwhile), or until stopped."""
        while not self._stop.is_set():
            now = self._clocks.monotonic_us() / 1e6
            step = policy.next(now, can_probe=probe is not None)
            if step.step is Step.ATTEMPT:
                return
            if step.step is Step.PROBE:
                self.probes += 1
                try:
                    answered = bool(probe())
                except Exception:  # noqa: BLE001 - a probe is advisory
                    log.exception("%s: probing the camera failed", self.label)
                    answered = False
                policy.probed(self._clocks.monotonic_us() / 1e6, answered)
                continue
            self._clocks.wait(self._stop, step.wait_s)

    def _record_once(self) -> None:
        try:
            info, self.transcoder = recordable(self.source.open(), label=self.label)  # G.711 becomes AAC here
            self.connects += 1
            self.connected = True
            self._faults.clear_fault("source_lost", channel=self.segmenter.channel)
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
        if isinstance(exc, (VideoLoss, TracksChanged)):
            self.last_error, self._reopen_at_once = str(exc), True
            return
        self.failures += 1
        self.last_error = str(exc) or type(exc).__name__
        self._last_refused = bool(getattr(exc, "refused", False))
        if isinstance(exc, (ConnectionError, TimeoutError, OSError, ValueError)):
            log.warning("%s: %s", self.label, self.last_error)
        else:
            log.exception("%s: unexpected failure; recording will restart", self.label)
        self._faults.raise_fault("source_lost", f"{self.label}: {self.last_error}", channel=self.segmenter.channel)

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
            "probes": self.probes, "reopened_on_probe": self.policy.early_attempts,
            "last_error": self.last_error, **{k: getattr(stats, k) for k in stats.__slots__},
        }
        source_stats = getattr(self.source, "statistics", None)
        if source_stats is not None:
            out["source_stats"] = source_stats()
        if self.transcoder is not None:
            out.update(self.transcoder.statistics())
        return out
