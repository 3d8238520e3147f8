"""The `channels[].audio` config section: what sound is recorded with a channel's video."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from appliance.config.section import Section
from hal.audio import ALSA_DEVICE, SIMULATED


class AudioConfig(Section):
    """Sound recorded with the channel's video, in the same segments (AAC).

    A network camera's own audio track is recorded when the camera sends one (G.711 is turned into
    AAC once); an analog channel records the ALSA capture device given in `device`.
    """

    enabled: bool = Field(True, description=(
        "Record sound with the video. false drops a camera's audio track and ignores `device`."))
    device: str | None = Field(None, description=(
        "Analog channels only: ALSA capture device such as hw:1,0 or plughw:CARD=Device,DEV=0 "
        "(`nvr devices` lists them), or 'simulated' for a test tone that beeps once a second. "
        "Left out, an analog channel records no sound. Network cameras bring their own audio."))
    sample_rate: Literal[8000, 16000, 32000, 44100, 48000] = Field(48000, description=(
        "Samples per second to capture from `device`."))
    channels: Literal[1, 2] = Field(1, description="1 (mono) or 2 (stereo) channels to capture from `device`.")
    bitrate: int = Field(64_000, ge=16_000, le=320_000, description="AAC bits per second for `device`.")

    @field_validator("device")
    @classmethod
    def _is_alsa_name(cls, device: str | None) -> str | None:
        if device is None or device == SIMULATED or ALSA_DEVICE.match(device):
            return device
        raise ValueError(f"expected an ALSA device such as hw:1,0, plughw:CARD=Device,DEV=0 or default, "
                         f"or 'simulated', got {device!r}")

    @property
    def captures(self) -> bool:
        """Whether an analog channel captures sound from `device`."""
        return self.enabled and self.device is not None


def check_channel_audio(source_type: str, audio: AudioConfig) -> None:
    """Raise ValueError for an audio section that does not fit the channel's source kind."""
    if source_type in ("rtsp", "onvif") and audio.device is not None:
        raise ValueError(f"audio.device {audio.device!r} is for analog channels; a network camera's own audio "
                         "track is recorded (set audio.enabled: false to leave it out)")
