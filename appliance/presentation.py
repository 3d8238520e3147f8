"""How the `nvr` command and the API present things: times (ISO 8601 UTC out; ISO 8601 or relative in),
and the lists of recordings and events."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

from recorder.index import Event, Index

_RELATIVE = re.compile(r"^-(\d{1,12}(?:\.\d{1,6})?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
EARLIEST_US = 0  # 1970-01-01: nothing is recorded before it, and the index keys on positive times
LATEST_US = 253_402_300_799_000_000  # 9999-12-31T23:59:59Z, the last instant ISO 8601 (and iso_utc) can write
MAX_TIME_CHARS = 64


def iso_utc(us: int) -> str:
    """`2026-01-01T12:00:00.040Z`: microseconds since the epoch as ISO 8601 UTC, milliseconds kept."""
    moment = datetime.fromtimestamp(us // 1_000_000, tz=timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{us % 1_000_000 // 1000:03d}Z"


def parse_time(text: str, *, now_us: int) -> int:
    """Microseconds since the epoch from ISO 8601 (`2026-01-01T12:00:00Z`, `...+01:00`), `now`, or a time
    relative to now (`-90s`, `-5m`, `-2h`, `-1d`). A time with no offset is the machine's local time.
    Raises ValueError saying what is accepted, also for a time outside 1970-9999 (`in_range`)."""
    text = text.strip()
    if len(text) > MAX_TIME_CHARS:
        raise ValueError(f"a time is at most {MAX_TIME_CHARS} characters; got {len(text)}")
    if text == "now":
        return now_us
    if match := _RELATIVE.match(text):
        return in_range(now_us - round(float(match.group(1)) * _UNIT_S[match.group(2)] * 1_000_000), text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.astimezone()  # local time, as an installer standing at the box would mean it
        us = round(moment.timestamp() * 1_000_000)
    except (ValueError, OverflowError, OSError):
        raise ValueError(
            f"expected an ISO 8601 time such as 2026-01-31T18:00:00Z, 'now', or a relative time such as -5m; got {text!r}"
        ) from None
    return in_range(us, text)


def in_range(us: int, shown: object) -> int:
    """`us` if it lies in 1970-01-01 .. 9999-12-31 UTC; else ValueError naming `shown`."""
    if not EARLIEST_US <= us <= LATEST_US:
        raise ValueError(f"{shown!r} is outside 1970-01-01 .. 9999-12-31 UTC")
    return us


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



def event_dict(event: Event) -> dict:
    """An index Event as JSON: times in µs and as ISO 8601 UTC (`end` null while the event is open)."""
    return {"id": event.id, "source": event.source, "rule": event.rule, "channels": list(event.channels),
            "locked": event.locked, "start_us": event.start_us, "trigger_us": event.trigger_us, "end_us": event.end_us,
            "start": iso_utc(event.start_us), "trigger": iso_utc(event.trigger_us),
            "end": iso_utc(event.end_us) if event.end_us is not None else None}


def events_table(rows: list[dict]) -> str:
    """A plain-text table for a terminal, newest first."""
    if not rows:
        return "no events"
    lines = [f"{'ID':>6} {'TRIGGER (UTC)':24} {'START (UTC)':24} {'END (UTC)':24} {'LOCK':4} {'CHANNELS':10} SOURCE (RULE)"]
    lines += [
        f"{r['id']:>6} {r['trigger']:24} {r['start']:24} {r['end'] or 'open':24} {'yes' if r['locked'] else '':4} "
        f"{','.join(map(str, r['channels'])) or '-':10} {r['source']} ({r['rule'] or '-'})"
        for r in rows
    ]
    return "\n".join(lines)
