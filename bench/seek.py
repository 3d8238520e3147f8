"""bench/seek: finding the segment under a random instant in a month of 16 channels, and export speed.

    ./dev bench seek [--days 30] [--channels 16] [--queries 2000] [--export-minutes 10]

Prints two tables. Goals (issue 2): lookup under 50 ms; export at least 200x real time.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Stopwatch, encode_clip, print_table, replay_into_segments  # noqa: E402
from recorder.export import export  # noqa: E402
from recorder.index import Index, Segment  # noqa: E402

MINUTE_US = 60_000_000
DAY0_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def build_index(root: Path, *, days: int, channels: int) -> int:
    """A synthetic index: `channels` x `days` of 1-minute segments with small gaps, one run per day."""
    index = Index(root)
    count = 0
    for channel in range(1, channels + 1):
        for day in range(days):
            start = DAY0_US + day * 1440 * MINUTE_US + channel * 3_700_000  # staggered cuts
            run = index.begin_run(channel=channel, stream="main", start_us=start, clock_source="arrival", codec="h264",
                                  width=1920, height=1080, timescale=90_000)
            index.add_segments(
                Segment(0, run.id, channel, "main", m, start + m * MINUTE_US, start + (m + 1) * MINUTE_US - 40_000,
                        m * 5_400_000, f"ch{channel:02d}/main/{run.id:08d}-{m:05d}.mp4", 30_000_000, 1500)
                for m in range(1440)
            )
            count += 1440
    index.close()
    return count


def bench_lookup(root: Path, *, days: int, channels: int, queries: int) -> list[list]:
    index = Index(root, create=False)  # a fresh connection, as a new API request would have
    rng = random.Random(1)
    span_us = days * 1440 * MINUTE_US
    times, hits = [], 0
    for _ in range(queries):
        at = DAY0_US + rng.randrange(span_us)
        with Stopwatch() as sw:
            found = index.covering(channel=rng.randint(1, channels), stream="main", at_us=at)
        times.append(sw.seconds * 1000)
        hits += found is not None
    with Stopwatch() as hour:
        rows = index.segments(channel=1, start_us=DAY0_US + 10 * 86_400_000_000, end_us=DAY0_US + 10 * 86_400_000_000 + 3_600_000_000)
    index.close()
    times.sort()
    return [
        ["covering segment of a random instant", queries, f"{statistics.median(times):.3f}", f"{times[int(len(times) * .99)]:.3f}", f"{times[-1]:.3f}", f"{hits} hits"],
        ["one channel's segments in an hour", 1, f"{hour.seconds * 1000:.3f}", "", "", f"{len(rows)} rows"],
    ]


def bench_export(work: Path, minutes: int) -> list[list]:
    info, packets = encode_clip(width=1920, height=1080, fps=25, seconds=10, bitrate=4_000_000)
    root = work / "rec"
    root.mkdir()
    index = Index(root)
    media_s = replay_into_segments(root, index, info, packets, loops=minutes * 6, fps=25)
    segs = index.segments()
    rows = []
    for label, start, end in (
        (f"{minutes} min (whole recording)", segs[0].start_us, segs[-1].end_us),
        ("1 min across a segment boundary", segs[1].start_us + 30 * 1_000_000, segs[1].start_us + 90 * 1_000_000),
    ):
        out = work / "out.mp4"
        with Stopwatch() as sw:
            result = export(index, root, channel=1, start_us=start, end_us=end, out=out)
        clip_s = (result.end_us - result.start_us) / 1e6
        rows.append([label, f"{clip_s:.1f}", f"{result.bytes / 1e6:.0f}", f"{sw.seconds:.3f}", f"{clip_s / sw.seconds:.0f}x",
                     f"{result.bytes / 1e6 / sw.seconds:.0f}"])
        out.unlink()
    index.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--export-minutes", type=int, default=10)
    parser.add_argument("--dir", type=Path, help="work folder (default: a temporary one on the same disk as /var/tmp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir or "/var/tmp") as tmp:
        work = Path(tmp)
        (work / "idx").mkdir()
        with Stopwatch() as build:
            count = build_index(work / "idx", days=args.days, channels=args.channels)
        size_mb = (work / "idx" / "index.sqlite3").stat().st_size / 1e6
        print(f"synthetic index: {count} segments ({args.days} days x {args.channels} channels x 1-minute segments), "
              f"{size_mb:.0f} MB, built in {build.seconds:.1f} s")
        print_table("Lookup (goal: < 50 ms)", ["query", "n", "p50 ms", "p99 ms", "max ms", "result"],
                    bench_lookup(work / "idx", days=args.days, channels=args.channels, queries=args.queries))
        print_table("Export, 1080p25 H.264 at ~4 Mb/s, remux only, fsync'ed (goal: >= 200x real time)",
                    ["range", "clip s", "MB", "wall s", "speed", "MB/s"], bench_export(work, args.export_minutes))


if __name__ == "__main__":
    main()
