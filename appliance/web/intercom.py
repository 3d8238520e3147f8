"""The LINE IN intercom from the web: hold-to-talk as a lease (operators and administrators).

A hold that finds the intercom's output taken (an operator talking on that camera's speaker) is refused
with 409 and the talker's name; every new hold is in the audit log with where the intercom is heard.

The page calls POST /api/intercom/hold when the button goes down and again every lease/3 while it
stays down, and POST /api/intercom/release when it comes up. The lease (`line_in.lease_s`) is what
closes the microphone when the release never comes: a closed tab, a sleeping laptop, a lost network.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request

from appliance.web.auth import audit, authenticated, require
from appliance.web.users import User

router = APIRouter(tags=["intercom"], dependencies=[Depends(authenticated)])


def _intercom(request: Request):
    intercom = getattr(request.app.state.ctx.appliance, "intercom", None)
    if intercom is None:
        raise HTTPException(404, "this box has no LINE IN intercom: set line_in.device, and audio_out.device or "
                                 "line_in.channel")
    return intercom


def _lease_s(request: Request) -> float:
    return request.app.state.ctx.appliance.config.line_in.lease_s


@router.get("/api/intercom")
def intercom_state(request: Request) -> dict:
    """Whether the box has an intercom, its lease, and who holds it now."""
    intercom = getattr(request.app.state.ctx.appliance, "intercom", None)
    if intercom is None:
        return {"available": False}
    return {"available": True, "lease_s": _lease_s(request), **intercom.statistics()}


@router.post("/api/intercom/hold")
def intercom_hold(request: Request, user: User = Depends(require("operator"))) -> dict:
    """Open the intercom (or renew this user's hold) for `line_in.lease_s`; renew before it runs out."""
    intercom, lease_s = _intercom(request), _lease_s(request)
    try:
        new = intercom.hold(f"web:{user.name}", lease_s)
    except RuntimeError as exc:  # IntercomBusy, or OutputTaken (with the talker's name in it)
        raise HTTPException(409, str(exc)) from None
    if new:
        audit(request, "intercom_hold", {"lease_s": lease_s, "output": intercom.output})
    return {"held": True, "lease_s": lease_s, "renew_within_s": lease_s / 3}


@router.post("/api/intercom/release")
def intercom_release(request: Request, user: User = Depends(require("operator"))) -> dict:
    """Let go of this user's hold at once."""
    _intercom(request).release(f"web:{user.name}")
    return {"held": False}
