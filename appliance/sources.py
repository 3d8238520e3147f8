"""Builds the recorder's packet sources from channel config: the one place that knows every source kind."""
from __future__ import annotations

from functools import partial

from drivers.rtsp.auto import rtsp_camera
from hal.audio import SIMULATED, make_audio_capture
from base.clock import Clocks
from hal.video.simulated import TestPatternCapture
from hal.video.v4l2 import V4l2Capture
from recorder.faults import FaultBoard, FaultSink
from recorder.audio_encode import CapturedAudio
from recorder.encode import EncodedCapture
from recorder.source import PacketSource
from recorder.video_loss import VideoLossGuard

from appliance.config.model import ChannelConfig, OnvifSource, RtspSource, TestPatternSource, V4l2Source
from appliance.config.audio import AudioConfig


def channel_sources(channel: ChannelConfig, *, clocks: Clocks, faults: FaultSink | None = None) -> dict[str, PacketSource]:
    """The streams to record for `channel`: always `main`, and `sub` where the camera has one.

    Analog sources raise their `video_loss` and `audio_lost` alarms on `faults` (without one, on a board
    of their own, where they are only logged)."""
    source = channel.source
    faults = faults or FaultBoard(clocks=clocks)
    if isinstance(source, RtspSource):
        audio = channel.audio.enabled
        streams = {"main": rtsp_camera(source.url, client=source.client, name=f"{channel.name} main", clocks=clocks,
                                       timeout_s=source.timeout_s, audio=audio)}
        if source.sub_url:
            streams["sub"] = rtsp_camera(source.sub_url, client=source.client, name=f"{channel.name} sub",
                                         clocks=clocks, timeout_s=source.timeout_s, audio=audio)
        return streams
    if isinstance(source, OnvifSource):
        return onvif_sources(channel, source, clocks=clocks)
    if isinstance(source, TestPatternSource):
        capture = TestPatternCapture(width=source.width, height=source.height, fps=source.fps, pattern=source.pattern,
                                     channel_id=channel.id, label=channel.name, clocks=clocks,
                                     sync_flash=channel.audio.captures and channel.audio.device == SIMULATED)
        encoded = EncodedCapture(capture, name=f"test pattern {source.width}x{source.height}", clocks=clocks,
                                 bitrate=source.bitrate, keyframe_interval_s=source.keyframe_interval_s,
                                 audio=captured_audio(channel.audio, clocks=clocks), faults=faults, channel=channel.id)
        return {"main": _guarded(encoded, capture, channel, clocks, faults)}
    if isinstance(source, V4l2Source):
        capture = V4l2Capture(device=source.device, input=source.input, standard=source.standard, width=source.width,
                              height=source.height, fps=source.fps, clocks=clocks, frame_timeout_s=source.video_loss_s)
        encoded = EncodedCapture(capture, name=f"{source.device} input {source.input!r}", clocks=clocks,
                                 bitrate=source.bitrate, keyframe_interval_s=source.keyframe_interval_s,
                                 preset=source.preset, encoder=source.encoder,
                                 audio=captured_audio(channel.audio, clocks=clocks), faults=faults, channel=channel.id)
        return {"main": _guarded(encoded, capture, channel, clocks, faults)}
    raise TypeError(f"no source builder for {type(source).__name__}")


def onvif_sources(channel: ChannelConfig, source: OnvifSource, *, clocks: Clocks) -> dict[str, PacketSource]:
    """An ONVIF camera's streams: RTSP clients whose URIs are asked of the camera at every (re)connect,
    and the camera looked for by WS-Discovery when its address stops answering (DHCP). The ONVIF library
    is imported here, only when a channel is an ONVIF camera."""
    from drivers.onvif.discovery import discover
    from drivers.onvif.source import OnvifRtspCamera

    def stream(kind: str, profile: str | None) -> PacketSource:
        name = f"{channel.name} {kind}"
        return OnvifRtspCamera(source.url, username=source.username, password=source.password, profile=profile,
                               stream=kind, name=name, make_camera=lambda url: rtsp_camera(
                                   url, client=source.client, name=name, clocks=clocks, timeout_s=source.timeout_s,
                                   audio=channel.audio.enabled),
                               rediscover=partial(discover, clocks=clocks), clocks=clocks)

    streams = {"main": stream("main", source.profile)}
    if source.sub_profile:
        streams["sub"] = stream("sub", source.sub_profile)
    return streams


def _guarded(encoded: EncodedCapture, capture, channel: ChannelConfig, clocks: Clocks,
             faults: FaultSink) -> VideoLossGuard:
    return VideoLossGuard(encoded, capture, channel=channel.id, faults=faults, clocks=clocks)


def captured_audio(audio: AudioConfig, *, clocks: Clocks) -> CapturedAudio | None:
    """An analog channel's microphone, encoded to AAC; None when it records no sound."""
    if not audio.captures:
        return None
    capture = make_audio_capture(audio.device, sample_rate=audio.sample_rate, channels=audio.channels, clocks=clocks)
    return CapturedAudio(capture, bitrate=audio.bitrate, clocks=clocks)


def reconnect_max_s(channel: ChannelConfig) -> float:
    return getattr(channel.source, "reconnect_max_s", 30.0)
