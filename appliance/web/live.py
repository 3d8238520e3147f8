"""Live view: fragmented MP4 over a WebSocket (for Media Source Extensions), and MJPEG for the rest.

The WebSocket sends, in order: a text message `{"type": "init", "codec", "width", "height", "has_audio"}`
and the binary init segment (again whenever the stream restarts), then one binary `moof`+`mdat` per frame.
With `?audio=1` and a stream with sound, the init segment also has the AAC track (`codec` then ends in
`,mp4a.40.2`) and every AAC frame comes as a fragment of its own; `has_audio` tells a viewer who did
not ask that there is sound to ask for (the page asks when its viewer unmutes: sound costs latency).
With `?timing=1` each fragment is preceded by `{"type": "frame", "media_s", "capture_ms", "sent_ms"}`
(the frame's capture and send wall times), which the latency benchmark uses. A per-viewer thread reads the live
tap, so a slow viewer loses frames up to the next keyframe and never holds up recording.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading

from fastapi import APIRouter, Depends, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from base.clock import Clocks
from appliance.web.api import STREAM_PATTERN, channel_config, ctx_of, recorder_of
from appliance.web.views import RecorderView
from appliance.web.auth import authenticated, websocket_user
from recorder.live import RunStarted
from recorder.live_mux import LiveInit, LiveMuxer
from recorder.snapshot import MjpegTranscoder, SnapshotError, raw_to_jpeg

log = logging.getLogger("nvr.web.live")
router = APIRouter(tags=["live"], dependencies=[Depends(authenticated)])
ws_router = APIRouter()  # WebSockets authenticate in the handler (a dependency cannot answer 401 there)
public_router = ws_router

QUEUE_ITEMS = 64
BOUNDARY = "nvrframe"


def _has_stream(recorder: RecorderView, channel: int, stream: str) -> bool:
    return any(s.channel == channel and s.stream == stream for s in recorder.streams())


@ws_router.websocket("/api/live/{channel}/{stream}")
async def live_socket(websocket: WebSocket, channel: int, stream: str, timing: bool = False,
                      audio: bool = False) -> None:
    ctx = websocket.app.state.ctx
    user = await asyncio.to_thread(websocket_user, websocket)
    if user is None:
        await websocket.close(code=1008, reason="log in first")
        return
    await websocket.accept()
    if stream not in ("main", "sub") or not _has_stream(ctx.appliance, channel, stream):
        await websocket.send_text(json.dumps({"type": "error", "message": f"channel {channel} has no {stream} stream"}))
        await websocket.close(code=1008)
        return
    ctx.metrics["live_viewers"] += 1
    try:
        await _serve_live(websocket, ctx.appliance, channel, stream, timing, audio)
    finally:
        ctx.metrics["live_viewers"] -= 1


async def _serve_live(websocket: WebSocket, recorder: RecorderView, channel: int, stream: str, timing: bool,
                      audio: bool) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=QUEUE_ITEMS)
    stop = threading.Event()
    pump = threading.Thread(target=_pump, args=(recorder, channel, stream, queue, loop, stop, audio),
                            name=f"live-ch{channel}-{stream}", daemon=True)
    pump.start()
    closed = asyncio.ensure_future(_wait_closed(websocket))
    clocks = recorder.clocks
    try:
        while not closed.done():
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            out = getter.result()
            if isinstance(out, LiveInit):
                await websocket.send_text(json.dumps({"type": "init", "codec": out.codec, "width": out.width,
                                                      "height": out.height, "has_audio": out.has_audio}))
                await websocket.send_bytes(out.data)
                continue
            if timing and not out.audio:
                now_us = clocks.utc_now_us()
                capture_us = now_us - (clocks.monotonic_us() - out.arrival_us) if out.arrival_us else now_us
                await websocket.send_text(json.dumps({"type": "frame", "media_s": out.media_s,
                                                      "capture_ms": capture_us / 1000, "sent_ms": now_us / 1000}))
            await websocket.send_bytes(out.data)
    except (WebSocketDisconnect, RuntimeError, ConnectionError):
        pass
    finally:
        stop.set()
        closed.cancel()


async def _wait_closed(websocket: WebSocket) -> None:
    """Read (and ignore) what the viewer sends until it goes away."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
    except (WebSocketDisconnect, RuntimeError):
        return


def _pump(recorder: RecorderView, channel: int, stream: str, queue: asyncio.Queue, loop, stop: threading.Event,
          audio: bool = False) -> None:
    """Viewer thread: live tap → muxer → the socket's queue. Blocks on a full queue, so the tap's own
    bounded queue overflows and resynchronises at a keyframe."""
    mux = LiveMuxer(audio=audio)
    with recorder.live.stream(channel, stream).subscribe(max_items=256) as sub:
        while not stop.is_set():
            item = sub.get(timeout_s=0.5)
            if item is None:
                continue
            for out in mux.push(item):
                future = asyncio.run_coroutine_threadsafe(queue.put(out), loop)
                while not stop.is_set():
                    try:
                        future.result(timeout=0.5)
                        break
                    except TimeoutError:
                        continue
                else:
                    future.cancel()
                    return


@router.get("/api/live/{channel}/{stream}/mjpeg", response_class=StreamingResponse,
            responses={200: {"content": {f"multipart/x-mixed-replace; boundary={BOUNDARY}": {}}}})
def live_mjpeg(request: Request, channel: int, stream: str, fps: float = Query(4.0, ge=0.5, le=15),
               width: int | None = Query(640, ge=16, le=3840)) -> StreamingResponse:
    """Motion JPEG of a stream, for browsers without Media Source Extensions (decoded here, a few fps)."""
    channel_config(request, channel)
    if stream not in ("main", "sub") or not _has_stream(recorder_of(request), channel, stream):
        raise HTTPException(404, f"channel {channel} has no {stream} stream")
    ctx = ctx_of(request)
    frames = _mjpeg_frames(recorder_of(request), channel, stream, fps, width)

    def body():
        ctx.metrics["mjpeg_viewers"] += 1
        try:
            for jpeg in frames:
                yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n").encode() + jpeg + b"\r\n"
        finally:
            ctx.metrics["mjpeg_viewers"] -= 1
    return StreamingResponse(body(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                             headers={"Cache-Control": "no-store"})


def _mjpeg_frames(recorder: RecorderView, channel: int, stream: str, fps: float, width: int | None):
    live = recorder.live.stream(channel, stream)
    if live.latest_frame() is not None:  # an analog channel: its raw frames, no decoding
        yield from _raw_frames(live, fps, width, recorder.clocks)
        return
    transcoder = MjpegTranscoder(interval_us=round(1e6 / fps), max_width=width)
    with live.subscribe(max_items=128) as sub:
        while True:
            item = sub.get(timeout_s=5.0)
            if item is None:
                continue
            if isinstance(item, RunStarted):
                transcoder.start_run(item.info)
                continue
            jpeg = transcoder.push(item)
            if jpeg is not None:
                yield jpeg


def _raw_frames(live, fps: float, width: int | None, clocks: Clocks):
    sequence = -1
    while True:
        started_us = clocks.monotonic_us()
        frame = live.latest_frame(newer_than=sequence, timeout_s=2.0)
        if frame is None:
            continue
        sequence = frame.sequence
        try:
            yield raw_to_jpeg(frame, max_width=width)
        except SnapshotError:
            continue
        clocks.sleep(max(0.0, 1 / fps - (clocks.monotonic_us() - started_us) / 1e6))
