"""The list of recordings as the `nvr recordings` command and the API present it."""
from __future__ import annotations

from pathlib import Path

from recorder.index import Index

from appliance.timefmt import iso_utc

RECORDING_KEYS = ("channel", "stream", "start", "end", "path", "bytes", "locked")


def recording_dicts(index: Index, root: Path, *, channel: int | None = None, stream: str | None = None,
                    start_us: int | None = None, end_us: int | None = None) -> list[dict]:
    """Indexed segments as dicts with exactly RECORDING_KEYS (absolute paths, ISO 8601 UTC times)."""
    return [
        {"channel": s.channel, "stream": s.stream, "start": iso_utc(s.start_us), "end": iso_utc(s.end_us),
         "path": str((root / s.path).resolve()), "bytes": s.bytes, "locked": s.locked}
        for s in index.segments(channel=channel, stream=stream, start_us=start_us, end_us=end_us)
    ]


def recordings_table(rows: list[dict]) -> str:
    """A plain-text table for a terminal."""
    if not rows:
        return "no recordings"
    lines = [f"{'CH':>3} {'STREAM':6} {'START (UTC)':24} {'END (UTC)':24} {'BYTES':>11} {'LOCK':4} PATH"]
    lines += [
        f"{r['channel']:>3} {r['stream']:6} {r['start']:24} {r['end']:24} {r['bytes']:>11} {'yes' if r['locked'] else '':4} {r['path']}"
        for r in rows
    ]
    return "\n".join(lines)
