"""Test instruments for sound: tone files written with PyAV (any container and codec it encodes), and the
pitch and loudness of what a speaker was given."""
from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np


def write_tone(path: Path, *, freq_hz: float, seconds: float, rate: int = 22050, codec: str = "pcm_s16le",
               layout: str = "mono", amplitude: float = 0.5) -> Path:
    """A sine tone of `seconds` in `path` (its container from the suffix: .wav, .mp3, .flac, .m4a)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        channels = 1 if layout == "mono" else 2
        total = round(seconds * rate)
        t = np.arange(total) / rate
        pcm = np.round(amplitude * 32767 * np.sin(2 * math.pi * freq_hz * t)).astype(np.int16)
        frame_size = stream.codec_context.frame_size or 1024
        sample_format = stream.codec_context.format.name
        for start in range(0, total, frame_size):
            piece = np.repeat(pcm[start:start + frame_size, None], channels, axis=1)
            frame = av.AudioFrame.from_ndarray(piece.reshape(1, -1), format="s16", layout=layout)
            frame.sample_rate, frame.pts = rate, start
            if sample_format != "s16":
                frame = _reformat(frame, sample_format, layout, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _reformat(frame, sample_format: str, layout: str, rate: int):
    resampler = av.AudioResampler(format=sample_format, layout=layout, rate=rate)
    pts = frame.pts
    [out] = resampler.resample(frame)
    out.pts = pts
    return out


def pitch_hz(samples: np.ndarray, rate: int) -> float:
    """The strongest frequency of mono `samples` (a Hann window, the FFT's peak)."""
    samples = np.asarray(samples, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def loud_frames(samples: np.ndarray, *, threshold: int = 1000) -> np.ndarray:
    """Indexes of the frames of (frames, channels) int16 `samples` louder than `threshold` on channel 0."""
    return np.flatnonzero(np.abs(samples[:, 0].astype(np.int32)) > threshold)
