"""bench/rtsp_server: CPU of the box's RTSP server (appliance/rtsp_server) at N streams with V viewers each.

    ./dev bench rtsp_server [--cases 1x1,4x2,16x1,16x2] [--window-s 15] [--warmup-s 4] [--size 1920x1080]
                            [--bitrate 4000000] [--transport tcp|udp]

The live taps are fed by this process replaying one pre-encoded clip (libx264, 25 fps, GOP 2 s, constant
bit rate) into N streams in real time, as the recorder would publish them; nothing is recorded, so what is
measured is the server alone: the engine process (GStreamer's RTSP server under the system python3) and
the appliance's feeder threads (one per watched stream: Annex B framing and the pipe). The viewers are
`ffmpeg -rtsp_transport tcp -i URL -c copy -f null -` (Debian's ffmpeg), logged in with Digest; their CPU
and everything else on the machine ("others", from /proc/stat) are shown apart, since on a shared
2-core machine they decide how reliable the server's figures are.
CPU is user+system time from /proc over the window, in percent of one core.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from appliance.config.model import parse_config  # noqa: E402
from appliance.rtsp_server.service import RtspServerService  # noqa: E402
from appliance.web.users import UserStore  # noqa: E402
from base.clock import RealClocks  # noqa: E402
from base.media import EncodedPacket  # noqa: E402
from bench.common import encode_clip, print_table  # noqa: E402
from recorder.live import LiveHub  # noqa: E402
from support.web import free_port  # noqa: E402

TICKS_S = os.sysconf("SC_CLK_TCK")
PASSWORD = "bench-pass-1"


def proc_cpu_s(path: str) -> float:
    """utime + stime of /proc/<pid>/stat or /proc/self/task/<tid>/stat, in seconds (0 once it is gone)."""
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS_S


def machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine (all cores) from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / TICKS_S  # minus idle and iowait


class Replay:
    """Publishes the clip into `streams` live taps at its frame rate, looping, until stopped."""

    def __init__(self, hub: LiveHub, channels: int, info, packets: list[EncodedPacket], fps: int):
        self._taps = [hub.stream(ch, "main") for ch in range(1, channels + 1)]
        self._info, self._packets, self._fps = info, packets, fps
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="replay", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for tap in self._taps:
            tap.publish_run(self._info)
        clip_ticks, start, n = len(self._packets) * 90_000 // self._fps, time.monotonic(), 0
        while not self._stop.is_set():
            loop, p = divmod(n, len(self._packets))
            packet = self._packets[p]
            shifted = EncodedPacket(packet.data, packet.pts + loop * clip_ticks, packet.dts + loop * clip_ticks,
                                    packet.keyframe, time.monotonic_ns() // 1000)
            for tap in self._taps:
                tap.publish(shifted)
            n += 1
            time.sleep(max(0.0, start + n / self._fps - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self.thread.join()


def run_case(channels: int, viewers: int, clip, args, work: Path) -> list:
    info, packets = clip
    port = free_port()
    chans = "".join(f"  - {{id: {i}, source: {{type: test-pattern}}}}\n" for i in range(1, channels + 1))
    config = parse_config(f"storage: {{path: {work}/data}}\nchannels:\n{chans}"
                          f"rtsp_server: {{enabled: true, listen: 127.0.0.1:{port}}}\n", base_dir=work)
    users = UserStore(work / f"users-{channels}x{viewers}", clocks=RealClocks())
    users.add_user("bench", PASSWORD, "viewer")
    hub = LiveHub()
    replay = Replay(hub, channels, info, packets, args.fps)
    service = RtspServerService(config, live=hub, users=users)
    service.start()
    clients = []
    try:
        for ch in range(1, channels + 1):
            for _ in range(viewers):
                clients.append(subprocess.Popen(
                    ["/usr/bin/ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", args.transport, "-i",
                     f"rtsp://bench:{PASSWORD}@127.0.0.1:{service.port}/ch{ch}/main", "-c", "copy", "-f", "null", "-"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 60
        while len(service.statistics()["watched"]) < channels and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(args.warmup_s)
        return measure(service, clients, replay, channels, viewers, args)
    finally:
        for client in clients:
            client.terminate()
        for client in clients:
            try:
                client.wait(5)
            except subprocess.TimeoutExpired:  # an ffmpeg waiting on its TEARDOWN answer behind queued RTP data
                client.kill()
                client.wait()
        service.stop()
        replay.stop()
        users.close()


def measure(service, clients, replay, channels, viewers, args) -> list:
    engine = f"/proc/{service.statistics()['engine_pid']}/stat"
    feeders = [f"/proc/self/task/{t.native_id}/stat" for t in threading.enumerate() if t.name.startswith("rtsp feed")]
    replay_task = f"/proc/self/task/{replay.thread.native_id}/stat"
    viewer_stats = [f"/proc/{c.pid}/stat" for c in clients]

    def sample():
        return (proc_cpu_s(engine), sum(proc_cpu_s(f) for f in feeders), sum(proc_cpu_s(v) for v in viewer_stats),
                proc_cpu_s(replay_task), proc_cpu_s("/proc/self/stat"), machine_busy_s(),
                sum(s["sent"] for s in service.statistics()["watched"].values()),
                sum(s["dropped"] for s in service.statistics()["watched"].values()))
    before, start = sample(), time.monotonic()
    time.sleep(args.window_s)
    after, elapsed = sample(), time.monotonic() - start
    d = [a - b for a, b in zip(after, before)]
    engine_pct, feeders_pct = 100 * d[0] / elapsed, 100 * d[1] / elapsed
    others_pct = 100 * (d[5] - d[0] - d[2] - d[4]) / elapsed
    alive = sum(1 for c in clients if c.poll() is None)
    return [f"{channels}x{viewers}", engine_pct, feeders_pct, engine_pct + feeders_pct,
            (engine_pct + feeders_pct) / (channels * viewers), 100 * d[2] / elapsed, 100 * d[3] / elapsed,
            others_pct, d[6] / elapsed / channels, d[7], f"{alive}/{len(clients)}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="1x1,4x2,16x1,16x2", help="STREAMSxVIEWERS, comma-separated")
    parser.add_argument("--window-s", type=float, default=15.0)
    parser.add_argument("--warmup-s", type=float, default=4.0)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--bitrate", type=int, default=4_000_000)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--transport", choices=("tcp", "udp"), default="tcp")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    clip = encode_clip(width=width, height=height, fps=args.fps, seconds=10, bitrate=args.bitrate)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-rtsp-") as work:
        for case in args.cases.split(","):
            channels, viewers = (int(v) for v in case.split("x"))
            rows.append(run_case(channels, viewers, clip, args, Path(work)))
            print(rows[-1], flush=True)
    print_table(f"RTSP server CPU, {args.size} {args.bitrate // 1000} kb/s {args.fps} fps, RTP over {args.transport.upper()}, "
                f"{args.window_s:g} s window, % of one core",
                ["streams x viewers", "engine %", "feeders %", "server %", "server % per viewer", "viewers (ffmpeg) %",
                 "replay %", "others %", "fed fps per stream", "dropped", "viewers alive"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
