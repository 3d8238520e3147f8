"""An ONVIF camera's stream as a packet source: the RTSP URI is asked of the camera at every open.

A camera that rebooted onto another RTSP port or path, or whose firmware names its streams anew, is
found again at the next reconnect without editing the config: `OnvifRtspCamera.open` asks the device
service for the profile's stream URI, puts the ONVIF user and password into it (cameras expect the same
account on RTSP), and opens an RTSP client for it (built by `make_camera`, so the appliance's client
choice applies), replacing the previous client when the URI changed. Everything else is the RTSP
client's: packets, stall detection, statistics.

A camera that DHCP gave another address no longer answers at the configured URL. With `rediscover`
(a WS-Discovery probe), an open that finds the camera unreachable looks for it (at most every
REDISCOVER_EVERY_S): each device found elsewhere is asked with the same credentials, and the one with
the identity (manufacturer, model, serial number) last seen at the old address is used from then on,
with a warning saying to update the config.
"""
from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from urllib.parse import quote, urlsplit, urlunsplit

from base.clock import Clocks, RealClocks
from base.credentials import mask_credentials
from base.media import EncodedPacket, StreamInfo

from drivers.onvif.camera import StreamUris, device_service_url, resolve_stream_uris
from drivers.onvif.errors import CameraUnreachable, OnvifError

log = logging.getLogger("nvr.onvif")

PROBE_TIMEOUT_S = 0.5  # a device service that does not accept a TCP connection within this is not answering
ASK_TIMEOUT_S = 5.0  # per ONVIF call when asking for the URI (cameras answer in well under a second): an open,
                     # and so a recorder being stopped meanwhile, waits at most RESOLVE_CALLS_BUDGET of these
REDISCOVER_EVERY_S = 60.0  # the least time between two searches for a camera that moved
REDISCOVER_TIMEOUT_S = 2.0  # how long one search waits for answers
MAX_CANDIDATES = 8  # devices found elsewhere that one search asks


def with_credentials(uri: str, username: str | None, password: str | None) -> str:
    """`uri` with ``user:password@`` (percent-encoded) in place of any it had; unchanged without a user."""
    if not username:
        return uri
    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    userinfo = quote(username, safe="") + (":" + quote(password, safe="") if password else "")
    return urlunsplit((parts.scheme, f"{userinfo}@{host}", parts.path, parts.query, parts.fragment))


class OnvifRtspCamera:
    """A PacketSource for one stream (`stream` "main" or "sub") of an ONVIF camera (see the module docstring).

    `open` raises drivers.onvif.errors' errors when the camera's ONVIF service fails (WrongCredentials
    and NotOnvif carry `refused`, so the recorder waits long between attempts), else what the RTSP
    client raises. `probe` is a TCP connect to the device service.
    """

    def __init__(self, url: str, *, username: str | None, password: str | None, profile: str | None,
                 stream: str, name: str, make_camera: Callable[[str], object],
                 timeout_s: float = ASK_TIMEOUT_S, resolve=resolve_stream_uris, rediscover=None,
                 clocks: Clocks | None = None):
        if stream not in ("main", "sub") or (stream == "sub" and profile is None):
            raise ValueError(f"stream must be 'main' or 'sub' (with a profile), not {stream!r}")
        self.url, self.name, self.stream = device_service_url(url), name, stream
        self._username, self._password, self._profile = username, password, profile
        self._make_camera, self._resolve, self.timeout_s = make_camera, resolve, timeout_s
        self._camera = None
        self._camera_url: str | None = None
        self._closes = 0
        self._lock = threading.Lock()
        self.uri_changes = 0  # times the camera named another URI than the one before
        self.moves = 0  # times the camera was found at another address
        self.last_onvif_error: str | None = None
        self._rediscover, self._clocks = rediscover, clocks or RealClocks()
        self._identity: tuple[str, str, str] | None = None  # (manufacturer, model, serial) last seen
        self._searched_at_s: float | None = None

    def __repr__(self) -> str:
        return f"OnvifRtspCamera({self.url!r}, stream={self.stream!r}, name={self.name!r})"

    @property
    def stream_url(self) -> str | None:
        """The RTSP URI in use (password masked), None before the first open."""
        return None if self._camera_url is None else mask_credentials(self._camera_url)

    @property
    def learnt_url(self) -> str | None:
        """The RTSP URI in use with the ONVIF user and password in it (what the box itself dials, e.g. for
        the camera's audio back channel; never shown), None before the first open."""
        return self._camera_url

    def open(self) -> StreamInfo:
        closes = self._closes
        camera = self._camera_for(self._ask_uri())
        if self._closes != closes:
            raise CameraUnreachable(f"{self.name}: closed while asking the camera for its stream")
        return camera.open()

    def packets(self) -> Iterator[EncodedPacket]:
        if self._camera is None:
            raise RuntimeError(f"{self.name}: open() before packets()")
        return self._camera.packets()

    def close(self) -> None:
        with self._lock:
            self._closes += 1
            camera = self._camera
        if camera is not None:
            camera.close()

    def probe(self) -> bool:
        """Whether the camera's device service accepts a TCP connection now."""
        parts = urlsplit(self.url)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            with socket.create_connection((parts.hostname, port), timeout=PROBE_TIMEOUT_S):
                return True
        except (OSError, ValueError):
            return False

    def statistics(self) -> dict[str, object]:
        inner = self._camera.statistics() if self._camera is not None and hasattr(self._camera, "statistics") else {}
        return {**inner, "onvif_url": self.url, "stream_url": self.stream_url, "uri_changes": self.uri_changes,
                "moves": self.moves, "onvif_error": self.last_onvif_error}

    def _ask_uri(self) -> str:
        try:
            try:
                uris = self._ask(self.url)
            except CameraUnreachable as exc:
                uris = self._find_moved(exc)
        except Exception as exc:
            self.last_onvif_error = str(exc)
            raise
        self.last_onvif_error = None
        if any(uris.identity):
            self._identity = uris.identity
        return with_credentials(uris.main, self._username, self._password)

    def _ask(self, url: str) -> StreamUris:
        """The stream URI of this source's profile (for the sub stream, its profile is asked as the main)."""
        return self._resolve(url, username=self._username, password=self._password, profile=self._profile,
                             sub_profile=None, timeout_s=self.timeout_s)

    def _find_moved(self, unreachable: CameraUnreachable) -> StreamUris:
        """The camera found at another address by WS-Discovery and its identity, or `unreachable` raised."""
        now_s = self._clocks.monotonic_us() / 1e6
        if self._rediscover is None or self._identity is None or (
                self._searched_at_s is not None and now_s - self._searched_at_s < REDISCOVER_EVERY_S):
            raise unreachable
        self._searched_at_s = now_s
        for device in self._rediscover(timeout_s=REDISCOVER_TIMEOUT_S)[:MAX_CANDIDATES]:
            url = device_service_url(device.url)
            if url == self.url:
                continue
            try:
                uris = self._ask(url)
            except OnvifError:
                continue
            if uris.identity == self._identity:
                log.warning("%s: the camera (%s) moved from %s to %s; put the new address in the config",
                            self.name, " ".join(self._identity), self.url, url)
                self.url, self.moves = url, self.moves + 1
                return uris
        raise unreachable

    def _camera_for(self, url: str):
        with self._lock:
            if self._camera is not None and url == self._camera_url:
                return self._camera
            old, self._camera = self._camera, self._make_camera(url)
            if old is not None:
                self.uri_changes += 1
                log.info("%s: the camera now names %s for its stream", self.name, mask_credentials(url))
            self._camera_url = url
        if old is not None:
            old.close()
        return self._camera
