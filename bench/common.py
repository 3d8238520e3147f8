"""Shared pieces of the benchmarks: a pre-encoded clip, replaying it into segments, printing tables."""
from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av

from base.clock import SimulatedClocks
from base.media import EncodedPacket, StreamInfo
from hal.video.simulated import TestPatternCapture
from recorder.faults import FaultBoard
from recorder.index import Index
from recorder.segmenter import Segmenter

CLIP_TIME_BASE = Fraction(1, 90_000)


def encode_clip(*, width: int, height: int, fps: int, seconds: float, bitrate: int,
                keyframe_interval_s: float = 2.0) -> tuple[StreamInfo, list[EncodedPacket]]:
    """Encode a test pattern once with libx264 (ultrafast) into memory."""
    clocks = SimulatedClocks()
    capture = TestPatternCapture(width=width, height=height, fps=fps, pattern="ball", clocks=clocks)
    capture.open()
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.time_base, codec.framerate, codec.bit_rate = CLIP_TIME_BASE, fps, bitrate
    keyint = round(fps * keyframe_interval_s)
    kbps = bitrate // 1000
    # Constant bit rate with filler, so the stream really is `bitrate` whatever the picture.
    codec.options = {"preset": "ultrafast", "tune": "zerolatency",
                     "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:nal-hrd=cbr:filler=1:"
                                    f"vbv-maxrate={kbps}:vbv-bufsize={kbps}"}
    packets = []
    for n in range(round(fps * seconds)):
        frame = av.VideoFrame.from_ndarray(capture.render(n, clocks.utc_now_us() + n * 1_000_000 // fps), format="yuv420p")
        frame.pts = n * 90_000 // fps
        for p in codec.encode(frame):
            packets.append(EncodedPacket(bytes(p), p.pts, p.dts, p.is_keyframe))
    for p in codec.encode(None):
        packets.append(EncodedPacket(bytes(p), p.pts, p.dts, p.is_keyframe))
    return StreamInfo("h264", width, height, CLIP_TIME_BASE, None, fps), packets


def replay_into_segments(root: Path, index: Index, info: StreamInfo, packets: Sequence[EncodedPacket], *,
                         loops: int, fps: int, segment_seconds: int = 60, channel: int = 1, sync: bool = False) -> float:
    """Record `loops` back-to-back copies of a clip as one run; returns the media seconds recorded."""
    clocks = SimulatedClocks()
    seg = Segmenter(channel=channel, stream="main", root=root, index=index, clocks=clocks,
                    faults=FaultBoard(clocks=clocks), segment_seconds=segment_seconds, sync=sync)
    seg.start_run(info)
    clip_ticks = len(packets) * 90_000 // fps
    for loop in range(loops):
        for p in packets:
            seg.push(EncodedPacket(p.data, p.pts + loop * clip_ticks, p.dts + loop * clip_ticks, p.keyframe))
            clocks.advance(1 / fps)
    seg.finish()
    return loops * len(packets) / fps


def cpu_seconds() -> float:
    """User + system CPU of this process and its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A Markdown table, so it can be pasted into a closing note as it is."""
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}\n")
    print("| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


class Stopwatch:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
