"""PTZ and alarm routes, over the narrow controls of `appliance.web.views`.

The routes take the appliance's PTZ service and alarm I/O (adapted to `WebPtzControl` and `AlarmPanel`
by `appliance.web.services`) when it has them, and answer 404 with the reason when it has not (a
permanent answer, not a 5xx "try later"). Active faults and the manual trigger work on the appliance's
fault board, which every appliance has. PTZ and alarm actions need the operator role and are written
to the audit log.
"""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from appliance.presentation import iso_utc
from appliance.web.users import User
from appliance.web.api import channel_config
from appliance.web.auth import audit, authenticated, require
from appliance.web.services import alarm_panel, web_ptz
from appliance.web.views import AlarmPanel, ApplianceView, WebPtzControl

router = APIRouter(tags=["ptz and alarms"], dependencies=[Depends(authenticated)])


def _appliance(request: Request) -> ApplianceView:
    return request.app.state.ctx.appliance


def _ptz_control(request: Request) -> WebPtzControl | None:
    """The appliance's PTZ service as the routes need it; None when no channel has a dome."""
    return web_ptz(_appliance(request).ptz)


def _ptz(request: Request, channel: int) -> WebPtzControl:
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


def _alarm_io(request: Request) -> AlarmPanel | None:
    return alarm_panel(_appliance(request).alarm_io)


@router.get("/api/alarms")
def faults(request: Request) -> dict:
    """Active faults, alarm inputs and relay outputs."""
    io = _alarm_io(request)
    return {
        "active": [{"kind": a.kind, "channel": a.channel, "message": a.message, "since_us": a.since_us,
                    "since": iso_utc(a.since_us)} for a in _appliance(request).faults.active()],
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
        _appliance(request).faults.raise_fault("manual", message, channel=body.channel)
    audit(request, "alarm_trigger", body.model_dump())
    return {"ok": True}


@router.post("/api/alarms/clear")
def clear(body: AlarmClear, request: Request, _: User = Depends(require("operator"))) -> dict:
    _appliance(request).faults.clear_fault(body.kind, channel=body.channel)
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
