"""One camera's ONVIF device service: connect with the authentication the camera needs, then read its
identity, media profiles, stream URIs and snapshot URIs.

Built on the `onvif-zeep-async` library (design/onvif.md says why). What this module adds to it:

- the camera's address as one URL: a bare ``http://HOST[:PORT]`` means ``/onvif/device_service``, a
  full URL (as WS-Discovery's XAddrs give it) is used as it is;
- authentication as real cameras need it: a WS-UsernameToken with PasswordDigest, and when the camera
  refuses that, PasswordText; HTTP Digest answered on every request that gets a Digest challenge; the
  token's Created time shifted by the camera's clock offset (GetSystemDateAndTime), so a camera whose
  clock is off by hours still accepts the digest;
- bounds: every call ends within `timeout_s` and every answer is at most `max_response_bytes`;
- errors that say what to do (drivers.onvif.errors): unreachable, wrong credentials, not ONVIF.

All methods are coroutines; `resolve_stream_uris` and `read_camera` run them from a thread without an
event loop (the recorder's, the command line's).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import zeep.exceptions
from onvif import ONVIFCamera
from onvif.exceptions import ONVIFAuthError, ONVIFError
from onvif.util import is_auth_error, stringify_onvif_error

from drivers.onvif.errors import CameraUnreachable, NotOnvif, OnvifError, ResponseTooLarge, WrongCredentials

log = logging.getLogger("nvr.onvif")

DEVICE_SERVICE_PATH = "/onvif/device_service"
CALL_TIMEOUT_S = 10.0  # the longest one SOAP call (with its HTTP Digest retry) may take
MAX_RESPONSE_BYTES = 2 * 1024 * 1024  # a 64-channel NVR's GetProfiles is a few hundred kB
MAX_PROFILES = 64  # profiles kept from one GetProfiles answer
READ_CHUNK_BYTES = 64 * 1024
MAX_READ_PROFILES = 16  # video profiles whose URIs `read_camera` asks for (a 64-channel NVR lists 128)
READ_CALLS_BUDGET = 6  # `read_camera` as a whole ends within this many calls' timeouts
RESOLVE_CALLS_BUDGET = 2  # and `resolve_stream_uris` (asked at every reconnect) within this many
AUTH_MODES = ("digest", "text")  # WS-UsernameToken password types, tried in this order


def device_service_url(url: str) -> str:
    """The device service URL for `url`: ``http://HOST[:PORT]`` (no path) gets DEVICE_SERVICE_PATH."""
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        return urlunsplit((parts.scheme, parts.netloc, DEVICE_SERVICE_PATH, "", ""))
    return url


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    manufacturer: str
    model: str
    firmware_version: str
    serial_number: str
    hardware_id: str


@dataclass(frozen=True, slots=True)
class Profile:
    """A media profile as the camera lists it: `encoding` and the resolution are None when the profile
    has no video encoder configuration."""

    token: str
    name: str
    encoding: str | None
    width: int | None
    height: int | None

    def describe(self) -> str:
        size = f"{self.width}x{self.height}" if self.width and self.height else "no video"
        return f"{self.token} ({self.name}, {self.encoding or '?'} {size})"


@dataclass(frozen=True, slots=True)
class StreamUris:
    """What a channel records from: the main profile's RTSP URI and, where configured, the sub's; and
    the camera's identity (manufacturer, model, serial number), by which it is found again elsewhere."""

    main_profile: str
    main: str
    sub_profile: str | None = None
    sub: str | None = None
    identity: tuple[str, str, str] = ("", "", "")


def _size_cap(max_bytes: int, statuses: list[int]):
    """An aiohttp client middleware that reads each answer itself and gives up past `max_bytes`; it
    notes each answer's HTTP status in `statuses` (the last one only), which the library does not keep."""

    async def middleware(request, handler):
        response = await handler(request)
        statuses[:] = [response.status]
        if response.content_length is not None and response.content_length > max_bytes:
            response.close()
            raise ResponseTooLarge(f"{request.url.host} announced a {response.content_length}-byte answer, over "
                                   f"the {max_bytes} bytes accepted from a camera")
        body = bytearray()
        while chunk := await response.content.read(READ_CHUNK_BYTES):
            body += chunk
            if len(body) > max_bytes:
                response.close()
                raise ResponseTooLarge(f"{request.url.host} sent over the {max_bytes} bytes accepted from a camera")
        response._body = bytes(body)  # what ClientResponse.read() returns once the body has been read
        return response

    return middleware


class _BoundedLibraryCamera(ONVIFCamera):
    """The library's camera, with the device service at any path, a size cap and HTTP Digest on every
    service it creates (its own sessions have neither)."""

    def __init__(self, service_url: str, *, username: str | None, password: str | None, digest_token: bool,
                 max_response_bytes: int):
        parts = urlsplit(service_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        super().__init__(f"{parts.scheme}://{parts.hostname}", port, username, password,
                         encrypt=digest_token, adjust_time=True, no_cache=True)  # no cache file: WSDLs are local
        self.service_url = service_url
        self.last_status: list[int] = []  # the HTTP status of the last answer
        self._middlewares = [_size_cap(max_response_bytes, self.last_status)]
        if username is not None:
            self._middlewares.insert(0, aiohttp.DigestAuthMiddleware(username, password or ""))

    def get_definition(self, name, port_type=None):
        xaddr, wsdl, binding = super().get_definition(name, port_type)
        return (self.service_url if name == "devicemgmt" else xaddr), wsdl, binding

    async def create_onvif_service(self, name, port_type=None, read_timeout=None, write_timeout=None):
        service = await super().create_onvif_service(name, port_type, read_timeout, write_timeout)
        service._session._middlewares = tuple(self._middlewares)  # the library gives no way to pass them in
        return service


class OnvifCamera:
    """A connection to one camera's ONVIF device service.

    `connect` finds the authentication the camera accepts (see the module docstring) and the addresses
    of its services; then `device_information`, `profiles`, `stream_uri`, `snapshot_uri` ask it. Use as
    ``async with OnvifCamera(url, username=..., password=...) as camera:``.
    """

    def __init__(self, url: str, *, username: str | None = None, password: str | None = None,
                 timeout_s: float = CALL_TIMEOUT_S, max_response_bytes: int = MAX_RESPONSE_BYTES):
        self.url = device_service_url(url)
        self.host = urlsplit(self.url).hostname or "?"
        self.username, self._password = username, password
        self.timeout_s, self.max_response_bytes = timeout_s, max_response_bytes
        self.auth: str | None = None  # the WS-UsernameToken password type the camera accepted
        self._library: _BoundedLibraryCamera | None = None
        self._info: DeviceInfo | None = None
        self._connecting: _BoundedLibraryCamera | None = None

    def __repr__(self) -> str:
        return f"OnvifCamera({self.url!r}, username={self.username!r}, auth={self.auth!r})"

    async def __aenter__(self) -> OnvifCamera:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    @property
    def library_camera(self) -> ONVIFCamera:
        """The connected library camera (`onvif.ONVIFCamera`, `update_xaddrs()` done), for the modules
        that drive more of ONVIF than this one (PTZ, events)."""
        if self._library is None:
            raise RuntimeError("connect() the OnvifCamera before asking for its library camera")
        return self._library

    @property
    def clock_offset_s(self) -> float:
        """The camera's clock minus ours, in seconds (0.0 before `connect`)."""
        diff = self._library.dt_diff if self._library is not None else None
        return diff.total_seconds() if diff is not None else 0.0

    async def connect(self) -> None:
        """Connect: the clock offset, the services' addresses and the device information, with the first
        authentication the camera accepts. Raises CameraUnreachable, WrongCredentials or NotOnvif."""
        modes = AUTH_MODES if self.username is not None else ("digest",)
        refused: WrongCredentials | None = None
        for mode in modes:
            library = _BoundedLibraryCamera(self.url, username=self.username, password=self._password,
                                            digest_token=mode == "digest", max_response_bytes=self.max_response_bytes)
            self._connecting = library
            try:
                await self._call(library.update_xaddrs(), "GetSystemDateAndTime and GetServices")
                self._library = library
                self._info = await self._read_device_information()
            except WrongCredentials as exc:
                refused = exc
                self._library = None
                await library.close()
                continue
            except BaseException:
                self._library = None
                await library.close()
                raise
            self.auth = mode
            log.info("%s: ONVIF connected (password %s, clock offset %.1f s)", self.host, mode, self.clock_offset_s)
            return
        raise refused

    async def close(self) -> None:
        if self._library is not None:
            library, self._library = self._library, None
            await library.close()

    async def device_information(self) -> DeviceInfo:
        if self._info is None:
            self._info = await self._read_device_information()
        return self._info

    async def profiles(self) -> list[Profile]:
        """The camera's media profiles in its order (at most MAX_PROFILES)."""
        media = await self._call(self.library_camera.create_media_service(), "the media service")
        answer = await self._call(media.GetProfiles(), "GetProfiles")
        return [_profile(item) for item in list(answer or [])[:MAX_PROFILES]]

    async def stream_uri(self, profile_token: str) -> str:
        """The RTSP URI (unicast, RTP over RTSP) of profile `profile_token`."""
        media = await self._call(self.library_camera.create_media_service(), "the media service")
        request = {"ProfileToken": profile_token,
                   "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}}
        answer = await self._call(media.GetStreamUri(request), f"GetStreamUri for profile {profile_token!r}")
        uri = getattr(answer, "Uri", None)
        if not isinstance(uri, str) or not uri.lower().startswith(("rtsp://", "rtsps://")):
            raise NotOnvif(f"{self.host} gave {uri!r} as the stream of profile {profile_token!r}, not an rtsp:// URI")
        return uri.strip()

    async def snapshot_uri(self, profile_token: str) -> str | None:
        """The HTTP snapshot URI of `profile_token`, or None where the camera has none."""
        media = await self._call(self.library_camera.create_media_service(), "the media service")
        try:
            answer = await self._call(media.GetSnapshotUri({"ProfileToken": profile_token}),
                                      f"GetSnapshotUri for profile {profile_token!r}")
        except OnvifError as exc:
            if isinstance(exc, (CameraUnreachable, WrongCredentials)):
                raise
            return None  # many cameras answer a fault: they have no snapshot
        uri = getattr(answer, "Uri", None)
        return uri.strip() if isinstance(uri, str) and uri.lower().startswith(("http://", "https://")) else None

    async def stream_uris(self, profile: str | None, sub_profile: str | None) -> StreamUris:
        """The URIs a channel records: `profile` (default: the camera's first) and `sub_profile` if named."""
        if profile is None:
            listed = await self.profiles()
            if not listed:
                raise NotOnvif(f"{self.host} lists no media profile: add one in the camera's own web page")
            profile = listed[0].token
        main = await self.stream_uri(profile)
        sub = await self.stream_uri(sub_profile) if sub_profile else None
        info = await self.device_information()
        return StreamUris(profile, main, sub_profile, sub, (info.manufacturer, info.model, info.serial_number))

    async def _read_device_information(self) -> DeviceInfo:
        device = await self._call(self.library_camera.create_devicemgmt_service(), "the device service")
        answer = await self._call(device.GetDeviceInformation(), "GetDeviceInformation")
        return DeviceInfo(*(_text(getattr(answer, name, None)) for name in
                            ("Manufacturer", "Model", "FirmwareVersion", "SerialNumber", "HardwareId")))

    async def _call(self, awaitable, what: str):
        """`awaitable`'s result within timeout_s, the library's errors translated to ours."""
        try:
            return await asyncio.wait_for(awaitable, self.timeout_s)
        except OnvifError:
            raise
        except (TimeoutError, asyncio.TimeoutError) as exc:
            raise CameraUnreachable(f"{self.host} did not answer {what} within {self.timeout_s:g} s: check that "
                                    f"the camera is on and {self.url} is its ONVIF address") from exc
        except Exception as exc:  # noqa: BLE001 - translated at the seam, never swallowed
            raise self._translate(exc, what) from exc

    def _translate(self, exc: BaseException, what: str) -> OnvifError:
        library = self._library or self._connecting
        status = library.last_status[0] if library is not None and library.last_status else 200
        if status in (401, 403):
            return self._wrong_credentials(what)
        if status not in (200, 400, 500):  # SOAP faults come as 400 or 500
            return self._not_onvif_status(status, what)
        for cause in _causes(exc):
            if isinstance(cause, OnvifError):
                return cause
            if isinstance(cause, ONVIFAuthError) or (isinstance(cause, zeep.exceptions.Fault) and is_auth_error(cause)):
                return self._wrong_credentials(what)
            if isinstance(cause, zeep.exceptions.TransportError):
                if cause.status_code in (401, 403):
                    return self._wrong_credentials(what)
                return self._not_onvif_status(cause.status_code, what)
            if isinstance(cause, (aiohttp.ClientConnectionError, OSError)):
                return CameraUnreachable(f"cannot reach {self.url} ({cause}): check the address, the port and "
                                         f"that the camera is on")
            if isinstance(cause, (zeep.exceptions.XMLSyntaxError, zeep.exceptions.XMLParseError)):
                return NotOnvif(f"{self.url} did not answer {what} with SOAP: check that this is the camera's "
                                f"ONVIF address and that ONVIF is enabled on it")
            if isinstance(cause, zeep.exceptions.Fault):
                return OnvifError(f"{self.host} refused {what}: {stringify_onvif_error(cause)}")
        return NotOnvif(f"{self.url} gave an answer to {what} that is not ONVIF ({exc})")

    def _not_onvif_status(self, status: int, what: str) -> NotOnvif:
        return NotOnvif(f"{self.url} answered {what} with HTTP {status}: check that this is the camera's ONVIF "
                        f"address (`nvr discover` lists them) and that ONVIF is enabled on it")

    def _wrong_credentials(self, what: str) -> WrongCredentials:
        who = f"user {self.username!r}" if self.username is not None else "no user name"
        return WrongCredentials(f"{self.host} refused {what} with {who}: check the user name and password (many "
                                f"cameras need an ONVIF user created in their own web page) and the camera's clock")


def _causes(exc: BaseException):
    seen = 0
    while exc is not None and seen < 8:
        yield exc
        exc, seen = exc.__cause__ or (exc.args[0] if isinstance(exc, ONVIFError) and exc.args
                                      and isinstance(exc.args[0], BaseException) else None), seen + 1


def _text(value) -> str:
    return str(value).strip()[:256] if value is not None else ""


def _profile(item) -> Profile:
    encoder = getattr(item, "VideoEncoderConfiguration", None)
    resolution = getattr(encoder, "Resolution", None)
    return Profile(token=_text(getattr(item, "token", None)), name=_text(getattr(item, "Name", None)),
                   encoding=_text(getattr(encoder, "Encoding", None)) or None,
                   width=_int(getattr(resolution, "Width", None)), height=_int(getattr(resolution, "Height", None)))


def _int(value) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


@dataclass(frozen=True, slots=True)
class CameraReport:
    """Everything `read_camera` learned: what the add-camera page and `nvr discover` show."""

    url: str
    auth: str
    clock_offset_s: float
    device: DeviceInfo
    profiles: list[Profile]
    stream_uris: dict[str, str]
    snapshot_uris: dict[str, str | None]


async def read_camera_async(url: str, *, username: str | None, password: str | None,
                            timeout_s: float = CALL_TIMEOUT_S) -> CameraReport:
    """`read_camera` in a running event loop: all of it within READ_CALLS_BUDGET calls' timeouts, and the
    URIs of at most MAX_READ_PROFILES video profiles asked."""
    total_s = timeout_s * READ_CALLS_BUDGET
    try:
        async with asyncio.timeout(total_s):
            return await _read(url, username=username, password=password, timeout_s=timeout_s)
    except TimeoutError as exc:
        raise CameraUnreachable(f"{url} took over {total_s:g} s to describe itself: check the camera and the "
                                f"network, then try again") from exc


async def _read(url: str, *, username: str | None, password: str | None, timeout_s: float) -> CameraReport:
    async with OnvifCamera(url, username=username, password=password, timeout_s=timeout_s) as camera:
        profiles = await camera.profiles()
        video = [p for p in profiles if p.encoding][:MAX_READ_PROFILES]
        streams = {p.token: await camera.stream_uri(p.token) for p in video}
        snapshots = {p.token: await camera.snapshot_uri(p.token) for p in video}
        return CameraReport(camera.url, camera.auth or "", camera.clock_offset_s, await camera.device_information(),
                            profiles, streams, snapshots)


def read_camera(url: str, *, username: str | None, password: str | None,
                timeout_s: float = CALL_TIMEOUT_S) -> CameraReport:
    """Connect to the camera at `url` and read its device information, profiles and URIs (blocking; from a
    thread without a running event loop)."""
    return asyncio.run(read_camera_async(url, username=username, password=password, timeout_s=timeout_s))


def resolve_stream_uris(url: str, *, username: str | None, password: str | None, profile: str | None = None,
                        sub_profile: str | None = None, timeout_s: float = CALL_TIMEOUT_S) -> StreamUris:
    """Ask the camera at `url` for the RTSP URIs of `profile` (default: its first) and `sub_profile`
    (blocking, within RESOLVE_CALLS_BUDGET calls' timeouts as a whole: a recorder being stopped waits
    at most that; from a thread without a running event loop)."""

    async def ask() -> StreamUris:
        total_s = timeout_s * RESOLVE_CALLS_BUDGET
        try:
            async with asyncio.timeout(total_s):
                async with OnvifCamera(url, username=username, password=password, timeout_s=timeout_s) as camera:
                    return await camera.stream_uris(profile, sub_profile)
        except TimeoutError as exc:
            raise CameraUnreachable(f"{url} took over {total_s:g} s to name its stream: check the camera and the "
                                    f"network") from exc

    return asyncio.run(ask())
