"""bench/render: CPU time to draw one test-pattern picture, per size and pattern.

    ./dev bench render [--frames 50]

The simulated analog capture (hal.video.simulated.TestPatternCapture) draws every picture it sends;
this is its cost per frame, which bounds how many simulated channels one core can feed at 25 fps.
It was printed by a test that asserted nothing; a figure belongs here, in a table.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from base.clock import SimulatedClocks  # noqa: E402
from bench.common import print_table  # noqa: E402
from hal.video.simulated import PATTERNS, TestPatternCapture  # noqa: E402

START_UTC_US = 1_767_225_600_000_000  # 2026-01-01 00:00:00 UTC
SIZES = ((720, 576), (1920, 1080))
FRAME_PERIOD_US = 40_000  # 25 fps


def render_ms(width: int, height: int, pattern: str, frames: int) -> float:
    """Mean process CPU milliseconds per rendered picture, after one warm-up picture."""
    capture = TestPatternCapture(width=width, height=height, fps=25, pattern=pattern, clocks=SimulatedClocks())
    capture.render(0, START_UTC_US)
    began = time.process_time()
    for sequence in range(frames):
        capture.render(sequence, START_UTC_US + sequence * FRAME_PERIOD_US)
    return (time.process_time() - began) / frames * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50)
    args = parser.parse_args()
    rows = []
    for width, height in SIZES:
        for pattern in PATTERNS:
            ms = render_ms(width, height, pattern, args.frames)
            rows.append([f"{width}x{height}", pattern, ms, round(FRAME_PERIOD_US / 1000 / ms, 1) if ms else "-"])
    print_table(f"Test-pattern rendering, CPU per picture ({args.frames} pictures each)",
                ["size", "pattern", "CPU ms per picture", "channels at 25 fps per core"], rows)


if __name__ == "__main__":
    main()
