"""bench/audio_gaps: sound across segment boundaries, per camera codec and segment length.

    ./dev bench audio_gaps [--seconds 30] [--segment-s 2,4] [--codecs pcmu,aac] [--client native|ffmpeg|auto]
                           [--detail]

A GStreamer test camera (320x240@25, GOP 1 s) plays a steady 440 Hz tone as G.711 µ-law (transcoded
once to AAC by the recorder) or AAC (remuxed); a real StreamRecorder records it into segments of
`--segment-s` until `--seconds` of media are closed; the segments are read back with PyAV
(tests/support/audio_gaps.py, which the tests share). Per configuration, over every boundary:

    hole        next segment's first audio packet - previous segment's audio end (run time)
    A/V start   a segment's first audio packet - its first video frame (<= 0: sound starts first)
    short end   a segment's video end - its audio end (a file played alone falls silent this early)
    lost        video span - sum of audio durations, between the run's first and last segment
    export gaps drop-outs or timestamp jumps in the decoded tone of an export across all segments

Real time: each configuration takes `--seconds` plus connecting. The machine's load does not change
the figures (they come from the media timestamps), only how long the bench takes.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bench.common import print_table  # noqa: E402
from recorder.export import export  # noqa: E402
from recorder.index import Index  # noqa: E402
from support.audio_gaps import gap_report, record_camera, tone_gaps  # noqa: E402
from support.rtsp import RtspServer, rtsp_audio_available  # noqa: E402

MOUNT = "live:320x240@25,gop=25,bitrate=300,audio={codec},tone=1"


def measure(server: RtspServer, codec: str, segment_s: int, seconds: float, client: str, workdir: Path,
            detail: bool) -> list[object]:
    root = workdir / f"{codec}-{segment_s}s-{client}"
    segments = max(2, round(seconds / segment_s))
    rows = record_camera(root, server.url(f"/{codec}"), segment_seconds=segment_s, segments=segments, client=client)
    report = gap_report(root, rows)
    if detail:
        print(report.table(f"{codec}, {segment_s} s segments, {client} client"))
    index = Index(root)
    try:
        export(index, root, channel=1, start_us=rows[0].start_us, end_us=rows[-1].end_us, out=root / "export.mp4")
    finally:
        index.close()
    _, gaps = tone_gaps(root / "export.mp4")
    b = report.boundaries
    ms = lambda values: (min(values) * 1000, max(values) * 1000) if values else (0.0, 0.0)  # noqa: E731
    hole, start, short = ms([x.hole_s for x in b]), ms([x.av_offset_s for x in b]), ms([x.short_s for x in b])
    return [codec, segment_s, client, len(b), f"{hole[0]:+.1f} .. {hole[1]:+.1f}", f"{start[0]:+.1f} .. {start[1]:+.1f}",
            f"{short[0]:+.1f} .. {short[1]:+.1f}", f"{report.interior_lost_s * 1000:+.1f}",
            f"{report.first_av_offset_s * 1000:+.1f}", len(gaps)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="media time recorded per configuration")
    parser.add_argument("--segment-s", default="2,4", help="segment lengths, comma-separated")
    parser.add_argument("--codecs", default="pcmu,aac", help="camera audio codecs: pcmu, aac")
    parser.add_argument("--client", default="native", choices=("native", "ffmpeg", "auto"))
    parser.add_argument("--detail", action="store_true", help="also print every boundary")
    args = parser.parse_args(argv)
    ok, reason = rtsp_audio_available()
    if not ok:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    codecs = args.codecs.split(",")
    rows = []
    with RtspServer() as server, tempfile.TemporaryDirectory(prefix="audio-gaps-") as work:
        server.start({f"/{codec}": MOUNT.format(codec=codec) for codec in codecs})
        for codec in codecs:
            for segment_s in (int(s) for s in args.segment_s.split(",")):
                rows.append(measure(server, codec, segment_s, args.seconds, args.client, Path(work), args.detail))
    print_table(f"Sound across segment boundaries ({args.seconds:g} s per configuration; times in ms)",
                ["camera audio", "segment s", "client", "boundaries", "hole", "A/V at start", "short at end",
                 "lost (inner)", "first A/V", "export gaps"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
