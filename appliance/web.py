"""The web server in the `nvr run` process: a plain status page and the JSON it is built from."""
from __future__ import annotations

import html
import logging
import threading

import uvicorn
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse

from appliance.events import event_dict
from appliance.recordings import recording_dicts
from appliance.supervisor import Supervisor
from appliance.timefmt import iso_utc, parse_time
from appliance.version import appliance_version

log = logging.getLogger("nvr.web")


def create_app(supervisor: Supervisor) -> FastAPI:
    """The FastAPI application. Handlers only read the index and statistics: they never block recording."""
    app = FastAPI(title="nvr", version=appliance_version(), docs_url=None, redoc_url=None)

    @app.get("/api/health")
    def health() -> dict:
        return supervisor.status()

    @app.get("/api/recordings")
    def recordings(channel: int | None = Query(None, ge=1), stream: str | None = Query(None, pattern="^(main|sub)$"),
                   start: str | None = None, end: str | None = None) -> list[dict]:
        now = supervisor.clocks.utc_now_us()
        try:
            start_us = parse_time(start, now_us=now) if start else None
            end_us = parse_time(end, now_us=now) if end else None
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        return recording_dicts(supervisor.index, supervisor.root, channel=channel, stream=stream,
                               start_us=start_us, end_us=end_us)

    @app.get("/api/events")
    def events(channel: int | None = Query(None, ge=1), start: str | None = None, end: str | None = None,
               limit: int = Query(200, ge=1, le=5000)) -> list[dict]:
        now = supervisor.clocks.utc_now_us()
        try:
            start_us = parse_time(start, now_us=now) if start else None
            end_us = parse_time(end, now_us=now) if end else None
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        return [event_dict(e) for e in supervisor.index.events(start_us=start_us, end_us=end_us, channel=channel,
                                                                limit=limit)]

    @app.post("/api/alarm-outputs/{output_id}/{action}")
    def alarm_output(output_id: str, action: str, for_s: float | None = Query(None, gt=0, le=86_400)) -> dict:
        io = supervisor.alarm_io
        if action not in ("trigger", "clear"):
            raise HTTPException(status_code=404, detail=f"unknown action {action!r}; use trigger or clear")
        try:
            io.trigger_output(output_id, for_s) if action == "trigger" else io.clear_output(output_id)
        except KeyError as exc:
            raise HTTPException(status_code=404, detail=exc.args[0]) from None
        return io.relays[output_id].statistics()

    @app.get("/", response_class=HTMLResponse)
    def status_page() -> str:
        return _status_html(supervisor.status())

    return app


def _status_html(status: dict) -> str:
    e = html.escape
    alarms = "".join(
        f"<li class=alarm>{e(a['kind'])}{' ch ' + str(a['channel']) if a['channel'] else ''}: {e(a['message'])}"
        f" (since {iso_utc(a['since_us'])})</li>" for a in status["alarms"]
    ) or "<li>none</li>"
    rows = "".join(
        f"<tr><td>{s['channel']}</td><td>{s['stream']}</td><td>{e(s['source'])}</td>"
        f"<td>{_state_cell(s)}</td>"
        f"<td>{s['segments']}</td><td>{s['frames_recorded']}</td><td>{s['connects']}</td>"
        f"<td>{_capture_cell(s.get('capture'))}</td></tr>"
        for s in status["streams"]
    )
    ret = status["retention"] or {}
    return f"""<!doctype html><html><head><meta charset=utf-8><meta http-equiv=refresh content=5>
<meta name=viewport content="width=device-width,initial-scale=1"><title>nvr status</title>
<style>body{{font-family:sans-serif;margin:1em}}td,th{{padding:.2em .6em;text-align:left}}.alarm{{color:#b00}}</style></head>
<body><h1>nvr status</h1>
<p>Data: {e(status['data_root'])} &middot; {status['segments']} segments, {status['bytes'] / 1e6:.1f} MB &middot;
disk {ret.get('used_percent')}% used, {((ret.get('free_bytes') or 0) / 1e9):.2f} GB free &middot; up {status['uptime_s']:.0f} s</p>
<h2>Alarms</h2><ul>{alarms}</ul>
<h2>Streams</h2><table><tr><th>Ch</th><th>Stream</th><th>Source</th><th>State</th><th>Segments</th><th>Frames</th><th>Connects</th><th>Capture</th></tr>{rows}</table>
<h2>Last start-up recovery</h2><p>{e(str(status['recovery']))}</p></body></html>"""


def _state_cell(stream: dict) -> str:
    capture = stream.get("capture") or {}
    if capture.get("video_loss"):
        return f"<span class=alarm>video loss</span> since {iso_utc(capture['video_loss_since_us'])}"
    if stream["connected"]:
        return "recording"
    return "down: " + html.escape(str(stream["last_error"] or "connecting"))


def _capture_cell(capture: dict | None) -> str:
    """An analog input's measured rate, dropped frames and signal; empty for network cameras."""
    if not capture:
        return ""
    signal = "signal" if capture.get("signal_present", True) else "<span class=alarm>no signal</span>"
    return (f"{capture.get('fps_measured', 0):.1f} fps &middot; {capture.get('frames_dropped', 0)} dropped &middot; "
            f"{signal} &middot; {capture.get('video_losses', 0)} losses")


class WebServer:
    """uvicorn serving the app on a thread of its own. A port that cannot be bound is logged as an
    error and leaves recording running."""

    def __init__(self, app: FastAPI, *, host: str, port: int):
        self._server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
        self._thread = threading.Thread(target=self._serve, name="web", daemon=True)
        self.address = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

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
