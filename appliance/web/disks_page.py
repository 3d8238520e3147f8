"""Disks page routes (admin only): the disks with their health, space, state and retention preview; the
machine's whole disks to initialise one as a recordings disk (as `nvr disks init` does, on a thread,
with its steps shown); and ejecting a recording disk safely. Every action is audit-logged.

Shown states: `recording` (in use), `missing` (configured, not there: unmounted or pulled), `ejected`
(unmounted from this page: safe to unplug), `ejecting`, `failed` (a write failed), `foreign` (a disk
this recorder never used: never written to).
"""
from __future__ import annotations

import logging
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from appliance.disks import (INIT_STEPS, DiskInitRefused, check_initialisable, disk_serial,
                             initialise_audited, label_problem)
from appliance.web.api import disk_rows, recorder_of
from appliance.web.auth import audit, authenticated, client_address, require, users_of
from appliance.web.users import User
from base.clock import Clocks
from hal.block_device import BlockDeviceError, WholeDisk, signatures, whole_disks

log = logging.getLogger("nvr.web")
router = APIRouter(tags=["disks"], dependencies=[Depends(authenticated)])

MAX_INIT_JOBS_KEPT = 16  # finished initialisations remembered for the page; older ones are forgotten
MAX_RATE_SAMPLES = 64  # disks whose last write counter is kept for the write rate
MIN_RATE_SPAN_S = 0.5  # two looks closer than this give no write rate (the counter's steps would dominate)
CONFIRM_WITH = "the serial number field"  # where a refusal tells the admin to type the serial


@dataclass
class InitJob:
    """One initialisation, as the page polls it. `state`: running, done or failed."""

    id: str
    device: str
    label: str
    user: str
    state: str = "running"
    step: str = INIT_STEPS[0]
    steps_done: int = 0
    result: dict | None = None
    error: str | None = None

    def as_dict(self) -> dict:
        return {"id": self.id, "device": self.device, "label": self.label, "state": self.state, "step": self.step,
                "steps_done": self.steps_done, "steps_total": len(INIT_STEPS), "result": self.result,
                "error": self.error}


@dataclass
class DiskDesk:
    """What the Disks page keeps between requests: initialisations (one at a time, on their own thread:
    mkfs takes seconds to minutes), the labels ejected from here, and the last write counter per disk."""

    jobs: dict[str, InitJob] = field(default_factory=dict)
    _ejected: set[str] = field(default_factory=set)
    _samples: dict[str, tuple[int, int]] = field(default_factory=dict)  # device -> (written_bytes, monotonic µs)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="disk-init"))

    def start(self, job: InitJob, run) -> None:
        """Run `run(job)` on the initialising thread; 409 while another initialisation runs."""
        with self._lock:
            busy = [j for j in self.jobs.values() if j.state == "running"]
            if busy:
                raise HTTPException(409, f"{busy[0].device} is being initialised; wait until it is done")
            finished = [k for k, j in self.jobs.items() if j.state != "running"]
            for key in finished[:max(0, len(finished) - MAX_INIT_JOBS_KEPT + 1)]:
                del self.jobs[key]
            self.jobs[job.id] = job
        self._pool.submit(run, job)

    def note_ejected(self, label: str) -> None:
        with self._lock:
            self._ejected.add(label)

    def ejected_labels(self, rows: list[dict]) -> set[str]:
        """The labels ejected from here that are still away (a disk plugged in again is forgotten)."""
        with self._lock:
            self._ejected -= {r.get("label") for r in rows if r.get("state") == "ok"}
            return set(self._ejected)

    def write_rate(self, device: str | None, written_bytes: int | None, clocks: Clocks) -> float | None:
        """Bytes per second the kernel wrote to `device` since the previous look (None the first time)."""
        if not device or written_bytes is None:
            return None
        now_us = clocks.monotonic_us()
        with self._lock:
            before = self._samples.get(device)
            if before is not None and now_us - before[1] < MIN_RATE_SPAN_S * 1e6:
                return None  # too close to the last look to say
            if before is None and len(self._samples) >= MAX_RATE_SAMPLES:
                self._samples.pop(next(iter(self._samples)))
            self._samples[device] = (written_bytes, now_us)
        if before is None:
            return None
        return max(0, written_bytes - before[0]) / ((now_us - before[1]) / 1e6)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)  # an mkfs under way finishes (bounded by its timeout)


def desk_of(request: Request) -> DiskDesk:
    return request.app.state.ctx.disks


class DiskInit(BaseModel):
    device: str = Field(min_length=6, max_length=64, pattern=r"^/dev/[A-Za-z0-9_][A-Za-z0-9_./+-]*$")
    label: str = Field(min_length=1, max_length=32)
    confirm_serial: str | None = Field(None, max_length=64)


def shown_state(row: dict, *, recording: bool, ejected: set[str]) -> str:
    """The state the page shows for a disk's row (the module docstring lists them)."""
    state = row.get("state")
    if state is None:  # the data root, or the one disk of a recorder without storage.disks
        return "recording" if row.get("ok") and recording else "missing"
    if state == "away":
        return "ejected" if row.get("label") in ejected else "missing"
    return {"ok": "recording"}.get(state, state)


@router.get("/api/disks")
def disks(request: Request, _: User = Depends(require("admin"))) -> list[dict]:
    """Each disk: role, label, group and state, device, model, serial, S.M.A.R.T. health, temperature,
    power-on hours, space, write rate (since the previous look), I/O errors and the retention preview."""
    recorder, desk = recorder_of(request), desk_of(request)
    rows, recording = disk_rows(request)
    ejected = desk.ejected_labels(rows)
    for row in rows:
        row["shown_state"] = shown_state(row, recording=recording, ejected=ejected)
        row["write_rate_bytes_per_s"] = desk.write_rate(row.get("device"), row.get("written_bytes"), recorder.clocks)
    return rows


@router.get("/api/disks/devices")
def devices(request: Request, _: User = Depends(require("admin"))) -> list[dict]:
    """The machine's whole disks, to pick one to initialise: size, model, serial, where it is mounted
    (then it cannot be initialised), and what is on it (a partition table, a filesystem)."""
    try:
        found = whole_disks()
    except BlockDeviceError as exc:
        raise HTTPException(503, f"cannot list the disks: {exc}") from None
    rows = []
    for disk in found:
        try:
            rows.append(_device_row(disk))
        except BlockDeviceError as exc:
            if os.path.exists(disk.path):
                raise HTTPException(503, f"cannot read {disk.path}: {exc}") from None
            log.info("disk %s went away while the disks were listed: left out", disk.path)  # pulled meanwhile
    return rows


def _device_row(disk: WholeDisk) -> dict:
    row = {**disk.as_dict(), "contents": None, "contents_error": None}
    if disk.serial is None:
        row["serial"] = disk_serial(disk.path)
    if not disk.mounted:
        try:
            row["contents"] = [{"kind": s.kind, "on": s.device, "label": s.label} for s in signatures(disk.path)]
        except BlockDeviceError as exc:
            row["contents_error"] = str(exc)
    return row


@router.post("/api/disks/init", status_code=202)
def init_disk(body: DiskInit, request: Request, user: User = Depends(require("admin"))) -> JSONResponse:
    """Make a whole disk a recordings disk (ext4, label, identity file), as `nvr disks init`. Refused
    (409, audit-logged) while it is mounted, or when anything is on it unless `confirm_serial` is its
    serial. Otherwise 202 with the job to poll at /api/disks/init/{id}; the result is audit-logged."""
    problem = label_problem(body.label)
    if problem is not None:
        raise HTTPException(422, f"label: {problem}")
    if body.device not in {d.path for d in _whole_disks()}:
        raise HTTPException(404, f"{body.device} is not a whole disk of this machine (see /api/disks/devices)")
    try:
        check_initialisable(body.device, confirm_serial=body.confirm_serial, confirm_with=CONFIRM_WITH)
    except (DiskInitRefused, BlockDeviceError) as exc:
        audit(request, "disk_init_refused", {"device": body.device, "label": body.label, "why": str(exc)})
        raise HTTPException(409, str(exc)) from None
    users, client = users_of(request), client_address(request)
    job = InitJob(secrets.token_hex(8), body.device, body.label, user.name)

    def run(job: InitJob) -> None:
        def on_step(step: str) -> None:
            job.steps_done, job.step = INIT_STEPS.index(step), step
        try:
            job.result = initialise_audited(job.device, label=job.label, confirm_serial=body.confirm_serial,
                                            audit=lambda action, detail: users.audit(job.user, action, detail, client),
                                            on_step=on_step, confirm_with=CONFIRM_WITH)
            job.steps_done, job.step, job.state = len(INIT_STEPS), "done", "done"
        except (DiskInitRefused, BlockDeviceError) as exc:
            job.error, job.state = str(exc), "failed"
        except Exception as exc:  # a bug must show as a failed job, not one "running" for ever
            log.exception("initialising %s failed", job.device)
            job.error, job.state = f"internal error: {exc}", "failed"
    desk_of(request).start(job, run)
    return JSONResponse(job.as_dict(), status_code=202)


def _whole_disks() -> list[WholeDisk]:
    try:
        return whole_disks()
    except BlockDeviceError as exc:
        raise HTTPException(503, f"cannot list the disks: {exc}") from None


@router.get("/api/disks/init/{job_id}")
def init_job(job_id: str, request: Request, _: User = Depends(require("admin"))) -> dict:
    """An initialisation's step (steps_done of steps_total), then its result or why it failed."""
    job = desk_of(request).jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"no disk initialisation {job_id[:32]!r}")
    return job.as_dict()


@router.post("/api/disks/{label}/eject")
def eject_disk(label: str, request: Request, _: User = Depends(require("admin"))) -> dict:
    """Eject a recording disk safely (admin): no new segments on it, the open ones ended at their next
    keyframe and indexed, then synced and unmounted; recording goes on on the other disks. Audit-logged.
    `safe_to_unplug` is true once it is unmounted."""
    try:
        result = recorder_of(request).eject_disk(label)
    except KeyError:
        audit(request, "disk_eject_refused", {"label": label[:64], "why": "no such disk"})
        raise HTTPException(404, f"no recording disk is labelled {label[:64]!r} (storage.disks)") from None
    audit(request, "disk_eject", result)
    if result.get("unmounted"):
        desk_of(request).note_ejected(label)
    return {**result, "safe_to_unplug": bool(result.get("unmounted"))}
