"""bench/retention: what a retention pass with channel quotas and the retention preview cost on a month
of 16 channels (the queries each pass and each health-page load make).

    ./dev bench retention [--days 30] [--channels 16] [--quota-channels 16] [--repeats 20]

Prints a Markdown table. The synthetic index is bench/seek's (1-minute segments, one run per day).
A pass with nothing to delete is what runs every interval_s; the preview runs on every /api/health,
/metrics scrape and `nvr disks`.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Stopwatch, print_table  # noqa: E402
from bench.seek import DAY0_US, build_index  # noqa: E402
from base.clock import SimulatedClocks  # noqa: E402
from hal.storage import DiskUsage  # noqa: E402
from recorder.faults import FaultBoard  # noqa: E402
from recorder.index import Index  # noqa: E402
from recorder.retention import ChannelQuota, Retention, RetentionPolicy  # noqa: E402
from recorder.retention_preview import preview  # noqa: E402


def timed(call, repeats: int) -> tuple[float, float]:
    """(median, max) milliseconds of `repeats` calls."""
    times = []
    for _ in range(repeats):
        with Stopwatch() as sw:
            call()
        times.append(sw.seconds * 1000)
    return statistics.median(times), max(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--quota-channels", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nvr-bench-retention-") as folder:
        root = Path(folder)
        with Stopwatch() as built:
            rows = build_index(root, days=args.days, channels=args.channels)
        index = Index(root, create=False)
        total = index.totals()[1]
        usage = DiskUsage(total_bytes=total * 2, used_bytes=total, free_bytes=total)  # within every bound
        quotas = {ch: ChannelQuota(max_bytes=total) for ch in range(1, args.quota_channels + 1)}
        clocks = SimulatedClocks(utc_start_us=DAY0_US + args.days * 86_400_000_000)
        policy = RetentionPolicy(min_free_bytes=0, channels=quotas, events_max_age_days=365)
        retention = Retention(root=root, index=index, clocks=clocks, faults=FaultBoard(clocks=clocks), policy=policy,
                              usage=lambda _path: usage, sync=False)
        results = [
            ["channel_bytes (one channel's quota check)", *timed(lambda: index.channel_bytes(1), args.repeats)],
            [f"retention pass, {args.quota_channels} quotas, nothing to delete",
             *timed(retention.enforce, args.repeats)],
            ["retention pass, no quotas", *timed(
                Retention(root=root, index=index, clocks=clocks, faults=FaultBoard(clocks=clocks),
                          policy=RetentionPolicy(min_free_bytes=0), usage=lambda _path: usage, sync=False).enforce,
                args.repeats)],
            ["retention preview (disk + every channel)", *timed(
                lambda: preview(index, usage=usage, policy=policy, now_us=clocks.utc_now_us()), args.repeats)],
        ]
        assert retention.stats.deleted_segments == 0
        index.close()
    print_table(f"Retention on {rows} segments ({args.channels} channels x {args.days} days; index built in "
                f"{built.seconds:.0f} s)", ["operation", "median ms", "max ms"], results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
