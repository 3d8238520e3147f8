"""Measuring A/V sync in a recording: the test pattern's flash against the simulated microphone's beep.

Both happen in the first 50 ms of every second of the monotonic clock (hal.video.simulated's `sync_flash`,
hal.audio's `SimulatedAudioCapture`; the RTSP test server's `audio=` mounts beep the same way). The
file is decoded with FFmpeg (PyAV); flashes are frames whose flash square is bright, beeps are where
the sound's 5 ms envelope first rises above a third of the beep's amplitude.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from hal.video.simulated import flash_box


@dataclass
class SyncReport:
    flashes_s: list[float]
    beeps_s: list[float]
    offsets_s: list[float]  # beep minus its nearest flash, for every flash that has a beep within 0.5 s

    @property
    def worst_s(self) -> float:
        return max((abs(o) for o in self.offsets_s), default=float("inf"))


def flash_times(path: Path) -> list[float]:
    """Presentation times (s) of the first frame of every flash."""
    times, was_on = [], False
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            luma = frame.to_ndarray(format="gray")
            x, y, side = flash_box(frame.width, frame.height)
            on = float(luma[y + side // 4:y + 3 * side // 4, x + side // 4:x + 3 * side // 4].mean()) > 128
            if on and not was_on:
                times.append(float(frame.time))
            was_on = on
    return times


def beep_times(path: Path) -> list[float]:
    """Times (s) where a beep starts, from the decoded audio's envelope."""
    return _beeps_and_end(path)[0]


def _beeps_and_end(path: Path) -> tuple[list[float], float]:
    """Beep start times (s), and where the decoded audio ends (s)."""
    chunks, start, rate = [], None, None
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        for frame in container.decode(audio=0):
            if start is None:
                start, rate = float(frame.time), frame.sample_rate
            chunks.append(frame.to_ndarray().reshape(frame.layout.nb_channels if frame.format.is_planar else 1, -1)[0]
                          .astype(np.float64))
    if not chunks:
        return [], 0.0
    pcm = np.concatenate(chunks)
    if np.abs(pcm).max() > 2:  # integer samples
        pcm /= 32768.0
    window = max(1, rate // 200)
    envelope = np.sqrt(np.convolve(pcm * pcm, np.ones(window) / window, mode="same")) * np.sqrt(2)
    loud = envelope > 0.5 / 3
    rising = np.flatnonzero(loud[1:] & ~loud[:-1]) + 1
    times, last = [], -1.0
    for index in rising:
        at = start + (index - window // 2) / rate
        if at - last > 0.5:
            times.append(at)
            last = at
    return times, start + len(pcm) / rate


BEEP_HEARD_S = 0.1  # audio after a flash needed to find its beep's rise (the envelope is 5 ms; one AAC frame at 8 kHz is 128 ms)


def measure(path: Path) -> SyncReport:
    """Offsets of the flashes whose beep the file holds: a flash in the file's last moments, whose sound was
    cut by the segment's end (a stop), has no beep to measure and is left out."""
    flashes, (beeps, audio_end_s) = flash_times(path), _beeps_and_end(path)
    offsets = []
    for flash in (f for f in flashes if f + BEEP_HEARD_S <= audio_end_s):
        nearest = min(beeps, key=lambda beep: abs(beep - flash), default=None)
        if nearest is not None and abs(nearest - flash) < 0.5:
            offsets.append(nearest - flash)
    return SyncReport(flashes, beeps, offsets)


def make_av_clip(path: Path, *, seconds: float, audio: str = "aac", width: int = 320, height: int = 240,
                 fps: int = 25) -> Path:
    """A clip for the RTSP server's `avfile:` mount, made by Debian's ffmpeg: a test picture whose flash
    square (where `flash_box` says) is white in the first 50 ms of every second, and a tone that
    beeps then. H.264 (GOP 1 s, no B-frames) with AAC 48 kHz, or G.711 µ-law/A-law 8 kHz in a MOV."""
    import subprocess

    x, y, side = flash_box(width, height)
    video = (f"testsrc2=size={width}x{height}:rate={fps},"
             f"drawbox=x={x}:y={y}:w={side}:h={side}:color=black:t=fill,"
             f"drawbox=x={x}:y={y}:w={side}:h={side}:color=white:t=fill:enable='lt(mod(t,1),0.05)'")
    rate = 48000 if audio == "aac" else 8000
    sound = f"aevalsrc='if(lt(mod(t,1),0.05),0.5*sin(2*PI*1000*t),0.05*sin(2*PI*440*t))':s={rate}"
    codec = {"aac": ["-c:a", "aac", "-b:a", "64k"], "pcmu": ["-c:a", "pcm_mulaw"], "pcma": ["-c:a", "pcm_alaw"]}[audio]
    cmd = ["/usr/bin/ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", video, "-f", "lavfi", "-i", sound,
           "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-g", str(fps), "-bf", "0",
           "-pix_fmt", "yuv420p", *codec, "-ac", "1", str(path)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    return path
