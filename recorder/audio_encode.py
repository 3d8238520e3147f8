"""Encoding audio once to AAC (FFmpeg's encoder through PyAV), and keeping captured audio on the video's clock.

`AacEncoder` turns PCM or decoded frames into AAC packets timed in samples. `CapturedAudio` reads an
analog channel's `AudioCapture` between video frames and encodes it, correcting the drift between
the card's sample clock and the monotonic clock the video is timed by:

    offset = (time of the first sample + samples fed / rate) - timestamp of the chunk's first sample

is how far the audio track runs ahead (+) or behind (-) real time. Within `DEADBAND_US` nothing is
done; beyond it a few samples per chunk are dropped or repeated (at most `MAX_CORRECTION`, 0.5 %,
too little to hear); a jump beyond `RESYNC_US` (an overrun lost samples, the card paused) is closed at
once with silence or by dropping. The offset and the corrections are in `statistics()`.
"""
from __future__ import annotations

import logging
from fractions import Fraction

import av
import numpy as np

from hal.audio import AudioCapture, AudioCaptureError, AudioChunk
from base.clock import Clocks
from base.media import AudioInfo, EncodedPacket
from recorder.errors import SourceError

log = logging.getLogger("nvr.audio")

DEADBAND_US = 10_000
RESYNC_US = 200_000
MAX_CORRECTION = 0.005  # of a chunk's samples, per chunk


class AacEncoder:
    """FFmpeg's AAC-LC encoder for one stream; input frames are resampled to what it takes."""

    def __init__(self, *, sample_rate: int, channels: int, bitrate: int):
        self.sample_rate, self.channels, self.bitrate = sample_rate, channels, bitrate
        layout = "mono" if channels == 1 else "stereo"
        codec = av.CodecContext.create("aac", "w")
        codec.sample_rate, codec.layout, codec.format = sample_rate, layout, "fltp"
        codec.bit_rate = bitrate
        codec.time_base = Fraction(1, sample_rate)
        codec.open()
        self._codec = codec
        self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=sample_rate)
        self._layout = layout

    def info(self) -> AudioInfo:
        return AudioInfo("aac", self.sample_rate, self.channels, Fraction(1, self.sample_rate),
                         bytes(self._codec.extradata or b""))

    def encode_pcm(self, samples: np.ndarray, pts: int) -> list[av.Packet]:
        """Encode (frames, channels) int16 samples whose first is sample number `pts`."""
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples).reshape(1, -1), format="s16",
                                           layout=self._layout)
        frame.sample_rate = self.sample_rate
        return self.encode_frame(frame, pts)

    def encode_frame(self, frame: av.AudioFrame, pts: int) -> list[av.Packet]:
        """Encode a decoded frame (any format, rate or layout), its first sample at `pts` samples.

        Packet pts are in samples (1/sample_rate) and include the encoder's priming: the first packet
        starts 1024 samples early, as decoders expect, so the sound stays where it was."""
        frame.pts, frame.time_base = pts, Fraction(1, frame.sample_rate)
        out = []
        for resampled in self._resampler.resample(frame):
            out.extend(self._codec.encode(resampled))
        return out

    def flush(self) -> list[av.Packet]:
        """The packets the encoder still holds (about two frames); it takes no more input after this."""
        return list(self._codec.encode(None))


class CapturedAudio:
    """An analog channel's audio: captured PCM, drift-corrected, encoded to AAC.

    `packets(origin_us)` encodes everything captured so far, timed in samples from `origin_us` on
    the monotonic clock (the first video frame's timestamp), and never blocks.
    """

    def __init__(self, capture: AudioCapture, *, bitrate: int, clocks: Clocks):
        self.capture, self._bitrate, self._clocks = capture, bitrate, clocks
        self._encoder: AacEncoder | None = None
        self._reset_counters()

    def _reset_counters(self) -> None:
        self._base_us: int | None = None  # capture time of the first sample fed
        self._fed = 0
        self._received = 0
        self._offset_us = 0
        self._drift_ppm = 0.0
        self.samples_inserted = self.samples_dropped = 0
        self.packets_encoded = 0

    def open(self) -> AudioInfo:
        try:
            fmt = self.capture.open()
        except (AudioCaptureError, OSError) as exc:
            raise SourceError(f"audio {self.capture.name}: cannot open: {exc}") from exc
        self._encoder = AacEncoder(sample_rate=fmt.sample_rate, channels=fmt.channels, bitrate=self._bitrate)
        self._reset_counters()
        return self._encoder.info()

    def packets(self, origin_us: int) -> list[EncodedPacket]:
        try:
            chunks = self.capture.read()
        except AudioCaptureError as exc:
            raise SourceError(f"audio {self.capture.name}: {exc}") from exc
        out: list[EncodedPacket] = []
        for chunk in chunks:
            out.extend(self._encode(chunk, origin_us))
        return out

    def _encode(self, chunk: AudioChunk, origin_us: int) -> list[EncodedPacket]:
        encoder = self._encoder
        if self._base_us is None:
            self._base_us = chunk.timestamp_us
        self._note_drift(chunk, encoder.sample_rate)
        self._received += chunk.frames
        samples = self._corrected(chunk, encoder.sample_rate)
        if not len(samples):
            return []
        packets = encoder.encode_pcm(samples, self._fed)
        self._fed += len(samples)
        shift = round((self._base_us - origin_us) * encoder.sample_rate / 1_000_000)
        arrival_us = self._clocks.monotonic_us()
        self.packets_encoded += len(packets)
        return [EncodedPacket(bytes(p), p.pts + shift, p.dts + shift, True, arrival_us, track="audio") for p in packets]

    def _corrected(self, chunk: AudioChunk, rate: int) -> np.ndarray:
        """The chunk with samples dropped or repeated so the track stays on the monotonic clock."""
        offset_us = self._base_us + self._fed * 1_000_000 // rate - chunk.timestamp_us
        self._offset_us = offset_us
        fix = _correction(offset_us, chunk.frames, rate)
        samples = chunk.samples
        if fix > 0:  # ahead: the card's clock is fast, drop samples
            fix = min(fix, len(samples))
            self.samples_dropped += fix
            return samples[:len(samples) - fix]
        if fix < 0:  # behind: repeat the last sample, or fill a long gap with silence
            fill = samples[-1:] if -fix < len(samples) else np.zeros_like(samples[:1])
            self.samples_inserted += -fix
            return np.concatenate([samples, np.repeat(fill, -fix, axis=0)])
        return samples

    def _note_drift(self, chunk: AudioChunk, rate: int) -> None:
        """The card's rate against the monotonic clock, from samples received over time elapsed."""
        elapsed_us = chunk.timestamp_us - self._base_us
        if elapsed_us >= 1_000_000:
            self._drift_ppm = (self._received * 1_000_000 / rate / elapsed_us - 1) * 1e6

    def close(self) -> None:
        self.capture.close()

    def statistics(self) -> dict:
        return {
            "audio_device": self.capture.name,
            "audio_offset_ms": round(self._offset_us / 1000, 1),
            "audio_drift_ppm": round(self._drift_ppm, 1),
            "audio_samples_inserted": self.samples_inserted,
            "audio_samples_dropped": self.samples_dropped,
            "audio_packets_encoded": self.packets_encoded,
            **{f"audio_{k}": v for k, v in self.capture.statistics().items()},
        }


def _correction(offset_us: int, frames: int, rate: int) -> int:
    """Samples to drop (positive) or insert (negative) for an audio track `offset_us` ahead of real time."""
    size = abs(offset_us)
    if size <= DEADBAND_US:
        return 0
    if size >= RESYNC_US:
        wanted = size * rate // 1_000_000
    else:  # steer back to the middle of the deadband, gently
        wanted = min(max(1, int(frames * MAX_CORRECTION)), max(1, (size - DEADBAND_US // 2) * rate // 1_000_000))
    return wanted if offset_us > 0 else -wanted
