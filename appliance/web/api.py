"""REST routes over the recordings and the appliance's state: channels, recordings, timeline, events,
snapshots, health and Prometheus metrics."""
from __future__ import annotations

import base64
import logging
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse, Response

from appliance.web.login_guard import KnownClientNeeded, Throttled
from appliance.presentation import recording_dicts
from appliance.presentation import in_range, iso_utc, parse_time
from appliance.web.users import LoginError
from appliance.web.auth import authenticated, client_address
from appliance.web.services import web_ptz
from appliance.config.talk import talk_target
from appliance.web.views import RecorderView
from hal.storage import disk_usage
from hal.sensors import ThermalZones, system_uptime_s
from recorder.errors import StorageError
from recorder.fmp4 import Mp4Error
from recorder.snapshot import SnapshotError, keyframe_to_jpeg, live_jpeg

log = logging.getLogger("nvr.web")
router = APIRouter(tags=["recordings"], dependencies=[Depends(authenticated)])
public_router = APIRouter()  # /metrics authenticates itself (cookie or HTTP Basic, for scrapers)

STREAM_PATTERN = "^(main|sub)$"
MAX_RANGE_US = 31 * 86400 * 1_000_000


def ctx_of(request: Request):
    return request.app.state.ctx


def recorder_of(request: Request) -> RecorderView:
    return request.app.state.ctx.appliance


def query_time(text: str | None, *, now_us: int, name: str, default: int | None = None,
               required: bool = False) -> int | None:
    """A time query parameter: microseconds since the epoch, ISO 8601, 'now' or '-5m'. 422 if malformed
    or outside 1970-9999 (which also keeps it inside SQLite's 64-bit integers and `iso_utc`)."""
    if text is None or text == "":
        if required and default is None:
            raise HTTPException(422, f"{name} is required")
        return default
    try:
        if text.lstrip("-").isascii() and text.lstrip("-").isdigit() and len(text) > 8:
            if len(text) > 20:
                raise ValueError(f"{text[:24]!r}... is not a time in microseconds since 1970")
            return in_range(int(text), text)
        return parse_time(text, now_us=now_us)
    except (ValueError, OverflowError) as exc:
        raise HTTPException(422, f"{name}: {exc}") from None


def time_range(request: Request, start: str | None, end: str | None, *, default_span_us: int) -> tuple[int, int]:
    now = recorder_of(request).clocks.utc_now_us()
    end_us = query_time(end, now_us=now, name="end", default=now)
    start_us = query_time(start, now_us=now, name="start", default=end_us - default_span_us)
    if end_us <= start_us:
        raise HTTPException(422, "end must be after start")
    if end_us - start_us > MAX_RANGE_US:
        raise HTTPException(422, "the range is longer than 31 days; ask for less")
    return start_us, end_us


def channel_config(request: Request, channel: int):
    for ch in recorder_of(request).config.channels:
        if ch.id == channel:
            return ch
    raise HTTPException(404, f"no channel {channel}")


def index_of(request: Request):
    index = ctx_of(request).reader()
    if index is None:
        raise HTTPException(503, "the recorder is still starting; try again in a moment")
    return index


class WithOpenSegments:
    """The index plus the segments being written right now (not indexed until they close), so playback
    and the timeline reach the live edge instead of stopping up to a segment length short of it."""

    def __init__(self, index, recorder: RecorderView):
        self._index, self._recorder = index, recorder

    def segments(self, *, channel=None, stream=None, start_us=None, end_us=None) -> list:
        rows = self._index.segments(channel=channel, stream=stream, start_us=start_us, end_us=end_us)
        known = {r.path for r in rows}
        extra = [r for r in self._recorder.open_segments(channel=channel, stream=stream) if r.path not in known
                 and (start_us is None or r.end_us > start_us) and (end_us is None or r.start_us < end_us)]
        return sorted(rows + extra, key=lambda r: (r.channel, r.stream, r.start_us)) if extra else rows

    def next_segment(self, *, channel: int, stream: str, at_or_after_us: int):
        found = [r for r in self._recorder.open_segments(channel=channel, stream=stream) if r.start_us >= at_or_after_us]
        indexed = self._index.next_segment(channel=channel, stream=stream, at_or_after_us=at_or_after_us)
        if indexed is not None:
            found.append(indexed)
        return min(found, key=lambda r: r.start_us) if found else None


def recordings_of(request: Request) -> WithOpenSegments:
    return WithOpenSegments(index_of(request), recorder_of(request))


@router.get("/api/channels")
def channels(request: Request) -> list[dict]:
    """Every configured channel with its streams, their state and picture size."""
    recorder = recorder_of(request)
    ptz = web_ptz(ctx_of(request).appliance.ptz)
    states = recorder.streams()
    out = []
    for ch in recorder.config.channels:
        streams = []
        for state in (s for s in states if s.channel == ch.id):
            info = recorder.live.stream(ch.id, state.stream).info
            streams.append({"stream": state.stream, "connected": state.connected,
                            "width": info.width if info else None, "height": info.height if info else None,
                            "codec": info.codec if info else None})
        out.append({"id": ch.id, "name": ch.name, "enabled": ch.enabled, "source": ch.source.type,
                    "streams": streams, "ptz": ptz is not None and ptz.has_channel(ch.id),
                    "talk": talk_target(ch, recorder.config.audio_out)[0] != "off"})
    return out


@router.get("/api/recordings")
def recordings(request: Request, channel: int | None = Query(None, ge=1, le=256),
               stream: str | None = Query(None, pattern=STREAM_PATTERN),
               start: str | None = None, end: str | None = None) -> list[dict]:
    """Indexed segments overlapping [start, end) (ISO 8601 UTC, 'now', -5m, or µs since the epoch)."""
    now = recorder_of(request).clocks.utc_now_us()
    start_us = query_time(start, now_us=now, name="start")
    end_us = query_time(end, now_us=now, name="end")
    return recording_dicts(index_of(request), recorder_of(request).root, channel=channel, stream=stream,
                           start_us=start_us, end_us=end_us)


@router.get("/api/timeline")
def timeline(request: Request, channel: int = Query(ge=1, le=256), stream: str = Query("main", pattern=STREAM_PATTERN),
             start: str | None = None, end: str | None = None) -> dict:
    """Recorded spans (adjacent segments merged; what lies between is a gap) and events of one channel."""
    channel_config(request, channel)
    start_us, end_us = time_range(request, start, end, default_span_us=86400 * 1_000_000)
    segments = recordings_of(request).segments(channel=channel, stream=stream, start_us=start_us, end_us=end_us)
    spans: list[list[int]] = []
    for seg in segments:
        if spans and seg.start_us - spans[-1][1] <= 1_500_000:  # fragment rounding, not a gap
            spans[-1][1] = max(spans[-1][1], seg.end_us)
        else:
            spans.append([seg.start_us, seg.end_us])
    return {"channel": channel, "stream": stream, "start_us": start_us, "end_us": end_us,
            "spans": [{"start_us": a, "end_us": b} for a, b in spans],
            "events": _events(request, channel, start_us, end_us, 2000)}


def _events(request: Request, channel: int | None, start_us: int, end_us: int, limit: int) -> list[dict]:
    """Linkage events (with their pre- and post-alarm span) and recorded alarms in [start_us, end_us),
    oldest first: the timeline draws both."""
    index = index_of(request)
    rows = index.alarms_between(start_us=start_us, end_us=end_us, channel=channel, limit=limit)
    out = [{"start_us": at, "end_us": None, "kind": kind, "channel": ch, "message": msg, "time": iso_utc(at)}
           for at, kind, ch, msg in rows]
    for event in index.events(start_us=start_us, end_us=end_us, channel=channel, limit=limit):
        out.append({"start_us": event.start_us, "end_us": event.end_us, "kind": event.source,
                    "channel": event.channels[0] if len(event.channels) == 1 else None,
                    "channels": list(event.channels), "message": event.rule or event.source,
                    "locked": event.locked, "time": iso_utc(event.trigger_us)})
    out.sort(key=lambda row: row["start_us"])
    return out[:limit]


@router.get("/api/events")
def events(request: Request, channel: int | None = Query(None, ge=1, le=256), start: str | None = None,
           end: str | None = None, limit: int = Query(500, ge=1, le=5000)) -> list[dict]:
    """Alarms and events in [start, end) (default: the last 24 hours), oldest first."""
    start_us, end_us = time_range(request, start, end, default_span_us=86400 * 1_000_000)
    return _events(request, channel, start_us, end_us, limit)


@router.get("/api/snapshot/{channel}", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}, 404: {}, 503: {}})
def snapshot(request: Request, channel: int, stream: str = Query("main", pattern=STREAM_PATTERN),
             width: int | None = Query(None, ge=16, le=3840)) -> Response:
    """The channel's current picture as JPEG: the newest captured frame of an analog channel, else the
    next keyframe of the live stream, else the last recorded keyframe."""
    channel_config(request, channel)
    jpeg = _live_jpeg(request, channel, stream, width) or _recorded_jpeg(request, channel, stream, width)
    if jpeg is None:
        raise HTTPException(503, f"channel {channel} has no picture yet (not connected and nothing recorded)")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


def _live_jpeg(request: Request, channel: int, stream: str, width: int | None) -> bytes | None:
    recorder = recorder_of(request)
    return live_jpeg(recorder.live.stream(channel, stream), clocks=recorder.clocks, max_width=width)


def _recorded_jpeg(request: Request, channel: int, stream: str, width: int | None) -> bytes | None:
    recorder = recorder_of(request)
    index = index_of(request)
    last = index.last_end_us(channel, stream)
    if last is None:
        return None
    seg = index.covering(channel=channel, stream=stream, at_us=last - 1)
    if seg is None:
        return None
    try:
        contents = ctx_of(request).segments.read(recorder.root / seg.path)
        key = [s for s in contents.samples if s.keyframe][-1]
        with open(recorder.root / seg.path, "rb") as f:
            f.seek(key.offset)
            sample = f.read(key.size)
        return keyframe_to_jpeg(contents.track, sample, max_width=width)
    except (OSError, Mp4Error, IndexError, SnapshotError, StorageError):
        return None


@router.get("/api/health")
def health(request: Request) -> dict:
    """Recorder status plus disks, temperatures, uptimes, viewer counts and who is talking."""
    recorder = recorder_of(request)
    status = _status(request)
    status["disks"] = status.get("disks") or [_disk(recorder.root)]  # a recorder without a health watch
    status["temperatures"] = _temperatures()
    status["system_uptime_s"] = system_uptime_s()
    status["viewers"] = dict(ctx_of(request).metrics)
    status["talk"] = ctx_of(request).talk.statistics()  # who is talking where (push-to-talk, rule sounds)
    status["time"] = iso_utc(recorder.clocks.utc_now_us())
    return status


def disk_rows(request: Request) -> tuple[list[dict], bool]:
    """Each disk's row (appliance.disks.disk_row), and whether the recorder is recording (False:
    storage.require_mount and no disk mounted)."""
    status = _status(request)
    return status.get("disks") or [_disk(recorder_of(request).root)], bool(status.get("recording", True))


def _status(request: Request) -> dict:
    recorder, reader = recorder_of(request), ctx_of(request).reader()
    return recorder.status(index=reader) if reader is not None else recorder.status()


def _disk(root: Path) -> dict:
    try:
        usage = disk_usage(root)
        return {"path": str(root), "total_bytes": usage.total_bytes, "free_bytes": usage.free_bytes,
                "used_percent": round(usage.used_percent, 2), "ok": True}
    except OSError as exc:
        return {"path": str(root), "ok": False, "error": str(exc)}


@public_router.get("/metrics", response_class=PlainTextResponse, tags=["health"])
def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text format. Needs a session cookie or HTTP Basic credentials (for a scraper)."""
    _metrics_auth(request)
    return PlainTextResponse(prometheus_text(request), media_type="text/plain; version=0.0.4")


def _metrics_auth(request: Request) -> None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        ctx, client = ctx_of(request), client_address(request)
        try:
            name, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise HTTPException(401, "malformed Basic credentials", headers={"WWW-Authenticate": "Basic"}) from None
        try:
            try:
                ticket = ctx.logins.reserve(name[:64], client)
            except KnownClientNeeded:
                ticket = ctx.logins.reserve(name[:64], client, known_client=ctx.users.known_client(name[:64], client))
            session = ctx.logins.check_blocking(ticket, ctx.users.login, name, password, client)
        except Throttled as exc:
            log.warning("metrics login for %r from %s refused for %d s: %s", name[:64], client, exc.retry_after_s, exc.reason)
            ctx.users.audit(name[:64], "login_throttled", {"reason": exc.reason, "retry_after_s": exc.retry_after_s}, client)
            raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after_s)}) from None
        except LoginError as exc:
            ctx.users.audit(name[:64], "login_failed", "metrics", client)
            raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Basic"}) from None
        ctx.users.logout(session.token)  # a scrape is one request, not a session
        return
    authenticated(request)


def prometheus_text(request: Request) -> str:
    recorder = recorder_of(request)
    status = _status(request)
    lines = [
        "# HELP nvr_uptime_seconds Seconds since the recorder started.", "# TYPE nvr_uptime_seconds gauge",
        f"nvr_uptime_seconds {status['uptime_s']}",
        "# TYPE nvr_segments gauge", f"nvr_segments {status['segments']}",
        "# TYPE nvr_recorded_bytes gauge", f"nvr_recorded_bytes {status['bytes']}",
        "# TYPE nvr_alarms_active gauge", f"nvr_alarms_active {len(status['alarms'])}",
    ]
    lines += disk_metrics(status.get("disks") or [_disk(recorder.root)])
    per_stream = (("connected", "gauge"), ("packets", "counter"), ("frames_recorded", "counter"),
                  ("frames_lost", "counter"), ("bad_packets", "counter"), ("segments", "counter"),
                  ("bytes", "counter"), ("connects", "counter"), ("failures", "counter"))
    for key, kind in per_stream:
        name = f"nvr_stream_{key}" + ("_total" if kind == "counter" else "")
        lines.append(f"# TYPE {name} {kind}")
        for s in status["streams"]:
            lines.append(f'{name}{{channel="{s["channel"]}",stream="{s["stream"]}"}} {int(s.get(key) or 0)}')
    for key, value in ctx_of(request).metrics.items():
        lines += [f"# TYPE nvr_web_{key} gauge", f"nvr_web_{key} {value}"]
    lines += _mqtt_metrics(status.get("mqtt"))
    for zone in _temperatures():
        lines.append(f'nvr_temperature_celsius{{zone="{_label(zone["zone"])}",type="{_label(zone["type"])}"}} {zone["celsius"]}')
    return "\n".join(lines) + "\n"


# Per disk: (metric, key in the disk's row, type, help). Absent values (a disk without S.M.A.R.T.) are left out.
_DISK_METRICS = (
    ("nvr_disk_free_bytes", "free_bytes", "gauge", "Bytes free on the disk's filesystem (as df counts them)."),
    ("nvr_disk_used_percent", "used_percent", "gauge", "Percent of the disk's filesystem in use."),
    ("nvr_disk_written_bytes_total", "written_bytes", "counter",
     "Bytes the kernel wrote to the disk since boot; its rate() is the disk's write rate."),
    ("nvr_disk_io_errors_total", "io_errors", "counter", "I/O errors the recorder met writing to the disk."),
    ("nvr_disk_temperature_celsius", "temperature_c", "gauge", "Drive temperature (S.M.A.R.T.)."),
    ("nvr_disk_power_on_hours", "power_on_hours", "gauge", "Drive power-on hours (S.M.A.R.T.)."),
    ("nvr_disk_reallocated_sectors", "reallocated_sectors", "gauge", "Reallocated sectors (S.M.A.R.T.)."),
    ("nvr_disk_pending_sectors", "pending_sectors", "gauge", "Sectors pending reallocation (S.M.A.R.T.)."),
    ("nvr_disk_uncorrectable_sectors", "uncorrectable_sectors", "gauge", "Uncorrectable sectors (S.M.A.R.T.)."),
)


def disk_metrics(disks: list[dict]) -> list[str]:
    """Prometheus lines for the disks' rows (appliance.disks.disk_row): space, writes, errors, S.M.A.R.T."""
    lines = []
    for name, key, kind, text in _DISK_METRICS:
        values = [(d, d.get(key)) for d in disks if d.get(key) is not None]
        if values:
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            lines += [f"{name}{{{_disk_labels(d)}}} {value}" for d, value in values]
    health = [d for d in disks if d.get("health") is not None]
    if health:
        lines += ["# HELP nvr_disk_healthy 1 while the drive's S.M.A.R.T. verdict is not failing (unknown counts as 1).",
                  "# TYPE nvr_disk_healthy gauge"]
        lines += [f'nvr_disk_healthy{{{_disk_labels(d)}}} {0 if str(d["health"]).startswith("failing") else 1}'
                  for d in health]
    days = [(d, (d.get("retention_preview") or {}).get("days")) for d in disks]
    if any(v is not None for _, v in days):
        lines += ["# HELP nvr_disk_retention_days Days of recordings the disk holds at today's rate.",
                  "# TYPE nvr_disk_retention_days gauge"]
        lines += [f"nvr_disk_retention_days{{{_disk_labels(d)}}} {v}" for d, v in days if v is not None]
    return lines


def _disk_labels(disk: dict) -> str:
    labels = f'path="{_label(disk["path"])}"'
    return labels + (f',device="{_label(disk["device"])}"' if disk.get("device") else "")


def _mqtt_metrics(mqtt: dict | None) -> list[str]:
    """The MQTT connection and outbox (`mqtt_dropped_total`: events lost to a full outbox in an outage)."""
    if not mqtt:
        return []
    return ["# TYPE nvr_mqtt_connected gauge", f"nvr_mqtt_connected {int(bool(mqtt.get('connected')))}",
            "# TYPE nvr_mqtt_outbox gauge", f"nvr_mqtt_outbox {int(mqtt.get('outbox') or 0)}",
            "# TYPE nvr_mqtt_published_total counter", f"nvr_mqtt_published_total {int(mqtt.get('published') or 0)}",
            "# TYPE nvr_mqtt_dropped_total counter", f"nvr_mqtt_dropped_total {int(mqtt.get('dropped') or 0)}"]


def _temperatures() -> list[dict]:
    return [{"zone": z.zone, "type": z.kind, "celsius": round(z.temperature_c, 1)} for z in ThermalZones().zones()]


def _label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
