"""AAC in MP4, sans-IO: the AudioSpecificConfig, the `esds` descriptors that carry it, and ADTS headers.

An MP4 `mp4a` sample entry holds the decoder's configuration (the 2-byte AudioSpecificConfig of
ISO 14496-3) inside an `esds` box of MPEG-4 descriptors (ISO 14496-1); samples are raw AAC frames.
Some sources hand over ADTS frames (a 7- or 9-byte header before each frame) instead: `split_adts`
turns one into the raw frame and the configuration it implies.
"""
from __future__ import annotations

from dataclasses import dataclass

SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
AAC_LC = 2
FRAME_SAMPLES = 1024  # samples per AAC-LC frame, per channel

_ES_DESCRIPTOR, _DECODER_CONFIG, _DECODER_SPECIFIC, _SL_CONFIG = 3, 4, 5, 6
_OBJECT_TYPE_AAC = 0x40  # "Audio ISO/IEC 14496-3"
_STREAM_TYPE_AUDIO = 0x05


class AacError(ValueError):
    """Bytes that are not a valid AudioSpecificConfig, esds or ADTS header."""


@dataclass(frozen=True, slots=True)
class AudioConfig:
    """What an AudioSpecificConfig says: object type (2 = AAC-LC), sample rate and channel count."""

    object_type: int
    sample_rate: int
    channels: int


def audio_specific_config(sample_rate: int, channels: int, object_type: int = AAC_LC) -> bytes:
    """The 2-byte AudioSpecificConfig (explicit 24-bit rates are not needed for the rates we record)."""
    if sample_rate not in SAMPLE_RATES:
        raise AacError(f"sample rate {sample_rate} Hz has no AAC sampling index")
    if not 1 <= channels <= 7:
        raise AacError(f"{channels} channels cannot be described by a channel configuration")
    value = (object_type << 11) | (SAMPLE_RATES.index(sample_rate) << 7) | (channels << 3)
    return value.to_bytes(2, "big")


def parse_audio_specific_config(asc: bytes) -> AudioConfig:
    """Object type, sample rate and channels from an AudioSpecificConfig (first 2 or 5 bytes)."""
    if len(asc) < 2:
        raise AacError(f"AudioSpecificConfig of {len(asc)} bytes is too short")
    bits = int.from_bytes(asc[:5].ljust(5, b"\0"), "big")  # 40 bits, read from the top
    object_type, index = bits >> 35, (bits >> 31) & 0xF
    if object_type == 31:
        raise AacError("escaped AAC object types are not supported")
    if index == 0xF:
        if len(asc) < 5:
            raise AacError("AudioSpecificConfig with an explicit rate is truncated")
        rate, channels = (bits >> 7) & 0xFFFFFF, (bits >> 3) & 0xF
    elif index < len(SAMPLE_RATES):
        rate, channels = SAMPLE_RATES[index], (bits >> 27) & 0xF
    else:
        raise AacError(f"reserved AAC sampling index {index}")
    return AudioConfig(object_type, rate, channels)


def esds_payload(asc: bytes, *, avg_bitrate: int = 0, track_id: int = 0) -> bytes:
    """The ES_Descriptor that an `esds` box holds (after its version and flags)."""
    decoder_config = (bytes([_OBJECT_TYPE_AAC, (_STREAM_TYPE_AUDIO << 2) | 1]) + (0).to_bytes(3, "big")
                      + avg_bitrate.to_bytes(4, "big") + avg_bitrate.to_bytes(4, "big")
                      + _descriptor(_DECODER_SPECIFIC, asc))
    es = (track_id.to_bytes(2, "big") + b"\0" + _descriptor(_DECODER_CONFIG, decoder_config)
          + _descriptor(_SL_CONFIG, b"\x02"))
    return _descriptor(_ES_DESCRIPTOR, es)


def asc_from_esds(payload: bytes) -> bytes:
    """The AudioSpecificConfig inside an ES_Descriptor (an `esds` box's payload after version/flags)."""
    tag, body, _ = _read_descriptor(payload, 0)
    if tag != _ES_DESCRIPTOR:
        raise AacError(f"esds starts with descriptor tag {tag}, not an ES_Descriptor")
    try:  # fixed fields whose bytes a cut or damaged esds may not have
        flags = payload[body + 2]
        pos = body + 3 + (2 if flags & 0x80 else 0) + (2 if flags & 0x20 else 0)
        if flags & 0x40:
            pos += 1 + payload[pos]  # URL string
    except IndexError:
        raise AacError("ES_Descriptor is truncated") from None
    tag, inner, end = _read_descriptor(payload, pos)
    if tag != _DECODER_CONFIG:
        raise AacError(f"ES_Descriptor holds tag {tag} where the DecoderConfigDescriptor belongs")
    if inner >= end:
        raise AacError("DecoderConfigDescriptor is empty")
    if payload[inner] != _OBJECT_TYPE_AAC:
        raise AacError(f"object type {payload[inner]:#x} is not MPEG-4 audio")
    tag, specific, specific_end = _read_descriptor(payload, inner + 13)
    if tag != _DECODER_SPECIFIC or specific_end > end:
        raise AacError("DecoderConfigDescriptor has no DecoderSpecificInfo")
    return bytes(payload[specific:specific_end])


def _descriptor(tag: int, payload: bytes) -> bytes:
    if len(payload) >= 128:
        raise AacError("descriptors of 128 bytes or more are not written here")
    return bytes([tag, len(payload)]) + payload


def _read_descriptor(buf: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, body start, body end) of the descriptor at `pos`; sizes use 7 bits per byte, up to 4 bytes."""
    try:
        tag, size, pos = buf[pos], 0, pos + 1
        for _ in range(4):
            byte = buf[pos]
            pos += 1
            size = (size << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
    except IndexError:
        raise AacError("descriptor header runs past the end") from None
    if pos + size > len(buf):
        raise AacError(f"descriptor tag {tag} of {size} bytes runs past the end")
    return tag, pos, pos + size


def split_adts(frame: bytes) -> tuple[bytes, bytes] | None:
    """(raw AAC frame, AudioSpecificConfig) if `frame` starts with an ADTS header, else None.

    Raises AacError for an ADTS header that contradicts the frame's length.
    """
    if len(frame) < 7 or frame[0] != 0xFF or frame[1] & 0xF6 != 0xF0:
        return None
    header_bytes = 7 if frame[1] & 1 else 9  # protection_absent=0 adds a CRC
    profile, index = frame[2] >> 6, (frame[2] >> 2) & 0xF
    channels = ((frame[2] & 1) << 2) | (frame[3] >> 6)
    length = ((frame[3] & 3) << 11) | (frame[4] << 3) | (frame[5] >> 5)
    if length != len(frame) or length < header_bytes or index >= len(SAMPLE_RATES) or channels == 0:
        raise AacError(f"ADTS header (length {length}, rate index {index}, channels {channels}) does not fit a "
                       f"{len(frame)}-byte frame")
    return bytes(frame[header_bytes:]), audio_specific_config(SAMPLE_RATES[index], channels, profile + 1)
