"""PTZ and alarm routes, over small protocols the appliance's PTZ and alarm-I/O services satisfy.

The routes take the services from the supervisor (`supervisor.ptz`, `supervisor.alarm_io`) when it has
them and answer 404 with the reason when it has not (a permanent answer, not a 5xx "try later"). Active alarms and the manual trigger work on the
supervisor's alarm board, which every appliance has. PTZ and alarm actions need the operator role
and are written to the audit log.
"""
from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from appliance.presentation import iso_utc
from appliance.web.users import User
from appliance.web.api import channel_config, supervisor_of
from appliance.web.auth import audit, authenticated, require
from appliance.web.services import WebAlarmIo, WebPtz

router = APIRouter(tags=["ptz and alarms"], dependencies=[Depends(authenticated)])


@runtime_checkable
class PtzControl(Protocol):
    """What the PTZ routes need. Speeds and directions are -1.0..1.0 (0 = still)."""

    def has_channel(self, channel: int) -> bool: ...

    def move(self, channel: int, *, pan: float, tilt: float) -> None: ...

    def zoom(self, channel: int, *, speed: float) -> None: ...

    def stop(self, channel: int) -> None: ...

    def goto_preset(self, channel: int, preset: int) -> None: ...

    def set_preset(self, channel: int, preset: int) -> None: ...


@runtime_checkable
class AlarmIo(Protocol):
    """What the alarm routes need from the alarm inputs/outputs service."""

    def inputs(self) -> list[dict]: ...  # {"id", "name", "active", ...}

    def outputs(self) -> list[dict]: ...  # {"id", "name", "on", ...}

    def set_output(self, output_id: str, on: bool) -> None: ...


def _ptz_control(request: Request) -> PtzControl | None:
    """The supervisor's PTZ service as the routes need it; None when no channel has a dome."""
    service = getattr(supervisor_of(request), "ptz", None)
    if service is None or isinstance(service, PtzControl):
        return service
    return WebPtz(service) if service.channels() else None


def _ptz(request: Request, channel: int) -> PtzControl:
    channel_config(request, channel)
    ptz = _ptz_control(request)
    if ptz is None:
        raise HTTPException(404, "this appliance has no PTZ control configured")
    if not ptz.has_channel(channel):
        raise HTTPException(404, f"channel {channel} has no PTZ camera")
    return ptz


class PtzCommand(BaseModel):
    action: Literal["move", "stop", "zoom", "goto_preset", "set_preset"]
    pan: float = Field(0.0, ge=-1, le=1, description="-1 left .. 1 right")
    tilt: float = Field(0.0, ge=-1, le=1, description="-1 down .. 1 up")
    zoom: float = Field(0.0, ge=-1, le=1, description="-1 out .. 1 in")
    preset: int = Field(1, ge=1, le=255)


@router.get("/api/ptz/{channel}")
def ptz_state(channel: int, request: Request) -> dict:
    """Whether the channel can be moved (and its state, when the PTZ service reports one)."""
    channel_config(request, channel)
    ptz = _ptz_control(request)
    available = ptz is not None and ptz.has_channel(channel)
    state = ptz.state(channel) if available and hasattr(ptz, "state") else None
    return {"channel": channel, "available": available, "state": state}


@router.post("/api/ptz/{channel}")
def ptz_command(channel: int, command: PtzCommand, request: Request, _: User = Depends(require("operator"))) -> dict:
    """Move, zoom, stop, or go to / store a preset."""
    ptz = _ptz(request, channel)
    try:
        if command.action == "move":
            ptz.move(channel, pan=command.pan, tilt=command.tilt)
        elif command.action == "zoom":
            ptz.zoom(channel, speed=command.zoom)
        elif command.action == "stop":
            ptz.stop(channel)
        elif command.action == "goto_preset":
            ptz.goto_preset(channel, command.preset)
        else:
            ptz.set_preset(channel, command.preset)
    except (OSError, ValueError) as exc:
        raise HTTPException(502, f"the PTZ camera did not take the command: {exc}") from None
    audit(request, "ptz", {"channel": channel, **command.model_dump()})
    return {"ok": True}


# alarms


def _alarm_io(request: Request) -> AlarmIo | None:
    io = getattr(supervisor_of(request), "alarm_io", None)
    if io is None or isinstance(io, AlarmIo):
        return io
    return WebAlarmIo(io) if io.contacts or io.relays else None  # no pins configured: no alarm I/O


@router.get("/api/alarms")
def alarms(request: Request) -> dict:
    """Active alarms, alarm inputs and relay outputs."""
    sup = supervisor_of(request)
    io = _alarm_io(request)
    return {
        "active": [{"kind": a.kind, "channel": a.channel, "message": a.message, "since_us": a.since_us,
                    "since": iso_utc(a.since_us)} for a in sup.alarms.active()],
        "io": io is not None,
        "inputs": io.inputs() if io is not None else [],
        "outputs": io.outputs() if io is not None else [],
    }


class ManualAlarm(BaseModel):
    channel: int | None = Field(None, ge=1, le=256)
    message: str = Field("manual trigger", min_length=1, max_length=200)


class AlarmClear(BaseModel):
    kind: str = Field(min_length=1, max_length=64)
    channel: int | None = Field(None, ge=1, le=256)


class OutputState(BaseModel):
    on: bool


@router.post("/api/alarms/trigger")
def trigger(body: ManualAlarm, request: Request, user: User = Depends(require("operator"))) -> dict:
    """Raise a manual alarm (recorded as an event; the alarm service's linkage acts on it when present)."""
    if body.channel is not None:
        channel_config(request, body.channel)
    io = _alarm_io(request)
    message = f"{body.message} (by {user.name})"
    if io is not None and hasattr(io, "trigger"):
        io.trigger(channel=body.channel, message=message)
    else:
        supervisor_of(request).alarms.raise_alarm("manual", message, channel=body.channel)
    audit(request, "alarm_trigger", body.model_dump())
    return {"ok": True}


@router.post("/api/alarms/clear")
def clear(body: AlarmClear, request: Request, _: User = Depends(require("operator"))) -> dict:
    supervisor_of(request).alarms.clear_alarm(body.kind, channel=body.channel)
    audit(request, "alarm_clear", body.model_dump())
    return {"ok": True}


@router.post("/api/alarms/outputs/{output_id}")
def set_output(output_id: str, body: OutputState, request: Request, _: User = Depends(require("operator"))) -> dict:
    """Switch a relay output on or off by hand."""
    io = _alarm_io(request)
    if io is None:
        raise HTTPException(404, "this appliance has no alarm outputs configured")
    if output_id not in {str(o.get("id")) for o in io.outputs()}:
        raise HTTPException(404, f"no alarm output {output_id!r}")
    io.set_output(output_id, body.on)
    audit(request, "alarm_output", {"output": output_id, "on": body.on})
    return {"ok": True}
