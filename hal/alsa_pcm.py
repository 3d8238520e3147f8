"""ALSA playback through alsa-lib itself (ctypes): the one place `snd_pcm_*` is called.

FFmpeg's `alsa` output device (PyAV) gives no say over the card's buffer: it asks for the largest the
card offers (up to 65536 frames, 1.4 s at 48 kHz), which a writer that runs ahead fills, and it drains
that buffer on close. A sound that must interrupt another (an alarm over the monitor's channel sound,
the intercom over an alarm) would wait behind all of it. Here the buffer is asked for by its length
(`snd_pcm_set_params`' latency), `drop` empties it at once, and `delay_frames` says how much waits in
it. Blocking: `write` returns once the card has taken every frame (at most about one buffer's time).

alsa-lib is Debian's `libasound2` where installed, else the copy PyAV's wheel carries (which reads
Debian's alsa.conf through ALSA_CONFIG_PATH, see hal.audio).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import threading
from pathlib import Path

import numpy as np

from hal.audio import DEBIAN_ALSA_CONFIG

SND_PCM_STREAM_PLAYBACK = 0
SND_PCM_FORMAT_S16_LE = 2
SND_PCM_ACCESS_RW_INTERLEAVED = 3

_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()


class AlsaPcmError(OSError):
    """alsa-lib refused: the message has its own words (snd_strerror) and what was being done."""


def libasound() -> ctypes.CDLL:
    """alsa-lib, loaded once: the system's, else PyAV's bundled copy; AlsaPcmError if there is neither."""
    global _lib
    with _lib_lock:
        if _lib is None:
            _lib = _declare(ctypes.CDLL(_find_library()))
        return _lib


def _find_library() -> str:
    found = ctypes.util.find_library("asound")
    if found:
        return found
    try:
        import av
    except ImportError:
        av = None
    bundled = sorted(Path(av.__file__).parent.parent.glob("av.libs/libasound*.so*")) if av is not None else []
    if bundled:
        os.environ.setdefault("ALSA_CONFIG_PATH", DEBIAN_ALSA_CONFIG)
        return str(bundled[0])
    raise AlsaPcmError("no alsa-lib on this system: install libasound2")


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    pcm, long_p = ctypes.c_void_p, ctypes.POINTER(ctypes.c_long)
    signatures = {
        "snd_pcm_open": ([ctypes.POINTER(pcm), ctypes.c_char_p, ctypes.c_int, ctypes.c_int], ctypes.c_int),
        "snd_pcm_set_params": ([pcm, ctypes.c_int, ctypes.c_int, ctypes.c_uint, ctypes.c_uint, ctypes.c_int,
                                ctypes.c_uint], ctypes.c_int),
        "snd_pcm_writei": ([pcm, ctypes.c_void_p, ctypes.c_ulong], ctypes.c_long),
        "snd_pcm_recover": ([pcm, ctypes.c_int, ctypes.c_int], ctypes.c_int),
        "snd_pcm_drop": ([pcm], ctypes.c_int),
        "snd_pcm_drain": ([pcm], ctypes.c_int),
        "snd_pcm_prepare": ([pcm], ctypes.c_int),
        "snd_pcm_delay": ([pcm, long_p], ctypes.c_int),
        "snd_pcm_close": ([pcm], ctypes.c_int),
        "snd_strerror": ([ctypes.c_int], ctypes.c_char_p),
        "snd_config_update": ([], ctypes.c_int),
    }
    for name, (args, result) in signatures.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = args, result
    return lib


def warm_up() -> None:
    """Do now what the first open of a PCM would otherwise do: find and load alsa-lib (without Debian's
    libasound2 that searches with `ldconfig -p`, a subprocess) and parse its configuration (alsa.conf and
    the card definitions, kept by alsa-lib for later opens while the files are unchanged). On the image's
    emulated CPU the first alarm sound waited ~0.6 s longer than the next ones for this. AlsaPcmError if
    there is no alsa-lib or its configuration does not parse (an open would then fail the same way)."""
    lib = libasound()
    result = lib.snd_config_update()
    if result < 0:
        raise AlsaPcmError(-result, f"cannot read alsa-lib's configuration: "
                                    f"{lib.snd_strerror(result).decode(errors='replace')}")


class PcmPlayback:
    """One open ALSA playback PCM, interleaved S16_LE, with a buffer of about `latency_us`."""

    def __init__(self, device: str, *, sample_rate: int, channels: int, latency_us: int):
        self.device, self.channels, self.sample_rate = device, channels, sample_rate
        self._lib = libasound()
        handle = ctypes.c_void_p()
        self._check(self._lib.snd_pcm_open(ctypes.byref(handle), device.encode(), SND_PCM_STREAM_PLAYBACK, 0),
                    "open")
        self._pcm = handle
        try:
            self._check(self._lib.snd_pcm_set_params(handle, SND_PCM_FORMAT_S16_LE, SND_PCM_ACCESS_RW_INTERLEAVED,
                                                     channels, sample_rate, 1, latency_us),
                        f"set {channels} channels at {sample_rate} Hz, {latency_us} us buffer on")
        except AlsaPcmError:
            self._lib.snd_pcm_close(handle)
            raise
        self.underruns = 0

    def _check(self, result: int, doing: str) -> int:
        if result < 0:
            reason = self._lib.snd_strerror(result).decode(errors="replace")
            raise AlsaPcmError(-result, f"cannot {doing} ALSA playback device {self.device!r}: {reason}")
        return result

    def write(self, samples: np.ndarray) -> None:
        """Play (frames, channels) int16 `samples`, blocking until the card took them all."""
        data = np.ascontiguousarray(samples, dtype="<i2").reshape(-1, self.channels)
        done = 0
        while done < len(data):
            part = data[done:]
            written = self._lib.snd_pcm_writei(self._pcm, part.ctypes.data, len(part))
            if written < 0:
                if written == -errno.EPIPE:
                    self.underruns += 1  # the card ran dry (nobody fed it for a while): start again
                self._check(self._lib.snd_pcm_recover(self._pcm, int(written), 1), "recover")
                continue
            done += written

    def drop(self) -> None:
        """Throw away what waits in the card's buffer (a more urgent sound takes over)."""
        self._check(self._lib.snd_pcm_drop(self._pcm), "drop the buffer of")
        self._check(self._lib.snd_pcm_prepare(self._pcm), "prepare")

    def drain(self) -> None:
        """Wait until what was written has been heard (at most about the buffer's length)."""
        result = self._lib.snd_pcm_drain(self._pcm)
        if result < 0 and result != -errno.EPIPE:  # ran dry before: nothing left to hear
            self._check(result, "drain")

    def delay_frames(self) -> int:
        """Frames written but not yet heard (0 when the card is stopped or ran dry)."""
        delay = ctypes.c_long()
        return delay.value if self._lib.snd_pcm_delay(self._pcm, ctypes.byref(delay)) == 0 else 0

    def close(self) -> None:
        """Close at once: what waits in the buffer is not played out."""
        if self._pcm:
            self._lib.snd_pcm_drop(self._pcm)
            self._lib.snd_pcm_close(self._pcm)
            self._pcm = ctypes.c_void_p()
