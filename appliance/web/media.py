"""Playback and export routes: fMP4 chunks assembled from the segments on disk, and MP4 exports
(remux only) with progress, served with byte ranges. Exports need the operator role and are audited."""
from __future__ import annotations

import logging
import secrets
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from base.clock import Clocks
from appliance.presentation import iso_utc
from appliance.web.users import User
from appliance.web.api import (STREAM_PATTERN, channel_config, ctx_of, index_of, query_time, recordings_of,
                               recorder_of, time_range)
from appliance.web.auth import audit, authenticated, require
from recorder.errors import ExportError, StorageError
from recorder.export import export
from recorder.fmp4 import Mp4Error
from recorder.live_mux import codec_string
from recorder.playback import playback_chunk

log = logging.getLogger("nvr.web")
router = APIRouter(tags=["playback"], dependencies=[Depends(authenticated)])

EXPORT_DIR = ".exports"
MAX_EXPORT_US = 24 * 3600 * 1_000_000
KEEP_EXPORTS_S = 3600
MAX_JOBS = 8


@router.get("/api/playback/{channel}", response_class=Response,
            responses={200: {"content": {"video/mp4": {}}}, 204: {"description": "nothing recorded at or after start"}})
def playback(request: Request, channel: int, start: str, stream: str = Query("main", pattern=STREAM_PATTERN),
             duration_s: float = Query(6.0, ge=0.5, le=60), base: str | None = None) -> Response:
    """A playable chunk (init segment + fragments) from the keyframe at or before `start`.

    Media time in the chunk is (wall time - `base`) in seconds (default base: the chunk's first frame),
    so successive chunks asked with one base share one timeline. Headers: `X-Chunk-Start-Us`/`X-Chunk-End-Us` (wall time covered), `X-Next-Start-Us`
    (ask for the next chunk there; absent at the end of the recording), `X-Codec` (for MSE).
    """
    channel_config(request, channel)
    now_us = recorder_of(request).clocks.utc_now_us()
    start_us = query_time(start, now_us=now_us, name="start", required=True)
    base_us = query_time(base, now_us=now_us, name="base")
    if base_us is not None and base_us > start_us:
        raise HTTPException(422, "base must not be after start")
    ctx = ctx_of(request)
    try:
        chunk = playback_chunk(recordings_of(request), recorder_of(request).root, channel=channel, stream=stream,
                               start_us=start_us, duration_us=round(duration_s * 1e6), base_us=base_us, cache=ctx.segments)
    except (OSError, Mp4Error, StorageError) as exc:
        log.warning("playback of channel %d at %s failed: %s", channel, iso_utc(start_us), exc)
        raise HTTPException(503, f"the recording at {iso_utc(start_us)} cannot be read: {exc}") from None
    if chunk is None:
        return Response(status_code=204)
    ctx.metrics["playback_chunks"] += 1
    headers = {"X-Chunk-Start-Us": str(chunk.start_us), "X-Chunk-End-Us": str(chunk.end_us),
               "X-Codec": codec_string(chunk.track.avcc), "Cache-Control": "no-store"}
    if chunk.next_us is not None:
        headers["X-Next-Start-Us"] = str(chunk.next_us)
    return Response(b"".join(chunk.parts), media_type="video/mp4", headers=headers)


# exports


@dataclass
class ExportJob:
    id: str
    user: str
    channel: int
    stream: str
    start_us: int
    end_us: int
    path: Path
    state: str = "queued"  # queued, running, done, failed
    done_bytes: int = 0
    total_bytes: int = 0
    error: str | None = None
    created_s: float = 0.0  # on the monotonic clock: only its age matters
    frames: int = 0
    future: Future | None = field(default=None, repr=False, compare=False)

    def public(self) -> dict:
        return {"id": self.id, "channel": self.channel, "stream": self.stream, "start": iso_utc(self.start_us),
                "end": iso_utc(self.end_us), "state": self.state, "done_bytes": self.done_bytes,
                "total_bytes": self.total_bytes, "error": self.error, "frames": self.frames,
                "progress": round(self.done_bytes / self.total_bytes, 3) if self.total_bytes else 0.0,
                "download": f"/api/exports/{self.id}/file" if self.state == "done" else None}


class ExportJobs:
    """Exports run one at a time on their own thread (a long one never holds up HTTP), into
    `<data root>/.exports`; finished files are kept an hour for downloading, then removed."""

    def __init__(self, root: Path, *, clocks: Clocks):
        self.folder, self._clocks = root / EXPORT_DIR, clocks
        for leftover in self.folder.glob("*.mp4*"):  # a previous run's exports: their jobs are gone with it
            leftover.unlink(missing_ok=True)
        self._jobs: dict[str, ExportJob] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export")

    def submit(self, index, root: Path, *, user: str, channel: int, stream: str, start_us: int, end_us: int) -> ExportJob:
        self._clean()
        with self._lock:
            if sum(1 for j in self._jobs.values() if j.state in ("queued", "running")) >= MAX_JOBS:
                raise HTTPException(429, "too many exports are waiting; try again when one is done")
            self.folder.mkdir(parents=True, exist_ok=True)
            job_id = secrets.token_hex(8)
            job = ExportJob(job_id, user, channel, stream, start_us, end_us, self.folder / f"{job_id}.mp4",
                            created_s=self._clocks.monotonic_us() / 1e6)
            self._jobs[job_id] = job
        job.future = self._pool.submit(self._run, job, index, root)
        return job

    def _run(self, job: ExportJob, index, root: Path) -> None:
        job.state = "running"

        def progress(done: int, total: int) -> None:
            job.done_bytes, job.total_bytes = done, total
        try:
            result = export(index, root, channel=job.channel, stream=job.stream, start_us=job.start_us,
                            end_us=job.end_us, out=job.path, progress=progress)
            job.frames, job.state = result.frames, "done"
        except (ExportError, OSError, Mp4Error, StorageError) as exc:
            job.error, job.state = str(exc), "failed"
        except Exception as exc:  # a bug must show as a failed job, not a job stuck "running"
            log.exception("export %s failed", job.id)
            job.error, job.state = f"internal error: {exc}", "failed"

    def run_now(self, index, root: Path, *, user: str, channel: int, stream: str, start_us: int, end_us: int) -> ExportJob:
        """Export on the calling (worker) thread and return the finished job."""
        job = self.submit(index, root, user=user, channel=channel, stream=stream, start_us=start_us, end_us=end_us)
        wait([job.future])
        return job

    def get(self, job_id: str, user: User) -> ExportJob:
        job = self._jobs.get(job_id)
        if job is None or (job.user != user.name and not user.may("admin")):
            raise HTTPException(404, f"no export {job_id!r}")
        return job

    def list(self, user: User) -> list[ExportJob]:
        return [j for j in self._jobs.values() if j.user == user.name or user.may("admin")]

    def _clean(self) -> None:
        cutoff = self._clocks.monotonic_us() / 1e6 - KEEP_EXPORTS_S
        with self._lock:
            for job_id, job in list(self._jobs.items()):
                if job.created_s < cutoff and job.state in ("done", "failed"):
                    job.path.unlink(missing_ok=True)
                    del self._jobs[job_id]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class ExportRequest(BaseModel):
    channel: int = Field(ge=1, le=256)
    start: str = Field(min_length=1, max_length=64)
    end: str = Field(min_length=1, max_length=64)
    stream: str = Field("main", pattern=STREAM_PATTERN)


def _checked_range(request: Request, channel: int, start: str, end: str) -> tuple[int, int]:
    channel_config(request, channel)
    start_us, end_us = time_range(request, start, end, default_span_us=0)
    if end_us - start_us > MAX_EXPORT_US:
        raise HTTPException(422, "an export may span at most 24 hours; split it")
    return start_us, end_us


@router.post("/api/exports", status_code=202)
def start_export(body: ExportRequest, request: Request, user: User = Depends(require("operator"))) -> dict:
    """Start an export; poll `GET /api/exports/{id}` for progress, then download its `download` URL."""
    start_us, end_us = _checked_range(request, body.channel, body.start, body.end)
    job = ctx_of(request).exports.submit(index_of(request), recorder_of(request).root, user=user.name,
                                         channel=body.channel, stream=body.stream, start_us=start_us, end_us=end_us)
    audit(request, "export", {"channel": body.channel, "stream": body.stream, "start": iso_utc(start_us), "end": iso_utc(end_us)})
    ctx_of(request).metrics["exports"] += 1
    return job.public()


@router.get("/api/exports")
def list_exports(request: Request, user: User = Depends(require("operator"))) -> list[dict]:
    return [j.public() for j in ctx_of(request).exports.list(user)]


@router.get("/api/exports/{job_id}")
def export_status(job_id: str, request: Request, user: User = Depends(require("operator"))) -> dict:
    return ctx_of(request).exports.get(job_id, user).public()


@router.get("/api/exports/{job_id}/file", response_class=FileResponse, responses={200: {"content": {"video/mp4": {}}}})
def export_file(job_id: str, request: Request, user: User = Depends(require("operator"))) -> FileResponse:
    job = ctx_of(request).exports.get(job_id, user)
    if job.state != "done":
        raise HTTPException(409, f"export {job_id} is {job.state}" + (f": {job.error}" if job.error else ""))
    return _mp4_file(job)


@router.get("/api/export", response_class=FileResponse, responses={200: {"content": {"video/mp4": {}}}})
def export_now(request: Request, channel: int = Query(ge=1, le=256), start: str = Query(min_length=1),
               end: str = Query(min_length=1), stream: str = Query("main", pattern=STREAM_PATTERN),
               user: User = Depends(require("operator"))) -> FileResponse:
    """Export [start, end) of a channel and answer the MP4 itself (byte ranges supported)."""
    start_us, end_us = _checked_range(request, channel, start, end)
    audit(request, "export", {"channel": channel, "stream": stream, "start": iso_utc(start_us), "end": iso_utc(end_us)})
    ctx_of(request).metrics["exports"] += 1
    job = ctx_of(request).exports.run_now(index_of(request), recorder_of(request).root, user=user.name,
                                          channel=channel, stream=stream, start_us=start_us, end_us=end_us)
    if job.state != "done":
        raise HTTPException(404 if "no " in (job.error or "") else 422, job.error or "the export failed")
    return _mp4_file(job)


def _mp4_file(job: ExportJob) -> FileResponse:
    stamp = iso_utc(job.start_us).replace(":", "").replace("-", "")[:15]
    return FileResponse(job.path, media_type="video/mp4", filename=f"ch{job.channel:02d}-{stamp}.mp4")
