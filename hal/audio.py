"""The audio capture seam: raw PCM from an ALSA device (PyAV's `alsa` input) or a simulated microphone.

    AudioCaptureError (RuntimeError)     the device cannot be opened, or failed while capturing

Capture is read without blocking: `read()` returns what was captured since the last call. The
recorder reads it between video frames, so an analog channel's audio and video are handled on one
thread, in step, and the simulated backend needs no thread (it works under SimulatedClocks).
Timestamps are on the monotonic clock (`Clocks.monotonic_us`), the clock video frames carry, so
the two can be lined up; the sample clock of a real card drifts from it, which the encoder corrects.
"""
from __future__ import annotations

import logging
import math
import os
import re
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from base.clock import Clocks

log = logging.getLogger("nvr.audio")

SIMULATED = "simulated"
# hw:CARD[,DEV[,SUBDEV]], CARD a number or a name (hw:1,0  hw:Loopback,1  plughw:CARD=Device,DEV=0).
ALSA_DEVICE = re.compile(r"^(plug)?hw:(CARD=)?\w+(,(DEV=)?\d+(,(SUBDEV=)?\d+)?)?$|^(default|sysdefault|null)(:.*)?$")
MAX_BUFFERED_S = 10.0  # captured audio nobody read for this long is dropped (counted as overruns)
BATCH_S = 0.02  # ALSA periods are joined into chunks of about this length
GAP_US = 5_000  # a period stamped this far from where the chunk's samples end starts a new chunk
# PyAV's wheels carry their own alsa-lib, which looks for its configuration where it was built;
# Debian keeps it here (libasound2-data). Without it every device name is unknown.
DEBIAN_ALSA_CONFIG = "/usr/share/alsa/alsa.conf"


class AudioCaptureError(RuntimeError):
    """An audio capture device failed to open or while capturing; the recorder retries later."""


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """What a capture delivers: signed 16-bit interleaved PCM at `sample_rate` with `channels`."""

    sample_rate: int
    channels: int


@dataclass(slots=True)
class AudioChunk:
    """Consecutive samples: `samples` is (frames, channels) int16; `timestamp_us` is when the first
    of them was captured, on the monotonic clock."""

    samples: np.ndarray
    timestamp_us: int

    @property
    def frames(self) -> int:
        return self.samples.shape[0]


class AudioCapture(Protocol):
    """A source of raw audio. `open` starts capturing and returns the format; `read` never blocks and
    returns the chunks captured since the last call (raising AudioCaptureError if the device failed);
    `close` stops, from any thread."""

    name: str

    def open(self) -> AudioFormat: ...

    def read(self) -> list[AudioChunk]: ...

    def close(self) -> None: ...

    def statistics(self) -> dict: ...


class SimulatedAudioCapture:
    """A simulated microphone: a quiet 440 Hz tone, and a loud 1 kHz beep during the first `beep_ms`
    of every second of the monotonic clock (the test pattern flashes on the same seconds, so A/V sync
    can be measured from a recording).

    `drift_ppm` makes its sample clock run fast (positive) or slow against the monotonic clock, as a
    real card's crystal does: it then delivers that many more (or fewer) samples per million, while
    the sound itself, and the timestamps, stay on real time.
    """

    def __init__(self, *, sample_rate: int = 48000, channels: int = 1, clocks: Clocks, drift_ppm: float = 0.0,
                 beep_ms: int = 50, chunk_frames: int = 480, name: str = SIMULATED):
        if sample_rate <= 0 or channels not in (1, 2):
            raise ValueError(f"bad simulated audio format: {sample_rate} Hz, {channels} channels")
        self.name = name
        self.sample_rate, self.channels = sample_rate, channels
        self._clocks, self._drift, self._beep_us = clocks, drift_ppm, beep_ms * 1000
        self._chunk = chunk_frames
        self._start_us: int | None = None
        self._produced = 0

    @property
    def _device_rate(self) -> float:
        return self.sample_rate * (1 + self._drift / 1e6)

    def open(self) -> AudioFormat:
        self._start_us = self._clocks.monotonic_us()
        self._produced = 0
        return AudioFormat(self.sample_rate, self.channels)

    def read(self) -> list[AudioChunk]:
        if self._start_us is None:
            raise AudioCaptureError(f"{self.name}: read before open")
        due = int((self._clocks.monotonic_us() - self._start_us) * self._device_rate / 1e6)
        chunks = []
        while due - self._produced >= self._chunk:
            chunks.append(self._make_chunk(self._produced, self._chunk))
            self._produced += self._chunk
        return chunks

    def _make_chunk(self, first: int, count: int) -> AudioChunk:
        index = np.arange(first, first + count, dtype=np.float64)
        at_us = self._start_us + index * 1e6 / self._device_rate  # when each sample was "heard"
        signal = 0.05 * np.sin(2 * math.pi * 440 * at_us / 1e6)
        beeping = np.mod(at_us, 1e6) < self._beep_us
        signal = np.where(beeping, 0.5 * np.sin(2 * math.pi * 1000 * at_us / 1e6), signal)
        pcm = np.round(signal * 32767).astype(np.int16)
        return AudioChunk(np.repeat(pcm[:, None], self.channels, axis=1), int(round(at_us[0])))

    def close(self) -> None:
        self._start_us = None

    def statistics(self) -> dict:
        return {"frames_captured": self._produced, "overruns": 0}


class AlsaAudioCapture:
    """An ALSA capture device (`hw:1,0`, `plughw:CARD=Device,DEV=0`, `default`) through PyAV.

    A reader thread pulls packets off the device into a bounded buffer that `read` drains. FFmpeg
    stamps ALSA packets with the wall clock (corrected for the device's delay); they are moved to
    the monotonic clock with the wall/monotonic offset read at the same moment.
    """

    def __init__(self, device: str, *, sample_rate: int = 48000, channels: int = 1, clocks: Clocks,
                 open_timeout_s: float = 5.0):
        if not ALSA_DEVICE.match(device):
            raise ValueError(f"ALSA device {device!r} is not a name like hw:1,0, plughw:CARD=Device,DEV=0 or default")
        self.name = device
        self.sample_rate, self.channels = sample_rate, channels
        self._clocks, self._timeout_s = clocks, open_timeout_s
        self._chunks: deque[AudioChunk | BaseException] = deque()
        self._stop = threading.Event()
        self._container = None
        self._captured = self._overruns = 0

    def open(self) -> AudioFormat:
        import av  # the real backend only: importing PyAV is not needed to simulate

        self.close()
        if os.path.exists(DEBIAN_ALSA_CONFIG):
            os.environ.setdefault("ALSA_CONFIG_PATH", DEBIAN_ALSA_CONFIG)
        options = {"sample_rate": str(self.sample_rate), "channels": str(self.channels)}
        try:
            container = av.open(self.name, format="alsa", options=options, timeout=self._timeout_s)
        except (av.FFmpegError, OSError) as exc:
            raise AudioCaptureError(f"cannot open ALSA device {self.name}: {exc}") from exc
        stream = container.streams.audio[0]
        rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
        self._stop = threading.Event()
        self._chunks = deque()
        self._container = container
        threading.Thread(target=self._run, args=(container, stream, self._stop), name=f"alsa-{self.name}",
                         daemon=True).start()
        return AudioFormat(rate, channels)

    def read(self) -> list[AudioChunk]:
        out = []
        chunks = self._chunks
        while chunks:
            item = chunks.popleft()
            if isinstance(item, BaseException):
                raise AudioCaptureError(f"ALSA device {self.name} failed: {item}") from item
            out.append(item)
        return out

    def close(self) -> None:
        self._stop.set()
        self._container = None

    def statistics(self) -> dict:
        return {"frames_captured": self._captured, "overruns": self._overruns}

    def _run(self, container, stream, stop: threading.Event) -> None:
        try:
            for chunk in self._pcm_chunks(container, stream, stop):
                self._put(chunk, stream.codec_context.sample_rate)
        except Exception as exc:  # handed to the reader of `read`, which raises it
            if not stop.is_set():
                self._chunks.append(exc)
        finally:
            container.close()

    def _pcm_chunks(self, container, stream, stop: threading.Event) -> Iterator[AudioChunk]:
        """Consecutive ALSA periods joined into chunks of about `BATCH_S`. FFmpeg hands over one period
        per packet (often 128 frames: 375 a second at 48 kHz); the per-chunk work (numpy, clocks, the
        buffer) is then done ~50 times a second instead, and the per-packet work is integer arithmetic.
        A gap between periods (FFmpeg recovering from an overrun) ends the chunk, so it stays visible."""
        channels, rate = stream.codec_context.channels, stream.codec_context.sample_rate
        num, den = stream.time_base.numerator * 1_000_000, stream.time_base.denominator
        bytes_per_frame, batch_bytes = 2 * channels, round(BATCH_S * rate) * 2 * channels
        parts: list[bytes] = []
        size = first_us = next_us = 0
        for packet in container.demux(stream):
            if stop.is_set():
                return
            if packet.pts is None or packet.size == 0:
                continue
            wall_us = packet.pts * num // den
            if parts and abs(wall_us - next_us) > GAP_US:
                yield self._chunk(parts, first_us, channels)
                parts, size = [], 0
            if not parts:
                first_us = wall_us
            parts.append(bytes(packet))
            size += packet.size
            next_us = first_us + size // bytes_per_frame * 1_000_000 // rate
            if size >= batch_bytes:
                yield self._chunk(parts, first_us, channels)
                parts, size = [], 0
        if parts:  # the device ended: what it gave last
            yield self._chunk(parts, first_us, channels)

    def _chunk(self, parts: list[bytes], wall_us: int, channels: int) -> AudioChunk:
        offset_us = self._clocks.utc_now_us() - self._clocks.monotonic_us()
        samples = np.frombuffer(b"".join(parts), dtype="<i2").reshape(-1, channels)
        return AudioChunk(samples, wall_us - offset_us)

    def _put(self, chunk: AudioChunk, rate: int) -> None:
        self._captured += chunk.frames
        self._chunks.append(chunk)
        if len(self._chunks) * max(chunk.frames, 1) > MAX_BUFFERED_S * rate:
            dropped = self._chunks.popleft()
            if isinstance(dropped, AudioChunk):
                self._overruns += dropped.frames


def make_audio_capture(device: str, *, sample_rate: int, channels: int, clocks: Clocks) -> AudioCapture:
    """The capture for a config's `audio.device`: 'simulated' or an ALSA device name."""
    if device == SIMULATED:
        return SimulatedAudioCapture(sample_rate=sample_rate, channels=channels, clocks=clocks)
    return AlsaAudioCapture(device, sample_rate=sample_rate, channels=channels, clocks=clocks)
