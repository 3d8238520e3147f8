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
    from drivers.sdp import parse_fmtp

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


FINDINGS = (
    Finding("rtp_aac", "au-header-of-no-bits-loops-forever",
            "issue #12 row 1: fmtp indexdeltalength=-13 with sizelength=13 makes every AU header after the "
            "first 0 bits wide, and AacDepacketizer._au_sizes loops forever, growing a list",
            hang=True, predicts=_aac_header_width_not_positive),
    Finding("rtp_aac", "fmtp-sizelength-out-of-range",
            "issue #12 row 6: an fmtp sizelength outside 1-16 makes AacDepacketizer raise a plain ValueError "
            "out of the native client's _audio_track (so out of open(), instead of CameraError)",
            signature=r"ValueError: unsupported AAC sizeLength"),
    Finding("sdp", "fmtp-sizelength-out-of-range",
            "issue #12 row 6: the same sizelength, reached from the DESCRIBE answer alone",
            signature=r"ValueError: unsupported AAC sizeLength"),
    Finding("rtsp_stream", "session-timeout-of-5000-digits",
            "issue #12 row 6: Session: ...;timeout=<5000 digits> raises ValueError (Python's 4300-digit "
            "int limit) out of parse_session",
            signature=r"in parse_session\n(?:.*\n)*?ValueError: Exceeds the limit"),
    Finding("rtsp_stream", "interleaved-channel-of-5000-digits",
            "issue #12 row 6: Transport: ...;interleaved=<5000 digits> raises ValueError out of parse_interleaved",
            signature=r"in parse_interleaved\n(?:.*\n)*?ValueError: Exceeds the limit"),
    Finding("pelco_reply", "aux-number-above-8-with-valid-checksum",
            "issue #12 row 8: an aux frame numbered above 8 with a valid checksum raises PelcoError out of "
            "FrameDecoder.feed (it catches FrameError only), which ends the PTZ worker thread",
            signature=r"PelcoError: aux number must be"),
)

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
