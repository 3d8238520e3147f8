"""Topic names and payload formats, in one place (the table in design/mqtt.md follows this module).

States are retained JSON objects ``{"state": "ON"|"OFF", "at": ISO UTC, "at_us": int, ...}`` carrying the
time the change happened, not the time it was sent: a message delivered late after an outage still
says when. Every signal change is also sent, not retained, on ``<prefix>/events`` in the order it
happened.
"""
from __future__ import annotations

import json
import re
import socket
from dataclasses import dataclass

from appliance.presentation import iso_utc

ON, OFF = "ON", "OFF"
_SLUG_RE = re.compile(r"[^a-z0-9_-]+")
MAX_SLUG_CHARS = 48


def slug(text: str) -> str:
    """A topic level / HA object id from a name: lower-case letters, digits, '_' and '-'."""
    return (_SLUG_RE.sub("_", text.lower()).strip("_") or "unnamed")[:MAX_SLUG_CHARS]


def host_name() -> str:
    return slug(socket.gethostname()) or "nvr"


def state_payload(active: bool, at_us: int, **extra) -> bytes:
    return json.dumps({"state": ON if active else OFF, "at": iso_utc(at_us), "at_us": at_us, **extra},
                      separators=(",", ":")).encode()


@dataclass(frozen=True)
class Topics:
    """Every topic under one prefix (default nvr/<hostname>)."""

    prefix: str

    @property
    def availability(self) -> str:
        return f"{self.prefix}/availability"

    @property
    def events(self) -> str:
        return f"{self.prefix}/events"

    @property
    def disk(self) -> str:
        return f"{self.prefix}/disk"

    def alarm_input(self, input_id: str) -> str:
        return f"{self.prefix}/alarm_input/{input_id}"

    def armed(self, input_id: str) -> str:
        return f"{self.prefix}/alarm_input/{input_id}/armed"

    def schedule(self, input_id: str) -> str:
        return f"{self.prefix}/alarm_input/{input_id}/schedule"

    def output(self, output_id: str) -> str:
        return f"{self.prefix}/output/{output_id}"

    def channel(self, channel: int, what: str) -> str:
        """what: motion, video_loss, recording, snapshot."""
        return f"{self.prefix}/channel/{channel}/{what}"

    def fault(self, name: str) -> str:
        """name: disk_full, disk_error, disk_missing, disk_failing, disk_hot, disk_errors, temperature."""
        return f"{self.prefix}/fault/{name}"

    def rule(self, name: str) -> str:
        return f"{self.prefix}/rule/{slug(name)}"

    @staticmethod
    def command(state_topic: str) -> str:
        return f"{state_topic}/set"

    def command_filters(self) -> list[str]:
        """What the box subscribes to for commands (only those mqtt.commands allows are acted on)."""
        return [f"{self.prefix}/output/+/set", f"{self.prefix}/alarm_input/+/armed/set",
                f"{self.prefix}/alarm_input/+/schedule/set",
                f"{self.prefix}/channel/+/ptz_preset/set", f"{self.prefix}/channel/+/record/set"]

    def signal_topic(self, kind: str, key: str) -> str | None:
        """The state topic of a rule signal (kind, key) as the alarm side names it; None for unknown kinds."""
        if kind == "alarm_input":
            return self.alarm_input(key)
        if kind in ("motion", "video_loss", "line_crossing", "intrusion", "tamper"):
            return self.channel(int(key), kind)
        if kind == "disk":
            return self.fault(f"disk_{key}")
        if kind == "temperature":
            return self.fault("temperature")
        return None
