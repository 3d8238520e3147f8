"""Audio that MP4 and browsers cannot take (G.711 µ-law/A-law, G.726, ...) transcoded once to AAC.

Network cameras are remuxed, never re-encoded, and that holds for AAC audio. G.711 (the usual
camera audio besides AAC) has no place in an MP4 file that browsers and most players accept, so the
recorder decodes it and encodes AAC, once, before the segmenter and the live view see it. It is
cheap: 8 kHz mono is a few hundredths of a core.

The output stays on the source's clock: the AAC frames are timed from the source packets' own
timestamps (a gap in them, lost packets, is filled with silence so the timeline does not shift).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction

import av
import numpy as np

from base.media import AudioInfo, EncodedPacket, StreamInfo
from recorder.aac import SAMPLE_RATES
from recorder.audio_encode import AacEncoder

log = logging.getLogger("nvr.audio")

RECORDABLE_CODECS = ("aac",)
DEFAULT_BITRATE = 32_000
MAX_FILL_S = 5  # a longer gap restarts the timeline rather than encoding that much silence
FALLBACK_RATE = 16_000


class AudioTranscoder:
    """Decodes one run's audio packets of `source.codec` and encodes them to AAC.

    Raises ValueError when FFmpeg has no decoder for the codec. `info` describes the output.
    """

    def __init__(self, source: AudioInfo, *, bitrate: int = DEFAULT_BITRATE):
        try:
            decoder = av.CodecContext.create(source.codec, "r")
        except (av.FFmpegError, ValueError) as exc:
            raise ValueError(f"no decoder for audio codec {source.codec!r}") from exc
        decoder.sample_rate = source.sample_rate
        decoder.layout = "mono" if source.channels == 1 else "stereo"
        if source.extradata:
            decoder.extradata = source.extradata
        self._decoder = decoder
        self._layout = decoder.layout.name
        self.source = source
        rate = source.sample_rate if source.sample_rate in SAMPLE_RATES else FALLBACK_RATE
        self._encoder = AacEncoder(sample_rate=rate, channels=min(source.channels, 2), bitrate=bitrate)
        self.info = self._encoder.info()
        self._scale = Fraction(source.time_base) * source.sample_rate  # packet pts -> input samples
        self._next: int | None = None  # the input sample the next packet should start at
        self.packets_in = self.packets_out = self.dropped = self.gaps_filled = 0

    def transcode(self, packet: EncodedPacket) -> list[EncodedPacket]:
        """The AAC packets that `packet` completes (the encoder works in frames of 1024 samples)."""
        self.packets_in += 1
        start = int(packet.pts * self._scale)
        if self._next is not None and start < self._next - self.source.sample_rate // 100:
            self.dropped += 1  # more than 10 ms back in time: a duplicate or reordered packet
            return []
        try:
            frames = self._decoder.decode(av.Packet(packet.data))
        except (av.FFmpegError, ValueError) as exc:
            self.dropped += 1
            log.debug("undecodable %s packet: %s", self.source.codec, exc)
            return []
        out = self._fill_gap(start)
        for frame in frames:
            out += self._encoder.encode_frame(frame, self._next)
            self._next += frame.samples
        self.packets_out += len(out)
        return [EncodedPacket(bytes(p), p.pts, p.dts, True, packet.arrival_us, track="audio") for p in out]

    def _fill_gap(self, start: int) -> list[av.Packet]:
        """Silence for lost packets; a long gap moves the timeline instead (nothing to fill it with)."""
        if self._next is None or start - self._next > MAX_FILL_S * self.source.sample_rate:
            if self._next is not None:  # the encoder takes only contiguous samples: a new one for the new start
                self.gaps_filled += 1
                self._encoder = AacEncoder(sample_rate=self._encoder.sample_rate, channels=self._encoder.channels,
                                           bitrate=self._encoder.bitrate)
            self._next = start
            return []
        gap = start - self._next
        if gap <= self.source.sample_rate // 100:
            return []
        self.gaps_filled += 1
        silence = av.AudioFrame.from_ndarray(np.zeros((1, gap * self.source.channels), np.int16), format="s16",
                                             layout=self._layout)
        silence.sample_rate = self.source.sample_rate
        packets = self._encoder.encode_frame(silence, self._next)
        self._next = start
        return packets

    def flush(self, arrival_us: int = 0) -> list[EncodedPacket]:
        """The end of the run: what the encoder still holds (a quarter second at 8 kHz)."""
        try:
            packets = self._encoder.flush()
        except (av.FFmpegError, ValueError):
            return []
        self.packets_out += len(packets)
        return [EncodedPacket(bytes(p), p.pts, p.dts, True, arrival_us, track="audio") for p in packets]

    def statistics(self) -> dict:
        return {"audio_transcoded_from": self.source.codec, "audio_packets_in": self.packets_in,
                "audio_packets_out": self.packets_out, "audio_transcode_dropped": self.dropped,
                "audio_gaps_filled": self.gaps_filled}


def recordable(info: StreamInfo, *, label: str) -> tuple[StreamInfo, AudioTranscoder | None]:
    """The stream info the recorder records (audio as AAC) and the transcoder that gets it there,
    or None when the audio can be kept as it is (or there is none). Audio that cannot be decoded
    either is left out, with a warning: the video is recorded regardless."""
    if info.audio is None or info.audio.codec in RECORDABLE_CODECS:
        return info, None
    try:
        transcoder = AudioTranscoder(info.audio)
    except (ValueError, av.FFmpegError) as exc:
        log.warning("%s: recording without audio (%s %d Hz): %s", label, info.audio.codec, info.audio.sample_rate, exc)
        return StreamInfo(info.codec, info.width, info.height, info.time_base, info.extradata, info.fps, None), None
    log.info("%s: transcoding %s audio to AAC", label, info.audio.codec)
    return StreamInfo(info.codec, info.width, info.height, info.time_base, info.extradata, info.fps,
                      transcoder.info), transcoder


def transcoded(packets: Iterator[EncodedPacket], transcoder: AudioTranscoder) -> Iterator[EncodedPacket]:
    """`packets` with the audio ones replaced by their AAC transcoding."""
    for packet in packets:
        if packet.track != "audio":
            yield packet
        else:
            yield from transcoder.transcode(packet)
