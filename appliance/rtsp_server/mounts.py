"""Which RTSP paths the box serves: `/chN/main` for every enabled channel, `/chN/sub` where it has a sub stream."""
from __future__ import annotations

import re

from appliance.config.model import ChannelConfig, Config, RtspSource
from appliance.config.onvif import OnvifSource

MOUNT_PATTERN = re.compile(r"^/ch([1-9][0-9]{0,2})/(main|sub)$")


def channel_streams(channel: ChannelConfig) -> list[str]:
    """The streams a channel records, and so can serve: always main, sub where the camera has one."""
    source = channel.source
    has_sub = (isinstance(source, RtspSource) and source.sub_url is not None) or \
        (isinstance(source, OnvifSource) and source.sub_profile is not None)
    return ["main", "sub"] if has_sub else ["main"]


def mounts(config: Config) -> list[tuple[str, int, str]]:
    """(path, channel, stream) of every stream the box serves, in channel order."""
    return [(f"/ch{channel.id}/{stream}", channel.id, stream)
            for channel in config.channels if channel.enabled for stream in channel_streams(channel)]


def parse_mount(path: str) -> tuple[int, str] | None:
    """(channel, stream) of a mount path, None for anything else."""
    match = MOUNT_PATTERN.match(path)
    return (int(match.group(1)), match.group(2)) if match else None
