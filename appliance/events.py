"""The list of events as the `nvr events` command and the API present it."""
from __future__ import annotations

from recorder.index import Event

from appliance.timefmt import iso_utc


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
