"""OnvifServer: the ONVIF device service over HTTP, its snapshots, and the WS-Discovery responder.

    server = OnvifServer(config, live=hub, users=store, rtsp_port=8554, clocks=clocks); server.start(); server.stop()

HTTP is the standard library's server with bounds of its own: at most MAX_CONNECTIONS at once (more are
closed at once), SOCKET_TIMEOUT_S per read, a body of at most MAX_REQUEST_BYTES (refused before it is read),
POST only to DEVICE_PATH and GET only to SNAPSHOT_PATH/N/STREAM. Snapshots want HTTP Digest (HA1) or Basic
(the password, checked against scrypt); ONVIF clients fetch them that way.
"""
from __future__ import annotations

import base64
import logging
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from appliance.config.model import Config
from appliance.onvif_server.device import DEVICE_PATH, SNAPSHOT_PATH, DeviceService, NotAuthorized
from appliance.onvif_server.discovery import DiscoveryResponder
from appliance.onvif_server.xml_reader import MAX_REQUEST_BYTES
from appliance.web.users import User, UserStore
from base.clock import Clocks
from recorder.live import LiveHub
from recorder.snapshot import live_jpeg

log = logging.getLogger("nvr.onvif_server")

MAX_CONNECTIONS = 32
SOCKET_TIMEOUT_S = 10.0
_SNAPSHOT = re.compile(rf"^{SNAPSHOT_PATH}/([1-9][0-9]{{0,2}})/(main|sub)$")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, onvif: OnvifServer):
        self.onvif = onvif
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):  # a flood costs its own connections, not threads
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = SOCKET_TIMEOUT_S
    protocol_version = "HTTP/1.1"
    server_version = "nvr-onvif"

    def log_message(self, fmt, *args) -> None:
        log.debug("%s " + fmt, self.client_address[0], *args)

    def _send(self, status: int, body: bytes, content_type: str, headers=()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        if self.path.split("?")[0] != DEVICE_PATH:
            return self._send(404, b"not found\n", "text/plain")
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > MAX_REQUEST_BYTES:
            self.close_connection = True
            return self._send(413, b"a Content-Length up to 64 KiB is needed\n", "text/plain")
        body = self.rfile.read(int(length))
        answer = self.server.onvif.device.handle(body, host=self.connection.getsockname()[0],
                                                 authorization=self.headers.get("Authorization"), uri=self.path,
                                                 client=self.client_address[0])
        self._send(answer.status, answer.body, "application/soap+xml; charset=utf-8", answer.headers)

    def do_GET(self) -> None:
        match = _SNAPSHOT.match(self.path.split("?")[0])
        if match is None:
            return self._send(404, b"not found\n", "text/plain")
        onvif = self.server.onvif
        try:
            user = onvif.viewer(self.headers.get("Authorization"), self.path, self.client_address[0])
        except NotAuthorized as exc:
            return self._send(exc.status, f"{exc}\n".encode(), "text/plain", onvif.device.refusal_headers(exc))
        if user is None:
            return self._send(401, b"log in\n", "text/plain", (("WWW-Authenticate", onvif.device.digest.challenge()),))
        jpeg = live_jpeg(onvif.live.stream(int(match.group(1)), match.group(2)), clocks=onvif.clocks)
        if jpeg is None:
            return self._send(503, b"no picture yet\n", "text/plain")
        self._send(200, jpeg, "image/jpeg", (("Cache-Control", "no-store"),))


class OnvifServer:
    """The HTTP service and, when `onvif_server.discovery`, the WS-Discovery responder."""

    def __init__(self, config: Config, *, live: LiveHub, users: UserStore, rtsp_port: int, clocks: Clocks,
                 discovery_port: int | None = None):
        section = config.onvif_server
        self.live, self.clocks, self._users = live, clocks, users
        family = socket.AF_INET6 if ":" in section.host else socket.AF_INET
        _Server.address_family = family
        self._http = _Server((section.host, section.port), _Handler, self)
        self.port = self._http.server_address[1]
        self.device = DeviceService(config, live=live, users=users, rtsp_port=rtsp_port, http_port=self.port,
                                    clocks=clocks)
        self.discovery = DiscoveryResponder(self.device.uuid, section.name, http_port=self.port, clocks=clocks,
                                            address=section.address, port=discovery_port) if section.discovery else None
        self._thread = threading.Thread(target=self._http.serve_forever, name="onvif http", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if self.discovery is not None:
            self.discovery.start()
        log.info("ONVIF device service on port %d%s", self.port, ", answering discovery" if self.discovery else "")

    def stop(self) -> None:
        if self.discovery is not None:
            self.discovery.stop()
        self._http.shutdown()
        self._http.server_close()
        self.device.guard.close()

    def viewer(self, authorization: str | None, uri: str, client: str) -> User | None:
        """The web user a snapshot request proves to be: HTTP Digest (HA1) or Basic (scrypt); None without
        credentials or for a wrong Digest answer; NotAuthorized for a wrong Basic password or when throttled."""
        if not authorization:
            return None
        if authorization[:6].lower() == "basic ":
            try:
                name, _, password = base64.b64decode(authorization[6:].strip(), validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            try:
                return self.device.password_user(name, password, client)
            except NotAuthorized as exc:
                if exc.status == 429:
                    raise
                return None
        return self.device.http_user(authorization, "GET", uri, client)

    def statistics(self) -> dict:
        stats = {"port": self.port, "answered": self.device.answered, "refused": self.device.refused,
                 "nonces_remembered": len(self.device.tokens.nonces)}
        if self.discovery is not None:
            stats["discovery"] = self.discovery.statistics()
        return stats
