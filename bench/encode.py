"""bench/encode: analog D1 channels encoded in real time on this machine, and nvr's libx264 against ffmpeg's.

    ./dev bench encode [--channels 1,4,8,10,12] [--window-s 30] [--clip-s 8] [--patterns auto]
                       [--noise 2] [--noise-sweep 0,1,2,4] [--repeats 2] [--buffers 4]
                       [--realtime-format yuyv422] [--quick] [--dir /var/tmp]

Input: one clip per test pattern (hal.video.simulated.TestPatternCapture.render at 720x576, with its
burnt-in label, counter and clock; `auto` = all five in nvr's channel order, zoneplate included),
turned into what a composite capture card delivers: 4:2:2 YUYV with gaussian noise of `--noise`
code values on every sample, new in every frame (2 is about 41 dB luma SNR, a cheap camera or a
long coax, or any camera at dusk with its gain up; 0 leaves the clean synthetic picture, which x264
finds far easier). The yuv420p variant of the same frames averages each pair of chroma rows. Each
clip is written once under the work folder, and both sides encode exactly those frames; nvr reads
them into memory first, so neither frame generation nor file reading counts for it.

The settings are the appliance's for an analog channel: libx264 preset veryfast, tune zerolatency,
keyframe every 2 s without scene cuts, 2 Mb/s (the v4l2 source default), one encoder thread per
channel, exactly as `recorder.encode.EncodedCapture` configures it (the first table prints both
sides' x264 option strings from their streams' SEI).

Tables:
1. Throughput, one channel at a time as fast as it goes, each pattern and input format: CPU seconds
   per second of video for the nvr path (EncodedCapture over the frames in memory, conversion
   included) and for `ffmpeg -f rawvideo -pix_fmt F -i FILE -c:v libx264 (same options) -pix_fmt
   yuv420p -f h264` (Debian's ffmpeg and its own libx264 build) minus ffmpeg's process start-up
   (measured with a 1-frame copy), the least of `--repeats` interleaved runs; ratio nvr/ffmpeg.
   After conversion the yuyv422 and yuv420p inputs are the same picture (swscale averages chroma
   rows too); the yuyv422 rows are the real case.
2. YUYV -> yuv420p per D1 frame: PyAV's frame.reformat (a new swscale context per frame), one kept
   reformatter as EncodedCapture uses, and ffmpeg's own conversion (rawvideo out with and without
   -pix_fmt yuv420p).
1b. Encoder CPU against input noise (nvr path, YUYV, first pattern), to size for other cameras.
3. Real time: N channels as threads of one process, as `nvr run` runs them, each paced at 25 fps by
   the monotonic clock like a capture card with a ring of `--buffers` frames (when the encoder falls
   further behind, the oldest frames are dropped and counted), phases spread over a frame period.
   After a 3 s warm-up, over the window: this process's CPU as % of all cores, the rest of the
   machine's busy CPU (other load starves the channels: read the result with it), frames encoded
   against expected, drops, and lag (packet out minus frame due). A channel is in real time when
   >= 99 % of its expected frames are encoded; the ring bounds the lag. "cores needed" (CPU per
   encoded frame x 25 x N) is what all N channels would take at full rate, whatever the other load.

Goals (issue 3): >= 8 channels in real time on 2 cores; CPU ratio nvr/ffmpeg <= 1.1.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import print_table  # noqa: E402
from base.clock import Clocks, RealClocks, SimulatedClocks  # noqa: E402
from base.media import CaptureFormat, RawFrame  # noqa: E402
from hal.video.simulated import _AUTO_ORDER, PATTERNS, TestPatternCapture  # noqa: E402
from recorder.encode import EncodedCapture  # noqa: E402

WIDTH, HEIGHT, FPS = 720, 576, 25
BITRATE = 2_000_000  # the v4l2 source's default bit rate
PRESET = "veryfast"
KEYINT = 50  # 2 s at 25 fps, as EncodedCapture derives it
PERIOD_US = 1_000_000 // FPS
FFMPEG = shutil.which("ffmpeg", path="/usr/bin") or "ffmpeg"
FORMATS = ("yuv420p", "yuyv422")
REALTIME_SHARE = 0.99
MIX = "**mix (mean)**"
WARMUP_S = 3.0
UTC0_US = 1_767_225_600_000_000


# --- input clips --------------------------------------------------------------------------------

@dataclass
class Clip:
    pattern: str
    files: dict[str, Path]  # pixel format -> raw file
    frames: int
    render_ms: float  # TestPatternCapture.render per frame
    noise_ms: float  # 4:2:2 packing and noise per frame

    def load(self, pixel_format: str) -> np.ndarray:
        """The frames read into memory as one (frames, ...) array, as PyAV's from_ndarray takes each."""
        shape = (HEIGHT, WIDTH, 2) if pixel_format == "yuyv422" else (HEIGHT * 3 // 2, WIDTH)
        return np.fromfile(self.files[pixel_format], dtype=np.uint8).reshape(self.frames, *shape)


def make_clip(work: Path, pattern: str, channel_id: int, *, seconds: float, noise: float) -> Clip:
    """Render `seconds` of `pattern`, add composite-like noise, write yuyv422 and yuv420p files."""
    capture = TestPatternCapture(width=WIDTH, height=HEIGHT, fps=FPS, pattern=pattern, channel_id=channel_id,
                                 clocks=SimulatedClocks())
    noise_source = _Noise(noise, seed=channel_id)
    files = {fmt: work / f"{pattern}.{fmt}" for fmt in FORMATS}
    count = round(seconds * FPS)
    render_s = noise_s = 0.0
    with open(files["yuyv422"], "wb") as yuyv_out, open(files["yuv420p"], "wb") as i420_out:
        for n in range(count):
            began = time.perf_counter()
            i420 = capture.render(n, UTC0_US + n * PERIOD_US)
            rendered = time.perf_counter()
            yuyv = noise_source.add(_yuyv(i420))
            noise_s += time.perf_counter() - rendered
            render_s += rendered - began
            yuyv_out.write(yuyv.tobytes())
            i420_out.write(_yuyv_to_yuv420p(yuyv).tobytes())
    return Clip(pattern, files, count, render_s / count * 1000, noise_s / count * 1000)


def _yuyv(i420: np.ndarray) -> np.ndarray:
    """A (H, W, 2) YUYV frame from a yuv420p one, each chroma row used for two picture rows."""
    luma = i420[:HEIGHT]
    chroma = i420[HEIGHT:].reshape(2, HEIGHT // 2, WIDTH // 2)
    yuyv = np.empty((HEIGHT, WIDTH, 2), dtype=np.uint8)
    yuyv[..., 0] = luma
    yuyv[:, 0::2, 1] = np.repeat(chroma[0], 2, axis=0)
    yuyv[:, 1::2, 1] = np.repeat(chroma[1], 2, axis=0)
    return yuyv


class _Noise:
    """Gaussian noise on every sample, different in every frame and uncorrelated with the previous one.

    Drawing a fresh field per frame costs more than encoding it, so frames take turns over a pool of
    fields, each circularly shifted by a random amount.
    """

    POOL = 8

    def __init__(self, sigma: float, *, seed: int):
        self._sigma = sigma
        self._rng = np.random.default_rng(seed)
        shape = (self.POOL, HEIGHT * WIDTH * 2)
        self._pool = np.rint(self._rng.standard_normal(shape, dtype=np.float32) * sigma).astype(np.int16)
        self._turn = 0

    def add(self, yuyv: np.ndarray) -> np.ndarray:
        if self._sigma <= 0:
            return yuyv
        field = np.roll(self._pool[self._turn % self.POOL], int(self._rng.integers(yuyv.size)))
        self._turn += 1
        noisy = yuyv.reshape(-1).astype(np.int16) + field
        return np.clip(noisy, 0, 255).astype(np.uint8).reshape(yuyv.shape)


def _yuyv_to_yuv420p(yuyv: np.ndarray) -> np.ndarray:
    """The same picture as yuv420p: luma as is, each pair of chroma rows averaged (rounded)."""
    u = yuyv[:, 0::2, 1].astype(np.uint16)
    v = yuyv[:, 1::2, 1].astype(np.uint16)
    u = ((u[0::2] + u[1::2] + 1) // 2).astype(np.uint8)
    v = ((v[0::2] + v[1::2] + 1) // 2).astype(np.uint8)
    return np.concatenate([yuyv[..., 0].reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(HEIGHT * 3 // 2, WIDTH)


# --- a capture replaying a clip -------------------------------------------------------------------

class ClipCapture:
    """A `VideoCapture` replaying pre-rendered frames (looping), for EncodedCapture.

    Unpaced (`paced=False`), it yields `count` frames as fast as they are taken, timed 40 ms apart.
    Paced, frame n is due at `start_us + n * 40 ms` on the monotonic clock, like a capture card with a
    ring of `buffers` frames: when more than `buffers` frames are due and not taken, the oldest are
    dropped and their due times recorded.
    """

    def __init__(self, frames: np.ndarray, pixel_format: str, *, clocks: Clocks, paced: bool,
                 count: int | None = None, buffers: int = 4, offset: int = 0, start_us: int | None = None):
        self._frames, self._format, self._clocks = frames, pixel_format, clocks
        self._paced, self._count, self._buffers, self._offset = paced, count, buffers, offset
        self.start_us = start_us
        self.dropped_due_us: list[int] = []
        self.first_due_us = 0
        self._closed = threading.Event()

    def open(self) -> CaptureFormat:
        self._closed.clear()
        return CaptureFormat(WIDTH, HEIGHT, self._format, float(FPS))

    def close(self) -> None:
        self._closed.set()

    def frames(self) -> Iterator[RawFrame]:
        return self._paced_frames() if self._paced else self._unpaced_frames()

    def _raw(self, sequence: int, due_us: int) -> RawFrame:
        data = self._frames[(self._offset + sequence) % len(self._frames)]
        return RawFrame(data, self._format, WIDTH, HEIGHT, due_us, sequence)

    def _unpaced_frames(self) -> Iterator[RawFrame]:
        for n in range(self._count or len(self._frames)):
            yield self._raw(n, n * PERIOD_US)

    def _paced_frames(self) -> Iterator[RawFrame]:
        clocks = self._clocks
        start = self.start_us if self.start_us is not None else clocks.monotonic_us()
        sequence = 0
        while not self._closed.is_set():
            due = start + sequence * PERIOD_US
            now = clocks.monotonic_us()
            if now < due:
                clocks.sleep(min(due - now, PERIOD_US) / 1_000_000)
                continue
            waiting = (now - due) // PERIOD_US + 1  # frames due and not yet taken, this one included
            if waiting > self._buffers:
                overflow = waiting - self._buffers
                self.dropped_due_us.extend(start + (sequence + k) * PERIOD_US for k in range(overflow))
                sequence += overflow
                continue
            self.first_due_us = self.first_due_us or due
            yield self._raw(sequence, due)
            sequence += 1


# --- part 1: throughput, nvr against ffmpeg ----------------------------------------------------------

@dataclass
class Throughput:
    cpu_s: float
    frames: int
    out_bytes: int

    @property
    def cpu_per_video_s(self) -> float:
        return self.cpu_s / (self.frames / FPS)

    @property
    def kbps(self) -> float:
        return self.out_bytes * 8 / (self.frames / FPS) / 1000


def nvr_throughput(frames: np.ndarray, pixel_format: str) -> Throughput:
    """EncodedCapture over the frames in memory, unpaced; CPU of the whole process (swscale may thread)."""
    clocks = SimulatedClocks()
    capture = ClipCapture(frames, pixel_format, clocks=clocks, paced=False)
    encoder = EncodedCapture(capture, name="bench", clocks=clocks, bitrate=BITRATE, preset=PRESET)
    began = time.process_time()
    encoder.open()
    out_bytes = sum(len(packet.data) for packet in encoder.packets())
    return Throughput(time.process_time() - began, encoder.frames_encoded, out_bytes)


def ffmpeg_command(raw: Path, pixel_format: str, out: Path, *, frames: int | None = None,
                   encode: bool = True, convert: bool = False, loops: int = 1) -> list[str]:
    """The same encoder settings on the command line; -pix_fmt yuv420p so 4:2:2 input is not kept 4:2:2."""
    cmd = [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", pixel_format,
           "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-stream_loop", str(loops - 1), "-i", str(raw)]
    if frames is not None:
        cmd += ["-frames:v", str(frames)]
    if not encode:
        return cmd + (["-pix_fmt", "yuv420p"] if convert else []) + ["-c:v", "rawvideo", "-f", "null", "-"]
    return cmd + ["-c:v", "libx264", "-preset", PRESET, "-tune", "zerolatency", "-g", str(KEYINT),
                  "-x264-params", f"keyint={KEYINT}:min-keyint={KEYINT}:scenecut=0", "-b:v", str(BITRATE),
                  "-threads", "1", "-pix_fmt", "yuv420p", "-f", "h264", "-y", str(out)]


def run_child_cpu(cmd: Sequence[str]) -> float:
    """CPU seconds (user + system) of one child process run to the end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def ffmpeg_startup_s(clip: Clip, work: Path) -> float:
    """ffmpeg's process start-up: load, probe, copy one frame (the least of three runs)."""
    cmd = ffmpeg_command(clip.files["yuv420p"], "yuv420p", work / "none", frames=1, encode=False)
    return min(run_child_cpu(cmd) for _ in range(3))


def ffmpeg_throughput(clip: Clip, pixel_format: str, work: Path, startup_s: float) -> Throughput:
    out = work / f"{clip.pattern}-{pixel_format}.h264"
    cpu_s = run_child_cpu(ffmpeg_command(clip.files[pixel_format], pixel_format, out))
    size = out.stat().st_size
    out.unlink()
    return Throughput(max(0.0, cpu_s - startup_s), clip.frames, size)


def bench_throughput(clips: Sequence[Clip], work: Path, repeats: int) -> list[list]:
    """Each pattern and input format through both sides, `repeats` times interleaved; the least CPU counts."""
    startup_s = ffmpeg_startup_s(clips[0], work)
    rows = []
    for fmt in FORMATS:
        pairs = []
        for clip in clips:
            runs = [(nvr_throughput(clip.load(fmt), fmt), ffmpeg_throughput(clip, fmt, work, startup_s))
                    for _ in range(repeats)]
            pair = (min((r[0] for r in runs), key=lambda t: t.cpu_s), min((r[1] for r in runs), key=lambda t: t.cpu_s))
            pairs.append(pair)
            rows.append(_throughput_row(fmt, clip.pattern, *pair))
        nvr_mean = _mean(n.cpu_per_video_s for n, _ in pairs)
        ff_mean = _mean(f.cpu_per_video_s for _, f in pairs)
        rows.append([fmt, MIX, f"{nvr_mean:.4f}", f"{ff_mean:.4f}", f"**{nvr_mean / ff_mean:.3f}**",
                     f"{_mean(n.kbps for n, _ in pairs):.0f}", f"{_mean(f.kbps for _, f in pairs):.0f}",
                     f"{len(_cores()) / nvr_mean:.1f}"])
    rows.append(["", f"(ffmpeg start-up {startup_s * 1000:.0f} ms CPU, subtracted)", "", "", "", "", "", ""])
    return rows


def _throughput_row(fmt: str, pattern: str, nvr: Throughput, ff: Throughput) -> list:
    return [fmt, pattern, f"{nvr.cpu_per_video_s:.4f}", f"{ff.cpu_per_video_s:.4f}",
            f"{nvr.cpu_per_video_s / ff.cpu_per_video_s:.3f}", f"{nvr.kbps:.0f}", f"{ff.kbps:.0f}",
            f"{len(_cores()) / nvr.cpu_per_video_s:.1f}"]


# --- part 2: the YUYV conversion ------------------------------------------------------------------------

def bench_conversion(clip: Clip, work: Path) -> list[list]:
    """Per-frame CPU of getting a D1 YUYV frame into a yuv420p AVFrame, the ways it can be done."""
    yuyv, i420 = clip.load("yuyv422"), clip.load("yuv420p")
    kept = VideoReformatter()
    ways = [
        ("PyAV from_ndarray yuv420p (copy in)", i420, lambda a: av.VideoFrame.from_ndarray(a, format="yuv420p")),
        ("PyAV from_ndarray yuyv422 (copy in)", yuyv, lambda a: av.VideoFrame.from_ndarray(a, format="yuyv422")),
        ("PyAV yuyv422 copy in + frame.reformat (new SwsContext each frame, threads auto; EncodedCapture until now)",
         yuyv, lambda a: av.VideoFrame.from_ndarray(a, format="yuyv422").reformat(format="yuv420p")),
        ("PyAV yuyv422 copy in + one kept VideoReformatter, threads=1 (EncodedCapture now)", yuyv,
         lambda a: kept.reformat(av.VideoFrame.from_ndarray(a, format="yuyv422"), format="yuv420p", threads=1)),
    ]
    rows = [[label, f"{_per_frame_ms(frames, convert):.3f}"] for label, frames, convert in ways]
    rows.append(["ffmpeg's conversion alone (rawvideo out with -pix_fmt yuv420p minus without)",
                 f"{_ffmpeg_conversion_ms(clip, work):.3f}"])
    return rows


def _per_frame_ms(frames: np.ndarray, convert, passes: int = 3) -> float:
    """Least CPU of `passes` passes over the frames, per frame."""
    for n in range(10):  # warm the caches and whatever is allocated on first use
        convert(frames[n])
    best = float("inf")
    for _ in range(passes):
        began = time.process_time()
        for n in range(len(frames)):
            convert(frames[n])
        best = min(best, time.process_time() - began)
    return best / len(frames) * 1000


def _ffmpeg_conversion_ms(clip: Clip, work: Path) -> float:
    """The clip read 10 times over, converted and not; least CPU of 3 each, difference per frame."""
    raw, loops = clip.files["yuyv422"], 10
    runs = {convert: min(run_child_cpu(ffmpeg_command(raw, "yuyv422", work, encode=False, convert=convert,
                                                      loops=loops)) for _ in range(3))
            for convert in (False, True)}
    return (runs[True] - runs[False]) / (clip.frames * loops) * 1000


def bench_noise(work: Path, pattern: str, sigmas: Sequence[float], seconds: float) -> list[list]:
    """How the encoder's CPU depends on the picture's noise (nvr path, YUYV input, one pattern)."""
    rows = []
    for sigma in sigmas:
        clip = make_clip(work / "noise", pattern, 1, seconds=seconds, noise=sigma)
        run = min((nvr_throughput(clip.load("yuyv422"), "yuyv422") for _ in range(2)), key=lambda t: t.cpu_s)
        snr = f"{20 * np.log10(219 / sigma):.0f}" if sigma > 0 else "clean"
        rows.append([f"{sigma:g}", snr, f"{run.cpu_per_video_s:.4f}", f"{run.cpu_s / run.frames * 1000:.2f}",
                     f"{run.kbps:.0f}", f"{len(_cores()) / run.cpu_per_video_s:.1f}"])
        for path in clip.files.values():
            path.unlink()
    return rows


# --- part 3: real time ------------------------------------------------------------------------------

@dataclass
class Channel:
    channel_id: int
    pattern: str
    capture: ClipCapture
    encoder: EncodedCapture
    packets: list[tuple[int, int]] = field(default_factory=list)  # (frame due, lag) in µs
    error: Exception | None = None
    thread: threading.Thread | None = None

    def run(self) -> None:
        try:
            self.encoder.open()
            for packet in self.encoder.packets():
                # EncodedCapture times packets from the first frame's capture time, which the capture keeps.
                due = self.capture.first_due_us + packet.pts * 100 // 9
                self.packets.append((due, packet.arrival_us - due))
        except Exception as exc:  # reported in the table, not swallowed
            self.error = exc


def start_channels(clips: dict[str, Clip], patterns: Sequence[str], count: int, pixel_format: str,
                   buffers: int) -> tuple[list[Channel], int]:
    """`count` channels cycling through `patterns`, phases spread over one frame period, started 1 s ahead."""
    clocks = RealClocks()
    base_us = clocks.monotonic_us() + 1_000_000
    channels, loaded = [], {}
    for index in range(count):
        pattern = patterns[index % len(patterns)]
        if pattern not in loaded:  # channels showing the same pattern share its frames, at other offsets
            loaded[pattern] = clips[pattern].load(pixel_format)
        capture = ClipCapture(loaded[pattern], pixel_format, clocks=clocks, paced=True, buffers=buffers,
                              offset=index * 37, start_us=base_us + index * PERIOD_US // count)
        encoder = EncodedCapture(capture, name=f"ch{index + 1}", clocks=clocks, bitrate=BITRATE, preset=PRESET)
        channel = Channel(index + 1, pattern, capture, encoder)
        channel.thread = threading.Thread(target=channel.run, name=f"ch{index + 1}", daemon=True)
        channels.append(channel)
    for channel in channels:
        channel.thread.start()
    return channels, base_us


def machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine so far (all but idle and iowait), from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def run_realtime(clips: dict[str, Clip], patterns: Sequence[str], count: int, *, window_s: float,
                 pixel_format: str, buffers: int) -> list:
    channels, base_us = start_channels(clips, patterns, count, pixel_format, buffers)
    t0_us = base_us + round(WARMUP_S * 1_000_000)
    _sleep_until(t0_us)
    cpu0, busy0 = time.process_time(), machine_busy_s()
    t1_us = t0_us + round(window_s * 1_000_000)
    _sleep_until(t1_us)
    cpu1, busy1 = time.process_time(), machine_busy_s()
    time.sleep(0.5)  # let frames due before the end come out
    for channel in channels:
        channel.encoder.close()
    for channel in channels:
        channel.thread.join(10)
    return _realtime_row(channels, patterns, (t0_us, t1_us), window_s, cpu1 - cpu0, busy1 - busy0)


def _sleep_until(monotonic_us: int) -> None:
    time.sleep(max(0.0, monotonic_us / 1_000_000 - time.monotonic()))


def _realtime_row(channels: Sequence[Channel], patterns: Sequence[str], window: tuple[int, int], window_s: float,
                  cpu_s: float, busy_s: float) -> list:
    t0, t1 = window
    expected = round(window_s * FPS)
    encoded = [sum(t0 <= due < t1 for due, _ in ch.packets) for ch in channels]
    dropped = sum(sum(t0 <= due < t1 for due in ch.capture.dropped_due_us) for ch in channels)
    lags_ms = sorted(lag / 1000 for ch in channels for due, lag in ch.packets if t0 <= due < t1) or [float("nan")]
    errors = [f"ch{ch.channel_id}: {ch.error!r}" for ch in channels if ch.error]
    cores = len(_cores())
    worst = min(encoded) / expected
    ok = worst >= REALTIME_SHARE and not errors
    used = sorted({ch.pattern for ch in channels}, key=patterns.index)
    return [len(channels), ",".join(used), f"{cpu_s / window_s / cores * 100:.0f}",
            f"{max(0.0, busy_s - cpu_s) / window_s / cores * 100:.0f}",
            f"{cpu_s / max(1, sum(encoded)) * 1000:.2f}",
            f"{cpu_s / max(1, sum(encoded)) * FPS * len(channels):.2f}", f"{sum(encoded)}/{expected * len(channels)}",
            f"{worst * 100:.1f}", dropped, f"{lags_ms[len(lags_ms) // 2]:.1f}",
            f"{lags_ms[int(len(lags_ms) * 0.99)]:.1f}", f"{lags_ms[-1]:.1f}",
            ("yes" if ok else "**no**") + (f" ({'; '.join(errors)})" if errors else "")]


# --- encoder identity ------------------------------------------------------------------------------

def encoder_identity(clip: Clip, work: Path) -> list[list]:
    """The x264 version and option string each side writes into its stream, so the comparison is fair."""
    nvr_data = _nvr_first_bytes(clip)
    out = work / "identity.h264"
    subprocess.run(ffmpeg_command(clip.files["yuv420p"], "yuv420p", out, frames=2), check=True)
    ff_data = out.read_bytes()
    out.unlink()
    nvr_info, ff_info = _x264_sei(nvr_data), _x264_sei(ff_data)
    same = nvr_info[1] == ff_info[1]
    return [["nvr (PyAV " + av.__version__ + ", bundled libx264)", nvr_info[0], "same" if same else nvr_info[1]],
            ["ffmpeg (" + _ffmpeg_version() + ", Debian libx264)", ff_info[0], "same" if same else ff_info[1]]]


def _nvr_first_bytes(clip: Clip) -> bytes:
    clocks = SimulatedClocks()
    capture = ClipCapture(clip.load("yuv420p"), "yuv420p", clocks=clocks, paced=False, count=2)
    encoder = EncodedCapture(capture, name="identity", clocks=clocks, bitrate=BITRATE, preset=PRESET)
    encoder.open()
    return b"".join(packet.data for packet in encoder.packets())


def _x264_sei(data: bytes) -> tuple[str, str]:
    match = re.search(rb"x264 - core (\d+)[^\x00]*? - options: ([^\x00]*)", data)
    if not match:
        return "?", "?"
    return f"core {match.group(1).decode()}", match.group(2).decode(errors="replace")


def _ffmpeg_version() -> str:
    first = subprocess.run([FFMPEG, "-version"], capture_output=True, text=True, check=True).stdout.split("\n", 1)[0]
    return " ".join(first.split()[:3])


# --- main -----------------------------------------------------------------------------------------

def _cores() -> set[int]:
    return os.sched_getaffinity(0)


def _patterns(spec: str) -> list[str]:
    if spec == "auto":
        return list(_AUTO_ORDER)
    names = [p.strip() for p in spec.split(",") if p.strip()]
    unknown = [p for p in names if p not in PATTERNS]
    if unknown:
        raise SystemExit(f"unknown pattern(s) {unknown!r}; choose from {', '.join(PATTERNS)} or auto")
    return names


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--channels", default="1,4,8,10,12", help="channel counts for the real-time runs")
    parser.add_argument("--window-s", type=float, default=30.0, help="measured window of each real-time run")
    parser.add_argument("--clip-s", type=float, default=8.0, help="length of each pattern's clip (looped)")
    parser.add_argument("--patterns", default="auto",
                        help="comma-separated patterns; channel n gets the n-th (cycling); auto = nvr's order")
    parser.add_argument("--noise", type=float, default=2.0, help="gaussian noise sigma in code values (0 = clean)")
    parser.add_argument("--noise-sweep", default="0,1,2,4", help="sigmas for the noise table ('' to skip)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per throughput measurement (least CPU counts)")
    parser.add_argument("--buffers", type=int, default=4, help="capture ring size before frames drop")
    parser.add_argument("--realtime-format", choices=FORMATS, default="yuyv422")
    parser.add_argument("--quick", action="store_true", help="3 s clips, 1 repeat, no noise sweep, 10 s windows, N = 1, 8")
    parser.add_argument("--parts", default="1,2,3", help="tables to produce: 1 (with 1b), 2, 3")
    parser.add_argument("--dir", type=Path, help="work folder (default: a temporary one under /var/tmp)")
    args = parser.parse_args()
    args.parts = set(args.parts.split(","))
    if args.quick:
        args.clip_s, args.repeats, args.noise_sweep, args.window_s, args.channels = 3.0, 1, "", 10.0, "1,8"
    return args


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)
    args = parse_args()
    patterns = _patterns(args.patterns)
    with tempfile.TemporaryDirectory(prefix="nvr-bench-encode-", dir=args.dir or "/var/tmp") as tmp:
        work = Path(tmp)
        clips = {p: make_clip(work, p, i + 1, seconds=args.clip_s, noise=args.noise) for i, p in enumerate(patterns)}
        print_header(args, patterns, clips)
        if "1" in args.parts:
            print_throughput(args, clips, patterns, work)
        if "2" in args.parts:
            print_table("2. YUYV -> yuv420p, per D1 frame", ["way", "CPU ms/frame"],
                        bench_conversion(clips[patterns[0]], work))
        if "3" in args.parts:
            print_realtime(args, clips, patterns)


def print_throughput(args: argparse.Namespace, clips: dict[str, Clip], patterns: Sequence[str], work: Path) -> None:
    print_table("Encoders compared (x264 version and option string from each stream's SEI)",
                ["side", "x264", "options"], encoder_identity(clips[patterns[0]], work))
    print_table(f"1. Throughput, one channel as fast as it goes, best of {args.repeats}: CPU s per s of video "
                f"(goal: ratio <= 1.1)",
                ["input", "pattern", "nvr CPU s/s", "ffmpeg CPU s/s", "ratio nvr/ffmpeg", "nvr kb/s",
                 "ffmpeg kb/s", "channels on all cores (nvr)"],
                bench_throughput(list(clips.values()), work, args.repeats))
    if args.noise_sweep:
        (work / "noise").mkdir()
        sigmas = [float(v) for v in args.noise_sweep.split(",")]
        print_table(f"1b. Noise against encoder CPU, nvr path, YUYV, {patterns[0]} pattern",
                    ["noise sigma", "luma SNR dB", "CPU s/s", "CPU ms/frame", "kb/s", "channels on all cores"],
                    bench_noise(work, patterns[0], sigmas, args.clip_s / 2))


def print_header(args: argparse.Namespace, patterns: Sequence[str], clips: dict[str, Clip]) -> None:
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"{len(_cores())} cores ({_cpu_model()}), load average {load} at start; D1 {WIDTH}x{HEIGHT}@{FPS}, "
          f"libx264 {PRESET}/zerolatency, {BITRATE // 1000} kb/s, keyint {KEYINT}, 1 thread per channel; "
          f"noise sigma {args.noise:g}; {args.clip_s:g} s clip per pattern: {', '.join(patterns)}")
    print(f"frame generation (not counted): TestPatternCapture.render {_mean(c.render_ms for c in clips.values()):.2f}"
          f" ms/frame, YUYV packing + noise {_mean(c.noise_ms for c in clips.values()):.2f} ms/frame")


def print_realtime(args: argparse.Namespace, clips: dict[str, Clip], patterns: Sequence[str]) -> None:
    rows = [run_realtime(clips, patterns, int(n), window_s=args.window_s, pixel_format=args.realtime_format,
                         buffers=args.buffers) for n in args.channels.split(",")]
    print_table(f"3. Real time, {args.realtime_format} input, {args.window_s:g} s window, ring of {args.buffers} "
                f"frames (goal: >= 8 channels)",
                ["N", "patterns", "nvr CPU % of cores", "other load %", "CPU ms/frame", "cores needed", "frames encoded",
                 "worst channel %", "dropped", "lag p50 ms", "lag p99 ms", "lag max ms", "real time"], rows)
    print(f"\nmax channels in real time (of those tried): {_max_prefix(rows)}")


def _max_prefix(rows: Sequence[Sequence]) -> int:
    best = 0
    for row in sorted(rows, key=lambda r: r[0]):
        if row[-1] != "yes":
            break
        best = row[0]
    return best


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


if __name__ == "__main__":
    main()
