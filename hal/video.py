"""The video capture seam: one Protocol that the V4L2 backend and the simulated test pattern both meet."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from hal.media import CaptureFormat, RawFrame


class CaptureError(RuntimeError):
    """A capture device failed or vanished; the caller retries later."""


class VideoCapture(Protocol):
    """A source of raw frames.

    `open` negotiates and returns the format; `frames` yields frames paced at the device's rate
    (blocking between them) until `close` is called from another thread or the device fails with
    `CaptureError`.
    """

    def open(self) -> CaptureFormat: ...

    def frames(self) -> Iterator[RawFrame]: ...

    def close(self) -> None: ...
