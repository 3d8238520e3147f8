"""Times as people and the API write them: ISO 8601 UTC out; ISO 8601 or relative times in."""
from __future__ import annotations

import re
from datetime import datetime, timezone

_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def iso_utc(us: int) -> str:
    """`2026-01-01T12:00:00.040Z`: microseconds since the epoch as ISO 8601 UTC, milliseconds kept."""
    moment = datetime.fromtimestamp(us // 1_000_000, tz=timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{us % 1_000_000 // 1000:03d}Z"


def parse_time(text: str, *, now_us: int) -> int:
    """Microseconds since the epoch from ISO 8601 (`2026-01-01T12:00:00Z`, `...+01:00`), `now`, or a time
    relative to now (`-90s`, `-5m`, `-2h`, `-1d`). A time with no offset is the machine's local time.
    Raises ValueError saying what is accepted."""
    text = text.strip()
    if text == "now":
        return now_us
    if match := _RELATIVE.match(text):
        return now_us - round(float(match.group(1)) * _UNIT_S[match.group(2)] * 1_000_000)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"expected an ISO 8601 time such as 2026-01-31T18:00:00Z, 'now', or a relative time such as -5m; got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time, as an installer standing at the box would mean it
    return round(moment.timestamp() * 1_000_000)
