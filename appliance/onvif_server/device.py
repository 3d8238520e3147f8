"""The ONVIF device and media services (Profile S subset), sans-IO: a request's bytes in, a status and bytes out.

Served: device GetSystemDateAndTime, GetCapabilities, GetServices (these three without credentials, as
ONVIF's core spec allows, so clients can learn the clock and the services first), GetDeviceInformation,
GetScopes; media GetProfiles, GetProfile, GetVideoSources, GetStreamUri, GetSnapshotUri. One profile per channel stream
(`ch1_main`, `ch1_sub`), whose stream URI is the box's RTSP server and whose snapshot URI is this
service's `/onvif/snapshot/N/STREAM`. Everything else is answered with ter:ActionNotSupported.

Who may ask: the web's users and the integration accounts (appliance.web.integration_accounts). A web
user proves it with a WS-UsernameToken with PasswordText (checked against the scrypt hash) or with HTTP
Digest (checked against the stored HA1). An integration account may also send PasswordDigest (what
onvif-zeep-async and so Home Assistant send by default), checked against its recoverable password with
the token's age and nonce (appliance.onvif_server.username_token). Every check is throttled per account
and address like web logins (appliance.web.login_guard: 429 when throttled). A web user's PasswordDigest
cannot be checked (the box keeps no plain web passwords) and is refused saying what to do instead.
"""
from __future__ import annotations

import datetime as dt
import logging
import platform
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from appliance.config.model import Config
from appliance.onvif_server import responses as r
from appliance.onvif_server.http_digest import DigestChecker, parse_digest_header
from appliance.onvif_server.username_token import DigestTokenChecker
from appliance.onvif_server.xml_reader import PASSWORD_DIGEST, SoapRequest, XmlError, parse_soap
from appliance.rtsp_server.mounts import mounts
from appliance.version import appliance_version
from appliance.web.login_guard import KnownClientNeeded, LoginGuard, Throttled, Ticket
from appliance.web.users import DIGEST_REALM, BadCredentials, User, UserStore
from base.clock import Clocks
from recorder.live import LiveHub

log = logging.getLogger("nvr.onvif_server")

DEVICE_PATH = "/onvif/device_service"
SNAPSHOT_PATH = "/onvif/snapshot"
PRE_AUTH = frozenset({"GetSystemDateAndTime", "GetCapabilities", "GetServices"})


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


class NotAuthorized(PermissionError):
    """The request names no user, a wrong password, or a way of proving it the box cannot check.
    `status`: 401 (with a Digest challenge) when it brought no credentials at all, as ONVIF's core spec
    asks, so plain HTTP Digest clients answer the challenge; 400 with the SOAP fault otherwise."""

    def __init__(self, message: str, status: int = 400, retry_after_s: int = 1):
        super().__init__(message)
        self.status, self.retry_after_s = status, retry_after_s


def device_uuid(name: str) -> uuid.UUID:
    """The box's WS-Discovery endpoint id: stable for a host name and device name."""
    return uuid.uuid5(uuid.NAMESPACE_DNS, f"{platform.node()}.{name}.nvr")


class DeviceService:
    """Answers ONVIF SOAP requests for the channels of `config`, with URIs on the host the client reached."""

    def __init__(self, config: Config, *, live: LiveHub, users: UserStore, rtsp_port: int, http_port: int,
                 clocks: Clocks, now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)):
        self.config = config  # the running config; the appliance replaces it when the config page changes channels
        self._live, self._users, self._now = live, users, now
        self._rtsp_port, self._http_port = rtsp_port, http_port
        self.digest = DigestChecker(DIGEST_REALM, clocks=clocks)
        self.guard = LoginGuard(clocks=clocks)  # throttles and bounds password checks, as for web logins
        self.tokens = DigestTokenChecker(users.integration.password_of, clocks=clocks, now=now)
        self.uuid = device_uuid(config.onvif_server.name)
        self.refused = self.answered = 0

    def handle(self, body: bytes, *, host: str, authorization: str | None, uri: str = DEVICE_PATH,
               client: str = "?") -> Answer:
        """The answer to one POST to `uri` (DEVICE_PATH) from address `client`; `host` is the address the
        client reached us on."""
        try:
            request = parse_soap(body)
        except XmlError as exc:
            self.refused += 1
            return Answer(400, r.fault("ter:WellFormed", f"the request was refused: {exc}"))
        operation = request.operation.name
        try:
            user = None if operation in PRE_AUTH else self.authenticate(request, authorization, uri, client)
        except NotAuthorized as exc:
            self.refused += 1
            return Answer(exc.status, r.fault("ter:NotAuthorized", str(exc)), self.refusal_headers(exc))
        answer = self._operation(request, operation, self._host(host))
        self.answered += 1
        log.debug("%s by %s: %d", operation, user.name if user else "-", answer.status)
        return answer

    def refusal_headers(self, exc: NotAuthorized) -> tuple[tuple[str, str], ...]:
        if exc.status == 429:
            return (("Retry-After", str(exc.retry_after_s)),)
        return (("WWW-Authenticate", self.digest.challenge()),)

    def _host(self, host: str) -> str:
        address = self.config.onvif_server.address or host
        return f"[{address}]" if ":" in address else address

    def authenticate(self, request: SoapRequest, authorization: str | None, uri: str = DEVICE_PATH,
                     client: str = "?") -> User:
        """The user a request proves to be, by HTTP Digest, a PasswordText UsernameToken or (integration
        accounts) a PasswordDigest one; NotAuthorized otherwise. Every check goes through the web's login
        throttling (LoginGuard) for `client`."""
        if authorization:
            user = self.http_user(authorization, "POST", uri, client)
            if user is not None:
                return user
        token = request.token
        if token is None:
            raise NotAuthorized("log in: send a WS-UsernameToken (PasswordDigest for integration accounts, "
                                "PasswordText) or use HTTP Digest",
                                401 if not authorization else 400)
        if token.password_type == PASSWORD_DIGEST:  # integration accounts only; a web user's is refused alike
            return self._checked(token.username, client, self.tokens.check, token)
        return self.password_user(token.username, token.password, client)

    def _reserve(self, name: str, client: str) -> Ticket:
        try:
            return self.guard.reserve(name, client)
        except KnownClientNeeded:
            return self.guard.reserve(name, client, known_client=self._users.known_client(name, client))
        except Throttled as exc:
            raise NotAuthorized(str(exc), 429, exc.retry_after_s) from exc

    def _checked(self, name: str, client: str, check: Callable[..., User], *args) -> User:
        """`check(*args)` as a login attempt of `client` on `name`: throttled, on the guard's bounded pool."""
        ticket = self._reserve(name[:64], client)
        try:
            return self.guard.check_blocking(ticket, check, *args)
        except BadCredentials as exc:
            raise NotAuthorized(str(exc)) from exc

    def password_user(self, name: str, password: str, client: str) -> User:
        """The user or integration account if `password` is right (scrypt for a user, the sealed password
        for an account), else NotAuthorized."""
        accounts = self._users.integration
        check = accounts.check_password if accounts.user(name) is not None else self._users.check_password
        return self._checked(name, client, check, name, password)

    def http_user(self, authorization: str, method: str, uri: str, client: str) -> User | None:
        """The user of a valid HTTP Digest answer, else None (a wrong answer counts as a failed login)."""
        name = (parse_digest_header(authorization) or {}).get("username", "?")[:64]
        ticket = self._reserve(name, client)
        checked = self.digest.check(authorization, method, uri, self.ha1_of)
        user = next((u for u, _ in self._users.digest_credentials() if u.name == checked), None) if checked else None
        if user is not None:
            self.guard.forgive(ticket)
        return user

    def ha1_of(self, name: str) -> str | None:
        return next((ha1 for user, ha1 in self._users.digest_credentials() if user.name == name), None)

    def _operation(self, request: SoapRequest, operation: str, host: str) -> Answer:
        service_url = f"http://{host}:{self._http_port}{DEVICE_PATH}"
        simple = {
            "GetSystemDateAndTime": lambda: r.system_date_and_time(self._now()),
            "GetCapabilities": lambda: r.capabilities(service_url),
            "GetServices": lambda: r.services(service_url),
            "GetDeviceInformation": lambda: r.device_information(self.info()),
            "GetScopes": lambda: r.scopes(self.config.onvif_server.name),
            "GetProfiles": lambda: r.profiles(self.profiles()),
            "GetVideoSources": lambda: r.video_sources(self.profiles()),
        }
        if operation in simple:
            return Answer(200, simple[operation]())
        if operation in ("GetProfile", "GetStreamUri", "GetSnapshotUri"):
            return self._profile_operation(request, operation, host)
        return Answer(400, r.fault("ter:ActionNotSupported", f"{operation} is not served by this box"))

    def _profile_operation(self, request: SoapRequest, operation: str, host: str) -> Answer:
        token = request.operation.find_text("ProfileToken")
        found = next((p for p in self.profiles() if p.token == token), None)
        if found is None:
            return Answer(400, r.fault("ter:NoProfile", f"no profile {token!r}; GetProfiles lists them"))
        if operation == "GetProfile":
            return Answer(200, r.profile(found))
        if operation == "GetStreamUri":
            return Answer(200, r.media_uri(operation, f"rtsp://{host}:{self._rtsp_port}/ch{found.channel}/{found.stream}"))
        return Answer(200, r.media_uri(operation, f"http://{host}:{self._http_port}{SNAPSHOT_PATH}/"
                                                  f"{found.channel}/{found.stream}"))

    def info(self) -> r.DeviceInfo:
        return r.DeviceInfo("nvr project", "nvr hybrid recorder", appliance_version(), str(self.uuid),
                            platform.machine() or "unknown")

    def profiles(self) -> list[r.StreamProfile]:
        """One profile per served stream; its size and rate from the live stream, else from the config."""
        by_id = {channel.id: channel for channel in self.config.channels}
        items = []
        for _path, channel, stream in mounts(self.config):
            source, info = by_id[channel].source, self._live.stream(channel, stream).info
            width = info.width if info else getattr(source, "width", None) or 0
            height = info.height if info else getattr(source, "height", None) or 0
            fps = (info.fps if info and info.fps else None) or getattr(source, "fps", None) or 25.0
            items.append(r.StreamProfile(f"ch{channel}_{stream}", f"{by_id[channel].name} {stream}", channel, stream,
                                         width, height, fps))
        return items
