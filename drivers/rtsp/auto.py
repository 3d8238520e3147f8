"""Choosing the RTSP client per camera: the native one where it can, FFmpeg's (PyAV) where it cannot.

    client: native   NativeRtspCamera only (a camera it cannot handle fails with NativeUnsupported)
    client: ffmpeg   RtspCamera (PyAV) only, as before the native client existed
    client: auto     NativeRtspCamera; once it finds the camera needs something it does not do
                     (H.265, UDP only, B-frames...), FFmpeg's client for that camera from then on
                     (over UDP for a camera that refused RTP over TCP)
"""
from __future__ import annotations

import logging
from collections.abc import Iterator

from base.clock import Clocks
from base.media import EncodedPacket, StreamInfo
from drivers.rtsp.ffmpeg import RtspCamera, mask_url
from drivers.rtsp.loop import RtspLoop
from drivers.rtsp.native import NativeRtspCamera, NativeUnsupported

log = logging.getLogger("nvr.rtsp")

CLIENTS = ("auto", "native", "ffmpeg")


def rtsp_camera(url: str, *, client: str = "auto", name: str, clocks: Clocks, timeout_s: float = 10.0,
                audio: bool = True, loop: RtspLoop | None = None):
    """The PacketSource for one RTSP stream with the client `client` ("auto", "native" or "ffmpeg");
    `audio` False leaves the camera's audio out."""
    if client == "ffmpeg":
        return RtspCamera(url, name=name, clocks=clocks, timeout_s=timeout_s, audio=audio)
    if client == "native":
        return NativeRtspCamera(url, name=name, clocks=clocks, timeout_s=timeout_s, audio=audio, loop=loop)
    if client == "auto":
        return AutoRtspCamera(url, name=name, clocks=clocks, timeout_s=timeout_s, audio=audio, loop=loop)
    raise ValueError(f"client must be one of {', '.join(CLIENTS)}, not {client!r}")


class AutoRtspCamera:
    """The native client, falling back to FFmpeg's for good once the camera proves unsupported.

    The fallback happens inside `open` when negotiation finds something unsupported (the same call
    then opens with FFmpeg), or after `packets` raised NativeUnsupported (the next `open` uses
    FFmpeg). `statistics()` says which client reads the camera and why.
    """

    def __init__(self, url: str, *, name: str, clocks: Clocks, timeout_s: float = 10.0, audio: bool = True,
                 loop: RtspLoop | None = None):
        self.url = url
        self.name = name
        self.timeout_s = timeout_s
        self._clocks = clocks
        self._native = NativeRtspCamera(url, name=name, clocks=clocks, timeout_s=timeout_s, audio=audio, loop=loop)
        self.audio = self._audio = audio  # read by the appliance's checks, as on the other two clients
        self._ffmpeg = RtspCamera(url, name=name, clocks=clocks, timeout_s=timeout_s, audio=audio)
        self._active: NativeRtspCamera | RtspCamera = self._native
        self.fallback_reason: str | None = None

    def __repr__(self) -> str:
        return f"AutoRtspCamera({mask_url(self.url)!r}, name={self.name!r}, client={self.client!r})"

    @property
    def client(self) -> str:
        return "native" if self._active is self._native else "ffmpeg"

    def open(self) -> StreamInfo:
        if self._active is self._native:
            try:
                return self._native.open()
            except NativeUnsupported as exc:
                self._fall_back(exc)
        return self._ffmpeg.open()

    def packets(self) -> Iterator[EncodedPacket]:
        try:
            yield from self._active.packets()
        except NativeUnsupported as exc:
            self._fall_back(exc)
            raise

    def close(self) -> None:
        self._native.close()
        self._ffmpeg.close()

    def probe(self) -> bool:
        """Whether the camera accepts a TCP connection now (drivers.rtsp.ffmpeg.probe)."""
        return self._native.probe()

    def statistics(self) -> dict[str, object]:
        return {**self._active.statistics(), "client": self.client, "fallback_reason": self.fallback_reason}

    def _fall_back(self, exc: NativeUnsupported) -> None:
        self.fallback_reason = str(exc)
        if exc.needs_udp:
            self._ffmpeg = RtspCamera(self.url, name=self.name, clocks=self._clocks, timeout_s=self.timeout_s,
                                      audio=self._audio, transport="udp")
        self._active = self._ffmpeg
        self._native.close()
        log.warning("%s: the native RTSP client cannot read this camera (%s); using FFmpeg's", self.name, exc)
