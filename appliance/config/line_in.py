"""The `line_in:` section: the box's LINE IN (a microphone for the intercom) and how it is held open."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from appliance.config.section import Section
from appliance.config.talk import play_target
from hal.audio import ALSA_DEVICE, SIMULATED

MAX_LEASE_S = 10.0  # a web hold-to-talk must be renewed at least this often


class LineInConfig(Section):
    """The LINE IN intercom: a microphone on the box's LINE IN heard on its AUDIO OUT (audio_out.device),
    or on one channel's talk output (its camera's speaker), while the monitor's T key or the web's intercom
    button is held (operators and administrators)."""

    device: str | None = Field(None, description=(
        "ALSA capture device of the LINE IN, such as plughw:CARD=Device,DEV=0 (a USB sound card's input) or "
        "hw:1,0 (`arecord -L` lists them), or 'simulated' (a test tone); null: no intercom."))
    sample_rate: Literal[8000, 16000, 32000, 44100, 48000] = Field(48000, description=(
        "Samples per second to capture from `device`."))
    channels: Literal[1, 2] = Field(1, description="1 (mono) or 2 (stereo) channels to capture from `device`.")
    channel: int | None = Field(None, description=(
        "null: the intercom is heard on the AUDIO OUT (audio_out.device); N: on channel N's talk output "
        "instead, as a rule's `play` with channel: N (its camera's speaker through the ONVIF back channel, "
        "sent as 8 kHz G.711; one talker there at a time, shared with push-to-talk and alarm sounds)."))
    lease_s: float = Field(2.0, ge=0.5, le=MAX_LEASE_S, description=(
        "Seconds a web hold-to-talk keeps the intercom open unless renewed: a browser that goes away "
        "closes it this long after its last word."))

    @field_validator("device")
    @classmethod
    def _is_alsa_name(cls, device: str | None) -> str | None:
        if device is None or device == SIMULATED or ALSA_DEVICE.match(device):
            return device
        raise ValueError(f"expected an ALSA capture device such as plughw:CARD=Device,DEV=0, hw:1,0 or default, "
                         f"or 'simulated', got {device!r} (`arecord -L` lists them)")


def line_in_errors(config) -> list[tuple[tuple, object, str]]:
    """A LINE IN with no output to be heard on: no AUDIO OUT, or a channel that is unknown or has no talk output."""
    line_in = config.line_in
    if line_in.channel is not None:
        known = [channel.id for channel in config.channels]
        if line_in.channel not in known:
            return [(("line_in", "channel"), line_in.channel,
                     f"unknown channel {line_in.channel}; the channels are {', '.join(map(str, known)) or 'none'}")]
        if play_target(line_in.channel, config)[0] == "off":
            return [(("line_in", "channel"), line_in.channel, (
                f"channel {line_in.channel} has no talk output for the intercom: set its talk.output (camera or "
                "audio_out), or line_in.channel: null to hear the intercom on the AUDIO OUT"))]
        return []
    if line_in.device is not None and config.audio_out.device is None:
        return [(("line_in", "device"), line_in.device,
                 "the intercom plays the LINE IN on the AUDIO OUT: set audio_out.device too, or line_in.channel "
                 "to a channel whose camera speaker plays it (or line_in.device: null)")]
    return []
