"""bench/remux: CPU of recording N RTSP cameras with `nvr run` versus N `ffmpeg -c copy` segmenters.

    ./dev bench remux [--streams 1,8,32,64] [--window-s 60] [--warmup-s 8] [--mounts 8] [--quick]
                      [--fsync-cost] [--client auto|native|ffmpeg] [--dir /var/tmp]

The cameras are the GStreamer test server looping one pre-encoded 1080p25 H.264 clip (~4 Mb/s, GOP
2 s, no B-frames) on `--mounts` shared mounts: the server never encodes, so 64 cameras cost it one
payloader per mount plus the sending. The clip is encoded once and kept in the work folder.

For each N, two phases run one after the other with the same window: `nvr run` recording N rtsp
channels (real fsync, data under the work folder), then N processes of exactly the command Frigate
runs, `ffmpeg -rtsp_transport tcp -i URL -c copy -f segment -segment_time 60 -segment_format mp4`
(Debian's ffmpeg, -loglevel error). CPU is user+system time from /proc/<pid>/stat over the window,
after a warm-up from the moment every stream is connected. The server's CPU is measured apart, and so
are kernel threads (the journal and writeback work that fsync forces lands there) and every other
process (a busy machine makes the numbers unreliable: see the "others" column).
Recorded bytes are the growth of the output files over the window, against the clip's bit rate;
for nvr also the frames, read back from the fragments on disk, against 25 per second per stream.

Goals (issue): ratio nvr/ffmpeg <= 1.0, and 64 streams recorded in under 50 % of 2 cores.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
BENCH_PASSWORD = "bench-password-1"

from appliance.web.users import UserStore  # noqa: E402
from appliance.web.client import ApiClient  # noqa: E402
from bench.common import print_table  # noqa: E402
from base.clock import RealClocks  # noqa: E402
from recorder.fmp4 import read_segment  # noqa: E402
from recorder.mp4 import Mp4Error  # noqa: E402
from support.rtsp import SYSTEM_FFMPEG, RtspServer, rtsp_available  # noqa: E402

FPS = 25
SHORT_FRACTION = 0.9  # a stream that recorded less than this share of what was sent counts as short
CLK_TCK = os.sysconf("SC_CLK_TCK")
# `nvr run` as the appliance runs it, but with the Appliance's sync switched off: only to price fsync.
NO_SYNC_NVR = ("import sys, appliance.app as a; a.Appliance.__init__.__kwdefaults__['sync'] = False; "
               "from appliance.cli import main; sys.exit(main(sys.argv[1:]))")


# measuring


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far; a zombie still answers."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15)


def all_cpu_s() -> dict[int, tuple[float, bool]]:
    """CPU seconds so far of every process, and whether it is a kernel thread."""
    out = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            out[int(entry.name)] = ((int(fields[11]) + int(fields[12])) / CLK_TCK, fields[1] == "2")  # ppid 2: kthreadd
    return out


def background_s(before: dict[int, tuple[float, bool]], after: dict[int, tuple[float, bool]],
                 measured: set[int]) -> tuple[float, float]:
    """CPU seconds between two `all_cpu_s` of kernel threads and of other processes, outside `measured`
    (a process that started meanwhile counts whole, one that ended is missed)."""
    kernel = others = 0.0
    for pid, (cpu, kthread) in after.items():
        if pid in measured:
            continue
        used = cpu - before.get(pid, (0.0, kthread))[0]
        if kthread:
            kernel += used
        else:
            others += used
    return kernel, others


@dataclass
class Sample:
    """Counters at one instant of a phase."""

    at: float
    cpu_s: float
    server_cpu_s: float
    processes: dict[int, tuple[float, bool]]
    bytes: list[int]
    frames: list[int] | None
    reconnects: int = 0
    failures: int = 0

    @staticmethod
    def counts(streams: list[dict]) -> tuple[int, int]:
        """Connections made and failures, summed over the streams of nvr's status API."""
        return sum(s["connects"] for s in streams), sum(s["failures"] for s in streams)


@dataclass
class PhaseResult:
    tool: str
    streams: int
    window_s: float
    cpu_s: float
    server_cpu_s: float
    bytes: list[int]
    frames: list[int] | None
    kernel_cpu_s: float = 0.0
    others_cpu_s: float = 0.0
    reconnects: int = 0
    failures: int = 0
    exited: int = 0
    notes: list[str] = field(default_factory=list)

    def per_stream_minute(self) -> float:
        return self.cpu_s / (self.streams * self.window_s / 60)

    def percent_of_cores(self, cpu_s: float | None = None) -> float:
        return 100 * (self.cpu_s if cpu_s is None else cpu_s) / (self.window_s * os.cpu_count())

    def short_streams(self, expected_bytes: float) -> int:
        if self.frames is not None:
            return sum(f < SHORT_FRACTION * FPS * self.window_s for f in self.frames)
        return sum(b < SHORT_FRACTION * expected_bytes for b in self.bytes)


def window(before: Sample, after: Sample, phase: PhaseResult, measured: set[int]) -> PhaseResult:
    phase.window_s = after.at - before.at
    phase.cpu_s = after.cpu_s - before.cpu_s
    phase.server_cpu_s = after.server_cpu_s - before.server_cpu_s
    phase.kernel_cpu_s, phase.others_cpu_s = background_s(before.processes, after.processes, measured)
    phase.reconnects = after.reconnects - before.reconnects
    phase.failures = after.failures - before.failures
    phase.bytes = [b - a for a, b in zip(before.bytes, after.bytes)]
    if before.frames is not None:
        phase.frames = [b - a for a, b in zip(before.frames, after.frames)]
    return phase


# the clip and the server


@dataclass(frozen=True)
class Clip:
    path: Path
    frames: int
    keyframes: int
    bytes: int

    @property
    def seconds(self) -> float:
        return self.frames / FPS

    @property
    def bitrate(self) -> float:
        return self.bytes * 8 / self.seconds


def ensure_clip(folder: Path, *, seconds: int, bitrate: str) -> Clip:
    """A 1080p25 H.264 clip (GOP 2 s, no B-frames, capped at `bitrate`), encoded once and kept."""
    path = folder / f"clip-1080p25-{bitrate}-{seconds}s.h264"
    if not path.exists():
        print(f"encoding the {seconds} s clip once (kept as {path}) ...", flush=True)
        tmp = path.with_suffix(".tmp.h264")
        subprocess.run([
            SYSTEM_FFMPEG, "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate={FPS}",
            "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-bf", "0",
            "-g", str(2 * FPS), "-keyint_min", str(2 * FPS), "-sc_threshold", "0",
            "-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate, str(tmp),
        ], check=True, capture_output=True, timeout=600)
        tmp.rename(path)
    return measure_clip(path)


def measure_clip(path: Path) -> Clip:
    import av

    frames = keyframes = 0
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            if packet.size:
                frames += 1
                keyframes += packet.is_keyframe
    return Clip(path, frames, keyframes, path.stat().st_size)


def start_server(clip: Clip, mounts: int) -> RtspServer:
    return RtspServer(ready_timeout_s=60).start({f"/clip{m}": f"file:{clip.path}" for m in range(mounts)})


def stream_urls(server: RtspServer, count: int, mounts: int) -> list[str]:
    return [server.url(f"/clip{i % mounts}") for i in range(count)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# the nvr phase


def nvr_config(root: Path, urls: list[str], port: int, client: str = "auto") -> str:
    """The appliance's config for N rtsp channels read by RTSP client `client`. Retention is held off
    (99 % used, 256 MiB free): on a disk fuller than the default 90 % it would delete what the window
    is measuring."""
    channels = "".join(
        f"  - id: {i}\n    source:\n      type: rtsp\n      url: {url}\n      client: {client}\n"
        for i, url in enumerate(urls, start=1)
    )
    return (f"storage:\n  path: {root}\n  segment_seconds: 60\n"
            f"  retention:\n    max_used_percent: 99\n    min_free_bytes: 256MiB\n"
            f"channels:\n{channels}web:\n  listen: 127.0.0.1:{port}\n")


def check_space(folder: Path, clip: Clip, args) -> None:
    """Warn when the largest phase may not fit: nvr's retention would then delete during the window."""
    needed = max(args.counts) * clip.bitrate / 8 * (args.warmup_s + args.window_s + 60) + 2**30
    free = shutil.disk_usage(folder).free
    if free < needed:
        print(f"warning: {free / 1e9:.1f} GB free under {folder}, the largest phase needs about "
              f"{needed / 1e9:.1f} GB; recorded amounts will be short", file=sys.stderr, flush=True)


class NvrProcess:
    """`nvr run` on a generated config, watched through its status API."""

    def __init__(self, work: Path, urls: list[str], *, sync: bool, client: str = "auto"):
        self.root = work / "nvr-data"
        self.port = free_port()
        config = work / "nvr.yaml"
        config.write_text(nvr_config(self.root, urls, self.port, client))
        users = UserStore(self.root, clocks=RealClocks())  # the health API needs a login
        users.add_user("bench", BENCH_PASSWORD, "viewer", replace=True)
        users.close()
        self.api = ApiClient(f"http://127.0.0.1:{self.port}", "bench", BENCH_PASSWORD)
        entry = ["-m", "appliance.cli"] if sync else ["-c", NO_SYNC_NVR]
        self.log_path = work / "nvr.log"
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([sys.executable, *entry, "run", "--config", str(config)], cwd=ROOT,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.count = len(urls)

    def health(self) -> dict | None:
        try:
            return self.api.get_json("/api/health")
        except (OSError, ValueError):
            return None

    def wait_connected(self, timeout_s: float) -> int:
        """Wait until every stream is connected; returns how many are."""
        deadline, connected = time.monotonic() + timeout_s, 0
        while time.monotonic() < deadline and self.proc.poll() is None:
            health = self.health()
            if health is not None:
                connected = sum(s["connected"] for s in health["streams"])
                if connected == self.count:
                    break
            time.sleep(0.5)
        return connected

    def disk(self) -> tuple[list[int], list[int]]:
        """Bytes and complete frames on disk per stream (fragments read back from the files)."""
        sizes, frames = [], []
        for channel in range(1, self.count + 1):
            size = count = 0
            for path in (self.root / f"ch{channel:02d}" / "main").glob("*.mp4"):
                try:
                    contents = read_segment(path)
                except (Mp4Error, OSError):
                    continue  # just created: no moov yet
                size += contents.file_bytes
                count += len(contents.samples)
            sizes.append(size)
            frames.append(count)
        return sizes, frames

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


def run_nvr(server: RtspServer, urls: list[str], work: Path, args, *, sync: bool = True) -> PhaseResult:
    nvr = NvrProcess(work, urls, sync=sync, client=args.client)
    try:
        connected = nvr.wait_connected(30 + len(urls))
        label = "nvr" if args.client == "auto" else f"nvr ({args.client} client)"
        result = PhaseResult(label if sync else f"{label}, no fsync", len(urls), 0, 0, 0, [], None)
        if connected < len(urls):
            result.notes.append(f"only {connected} of {len(urls)} streams connected before the warm-up")
        time.sleep(args.warmup_s)

        def sample(streams: list[dict]) -> Sample:
            at, cpu, srv, procs = time.monotonic(), proc_cpu_s(nvr.proc.pid), proc_cpu_s(server.pid), all_cpu_s()
            connects, failures = Sample.counts(streams)
            return Sample(at, cpu, srv, procs, *nvr.disk(), reconnects=connects, failures=failures)

        def streams() -> list[dict]:  # the status API costs nvr CPU: asked before the window and after it
            return (nvr.health() or {"streams": []})["streams"]

        before = sample(streams())
        time.sleep(args.window_s)
        after = sample([])
        after.reconnects, after.failures = Sample.counts(streams())
        if nvr.proc.poll() is not None:
            result.notes.append(f"nvr exited with {nvr.proc.returncode} during the window")
        if before.failures:
            result.notes.append(f"{before.failures} failure(s) while starting")
        return window(before, after, result, {nvr.proc.pid, server.pid, os.getpid()})
    finally:
        code = nvr.stop()
        if code != 0:
            print(f"nvr exited with {code}; its log: {nvr.log_path}", file=sys.stderr)
        summarize_log(nvr.log_path)


def summarize_log(path: Path) -> None:
    """Count the nvr log's warnings and errors by kind (channel numbers and URLs taken out)."""
    kinds: dict[str, int] = {}
    for line in path.read_text().splitlines():
        if " WARNING " in line or " ERROR " in line:
            text = re.sub(r"rtsp://\S+|channel \d+|[+-]?\d+(\.\d+)?", "#", line.split(" ", 3)[3])
            kinds[text] = kinds.get(text, 0) + 1
    for text, count in sorted(kinds.items(), key=lambda kv: -kv[1])[:8]:
        print(f"    nvr log, {count}x: {text[:160]}", flush=True)


# the ffmpeg phase


def ffmpeg_command(url: str, out: Path) -> list[str]:
    """What Frigate's recording process boils down to (stdin is /dev/null rather than -nostdin)."""
    return [SYSTEM_FFMPEG, "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url, "-c", "copy", "-f", "segment",
            "-segment_time", "60", "-segment_format", "mp4", str(out / "%05d.mp4")]


class FfmpegProcesses:
    """N ffmpeg recorders, each writing segments (and its stderr) into a folder of its own."""

    def __init__(self, work: Path, urls: list[str]):
        self.outs = [work / f"ffmpeg-{i:02d}" for i in range(len(urls))]
        self.procs = []
        for url, out in zip(urls, self.outs):
            out.mkdir()
            with open(out / "stderr.txt", "w") as stderr:  # the child keeps its own copy of the descriptor
                self.procs.append(subprocess.Popen(ffmpeg_command(url, out), stdin=subprocess.DEVNULL,
                                                   stdout=subprocess.DEVNULL, stderr=stderr))

    def wait_connected(self, timeout_s: float) -> int:
        """Wait until every process has begun writing its first segment; returns how many have."""
        deadline = time.monotonic() + timeout_s
        while True:
            started = sum(any(size > 0 for size in self._sizes(out)) for out in self.outs)
            if started == len(self.outs) or time.monotonic() > deadline:
                return started
            time.sleep(0.5)

    @staticmethod
    def _sizes(out: Path) -> list[int]:
        return [p.stat().st_size for p in out.glob("*.mp4")]

    def cpu_s(self) -> float:
        return sum(proc_cpu_s(p.pid) for p in self.procs)

    def disk(self) -> list[int]:
        return [sum(self._sizes(out)) for out in self.outs]

    def exited(self) -> int:
        return sum(p.poll() is not None for p in self.procs)

    def stop(self) -> list[str]:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # ffmpeg finishes its segment (writes the moov) and exits
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        errors = [(out / "stderr.txt").read_text().strip() for out in self.outs]
        return [e for e in errors if e]


def run_ffmpeg(server: RtspServer, urls: list[str], work: Path, args) -> PhaseResult:
    group = FfmpegProcesses(work, urls)
    try:
        result = PhaseResult("ffmpeg", len(urls), 0, 0, 0, [], None)
        started = group.wait_connected(30 + len(urls))
        if started < len(urls):
            result.notes.append(f"only {started} of {len(urls)} ffmpeg processes wrote before the warm-up")
        time.sleep(args.warmup_s)

        def sample() -> Sample:
            at, cpu, srv, procs = time.monotonic(), group.cpu_s(), proc_cpu_s(server.pid), all_cpu_s()
            return Sample(at, cpu, srv, procs, group.disk(), None)

        exited_before = group.exited()
        before = sample()
        time.sleep(args.window_s)
        after = sample()
        result.exited = group.exited()
        if result.exited > exited_before:
            result.notes.append(f"{result.exited - exited_before} ffmpeg process(es) exited during the window")
        return window(before, after, result, {p.pid for p in group.procs} | {server.pid, os.getpid()})
    finally:
        for error in group.stop()[:5]:
            print(f"  ffmpeg stderr: {error[:300]}", file=sys.stderr)


# running and reporting


def run_phase(kind: str, count: int, clip: Clip, work: Path, args) -> PhaseResult:
    """One phase on a server of its own, so no phase inherits another's hundred teardowns."""
    folder = Path(tempfile.mkdtemp(prefix=f"{kind}-{count}-", dir=work))
    print(f"  {kind}: {count} stream(s), {args.warmup_s:g} s warm-up, {args.window_s:g} s window ...", flush=True)
    try:
        with start_server(clip, args.mounts) as server:
            urls = stream_urls(server, count, args.mounts)
            if kind == "ffmpeg":
                return run_ffmpeg(server, urls, folder, args)
            return run_nvr(server, urls, folder, args, sync=kind == "nvr")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def expected_mb(clip: Clip, phase: PhaseResult) -> float:
    return clip.bitrate / 8 * phase.window_s * phase.streams / 1e6


def main_row(clip: Clip, nvr: PhaseResult, ffmpeg: PhaseResult) -> list:
    ratio = nvr.per_stream_minute() / ffmpeg.per_stream_minute() if ffmpeg.cpu_s else float("nan")
    return [
        nvr.streams, f"{nvr.per_stream_minute():.3f}", f"{ffmpeg.per_stream_minute():.3f}", f"{ratio:.2f}",
        f"{nvr.percent_of_cores():.1f}", f"{ffmpeg.percent_of_cores():.1f}",
        f"{nvr.percent_of_cores(nvr.server_cpu_s):.1f} / {ffmpeg.percent_of_cores(ffmpeg.server_cpu_s):.1f}",
        f"{sum(nvr.bytes) / 1e6:.0f} ({expected_mb(clip, nvr):.0f})", f"{sum(ffmpeg.bytes) / 1e6:.0f}",
    ]


def detail_row(clip: Clip, phase: PhaseResult) -> list:
    expected_frames = FPS * phase.window_s * phase.streams
    frames = f"{sum(phase.frames)} / {expected_frames:.0f}" if phase.frames is not None else "n/a"
    expected_bytes = clip.bitrate / 8 * phase.window_s
    return [
        phase.streams, phase.tool, f"{phase.window_s:.1f}", f"{phase.cpu_s:.1f}", f"{phase.per_stream_minute():.3f}",
        f"{1000 * phase.cpu_s / max(sum(phase.bytes) / 1e6, 1e-9):.1f}",
        f"{phase.percent_of_cores():.1f}", f"{phase.percent_of_cores(phase.server_cpu_s):.1f}",
        f"{phase.percent_of_cores(phase.kernel_cpu_s):.1f}", f"{phase.percent_of_cores(phase.others_cpu_s):.1f}",
        f"{sum(phase.bytes) / 1e6:.0f} / {expected_mb(clip, phase):.0f}", frames,
        phase.short_streams(expected_bytes), f"{phase.reconnects} / {phase.failures}" if phase.tool != "ffmpeg"
        else f"{phase.exited} exited", "; ".join(phase.notes),
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", default="1,8,32,64", help="comma-separated stream counts (default 1,8,32,64)")
    parser.add_argument("--window-s", type=float, default=60.0, help="measuring window per phase (default 60)")
    parser.add_argument("--warmup-s", type=float, default=8.0,
                        help="wait after every stream is connected, before the window (default 8)")
    parser.add_argument("--mounts", type=int, default=8, help="server mounts the streams are spread over (default 8)")
    parser.add_argument("--clip-s", type=int, default=30, help="length of the looped clip (default 30)")
    parser.add_argument("--bitrate", default="4M", help="the clip's bit rate cap, ffmpeg syntax (default 4M)")
    parser.add_argument("--quick", action="store_true", help="N = 1,8 with 20 s windows and 5 s warm-ups")
    parser.add_argument("--fsync-cost", action="store_true",
                        help="also record the largest N with fsync switched off, to price the per-fragment fsync")
    parser.add_argument("--only", choices=("nvr", "ffmpeg"), help="run one side only (for profiling)")
    parser.add_argument("--client", choices=("auto", "native", "ffmpeg"), default="auto",
                        help="nvr's RTSP client (channels[].source.client; default auto, i.e. the native one)")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"),
                        help="work folder's parent; the clip is kept there (default /var/tmp)")
    args = parser.parse_args(argv)
    if args.quick:
        args.streams, args.window_s, args.warmup_s = "1,8", 20.0, 5.0
    args.counts = [int(n) for n in args.streams.split(",")]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ok, reason = rtsp_available()
    if not ok:
        print(f"bench remux needs the GStreamer RTSP server: {reason}", file=sys.stderr)
        return 1
    keep = args.dir / "nvr-bench-remux"
    keep.mkdir(parents=True, exist_ok=True)
    clip = ensure_clip(keep, seconds=args.clip_s, bitrate=args.bitrate)
    print(f"clip: {clip.path.name}, {clip.frames} frames ({clip.seconds:.0f} s, {clip.keyframes} keyframes), "
          f"measured {clip.bitrate / 1e6:.2f} Mb/s; served on {args.mounts} shared mount(s) of a fresh server per phase, "
          f"streams spread over them; "
          f"{os.cpu_count()} cores", flush=True)
    check_space(args.dir, clip, args)
    rows, details, fsync_notes = [], [], []
    with tempfile.TemporaryDirectory(prefix="remux-", dir=args.dir) as tmp:
        for count in args.counts:
            kinds = [args.only] if args.only else ["nvr", "ffmpeg"]
            if args.fsync_cost and count == max(args.counts):
                kinds.append("nvr-nosync")
            phases = {kind: run_phase(kind, count, clip, Path(tmp), args) for kind in kinds}
            details += [detail_row(clip, p) for p in phases.values()]
            if "nvr" in phases and "nvr-nosync" in phases:
                fsync_notes.append(fsync_note(phases["nvr"], phases["nvr-nosync"]))
            if "nvr" in phases and "ffmpeg" in phases:
                rows.append(main_row(clip, phases["nvr"], phases["ffmpeg"]))
    cores = os.cpu_count()
    window_s = args.window_s
    if rows:
        print_table(
            f"nvr vs ffmpeg -c copy, 1080p25 H.264 at {clip.bitrate / 1e6:.2f} Mb/s per stream, {window_s:g} s windows "
            f"(goal: ratio <= 1.0; 64 streams under 50 % of 2 cores)",
            ["N", "nvr CPU s per stream-min", "ffmpeg CPU s per stream-min", "ratio", f"nvr % of {cores} cores",
             f"ffmpeg % of {cores} cores", f"server % of {cores} cores (nvr / ffmpeg phase)", "nvr recorded MB (expected)",
             "ffmpeg recorded MB"], rows)
    print_table(
        f"Per phase, over the window: CPU (% of {cores} cores) of the recorder, the server, kernel threads "
        f"(journal, writeback) and other processes (noise); "
        f"short = streams that recorded under {SHORT_FRACTION:.0%} of what was sent",
        ["N", "recorder", "window s", "CPU s", "CPU s per stream-min", "CPU ms per MB recorded", f"% of {cores} cores", "server %", "kernel threads %", "others %",
         "MB recorded / sent", "frames recorded / sent", "short", "reconnects / failures", "notes"], details)
    for note in fsync_notes:
        print(f"\n{note}")
    return 0


def fsync_note(synced: PhaseResult, unsynced: PhaseResult) -> str:
    cost = synced.per_stream_minute() - unsynced.per_stream_minute()
    kernel = (synced.kernel_cpu_s - unsynced.kernel_cpu_s) / (synced.streams * synced.window_s / 60)
    return (f"fsync per fragment at N={synced.streams}: nvr {synced.per_stream_minute():.3f} CPU s per stream-min with it, "
            f"{unsynced.per_stream_minute():.3f} without: {cost:+.3f} in the recorder ({cost / synced.per_stream_minute():+.0%}), "
            f"{kernel:+.3f} in kernel threads (one run each: differences under ~10 % are noise)")


if __name__ == "__main__":
    sys.exit(main())
