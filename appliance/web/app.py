"""The web application: what its routes share (`WebContext`) and the assembly of every router.

Handlers that read files or the index are plain `def` (FastAPI runs them on worker threads) or hand
their work to a thread, so the event loop never waits on a disk and recording threads never wait
on HTTP.
"""
from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse
from starlette.datastructures import Headers

from appliance.web import api, auth, cameras, config_page, disks_page, intercom, live, media, ptz_alarms, talk
from appliance.web.users import UserStore
from appliance.version import appliance_version
from appliance.web.login_guard import LoginGuard
from appliance.web.auth import SAFE_METHODS, authenticated
from appliance.web.hosts import HostCheck
from appliance.web.disks_page import DiskDesk
from appliance.web.media import ExportJobs
from appliance.web.views import ApplianceView
from appliance.talk.session import TalkHub
from recorder.index import Index
from recorder.playback import SegmentCache

log = logging.getLogger("nvr.web")
STATIC_DIR = Path(__file__).with_name("static")
_STATIC_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")


@dataclass
class WebContext:
    """Everything a route needs, kept on `app.state.ctx`. The web's own stores (users, exports, its reader
    connection) are closed by `close()`, after the server stopped."""

    appliance: ApplianceView
    users: UserStore
    exports: ExportJobs
    logins: LoginGuard
    index: Index | None = None  # the web's own query-only connection, opened once the recorder's index exists
    hosts: HostCheck | None = None  # None: the names of appliance.config.web
    segments: SegmentCache = field(default_factory=SegmentCache)
    talk: TalkHub = field(default_factory=TalkHub)  # who talks where (push-to-talk, appliance.web.talk)
    disks: DiskDesk = field(default_factory=DiskDesk)  # the Disks page's initialisations and ejections
    discover: Callable[[float], list[dict]] | None = None  # the add-camera page's probe; None: WS-Discovery here
    metrics: dict = field(default_factory=lambda: {"live_viewers": 0, "mjpeg_viewers": 0, "exports": 0,
                                                   "playback_chunks": 0, "bad_requests": 0})
    _reader_lock: threading.Lock = field(default_factory=threading.Lock)

    def reader(self) -> Index | None:
        """The index to read through: the web's own connection (opened on first use), or None while the
        recorder has not opened the index yet."""
        if self.index is None and self.appliance.index is not None:
            with self._reader_lock:
                if self.index is None:
                    self.index = Index(self.appliance.root, reader=True)
        return self.index

    def close(self) -> None:
        """Close the export jobs, disk initialisations, the users store and the reader connection (the
        server has stopped)."""
        self.exports.close()
        self.disks.close()
        self.users.close()
        with self._reader_lock:
            if self.index is not None:
                self.index.close()
                self.index = None


def build_app(ctx: WebContext) -> FastAPI:
    app = FastAPI(title="nvr", version=appliance_version(), docs_url=None, redoc_url=None, openapi_url=None,
                  description="REST API of the NVR appliance. Log in with POST /api/login; state-changing "
                              "requests need the X-CSRF-Token header from the login answer.")
    app.state.ctx = ctx
    if ctx.hosts is None:
        web = getattr(getattr(ctx.appliance, "config", None), "web", None)
        ctx.hosts = HostCheck(listen_host=web.host if web else "127.0.0.1",
                              allowed_hosts=getattr(web, "allowed_hosts", ()), clocks=ctx.appliance.clocks)
    app.add_middleware(HostGuard, hosts=ctx.hosts)
    for module in (auth, api, media, live, talk, ptz_alarms, config_page, disks_page, cameras, intercom):
        if hasattr(module, "public_router"):
            app.include_router(module.public_router)
        app.include_router(module.router)
    _static_routes(app)

    app.openapi = lambda: _with_error_answers(app)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(authenticated)])
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    return app


ERROR_STATUSES = {"400": "Malformed request", "401": "Not logged in", "403": "Not allowed (role, CSRF token or Host)",
                  "404": "Not found", "409": "Conflicts with the current state", "413": "Too large",
                  "422": "A parameter or the body is invalid; `detail` says which and why",
                  "429": "Too many requests; wait `Retry-After` seconds"}


def _with_error_answers(app: FastAPI) -> dict:
    """FastAPI's schema, with the error answers the routes really give: `{"detail": ...}` where detail is
    a message, FastAPI's list of field errors, or an object with a message and config problems. (FastAPI
    documents 422 as its field-error list only, but the handlers' own 422s carry a message.)"""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorAnswer"] = {"type": "object", "required": ["detail"], "properties": {"detail": {"anyOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "object"}},
        {"type": "object", "properties": {"message": {"type": "string"}, "problems": {"type": "array"}}},
    ]}}}
    answer = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorAnswer"}}}}
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            for status, description in ERROR_STATUSES.items():
                responses[status] = {"description": description, **answer}
    app.openapi_schema = schema
    return schema


class HostGuard:
    """ASGI middleware: a state-changing request (any method but GET, HEAD, OPTIONS) whose Host or
    Origin does not name this appliance gets 403 before any route sees it (web_hosts)."""

    def __init__(self, app, *, hosts: HostCheck):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            headers = Headers(scope=scope)
            why = self.hosts.refusal(headers.get("host"), headers.get("origin"))
            if why is not None:
                client = scope.get("client") or ("?", 0)
                log.warning("%s %s from %s refused: %s", scope["method"], scope["path"], client[0], why)
                await JSONResponse({"detail": why}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _static_routes(app: FastAPI) -> None:
    """The single-page front end: public (the login form is part of it); it holds no data itself."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=_page_headers())

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        if not _STATIC_NAME.fullmatch(name):  # also keeps NUL bytes and separators away from the file system
            return JSONResponse({"detail": "not found"}, status_code=404)
        path = (STATIC_DIR / name).resolve()
        if path.parent != STATIC_DIR.resolve() or not path.is_file():
            return JSONResponse({"detail": "not found"}, status_code=404)
        return FileResponse(path, headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


def _page_headers() -> dict:
    return {
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
                                   "connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    }
