"""Push-to-talk: `/api/talk/{channel}`, a WebSocket that carries an operator's microphone to the channel's
talk output (a camera's speaker through its ONVIF back channel, or the box's AUDIO OUT).

Authenticated as the live view's socket (session cookie, same-origin Origin), and only for the operator
role and above. The box answers with one text message, then takes binary talk frames
(appliance.talk.frames) until the page closes the socket (the button is let go):

    {"type": "ready", "sample_rate": 8000, "max_frame_samples": 800, "output": "camera speaker (PCMU)"}
    {"type": "busy", "user": "anna", "message": "anna is talking on channel 3"}     then closed (1013)
    {"type": "error", "message": "..."}                                              then closed

One talker per output at a time; a session lasts at most MAX_TALK_S. Malformed frames are refused and
counted, and a page that sends MAX_BAD_FRAMES of them is closed (1003); sound over the talker's budget is
dropped. The sink is opened and fed on threads, never on the event loop.
"""
from __future__ import annotations

import asyncio
import json
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from appliance.config.talk import talk_target
from appliance.talk.frames import (MAX_FRAME_SAMPLES, SAMPLE_RATE, TalkBudget, TalkFrameError, parse_talk_frame)
from appliance.talk.session import Talker, TalkHub, TalkSession
from appliance.talk.sinks import TalkSinkError, make_sink
from appliance.web.auth import client_address, websocket_user

log = logging.getLogger("nvr.web.talk")
router = APIRouter()
public_router = APIRouter()  # authenticated in the handler, as the live socket

MAX_TALK_S = 300.0  # a button held (or stuck) longer than this ends the session
MAX_BAD_FRAMES = 10  # malformed frames a page may send before it is closed
CLOSE_POLICY, CLOSE_UNSUPPORTED, CLOSE_FAILED, CLOSE_TRY_AGAIN = 1008, 1003, 1011, 1013


def talk_hub(ctx) -> TalkHub:
    hub = getattr(ctx, "talk", None)
    if hub is None:
        hub = ctx.talk = TalkHub()
    return hub


@public_router.websocket("/api/talk/{channel}")
async def talk_socket(websocket: WebSocket, channel: int) -> None:
    ctx = websocket.app.state.ctx
    user = await asyncio.to_thread(websocket_user, websocket)
    if user is None:
        await websocket.close(code=CLOSE_POLICY, reason="log in first")
        return
    await websocket.accept()
    if not user.may("operator"):
        await _refuse(websocket, CLOSE_POLICY, f"talking needs the operator role; you are {user.role}")
        return
    config = ctx.appliance.config
    found = next((c for c in config.channels if c.id == channel and c.enabled), None)
    output = talk_target(found, config.audio_out) if found is not None else ("off", None)
    if output[1] is None:
        await _refuse(websocket, CLOSE_POLICY, f"channel {channel} has no talk output (channels[].talk.output)")
        return
    clocks = ctx.appliance.clocks
    talker = Talker(user.name, channel, clocks.utc_now_us())
    hub = talk_hub(ctx)
    holder = hub.claim(output, talker)
    if holder is not None:
        where = f"channel {holder.channel}" if holder.channel == channel else \
            f"channel {holder.channel}, which shares this output"
        await websocket.send_text(json.dumps({"type": "busy", "user": holder.user,
                                              "message": f"{holder.user} is talking on {where}; try again later"}))
        await websocket.close(code=CLOSE_TRY_AGAIN)
        return
    try:
        await _talk(websocket, ctx, output, talker, clocks)
    finally:
        hub.release(output, talker)


async def _talk(websocket: WebSocket, ctx, output: tuple[str, str], talker: Talker, clocks) -> None:
    hub = talk_hub(ctx)
    sink = make_sink(*output, clocks=clocks, playback=hub.playback, camera_url=hub.camera_url)
    session = TalkSession(sink, name=f"ch{talker.channel}-{talker.user}")
    try:
        description = await asyncio.to_thread(session.open)
    except TalkSinkError as exc:
        session.sink.close()
        log.warning("talk on channel %d by %s: %s", talker.channel, talker.user, exc)
        await _refuse(websocket, CLOSE_FAILED, f"cannot talk on channel {talker.channel}: {exc}")
        return
    await asyncio.to_thread(ctx.users.audit, talker.user, "talk", {"channel": talker.channel, "output": output[0]},
                            client_address(websocket))
    budget: TalkBudget | None = None
    try:
        await websocket.send_text(json.dumps({"type": "ready", "sample_rate": SAMPLE_RATE,
                                              "max_frame_samples": MAX_FRAME_SAMPLES, "output": description}))
        budget = TalkBudget(_now(clocks))
        reason = await _receive(websocket, session, clocks, budget)
        if reason is not None:
            await _refuse(websocket, *reason)
    except (WebSocketDisconnect, RuntimeError, ConnectionError) as exc:
        log.debug("talk socket of %s went away: %r", talker.user, exc)  # the page closed: the usual end
    finally:
        await asyncio.to_thread(session.close)
        figures = {**session.statistics(), **(budget.statistics() if budget is not None else {})}
        talk_hub(ctx).record_ended(talker, figures)
        log.info("talk on channel %d by %s ended: %s", talker.channel, talker.user, figures)


async def _receive(websocket: WebSocket, session: TalkSession, clocks, budget: TalkBudget) -> tuple[int, str] | None:
    """Frames within `budget` to the session until the page closes (None) or must be closed: (code, why)."""
    start_s = _now(clocks)
    bad = 0
    while True:
        try:
            message = await asyncio.wait_for(websocket.receive(), timeout=max(0.1, start_s + MAX_TALK_S - _now(clocks)))
        except TimeoutError:
            return CLOSE_POLICY, f"talk ends after {MAX_TALK_S:g} s; press the button again"
        if message["type"] == "websocket.disconnect":
            return None
        if session.error is not None:
            return CLOSE_FAILED, f"the talk output failed: {session.error}"
        data = message.get("bytes")
        if data is None:
            continue  # text from the page carries nothing the box needs
        try:
            frame = parse_talk_frame(data)
        except TalkFrameError as exc:
            bad += 1
            if bad >= MAX_BAD_FRAMES:
                return CLOSE_UNSUPPORTED, f"{bad} malformed talk frames, the last: {exc}"
            continue
        if budget.admit(frame, _now(clocks)):
            session.put(frame.samples)


def _now(clocks) -> float:
    return clocks.monotonic_us() / 1e6


async def _refuse(websocket: WebSocket, code: int, message: str) -> None:
    try:
        await websocket.send_text(json.dumps({"type": "error", "message": message}))
        await websocket.close(code=code)
    except (WebSocketDisconnect, RuntimeError, ConnectionError) as exc:
        log.debug("talk refusal not delivered (%s): %r", message, exc)  # the page left first
