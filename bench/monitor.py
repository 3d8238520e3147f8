"""bench/monitor: the local monitor's wall, frames per second, CPU and memory for 16 sub-streams and 4 D1 streams.

    ./dev bench monitor [--window-s 10] [--warmup-s 3] [--fps 25] [--size 1280x720] [--quick]

Input: one H.264 clip per test pattern (libx264 ultrafast, keyframe every 2 s, `hal.video.simulated`
patterns with their burnt-in clock and counter), encoded once into memory at 352x288 (a camera's
CIF sub-stream) and 720x576 (D1). During the run one thread per channel publishes its clip into a
`recorder.live.LiveHub` at 25 fps, paced by the monotonic clock and stamped with arrival times, as
a recording thread does; decoded scenarios then run the monitor's real path (subscription, PyAV
software decode, drop-to-keyframe when late, swscale to the tile, compose, OSD). The "raw" rows
publish raw frames instead, as an analog channel's frame tap does, so the wall only scales them.
The display is the offscreen backend (a copy of each composed frame), so no X server or GPU
enters the numbers.

Measured over the window after the warm-up: wall frames shown per second; each tile's new
pictures per second (min and mean over tiles; a tile cannot exceed its 25 fps source); frames
decoded and dropped per second over all tiles; this process's CPU as % of one core (the publisher
threads are included, they only hand over bytes); the resident memory the monitor added (RSS with
the monitor running minus before it started) and the busy CPU of the rest of the machine, since
this host is shared. "compose ms" is the wall-clock time of one composition (tiles, OSD, status
bar): on a loaded host it includes waiting for a CPU and for the GIL. "CPU ms / wall frame" is all
of this process's CPU (decoding and scaling included) per frame shown: times the target fps it is
the share of a core the wall needs, however starved the run was.

Goals (issue 6): 16 tiles of 352x288 at >= 10 fps using under one core; 4 tiles of 720x576 at 25 fps.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cpu_seconds, encode_clip, print_table  # noqa: E402
from base.clock import RealClocks  # noqa: E402
from hal.display.offscreen import OffscreenDisplay  # noqa: E402
from base.media import EncodedPacket, RawFrame, StreamInfo  # noqa: E402
from hal.video.simulated import TestPatternCapture  # noqa: E402
from recorder.live import LiveHub  # noqa: E402

from appliance.config.monitor import MonitorConfig  # noqa: E402
from appliance.monitor import ChannelInfo, Monitor  # noqa: E402

SOURCE_FPS = 25
PATTERNS = ("bars", "ball", "checker", "gradient", "zoneplate")


@dataclass(frozen=True)
class Scenario:
    name: str
    tiles: int
    width: int
    height: int
    raw: bool


SCENARIOS = (Scenario("16 x 352x288 sub, decoded", 16, 352, 288, False),
             Scenario("4 x 720x576, decoded", 4, 720, 576, False),
             Scenario("16 x 352x288 analog, raw", 16, 352, 288, True),
             Scenario("4 x 720x576 analog, raw", 4, 720, 576, True))


class Publisher:
    """Publishes a channel's clip (or raw frames) into the hub at SOURCE_FPS until stopped."""

    def __init__(self, hub: LiveHub, channel: int, scenario: Scenario, clip, clocks: RealClocks):
        self._hub, self._channel, self._scenario, self._clip, self._clocks = hub, channel, scenario, clip, clocks
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        period_s = 1 / SOURCE_FPS
        start = time.monotonic() + (self._channel % 8) * period_s / 8  # channels out of phase, as cameras are
        n = 0
        live = self._hub.stream(self._channel, "main")
        if not self._scenario.raw:
            live.publish_run(self._clip[0])
        while not self._stop.is_set():
            delay = start + n * period_s - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            self._publish(live, n)
            n += 1

    def _publish(self, live, n: int) -> None:
        if self._scenario.raw:
            frames = self._clip
            live.publish_frame(RawFrame(frames[n % len(frames)], "yuv420p", self._scenario.width, self._scenario.height,
                                        self._clocks.monotonic_us(), n))
            return
        info, packets = self._clip
        loop, index = divmod(n, len(packets))
        source = packets[index]
        offset = loop * len(packets) * (90_000 // SOURCE_FPS)
        live.publish(EncodedPacket(source.data, source.pts + offset, source.dts + offset, source.keyframe,
                                   self._clocks.monotonic_us()))


def make_clips(scenario: Scenario, seconds: float) -> dict[str, object]:
    if scenario.raw:
        return {pattern: [TestPatternCapture(width=scenario.width, height=scenario.height, fps=SOURCE_FPS,
                                             pattern=pattern, clocks=None).render(n, n * 40_000)
                          for n in range(round(SOURCE_FPS * seconds))] for pattern in PATTERNS}
    clips = {}
    for pattern in PATTERNS:
        info, packets = _encode(pattern, scenario, seconds)
        clips[pattern] = (info, packets)
    return clips


def _encode(pattern: str, scenario: Scenario, seconds: float) -> tuple[StreamInfo, list[EncodedPacket]]:
    import bench.common as common
    original = common.TestPatternCapture

    def with_pattern(**kwargs):  # encode_clip draws "ball"; each channel here gets its own pattern
        return original(**{**kwargs, "pattern": pattern})

    common.TestPatternCapture = with_pattern
    try:
        bitrate = 400_000 if scenario.width < 500 else 1_500_000
        return encode_clip(width=scenario.width, height=scenario.height, fps=SOURCE_FPS, seconds=seconds,
                           bitrate=bitrate)
    finally:
        common.TestPatternCapture = original


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        values = [float(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def run(scenario: Scenario, clips: dict, *, size: tuple[int, int], fps: float, warmup_s: float,
        window_s: float) -> list:
    clocks, hub = RealClocks(), LiveHub()
    publishers = [Publisher(hub, channel, scenario, clips[PATTERNS[(channel - 1) % 5]], clocks)
                  for channel in range(1, scenario.tiles + 1)]
    for publisher in publishers:
        publisher.start()
    display = OffscreenDisplay(width=size[0], height=size[1], refresh_hz=fps)
    channels = [ChannelInfo(c, f"CAM {c}", raw=scenario.raw) for c in range(1, scenario.tiles + 1)]
    config = MonitorConfig(layout=scenario.tiles, fps=fps, evdev=False, backend="offscreen")
    rss_before = rss_bytes()
    monitor = Monitor(config, channels=channels, live=hub, clocks=clocks, open_display=lambda: display)
    monitor.start()
    try:
        time.sleep(warmup_s)
        before = _sample(monitor, display)
        time.sleep(window_s)
        after = _sample(monitor, display)
        rss_during = rss_bytes()
    finally:
        monitor.stop()
        for publisher in publishers:
            publisher.stop()
    return _row(scenario, before, after, rss_during - rss_before)


def _sample(monitor: Monitor, display: OffscreenDisplay) -> dict:
    feeds = monitor.statistics()["feeds"]
    return {"t": time.monotonic(), "cpu": cpu_seconds(), "shown": display.frames_shown, "machine": machine_busy(),
            "scaled": {f["channel"]: f["frames_scaled"] for f in feeds},
            "decoded": sum(f.get("frames_decoded", f["frames_in"]) for f in feeds),
            "dropped": sum(f["frames_dropped"] + f.get("tap_dropped", 0) for f in feeds),
            "compose_ms": monitor.statistics()["compose_ms_avg"]}


def _row(scenario: Scenario, before: dict, after: dict, rss_added: int) -> list:
    elapsed = after["t"] - before["t"]
    tile_fps = [(after["scaled"].get(c, 0) - before["scaled"].get(c, 0)) / elapsed for c in after["scaled"]]
    cpu_pct = 100 * (after["cpu"] - before["cpu"]) / elapsed
    busy = after["machine"][0] - before["machine"][0]
    total = after["machine"][1] - before["machine"][1]
    ncpu = os.cpu_count() or 1
    others_pct = max(0.0, 100 * ncpu * busy / total - cpu_pct) if total else 0.0
    return [scenario.name, f"{(after['shown'] - before['shown']) / elapsed:.1f}",
            f"{min(tile_fps):.1f} / {sum(tile_fps) / len(tile_fps):.1f}",
            f"{(after['decoded'] - before['decoded']) / elapsed:.0f}",
            f"{(after['dropped'] - before['dropped']) / elapsed:.1f}",
            f"{after['compose_ms']:.1f}", f"{cpu_pct:.0f}",
            f"{1000 * (after['cpu'] - before['cpu']) / max(1, after['shown'] - before['shown']):.1f}",
            f"{rss_added / 2**20:.0f}", f"{others_pct:.0f}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window-s", type=float, default=10.0)
    parser.add_argument("--warmup-s", type=float, default=3.0)
    parser.add_argument("--fps", type=float, default=25.0, help="the wall's redraw rate (monitor.fps)")
    parser.add_argument("--size", default="1280x720", help="display size WIDTHxHEIGHT")
    parser.add_argument("--quick", action="store_true", help="3 s windows, 1 s warm-up, 2 s clips")
    args = parser.parse_args(argv)
    if args.quick:
        args.window_s, args.warmup_s = 3.0, 1.0
    size = tuple(int(side) for side in args.size.split("x"))
    rows = []
    for scenario in SCENARIOS:
        clips = make_clips(scenario, 2.0 if args.quick else 4.0)
        rows.append(run(scenario, clips, size=size, fps=args.fps, warmup_s=args.warmup_s, window_s=args.window_s))
    print_table(f"Monitor wall at {size[0]}x{size[1]}, redraw target {args.fps:g} fps, sources {SOURCE_FPS} fps "
                f"({os.cpu_count()} CPUs)",
                ["scenario", "wall fps", "tile fps min / mean", "decoded/s", "dropped/s", "compose ms",
                 "CPU % of a core", "CPU ms / wall frame", "RSS added MiB", "others' CPU %"], rows)
    print("\nGoals: 16 x 352x288 at >= 10 fps under 100 % of a core; 4 x 720x576 at 25 fps.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
