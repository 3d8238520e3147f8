"""Where to dial a camera's speaker: the RTSP URL of a talk output, learnt at run time for ONVIF cameras.

A channel's camera talk output is named by `appliance.config.talk.talk_target`: an RTSP URL (talk.url,
or an `rtsp` source's url), dialled as it is, or for a `type: onvif` source without talk.url the
camera's ONVIF device service URL, whose RTSP URL only the camera knows. For those `CameraUrls` gives
the URL the channel's recorder learnt from the camera at its last connect (`learnt(channel_id)`, with
the ONVIF user and password in it, as the recorder dials it), so a camera that renamed its stream or
moved is found where the recording found it; when the recorder has not connected yet (just started, or
the camera was down), it asks the camera itself (GetProfiles, GetStreamUri), at most ASK_TIMEOUT_S per
call, on the caller's thread (a talk session's, an alarm sound player's, the intercom's: never an
event loop).

    TalkUrlError (TalkSinkError)   the camera could not be asked, or is unknown; the message says which
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from base.credentials import mask_credentials
from drivers.onvif.errors import OnvifError

from appliance.config.onvif import OnvifSource
from appliance.talk.sinks import TalkSinkError

log = logging.getLogger("nvr.talk")

ASK_TIMEOUT_S = 5.0  # per ONVIF call when the camera is asked for its stream URL (as the recorder asks)
RTSP_SCHEMES = ("rtsp://", "rtsps://")


class TalkUrlError(TalkSinkError):
    """The RTSP URL of a camera's speaker cannot be had; the message says why and what to do."""


def _ask_camera(source: OnvifSource, timeout_s: float) -> str:
    from drivers.onvif.camera import resolve_stream_uris  # the ONVIF library loads only for an ONVIF channel
    from drivers.onvif.source import with_credentials

    uris = resolve_stream_uris(source.url, username=source.username, password=source.password,
                               profile=source.profile, timeout_s=timeout_s)
    return with_credentials(uris.main, source.username, source.password)


class CameraUrls:
    """`urls(where)`: the RTSP URL to dial for a camera talk output named `where` (see the module
    docstring). `config()`: the appliance's config now; `learnt(channel_id)`: the URL that channel's
    recorder learnt, or None; `ask(source, timeout_s)`: ask the camera (tests give another)."""

    def __init__(self, config: Callable[[], object], *, learnt: Callable[[int], str | None],
                 ask: Callable[[OnvifSource, float], str] = _ask_camera, timeout_s: float = ASK_TIMEOUT_S):
        self._config, self._learnt, self._ask, self.timeout_s = config, learnt, ask, timeout_s
        self.asked = 0  # times the camera itself was asked (no recorder had learnt the URL)

    def __call__(self, where: str) -> str:
        if where.lower().startswith(RTSP_SCHEMES):
            return where
        channel = next((c for c in self._config().channels
                        if isinstance(c.source, OnvifSource) and c.source.url == where and c.talk.url is None), None)
        if channel is None:
            raise TalkUrlError(f"no ONVIF channel names {where} for talk any more; reload the page")
        url = self._learnt(channel.id)
        if url is not None:
            return url
        try:
            url = self._ask(channel.source, self.timeout_s)
        except (OnvifError, OSError) as exc:
            raise TalkUrlError(f"channel {channel.id}'s camera at {where} did not name its stream for talk: {exc}; "
                               "check the camera, or give channels[].talk.url") from exc
        self.asked += 1
        log.info("channel %d: the camera names %s for its stream; talk asks it for a back channel there",
                 channel.id, mask_credentials(url))
        return url
