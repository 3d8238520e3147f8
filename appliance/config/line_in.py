"""The `line_in:` section: the box's LINE IN (a microphone for the intercom) and how it is held open."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from appliance.config.section import Section
from hal.audio import ALSA_DEVICE, SIMULATED

MAX_LEASE_S = 10.0  # a web hold-to-talk must be renewed at least this often


class LineInConfig(Section):
    """The LINE IN intercom: a microphone on the box's LINE IN heard on its AUDIO OUT (audio_out.device)
    while the monitor's T key or the live view's intercom button is held (operators and administrators)."""

    device: str | None = Field(None, description=(
        "ALSA capture device of the LINE IN, such as plughw:CARD=Device,DEV=0 (a USB sound card's input) or "
        "hw:1,0 (`arecord -L` lists them), or 'simulated' (a test tone); null: no intercom."))
    sample_rate: Literal[8000, 16000, 32000, 44100, 48000] = Field(48000, description=(
        "Samples per second to capture from `device`."))
    channels: Literal[1, 2] = Field(1, description="1 (mono) or 2 (stereo) channels to capture from `device`.")
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
    """A LINE IN with no AUDIO OUT to be heard on."""
    if config.line_in.device is not None and config.audio_out.device is None:
        return [(("line_in", "device"), config.line_in.device,
                 "the intercom plays the LINE IN on the AUDIO OUT: set audio_out.device too (or line_in.device: null)")]
    return []
