"""ONVIF configuration: how the appliance reaches a camera's ONVIF device service.

Two places use it: a channel whose source *is* an ONVIF camera (`channels[].source: {type: onvif, ...}`,
whose stream URIs are asked of the camera at every connect), and a plain RTSP channel that names its
camera's ONVIF service only for PTZ and events (`channels[].source.onvif: {...}`).
`appliance.config.model` hooks these models into the source union and `RtspSource`.
"""
from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from appliance.config.section import Section


_TOKEN_RE = re.compile(r"[^\x00-\x20\x7f]{1,64}")  # ONVIF ReferenceToken: up to 64 characters, no spaces


def check_onvif_url(url: str) -> str:
    """Return `url` if it is ``http://`` or ``https://`` with a host and a valid port; else ValueError.

    A bare ``http://HOST[:PORT]`` means the standard device service path, ``/onvif/device_service``.
    Credentials do not belong in the URL (they go in `username` and `password`, which ONVIF sends as a
    WS-UsernameToken, not in the HTTP request line).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # an unclosed IPv6 bracket, a port out of range
        parts, port = None, 0
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname \
            or any(char.isspace() for char in url) or port == 0:
        raise ValueError(f"expected the camera's ONVIF address as http://HOST[:PORT] (or https://), got {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("put the ONVIF user name and password in `username` and `password`, not in the URL")
    return url


def _check_token(token: str | None) -> str | None:
    if token is not None and not _TOKEN_RE.fullmatch(token):
        raise ValueError(f"expected a profile token as the camera lists it (`nvr discover` shows them: "
                         f"1 to 64 characters, no spaces), got {token!r}")
    return token


class OnvifEndpoint(Section):
    """A camera's ONVIF device service and the account the appliance uses on it."""

    url: str = Field(description=(
        "The camera's ONVIF device service: http://HOST[:PORT] (the standard path /onvif/device_service "
        "is implied) or the full URL `nvr discover` prints."))
    username: str | None = Field(None, description=(
        "ONVIF user (sent as a WS-UsernameToken with a password digest; plain text and HTTP Digest are "
        "tried for cameras that need them). Many cameras need an ONVIF user created in their own web page."))
    password: str | None = Field(None, description="Password of the ONVIF user.")
    profile: str | None = Field(None, description=(
        "Token of the media profile to record (`nvr discover` lists them); default: the camera's first "
        "profile, normally its main stream."))
    sub_profile: str | None = Field(None, description=(
        "Token of a low-resolution profile for the live grid and motion detection; default: none."))

    @field_validator("url")
    @classmethod
    def _is_onvif_url(cls, url: str) -> str:
        return check_onvif_url(url)

    @field_validator("profile", "sub_profile")
    @classmethod
    def _is_token(cls, token: str | None) -> str | None:
        return _check_token(token)


class OnvifSource(OnvifEndpoint):
    """A network camera found through ONVIF: its RTSP stream URIs are asked of it at every connect, so a
    camera that reboots onto another address or port (DHCP) is found again without editing the config."""

    type: Literal["onvif"] = Field("onvif", description="Source kind.")
    timeout_s: float = Field(10.0, ge=1, le=120, description=(
        "Seconds without a packet after which the stream counts as stalled and is reopened."))
    reconnect_max_s: float = Field(30.0, ge=1, le=600, description=(
        "Longest wait between reconnection attempts to a camera that answers and refuses (as for rtsp)."))
    client: Literal["auto", "native", "ffmpeg"] = Field("auto", description=(
        "RTSP client for the stream the camera names (as for rtsp)."))
