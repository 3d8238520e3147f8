"""Sound files for alarms (a siren, a spoken warning): decoded once with PyAV (WAV, MP3, AAC, FLAC, Ogg...)
to the format of the output that plays them (the AUDIO OUT's OUT_RATE stereo, or a camera speaker's 8 kHz
mono, what its G.711 back channel carries) and kept in memory, within one size cap for all formats.

    ClipError (ValueError)   the file is missing, not sound, too long or too big; the message says which

A file named in the config is an administrator's, but still read as hostile: its size, its length and
the memory its samples take are bounded by the named limits below before and while it is decoded.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

OUT_RATE = 48_000  # what the AUDIO OUT is opened at (every card and HDMI sink takes it)
OUT_CHANNELS = 2
SPEAKER_RATE, SPEAKER_CHANNELS = 8000, 1  # a camera's speaker (ONVIF back channel, G.711)
MAX_FILE_BYTES = 16 * 1024 * 1024  # a bigger sound file is refused before it is opened
MAX_CLIP_S = 120.0  # a sound longer than this is refused (a siren loops; it need not be long)
MAX_CACHE_BYTES = 64 * 1024 * 1024  # decoded samples kept in memory (about 350 s at 48 kHz stereo)


class ClipError(ValueError):
    """A sound file that cannot be played; the message names the file and what to do."""


@dataclass(frozen=True, slots=True)
class Clip:
    """A decoded sound: `samples` (frames, channels) int16 at `rate` (OUT_RATE stereo unless asked)."""

    path: str
    samples: np.ndarray
    rate: int = OUT_RATE

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate

    @property
    def nbytes(self) -> int:
        return self.samples.nbytes


def decode_clip(path: str | Path, *, max_s: float = MAX_CLIP_S, rate: int = OUT_RATE,
                channels: int = OUT_CHANNELS) -> Clip:
    """The sound of `path` resampled to `rate` int16 with `channels` (1: mixed down, 2: mono doubled);
    ClipError if it is not a playable sound file of at most `max_s` seconds and MAX_FILE_BYTES."""
    import av  # PyAV only where a sound file is read

    path = Path(path)
    if not path.is_absolute():
        raise ClipError(f"{str(path)!r}: give the sound file's full path, such as /etc/nvr/sounds/siren.wav")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ClipError(f"cannot read the sound file {str(path)!r}: {exc.strerror or exc}") from exc
    if size > MAX_FILE_BYTES:
        raise ClipError(f"the sound file {str(path)!r} is {size} bytes; at most {MAX_FILE_BYTES} are taken "
                        "(shorten it or use a compressed format such as MP3)")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ClipError(f"{str(path)!r} holds no sound (no audio stream)")
            samples = _decode(container, container.streams.audio[0], max_s=max_s, rate=rate, channels=channels)
    except (av.FFmpegError, OSError, ValueError) as exc:
        if isinstance(exc, ClipError):
            raise
        raise ClipError(f"cannot decode the sound file {str(path)!r}: {exc}; use WAV, MP3, AAC, FLAC or "
                        "Ogg") from exc
    if not len(samples):
        raise ClipError(f"the sound file {str(path)!r} decodes to no sound at all")
    return Clip(str(path), samples, rate)


def _decode(container, stream, *, max_s: float, rate: int, channels: int) -> np.ndarray:
    import av

    if channels not in (1, 2) or rate <= 0:
        raise ValueError(f"cannot decode to {channels} channels at {rate} Hz; use 1 or 2 channels")
    max_frames = round(max_s * rate)
    # Mono is doubled here, not by the resampler, whose upmix puts it 3 dB lower on each side.
    mono = stream.codec_context.channels == 1 or channels == 1
    resampler = av.AudioResampler(format="s16", layout="mono" if mono else "stereo", rate=rate)
    width = 1 if mono else 2
    parts, frames = [], 0
    for frame in container.decode(stream):
        frame.pts = None  # resample what comes, in order: a file's timestamps are not needed
        for out in resampler.resample(frame):
            parts.append(out.to_ndarray().reshape(-1, width))
            frames += len(parts[-1])
        if frames > max_frames:
            raise ClipError(f"the sound in {container.name!r} is longer than {max_s:.0f} s; "
                            "cut it shorter (a rule's `loop` or `repeat` plays it again)")
    for out in resampler.resample(None):
        parts.append(out.to_ndarray().reshape(-1, width))
    samples = np.concatenate(parts) if parts else np.zeros((0, width), np.int16)
    return np.repeat(samples, channels, axis=1) if mono and channels == 2 else samples


class ClipCache:
    """Decoded clips by path and format (rate, channels), least recently used dropped beyond `max_bytes`
    (all formats together). Thread-safe; `get` decodes on the first use of a path in a format (call
    `preload` at start so no alarm waits for a decode)."""

    def __init__(self, *, max_bytes: int = MAX_CACHE_BYTES, max_s: float = MAX_CLIP_S):
        self.max_bytes, self.max_s = max_bytes, max_s
        self._lock = threading.Lock()
        self._clips: OrderedDict[tuple[str, int, int], Clip] = OrderedDict()
        self.decodes = self.evictions = 0

    def cached(self, path: str, *, rate: int = OUT_RATE, channels: int = OUT_CHANNELS) -> Clip | None:
        """The clip of `path` in that format if it is decoded already (never decodes)."""
        key = (path, rate, channels)
        with self._lock:
            clip = self._clips.get(key)
            if clip is not None:
                self._clips.move_to_end(key)
            return clip

    def get(self, path: str, *, rate: int = OUT_RATE, channels: int = OUT_CHANNELS) -> Clip:
        key = (path, rate, channels)
        with self._lock:
            clip = self._clips.get(key)
            if clip is not None:
                self._clips.move_to_end(key)
                return clip
        # outside the lock: a decode never holds up a cached play
        clip = decode_clip(path, max_s=self.max_s, rate=rate, channels=channels)
        if clip.nbytes > self.max_bytes:
            raise ClipError(f"the sound {path!r} takes {clip.nbytes} bytes decoded, over the cache's "
                            f"{self.max_bytes}; shorten it")
        with self._lock:
            self.decodes += 1
            self._clips[key] = clip
            while sum(c.nbytes for c in self._clips.values()) > self.max_bytes:
                self._clips.popitem(last=False)
                self.evictions += 1
        return clip

    def preload(self, paths: list[str], *, rate: int = OUT_RATE, channels: int = OUT_CHANNELS) -> list[str]:
        """Decode each of `paths` now in that format; the errors, one line each (the config check saw them)."""
        errors = []
        for path in paths:
            try:
                self.get(path, rate=rate, channels=channels)
            except ClipError as exc:
                errors.append(str(exc))
        return errors

    def statistics(self) -> dict:
        with self._lock:
            return {"clips": len(self._clips), "bytes": sum(c.nbytes for c in self._clips.values()),
                    "decodes": self.decodes, "evictions": self.evictions}
