"""Commands from the bus: parsing (pure, bounded, fuzzed) and running the ones `mqtt.commands` allows.

Topics (under the prefix) and payloads:

    output/<id>/set              ON | OFF (also on/off, 1/0, true/false)     allowed by `output`
    alarm_input/<id>/armed/set   ON | OFF                                     allowed by `arm`
    alarm_input/<id>/schedule/set  ON (follow its arming schedule) | OFF (armed at all hours)   by `arm`
    channel/<n>/ptz_preset/set   a preset number 1-255                        allowed by `ptz_preset`
    channel/<n>/record/set       PRESS, empty, seconds (30), or {"duration_s": 30}   allowed by `record`

Anything else (a topic of another shape, a payload over `MAX_PAYLOAD_BYTES`, an id of the wrong form,
a value out of range) is a `CommandError`: logged and counted, never raised to paho's thread. A
command the allow-list does not name is refused the same way. Commands run on a bounded worker of
their own (a PTZ frame may wait for a 2400-baud bus), never on paho's network thread.
"""
from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from appliance.alarms.webhooks import BoundedWorker
from appliance.mqtt import MqttBox

log = logging.getLogger("nvr.mqtt")

MAX_PAYLOAD_BYTES = 256
MAX_TOPIC_CHARS = 512
MAX_RECORD_S = 3600.0
MAX_CHANNEL = 256
MAX_PRESET = 255
ALLOWED_BY = {"schedule": "arm"}  # the mqtt.commands entry that allows a kind, where it has another name
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_TRUE, _FALSE = frozenset({"on", "1", "true"}), frozenset({"off", "0", "false"})


class CommandError(ValueError):
    """A command message that is not one the box understands; the message says what was expected."""


@dataclass(frozen=True, slots=True)
class Command:
    kind: str  # 'output', 'arm', 'schedule' (allowed by 'arm'), 'ptz_preset', 'record' (as in mqtt.commands)
    target: str | int  # output or input id, or channel
    value: bool | int | float | None  # on/armed, preset, duration_s (None: the configured length)


def parse_command(prefix: str, topic: str, payload: bytes) -> Command:
    """The command of one message on `<prefix>/.../set`; CommandError if it is not a valid one."""
    if len(topic) > MAX_TOPIC_CHARS or not topic.startswith(prefix + "/"):
        raise CommandError(f"not a command topic under {prefix!r}: {topic[:80]!r}")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise CommandError(f"payload of {len(payload)} bytes; commands are at most {MAX_PAYLOAD_BYTES}")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise CommandError("payload is not UTF-8 text") from None
    levels = topic[len(prefix) + 1:].split("/")
    match levels:
        case ["output", output_id, "set"]:
            return Command("output", _id(output_id), _on_off(text))
        case ["alarm_input", input_id, "armed", "set"]:
            return Command("arm", _id(input_id), _on_off(text))
        case ["alarm_input", input_id, "schedule", "set"]:
            return Command("schedule", _id(input_id), _on_off(text))
        case ["channel", channel, "ptz_preset", "set"]:
            return Command("ptz_preset", _channel(channel), _preset(text))
        case ["channel", channel, "record", "set"]:
            return Command("record", _channel(channel), _duration(text))
    raise CommandError(f"unknown command topic {topic[:80]!r}")


def _id(text: str) -> str:
    if not _ID_RE.fullmatch(text):
        raise CommandError(f"expected an id of 1-32 letters, digits, '-' or '_', got {text[:40]!r}")
    return text


def _channel(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 3 and 1 <= int(text) <= MAX_CHANNEL):
        raise CommandError(f"expected a channel number 1-{MAX_CHANNEL}, got {text[:40]!r}")
    return int(text)


def _on_off(text: str) -> bool:
    word = text.lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise CommandError(f"expected ON or OFF, got {text[:40]!r}")


def _preset(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 3 and 1 <= int(text) <= MAX_PRESET):
        raise CommandError(f"expected a preset number 1-{MAX_PRESET}, got {text[:40]!r}")
    return int(text)


def _duration(text: str) -> float | None:
    if text.upper() in ("", "PRESS", "ON"):
        return None
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise CommandError(f"expected PRESS, a number of seconds or {{\"duration_s\": N}}, got {text[:40]!r}") from None
        if not isinstance(data, dict) or set(data) != {"duration_s"}:
            raise CommandError('expected {"duration_s": N} and nothing else')
        value = data["duration_s"]
    else:
        try:
            value = float(text)
        except ValueError:
            raise CommandError(f"expected PRESS, a number of seconds or {{\"duration_s\": N}}, got {text[:40]!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 1 <= value <= MAX_RECORD_S:
        raise CommandError(f"expected a duration of 1 to {MAX_RECORD_S:g} seconds, got {str(value)[:40]!r}")
    return float(value)


class CommandRunner:
    """Parses, checks against the allow-list and runs commands on `box`; `after(command)` once one ran
    (the publisher sends the new state)."""

    def __init__(self, box: MqttBox, *, prefix: str, allowed: list[str], manual_record_s: float,
                 after: Callable[[Command], None] | None = None):
        self._box, self._prefix, self._allowed = box, prefix, frozenset(allowed)
        self._manual_record_s, self._after = manual_record_s, after
        self.worker = BoundedWorker(name="mqtt-commands", max_jobs=32)
        self.done = self.rejected = self.refused = self.failed = 0
        self.last_rejected: str | None = None

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop(timeout_s=3.0)

    def received(self, topic: str, payload: bytes) -> None:
        """On paho's thread: parse and hand over; never raises."""
        try:
            command = parse_command(self._prefix, topic, payload)
        except CommandError as exc:
            self.rejected += 1
            self.last_rejected = f"{topic[:80]}: {exc}"
            log.warning("MQTT: command rejected: %s", self.last_rejected)
            return
        permission = ALLOWED_BY.get(command.kind, command.kind)
        if permission not in self._allowed:
            self.refused += 1
            self.last_rejected = f"{topic[:80]}: '{permission}' is not in mqtt.commands"
            log.warning("MQTT: command refused: %s", self.last_rejected)
            return
        self.worker.submit(lambda: self._run(command))

    def _run(self, command: Command) -> None:
        try:
            self._dispatch(command)
        except (LookupError, ValueError, OSError) as exc:  # no such output or dome, a bus that failed
            self.failed += 1
            log.warning("MQTT: command %s %s failed: %s", command.kind, command.target, exc)
            return
        self.done += 1
        log.info("MQTT: command %s %s %s", command.kind, command.target, command.value)
        if self._after is not None:
            self._after(command)

    def _dispatch(self, command: Command) -> None:
        box = self._box
        if command.kind == "output":
            box.set_output(command.target, command.value)
        elif command.kind == "arm":
            box.set_armed(command.target, command.value)
        elif command.kind == "schedule":
            box.set_schedule(command.target, command.value)
        elif command.kind == "ptz_preset":
            box.preset_go(command.target, command.value)
        elif command.kind == "record":
            box.record_event(command.target, command.value if command.value is not None else self._manual_record_s)

    def statistics(self) -> dict:
        return {"allowed": sorted(self._allowed), "done": self.done, "rejected": self.rejected,
                "refused": self.refused, "failed": self.failed, "last_rejected": self.last_rejected}
