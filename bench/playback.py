"""bench/playback: seeking in the browser to random instants of 24 h x 4 channels of recording.

    ./dev bench playback [--channels 4] [--hours 24] [--seeks 20]

One real 60 s segment (704x576, keyframe every 2 s) is hard-linked under every name of a synthetic
index of `hours` x `channels` 1-minute segments, so the data root looks like a full day without a
day's disk. The web server serves it as `nvr run` would; headless Chromium opens the playback page
(all channels, in sync) and seeks to random instants. Per seek: time until every channel shows a
frame, and whether it is the right one (within a frame of the asked instant). Also the index lookup
of the covering segment and the whole chunk request. Goals (issue 5): the right frame within 1 s,
the covering segment in under 50 ms. Prints Markdown tables.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from appliance.config.model import parse_config  # noqa: E402
from appliance.web.users import UserStore  # noqa: E402
from appliance.web.server import WebServer, create_app  # noqa: E402
from bench.common import encode_clip, print_table, replay_into_segments  # noqa: E402
from bench.live import CHROMIUM, FLAGS  # noqa: E402
from base.clock import RealClocks  # noqa: E402
from recorder.faults import FaultBoard  # noqa: E402
from recorder.index import Index, Segment  # noqa: E402
from recorder.live import LiveHub  # noqa: E402

PASSWORD = "bench-password-1"
MINUTE_US = 60_000_000


class RecordingsOnly:
    """`appliance.web.views.ApplianceView` over a data root that is only played back: no recorder runs
    (the `Appliance` would run recovery over the synthetic day first), no PTZ, no alarm I/O."""

    ptz = None
    alarm_io = None

    def __init__(self, config, root: Path, index: Index, clocks):
        self.config, self.root, self.index, self.clocks = config, root, index, clocks
        self.live, self.faults = LiveHub(), FaultBoard(clocks=clocks)

    def streams(self) -> list:
        return []

    def open_segments(self, *, channel: int | None = None, stream: str | None = None) -> list[Segment]:
        return []

    def restart_channels(self, config, channel_ids: list[int]) -> list[int]:
        raise RuntimeError("the playback benchmark does not record")

    def status(self, *, index: Index | None = None) -> dict:
        count, size = (index or self.index).totals()
        return {"data_root": str(self.root), "uptime_s": 0, "segments": count, "bytes": size, "retention": None,
                "recovery": None, "alarms": [], "streams": []}


def build(root: Path, *, channels: int, hours: int, end_us: int) -> tuple[Path, int]:
    """The synthetic day; returns (template segment, first start_us)."""
    scratch = root / "template"
    scratch.mkdir()
    info, packets = encode_clip(width=704, height=576, fps=25, seconds=60, bitrate=1_000_000)
    index = Index(scratch)
    try:
        replay_into_segments(scratch, index, info, packets, loops=1, fps=25, segment_seconds=600)
        template = index.segments()[0]
    finally:
        index.close()
    source = scratch / template.path
    count = hours * 60
    first_us = end_us - count * MINUTE_US
    index = Index(root)
    try:
        for ch in range(1, channels + 1):
            run = index.begin_run(channel=ch, stream="main", start_us=first_us, clock_source="arrival", codec="h264",
                                  width=704, height=576, timescale=90_000)
            rows = []
            for i in range(count):
                rel = f"ch{ch:02d}/main/{run.id:08d}-{i:05d}.mp4"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                os.link(source, root / rel)
                start = first_us + i * MINUTE_US
                rows.append(Segment(0, run.id, ch, "main", i, start, start + (template.end_us - template.start_us),
                                    template.media_start_ticks, rel, template.bytes, template.frames))
            index.add_segments(rows)
    finally:
        index.close()
    return source, first_us


SEEK_JS = """async (target) => {
  const t0 = performance.now();
  await window.nvrPlayback.seek(target);
  const players = window.nvrPlayback.players();
  const shown = await Promise.all(players.map((p) => new Promise((resolve) => {
    const check = () => (p.video.readyState >= 2 && !p.video.seeking) ? resolve([performance.now() - t0, p.wallNow()]) : setTimeout(check, 5);
    check();
  })));
  return shown;
}"""


def browser_seeks(url: str, targets: list[int], channels: int) -> list[list[tuple[float, float]]]:
    from playwright.sync_api import sync_playwright
    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url + "/#/playback")
        page.fill("#username", "bench")
        page.fill("#password", PASSWORD)
        page.click("#login-button")
        page.wait_for_function(f"() => window.nvrPlayback && window.nvrPlayback.players().length == {channels}", timeout=30000)
        for target in targets:
            out.append(page.evaluate(SEEK_JS, target))
        browser.close()
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--seeks", type=int, default=20)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    clocks = RealClocks()
    with tempfile.TemporaryDirectory(prefix="bench-playback-") as folder:
        root = Path(folder)
        end_us = clocks.utc_now_us() - MINUTE_US
        _, first_us = build(root, channels=args.channels, hours=args.hours, end_us=end_us)
        chans = "".join(f"  - id: {i}\n    source: {{type: test-pattern}}\n" for i in range(1, args.channels + 1))
        config = parse_config(f"storage:\n  path: {root}\nchannels:\n{chans}", source="<bench>")
        index = Index(root)
        users = UserStore(root, clocks=clocks)
        users.add_user("bench", PASSWORD, "viewer", replace=True)
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = WebServer(create_app(RecordingsOnly(config, root, index, clocks), users=users), host="127.0.0.1", port=port)
        server.start()
        url = f"http://127.0.0.1:{port}"
        time.sleep(1)
        try:
            lookups = []
            for _ in range(2000):
                at = rng.randrange(first_us, end_us)
                t0 = time.perf_counter()
                index.covering(channel=rng.randrange(1, args.channels + 1), stream="main", at_us=at)
                lookups.append((time.perf_counter() - t0) * 1000)
            chunk_ms = _chunk_requests(url, rng, first_us, end_us)
            targets = [rng.randrange(first_us + MINUTE_US, end_us - MINUTE_US) for _ in range(args.seeks)]
            seeks = browser_seeks(url, targets, args.channels)
        finally:
            server.stop()
            index.close()
            users.close()
    print_table(f"Server side, {args.hours} h x {args.channels} channels of 1-minute segments ({args.hours * 60 * args.channels} rows)",
                ["what", "p50 ms", "p95 ms", "max ms", "goal"],
                [["index: covering segment", round(statistics.median(lookups), 3), round(pct(lookups, .95), 3), round(max(lookups), 3), "< 50 ms"],
                 ["GET /api/playback chunk (6 s)", round(statistics.median(chunk_ms), 1), round(pct(chunk_ms, .95), 1), round(max(chunk_ms), 1), ""]])
    rows = []
    for target, shown in zip(targets, seeks):
        worst = max(s[0] for s in shown)
        off = max(abs(s[1] - target) for s in shown) / 1000
        rows.append([time.strftime("%H:%M:%S", time.gmtime(target / 1e6)), round(worst), round(off, 1), "yes" if off <= 40 else "NO"])
    print_table(f"Browser seeks (Chromium, {args.channels} channels in sync): time until every channel shows its frame",
                ["instant (UTC)", "all shown after ms", "max frame offset ms", "right frame"], rows)
    all_ms = [r[1] for r in rows]
    print(f"\nseek p50 {statistics.median(all_ms):.0f} ms, p95 {pct(all_ms, .95):.0f} ms, max {max(all_ms):.0f} ms "
          f"(goal: right frame within 1000 ms); right frame in {sum(r[3] == 'yes' for r in rows)}/{len(rows)}")
    return 0


def _chunk_requests(url: str, rng: random.Random, first_us: int, end_us: int) -> list[float]:
    with httpx.Client(base_url=url, timeout=30) as c:
        c.post("/api/login", json={"username": "bench", "password": PASSWORD}).raise_for_status()
        times = []
        for _ in range(40):
            at = rng.randrange(first_us, end_us)
            t0 = time.perf_counter()
            c.get("/api/playback/1", params={"start": str(at), "duration_s": 6}).raise_for_status()
            times.append((time.perf_counter() - t0) * 1000)
    return times


if __name__ == "__main__":
    sys.exit(main())
