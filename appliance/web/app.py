"""The web application: what its routes share (`WebContext`) and the assembly of every router.

Handlers that read files or the index are plain `def` (FastAPI runs them on worker threads) or hand
their work to a thread, so the event loop never waits on a disk and recording threads never wait
on HTTP.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse, JSONResponse

from appliance.web import api, auth, config_page, live, media, ptz_alarms
from appliance.web.users import UserStore
from appliance.version import appliance_version
from appliance.web.auth import LoginLimiter, authenticated
from appliance.web.media import ExportJobs
from appliance.web.views import ApplianceView
from recorder.index import Index
from recorder.playback import SegmentCache

STATIC_DIR = Path(__file__).with_name("static")


@dataclass
class WebContext:
    """Everything a route needs, kept on `app.state.ctx`. The web's own stores (users, exports, its reader
    connection) are closed by `close()`, after the server stopped."""

    appliance: ApplianceView
    users: UserStore
    exports: ExportJobs
    index: Index | None = None  # the web's own query-only connection, opened once the recorder's index exists
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    segments: SegmentCache = field(default_factory=SegmentCache)
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
        """Close the export jobs, the users store and the reader connection (the server has stopped)."""
        self.exports.close()
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
    for module in (auth, api, media, live, ptz_alarms, config_page):
        if hasattr(module, "public_router"):
            app.include_router(module.public_router)
        app.include_router(module.router)
    _static_routes(app)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(authenticated)])
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    return app


def _static_routes(app: FastAPI) -> None:
    """The single-page front end: public (the login form is part of it); it holds no data itself."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=_page_headers())

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
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
