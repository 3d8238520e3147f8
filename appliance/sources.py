"""Builds the recorder's packet sources from channel config: the one place that knows every source kind."""
from __future__ import annotations

from drivers.rtsp_auto import rtsp_camera
from hal.clock import Clocks
from hal.video_sim import TestPatternCapture
from hal.video_v4l2 import V4l2Capture
from recorder.encode import EncodedCapture
from recorder.source import PacketSource

from appliance.config import ChannelConfig, RtspSource, TestPatternSource, V4l2Source


def channel_sources(channel: ChannelConfig, *, clocks: Clocks) -> dict[str, PacketSource]:
    """The streams to record for `channel`: always `main`, and `sub` where the camera has one."""
    source = channel.source
    if isinstance(source, RtspSource):
        streams = {"main": rtsp_camera(source.url, client=source.client, name=f"{channel.name} main", clocks=clocks,
                                       timeout_s=source.timeout_s)}
        if source.sub_url:
            streams["sub"] = rtsp_camera(source.sub_url, client=source.client, name=f"{channel.name} sub",
                                         clocks=clocks, timeout_s=source.timeout_s)
        return streams
    if isinstance(source, TestPatternSource):
        capture = TestPatternCapture(width=source.width, height=source.height, fps=source.fps, pattern=source.pattern,
                                     channel_id=channel.id, label=channel.name, clocks=clocks)
        return {"main": EncodedCapture(capture, name=f"test pattern {source.width}x{source.height}", clocks=clocks,
                                       bitrate=source.bitrate, keyframe_interval_s=source.keyframe_interval_s)}
    if isinstance(source, V4l2Source):
        capture = V4l2Capture(device=source.device, input=source.input, standard=source.standard, width=source.width,
                              height=source.height, fps=source.fps, clocks=clocks)
        return {"main": EncodedCapture(capture, name=f"{source.device} input {source.input!r}", clocks=clocks,
                                       bitrate=source.bitrate, keyframe_interval_s=source.keyframe_interval_s,
                                       preset=source.preset, encoder=source.encoder)}
    raise TypeError(f"no source builder for {type(source).__name__}")


def reconnect_max_s(channel: ChannelConfig) -> float:
    return getattr(channel.source, "reconnect_max_s", 30.0)
