"""The "Add camera" routes (admin only): find ONVIF cameras on the LAN, read one with its credentials
(device information, profiles, stream and snapshot URIs), and add it as a `type: onvif` channel through
the config page's own validation, save and restart path (appliance.web.config_page.save_config_text).

The channel goes into the config file's text as one flow-style item at the end of its `channels:`
block, so the file's comments and layout stay as they were; the result is validated like any edit, and
refused unless it holds the new channel exactly as asked.
"""
from __future__ import annotations

import json
import re

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from appliance.config.model import Config
from appliance.config.onvif import check_onvif_url
from appliance.web.auth import authenticated, require
from appliance.web.config_page import config_file_text, save_config_text
from appliance.web.users import User

router = APIRouter(tags=["cameras"], dependencies=[Depends(authenticated)])
READ_TIMEOUT_S = 10.0
MAX_CHANNEL_ID = 256
_CHANNELS_KEY = re.compile(r"^channels:[ \t]*(#.*)?$", re.M)
_TOP_LEVEL = re.compile(r"^[^\s#-]", re.M)  # a line that starts another top-level key


class DiscoverRequest(BaseModel):
    timeout_s: float = Field(2.0, ge=0.5, le=10, description="Seconds to wait for answers.")


class CameraLogin(BaseModel):
    url: str = Field(max_length=512, description="The camera's ONVIF device service (http://HOST[:PORT] or full URL).")
    username: str = Field("", max_length=64)
    password: str = Field("", max_length=256)


class NewCamera(CameraLogin):
    name: str = Field(min_length=1, max_length=64, description="The channel's name.")
    profile: str = Field(min_length=1, max_length=64, description="Token of the profile to record.")
    sub_profile: str | None = Field(None, max_length=64, description="Token of the live/motion profile, or none.")


def _check_url(url: str) -> str:
    try:
        return check_onvif_url(url)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


@router.post("/api/cameras/discover")
def discover_cameras(body: DiscoverRequest, request: Request, _: User = Depends(require("admin"))) -> list[dict]:
    """The ONVIF devices that answered a WS-Discovery probe within `timeout_s`."""
    finder = getattr(request.app.state.ctx, "discover", None)
    if finder is not None:
        return finder(body.timeout_s)
    from drivers.onvif.discovery import discover  # no ONVIF library needed to probe

    clocks = request.app.state.ctx.appliance.clocks
    return [device.as_dict() for device in discover(timeout_s=body.timeout_s, clocks=clocks)]


@router.post("/api/cameras/read")
def read_camera(body: CameraLogin, _: User = Depends(require("admin"))) -> dict:
    """Connect with the credentials and read device information, profiles and URIs. 422 with what to do
    when the camera cannot be read (unreachable, wrong credentials, not ONVIF)."""
    from appliance.discover import report_dict
    from drivers.onvif.camera import read_camera as read
    from drivers.onvif.errors import OnvifError

    try:
        report = read(_check_url(body.url), username=body.username or None, password=body.password or None,
                      timeout_s=READ_TIMEOUT_S)
    except OnvifError as exc:
        raise HTTPException(422, str(exc)) from None
    return report_dict(report)


@router.post("/api/cameras")
def add_camera(body: NewCamera, request: Request, _: User = Depends(require("admin"))) -> dict:
    """Add the camera as a new `type: onvif` channel (the lowest free id) and apply it like a config save."""
    _check_url(body.url)
    path, text = config_file_text(request)
    config = request.app.state.ctx.appliance.config
    channel_id = next((i for i in range(1, MAX_CHANNEL_ID + 1) if i not in {c.id for c in config.channels}), None)
    if channel_id is None:
        raise HTTPException(409, f"all {MAX_CHANNEL_ID} channel numbers are in use; remove a channel first")
    item = _channel_item(channel_id, body)
    new_text = insert_channel(text, item)

    def is_the_new_channel(new: Config) -> None:
        added = [c for c in new.channels if c.id == channel_id]
        source = added[0].source if added else None
        if getattr(source, "type", None) != "onvif" or source.url != body.url or source.profile != body.profile:
            raise HTTPException(409, f"could not add the channel to {path}'s `channels:` list; add it on the "
                                     f"config page: {item}")

    answer = save_config_text(request, new_text, check=is_the_new_channel, action="camera_add")
    return {**answer, "channel": channel_id}


def _channel_item(channel_id: int, body: NewCamera) -> str:
    """One flow-style YAML mapping for the channel (JSON strings are YAML's double-quoted scalars)."""
    source = {"type": "onvif", "url": body.url, "username": body.username or None,
              "password": body.password or None, "profile": body.profile, "sub_profile": body.sub_profile or None}
    fields = ", ".join(f"{key}: {json.dumps(value)}" for key, value in source.items() if value is not None)
    return f"{{id: {channel_id}, name: {json.dumps(body.name)}, source: {{{fields}}}}}"


def insert_channel(text: str, item: str) -> str:
    """`text` with `- ITEM` appended to its top-level block-style `channels:` list (after the list's last
    line that is not a comment), or a new `channels:` list at the end when it has none."""
    key = _CHANNELS_KEY.search(text)
    if key is None:
        if re.search(r"^channels\s*:", text, re.M):
            return text  # a flow-style list: the check after validation refuses it with the item to paste
        return text.rstrip("\n") + f"\nchannels:\n  - {item}\n"
    block_start = key.end() + 1
    end = _TOP_LEVEL.search(text, block_start)
    block_end = end.start() if end else len(text)
    lines = text[block_start:block_end].split("\n")
    content = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    indent = next((line[:len(line) - len(line.lstrip())] for line in lines if line.lstrip().startswith("- ")), "  ")
    at = content[-1] + 1 if content else 0
    lines.insert(at, f"{indent}- {item}")
    return text[:block_start] + "\n".join(lines) + text[block_end:]
