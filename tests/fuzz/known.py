"""Findings of the fuzz targets that are known and not fixed yet, each with the crasher that shows it.

Every entry is a bug of issue #12's table, which the RTSP client's bounds-and-isolation work fixes;
until then its crasher replays as a strict expected failure (tests/fuzz/test_fuzz_targets.py), so the
fix is proven by this folder and the entry is then deleted. Fuzzing runs (`./dev fuzz --skip-known`,
CI, `./dev bench fuzz`) step over these findings so that they look for new ones rather than finding
the same one again: an exception whose traceback matches `signature`, or an input `predicts` says
will hang (a hang cannot be caught once it started).
"""
from __future__ import annotations

import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    target: str
    crasher: str  # file name in tests/fuzz/crashers/TARGET/
    reason: str
    signature: str = ""  # a regex over the formatted traceback
    hang: bool = False
    predicts: Callable[[bytes], bool] | None = None  # for a hang: will this input hit it


def _aac_header_width_not_positive(data: bytes) -> bool:
    """Whether the fmtp record gives AU headers of no bits after the first (sizeLength + indexDeltaLength <= 0)."""
    from drivers.rtsp.sdp import parse_fmtp

    if len(data) < 2:
        return False
    fmtp = parse_fmtp(data[2:2 + int.from_bytes(data[:2], "big")].decode("utf-8", errors="replace"))

    def number(name: str, default: int) -> int:
        try:
            return int(fmtp.get(name, default))
        except ValueError:
            return default

    return number("sizelength", 13) + number("indexdeltalength", 3) <= 0 or number("sizelength", 13) + number(
        "indexlength", 3) <= 0


# Every finding of the first fuzzing runs (issue #12 rows 1, 6 and 8) is fixed; their crashers stay in
# crashers/ and replay as ordinary regression tests.
FINDINGS: tuple[Finding, ...] = ()

KNOWN: dict[str, Finding] = {f"{f.target}/{f.crasher}": f for f in FINDINGS}


def for_target(target: str) -> list[Finding]:
    return [f for f in FINDINGS if f.target == target]


def match(target: str, report: str) -> Finding | None:
    """The known finding a traceback or libFuzzer report shows, or None."""
    return next((f for f in for_target(target) if f.signature and re.search(f.signature, report)), None)


def skipping_known(target: str, run: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """`run` that returns quietly on the inputs of a known finding, and fails as before on any other."""
    findings = for_target(target)
    if not findings:
        return run
    hangs = [f.predicts for f in findings if f.predicts is not None]

    def guarded(data: bytes) -> None:
        if any(predicts(data) for predicts in hangs):
            return
        try:
            run(data)
        except Exception as exc:
            if match(target, "".join(traceback.format_exception(exc))) is None:
                raise

    return guarded
