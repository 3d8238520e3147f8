"""The web server in the `nvr run` process: the app (UI and REST API) served by uvicorn on a thread."""
from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from appliance.web.users import UserStore
from appliance.web.app import WebContext, build_app
from appliance.web.hosts import HostCheck
from appliance.web.login_guard import LoginGuard
from appliance.web.media import ExportJobs
from appliance.web.views import ApplianceView

log = logging.getLogger("nvr.web")


def web_context(appliance: ApplianceView, *, users: UserStore | None = None,
                listen_host: str | None = None) -> WebContext:
    """What the routes share, over `appliance`. Users, sessions and the audit log live in `web.state_dir`
    (default: the data root) unless a store is given. The web reads the index through a query-only
    connection of its own, so no HTTP request holds up a recorder's commit. `listen_host` (default:
    web.listen's) is one of the names state-changing requests may use (`appliance.web.hosts`).
    `WebContext.close()` closes the stores it opened, the given users store included."""
    web, clocks = appliance.config.web, appliance.clocks
    if users is None:
        users = UserStore(Path(web.state_dir or appliance.root), clocks=clocks)
    hosts = HostCheck(listen_host=listen_host or web.host, allowed_hosts=web.allowed_hosts, clocks=clocks)
    # The appliance's talk hub, whose AUDIO OUT is a TALK source on its shared outputs (appliance.app);
    # a view without one (tests) gets a hub of the context's own.
    talk = getattr(appliance, "talk", None)
    return WebContext(appliance=appliance, users=users, exports=ExportJobs(appliance.root, clocks=clocks),
                      logins=LoginGuard(clocks=clocks), hosts=hosts, **({"talk": talk} if talk is not None else {}))


def create_app(appliance: ApplianceView, *, users: UserStore | None = None,
               listen_host: str | None = None) -> FastAPI:
    """The FastAPI application over `appliance` (routes in `auth`, `api`, `media`, `live`, `ptz_alarms`,
    `config_page`); its context is `app.state.ctx`. `appliance.app.Appliance` builds it before recording
    starts: importing and building it costs CPU the first seconds of recording need."""
    return build_app(web_context(appliance, users=users, listen_host=listen_host))


class _Server(uvicorn.Server):
    """uvicorn's server ticking every 0.5 s instead of 0.1 s: on an idle appliance its ten wake-ups a
    second were a measurable share of the recorder's CPU (bench/remux at one camera). Stopping takes up
    to half a second longer; the date header and shutdown checks still run about every second."""

    async def main_loop(self) -> None:
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 5) % 864000  # on_tick's once-a-second work keys on counter % 10
            await asyncio.sleep(0.5)
            should_exit = await self.on_tick(counter)


class WebServer:
    """uvicorn serving the app on a thread of its own. A port that cannot be bound is logged as an
    error and leaves recording running."""

    def __init__(self, app: FastAPI, *, host: str, port: int, tls_cert: Path | None = None, tls_key: Path | None = None):
        tls = {"ssl_certfile": str(tls_cert), "ssl_keyfile": str(tls_key)} if tls_cert and tls_key else {}
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                ws="websockets-sansio", **tls)
        config.load()  # imports the protocol modules now, on the caller's thread, not while serving starts
        self._server = _Server(config)
        self._thread = threading.Thread(target=self._serve, name="web", daemon=True)
        scheme = "https" if tls else "http"
        self.address = f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}/"

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        try:
            self._server.run()
        except SystemExit:
            log.error("the web server could not start on %s (port in use?); recording continues without it", self.address)
        except Exception:
            log.exception("the web server failed; recording continues without it")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
