"""Video loss on analog channels: `VideoLossGuard` raises and clears the `video_loss` alarm and waits for the picture.

A DVR channel whose camera is unplugged (or whose capture card is pulled) is not a broken source to
back off from: the recorder must say "video loss" within seconds and record again as soon as the
picture is back. The capture (hal) says when the picture is gone (`NoSignal`, `DeviceGone`); this
module turns that into the alarm, ends the run (so the timeline shows a gap, as on a commercial DVR),
and polls the capture until the picture returns.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

from base.clock import Clocks
from base.media import EncodedPacket, RawFrame, StreamInfo
from hal.video import CaptureError, DeviceGone, NoSignal, VideoCapture
from recorder.faults import FaultSink
from recorder.encode import EncodedCapture
from recorder.errors import SourceError, VideoLoss

log = logging.getLogger("nvr.video_loss")

ALARM_KIND = "video_loss"
_WAIT_SLICE_S = 0.05  # how quickly `close` ends a wait between retries


def video_loss_cause(exc: BaseException) -> CaptureError | None:
    """The NoSignal or DeviceGone behind `exc` (itself, or the cause of an EncodedCapture SourceError)."""
    for candidate in (exc, exc.__cause__):
        if isinstance(candidate, (NoSignal, DeviceGone)):
            return candidate
    return None


class VideoLossGuard:
    """An analog channel's `PacketSource`: an `EncodedCapture` whose lost picture is an alarm, not an outage.

    `open` opens the capture; while the device is missing it raises `video_loss` and retries
    (`retry_min_s` doubling to `retry_max_s`) until the device is back or `close` is called. Other
    failures (a wrong input, a busy card) are raised as they are, and the recorder reports those as
    `source_lost`. `packets` yields the encoded packets; the first video packet clears `video_loss`.
    Until it comes, a capture that reports no picture is reopened and waited on here (no run has begun,
    so nothing is cut). Once video has flowed, losing the picture raises `VideoLoss`: the recorder ends
    the run and opens again at once, and this waits for the picture. `close` may be called from any
    thread; it ends a wait at once. (Known window: a `close` to stop that lands between the recorder's
    check of its stop flag and its next `open` is undone by that `open`, and the thread then stops only
    when the picture is back or the process exits; the recorder's join gives up after 10 s and logs it.)
    """

    def __init__(self, encoded: EncodedCapture, capture: VideoCapture, *, channel: int, faults: FaultSink,
                 clocks: Clocks, retry_min_s: float = 0.25, retry_max_s: float = 1.0):
        if not 0 < retry_min_s <= retry_max_s:
            raise ValueError(f"need 0 < retry_min_s <= retry_max_s, not {retry_min_s!r}, {retry_max_s!r}")
        self.name = encoded.name
        self.channel = channel
        self._encoded, self._capture = encoded, capture
        self._faults, self._clocks = faults, clocks
        self._retry_min_s, self._retry_max_s = retry_min_s, retry_max_s
        self._closed = threading.Event()
        self._info: StreamInfo | None = None
        self._lost_since_us: int | None = None
        self._lost_reason: str | None = None
        self.losses = 0  # times the picture went (each raised the alarm once)
        self.reopens = 0  # times the capture was opened again while waiting for the picture

    @property
    def frame_tap(self) -> Callable[[RawFrame], None] | None:
        """The raw-frame hook of the encoder (the appliance's local view sets it)."""
        return self._encoded.frame_tap

    @frame_tap.setter
    def frame_tap(self, tap: Callable[[RawFrame], None] | None) -> None:
        self._encoded.frame_tap = tap

    @property
    def capture(self) -> VideoCapture:
        """The raw capture under the encoder (its test instruments, for the simulated one)."""
        return self._capture

    @property
    def video_lost(self) -> bool:
        return self._lost_since_us is not None

    # --- PacketSource ---------------------------------------------------------------------------

    def open(self) -> StreamInfo:
        """The stream info, once the device opens; waits (alarm raised) while it is gone."""
        self._closed.clear()
        self._info = self._open_when_present(first_wait_s=0.0)
        return self._info

    def packets(self) -> Iterator[EncodedPacket]:
        """Encoded packets until `close`; VideoLoss when the picture goes after packets have flowed."""
        flowing = False
        while True:
            try:
                for packet in self._encoded.packets():
                    if not flowing and packet.track == "video":  # audio alone is no picture
                        flowing = True
                        self._restored()
                    yield packet
                return  # closed
            except SourceError as exc:
                cause = video_loss_cause(exc)
                if cause is None:
                    raise
                self._lost(cause)
                if flowing:
                    raise VideoLoss(f"{self.name}: video loss: {cause}") from exc
            self._encoded.close()
            self._reopen()

    def close(self) -> None:
        self._closed.set()
        self._encoded.close()

    def statistics(self) -> dict[str, object]:
        """Video-loss state plus the capture's own counters (fps measured, frames dropped, signal)."""
        return {
            "video_loss": self._lost_since_us is not None, "video_loss_since_us": self._lost_since_us,
            "video_loss_reason": self._lost_reason, "video_losses": self.losses, "reopens": self.reopens,
            **self._capture.statistics(), **self._encoded.statistics(),
        }

    # --- waiting for the picture --------------------------------------------------------------------

    def _open_when_present(self, *, first_wait_s: float) -> StreamInfo:
        delay_s, wait_s = self._retry_min_s, first_wait_s
        while True:
            self._wait(wait_s)
            try:
                info = self._encoded.open()
            except SourceError as exc:
                cause = video_loss_cause(exc)
                if cause is None:
                    raise
                self._lost(cause)
            else:
                if self._closed.is_set():  # closed while opening: do not leave the capture open
                    self._encoded.close()
                    raise SourceError(f"{self.name}: closed while waiting for the video to come back")
                return info
            wait_s, delay_s = delay_s, min(delay_s * 2, self._retry_max_s)

    def _reopen(self) -> None:
        """Open the capture again after it reported no picture before the run began."""
        self.reopens += 1
        info = self._open_when_present(first_wait_s=self._retry_min_s)
        if info != self._info:
            raise SourceError(f"{self.name}: the capture came back as {info.width}x{info.height} at {info.fps} fps "
                              f"instead of {self._info.width}x{self._info.height} at {self._info.fps} fps")

    def _wait(self, seconds: float) -> None:
        """Wait on the injected clock, in short slices so that `close` ends it; SourceError once closed."""
        end_us = self._clocks.monotonic_us() + round(seconds * 1e6)
        while True:
            if self._closed.is_set():
                raise SourceError(f"{self.name}: closed while waiting for the video to come back")
            left_us = end_us - self._clocks.monotonic_us()
            if left_us <= 0:
                return
            self._clocks.sleep(min(left_us / 1e6, _WAIT_SLICE_S))

    # --- the alarm ------------------------------------------------------------------------------

    def _lost(self, cause: CaptureError) -> None:
        reason = str(cause)
        if self._lost_since_us is None:
            self._lost_since_us = self._clocks.utc_now_us()
            self.losses += 1
            self._faults.raise_fault(ALARM_KIND, f"channel {self.channel}: {reason}", channel=self.channel)
        elif type(cause).__name__ not in (self._lost_reason or ""):
            log.warning("channel %d: still no video: %s", self.channel, reason)
        self._lost_reason = f"{type(cause).__name__}: {reason}"

    def _restored(self) -> None:
        if self._lost_since_us is None:
            return
        lasted_s = (self._clocks.utc_now_us() - self._lost_since_us) / 1e6
        self._lost_since_us = self._lost_reason = None
        log.info("channel %d: video is back after %.1f s; recording resumes", self.channel, lasted_s)
        self._faults.clear_fault(ALARM_KIND, channel=self.channel)
