"""Sound files for alarms (a siren, a spoken warning): decoded once with PyAV (WAV, MP3, AAC, FLAC, Ogg...)
to the AUDIO OUT's format and kept in memory, within a size cap.

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
MAX_FILE_BYTES = 16 * 1024 * 1024  # a bigger sound file is refused before it is opened
MAX_CLIP_S = 120.0  # a sound longer than this is refused (a siren loops; it need not be long)
MAX_CACHE_BYTES = 64 * 1024 * 1024  # decoded samples kept in memory (about 350 s at 48 kHz stereo)


class ClipError(ValueError):
    """A sound file that cannot be played; the message names the file and what to do."""


@dataclass(frozen=True, slots=True)
class Clip:
    """A decoded sound: `samples` (frames, OUT_CHANNELS) int16 at OUT_RATE."""

    path: str
    samples: np.ndarray

    @property
    def duration_s(self) -> float:
        return len(self.samples) / OUT_RATE

    @property
    def nbytes(self) -> int:
        return self.samples.nbytes


def decode_clip(path: str | Path, *, max_s: float = MAX_CLIP_S) -> Clip:
    """The sound of `path` resampled to OUT_RATE stereo int16; ClipError if it is not a playable sound
    file of at most `max_s` seconds and MAX_FILE_BYTES."""
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
            samples = _decode(container, container.streams.audio[0], max_frames=round(max_s * OUT_RATE))
    except (av.FFmpegError, OSError, ValueError) as exc:
        if isinstance(exc, ClipError):
            raise
        raise ClipError(f"cannot decode the sound file {str(path)!r}: {exc}; use WAV, MP3, AAC, FLAC or "
                        "Ogg") from exc
    if not len(samples):
        raise ClipError(f"the sound file {str(path)!r} decodes to no sound at all")
    return Clip(str(path), samples)


def _decode(container, stream, *, max_frames: int) -> np.ndarray:
    import av

    # Mono is doubled here, not by the resampler, whose upmix puts it 3 dB lower on each side.
    mono = stream.codec_context.channels == 1
    resampler = av.AudioResampler(format="s16", layout="mono" if mono else "stereo", rate=OUT_RATE)
    width = 1 if mono else OUT_CHANNELS
    parts, frames = [], 0
    for frame in container.decode(stream):
        frame.pts = None  # resample what comes, in order: a file's timestamps are not needed
        for out in resampler.resample(frame):
            parts.append(out.to_ndarray().reshape(-1, width))
            frames += len(parts[-1])
        if frames > max_frames:
            raise ClipError(f"the sound in {container.name!r} is longer than {max_frames / OUT_RATE:.0f} s; "
                            "cut it shorter (a rule's `loop` or `repeat` plays it again)")
    for out in resampler.resample(None):
        parts.append(out.to_ndarray().reshape(-1, width))
    samples = np.concatenate(parts) if parts else np.zeros((0, width), np.int16)
    return np.repeat(samples, OUT_CHANNELS, axis=1) if mono else samples


class ClipCache:
    """Decoded clips by path, least recently used dropped beyond `max_bytes`. Thread-safe; `get` decodes
    on the first use of a path (call `preload` at start so no alarm waits for a decode)."""

    def __init__(self, *, max_bytes: int = MAX_CACHE_BYTES, max_s: float = MAX_CLIP_S):
        self.max_bytes, self.max_s = max_bytes, max_s
        self._lock = threading.Lock()
        self._clips: OrderedDict[str, Clip] = OrderedDict()
        self.decodes = self.evictions = 0

    def cached(self, path: str) -> Clip | None:
        """The clip of `path` if it is decoded already (never decodes)."""
        with self._lock:
            clip = self._clips.get(path)
            if clip is not None:
                self._clips.move_to_end(path)
            return clip

    def get(self, path: str) -> Clip:
        with self._lock:
            clip = self._clips.get(path)
            if clip is not None:
                self._clips.move_to_end(path)
                return clip
        clip = decode_clip(path, max_s=self.max_s)  # outside the lock: a decode never holds up a cached play
        if clip.nbytes > self.max_bytes:
            raise ClipError(f"the sound {path!r} takes {clip.nbytes} bytes decoded, over the cache's "
                            f"{self.max_bytes}; shorten it")
        with self._lock:
            self.decodes += 1
            self._clips[path] = clip
            while sum(c.nbytes for c in self._clips.values()) > self.max_bytes:
                self._clips.popitem(last=False)
                self.evictions += 1
        return clip

    def preload(self, paths: list[str]) -> list[str]:
        """Decode each of `paths` now; the errors, one line each (the config check saw them already)."""
        errors = []
        for path in paths:
            try:
                self.get(path)
            except ClipError as exc:
                errors.append(str(exc))
        return errors

    def statistics(self) -> dict:
        with self._lock:
            return {"clips": len(self._clips), "bytes": sum(c.nbytes for c in self._clips.values()),
                    "decodes": self.decodes, "evictions": self.evictions}
