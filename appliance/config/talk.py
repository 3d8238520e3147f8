"""Two-way talk in the config: `audio_out` (the box's AUDIO OUT jack) and `channels[].talk` (where an
operator's push-to-talk on a channel is heard, and where a rule's `play` with `channel` sounds)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from appliance.config.section import Section
from hal.audio_out import check_playback_device

Reference = tuple[tuple[Any, ...], object, str]  # (key path, value, message), as appliance.config.alarms


class AudioOutConfig(Section):
    """The box's AUDIO OUT: the ALSA playback device wired to the rear panel's speaker jack (a Pi's HDMI
    audio or headphone jack, a USB sound card). Push-to-talk on a channel with `talk.output: audio_out`
    is played here."""

    device: str | None = Field(None, description=(
        "ALSA playback device such as plughw:CARD=Device,DEV=0, hw:1,0, hdmi:CARD=vc4hdmi0,DEV=0 or default "
        "(`aplay -L` lists them), or 'simulated' (kept in memory, for tests); null: the box has no AUDIO OUT. "
        "A hw: device plays one sound at a time: give the monitor's sound (monitor.audio_out) another one, or "
        "use a plug/default device, which mixes."))

    @field_validator("device")
    @classmethod
    def _is_playback_device(cls, device: str | None) -> str | None:
        return device if device is None else check_playback_device(device)


class TalkConfig(Section):
    """Push-to-talk from the live view (operators and administrators): where a channel's talk is heard."""

    output: Literal["auto", "camera", "audio_out", "off"] = Field("auto", description=(
        "'camera': the camera's own speaker, through its ONVIF audio back channel (G.711 over RTSP); "
        "'audio_out': the box's AUDIO OUT (audio_out.device), e.g. a speaker by an analog camera; 'off': no "
        "talk button; 'auto': the camera for a network camera (`type: rtsp` or `onvif`, or with talk.url), "
        "the AUDIO OUT for an analog one when audio_out.device is set, else off."))
    url: str | None = Field(None, description=(
        "RTSP URL to ask for the back channel (rtsp:// or rtsps://, user:password@ allowed); null: the "
        "channel's source url (for `type: onvif`, the stream URL the camera names at run time, with the "
        "ONVIF user and password). Some cameras offer it on one stream path only."))

    @field_validator("output", mode="before")
    @classmethod
    def _off_is_off(cls, value: object) -> object:
        return "off" if value is False else value  # YAML 1.1 reads a bare `off` as false

    @field_validator("url")
    @classmethod
    def _is_rtsp(cls, url: str | None) -> str | None:
        if url is None:
            return url
        from appliance.config.model import check_rtsp_url  # model.py imports this module

        return check_rtsp_url(url)


def talk_target(channel: Any, audio_out: AudioOutConfig) -> tuple[str, str | None]:
    """Where `channel`'s talk goes: ("camera", where), ("audio_out", device) or ("off", None). A camera's
    `where` is its RTSP URL, or for a `type: onvif` source without talk.url its ONVIF device service URL
    (http:// or https://): the RTSP URL is learnt at run time (appliance.talk.camera_urls)."""
    talk: TalkConfig = channel.talk
    url = talk.url or (channel.source.url if channel.source.type in ("rtsp", "onvif") else None)
    output = talk.output
    if output == "auto":
        output = "camera" if url else ("audio_out" if audio_out.device else "off")
    if output == "camera" and url:
        return "camera", url
    if output == "audio_out" and audio_out.device:
        return "audio_out", audio_out.device
    return "off", None


def play_target(channel_id: int | None, config: Any) -> tuple[str, str | None]:
    """Where a rule's `play` action with `channel: channel_id` sounds: the AUDIO OUT for None, else the
    channel's talk output, as `talk_target`; ("off", None) when nowhere (or no such channel)."""
    audio_out = config.audio_out
    if channel_id is None:
        return ("audio_out", audio_out.device) if audio_out.device else ("off", None)
    channel = next((c for c in config.channels if c.id == channel_id), None)
    return talk_target(channel, audio_out) if channel is not None else ("off", None)


def talk_errors(config: Any) -> list[Reference]:
    """A channel whose talk names an output it cannot have."""
    errors: list[Reference] = []
    for index, channel in enumerate(config.channels):
        talk, loc = channel.talk, ("channels", index, "talk", "output")
        if talk.output == "audio_out" and config.audio_out.device is None:
            errors.append((loc, talk.output, "the box has no AUDIO OUT configured: set audio_out.device (an ALSA "
                                             "playback device, `aplay -L` lists them) or choose another output"))
        elif talk.output == "camera" and not (talk.url or channel.source.type in ("rtsp", "onvif")):
            errors.append((loc, talk.output, (
                f"a {channel.source.type} channel has no RTSP URL to find the camera's speaker at: give talk.url "
                "(the camera's rtsp:// stream URL) or use output: audio_out")))
    return errors
