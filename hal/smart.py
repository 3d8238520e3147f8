"""A disk's S.M.A.R.T. health as smartmontools reports it: `smartctl --json -a`, parsed and bounded.

Two layers: `parse_smartctl_json` is pure (bytes in, a `SmartReport` out, no I/O) and is what the
fuzz target drives; `read_smart` runs smartctl once on a device and parses what it printed;
`probe` adds the retry with `-d sat` that many USB-SATA bridges need.

smartctl's output is input like any other: a broken or hostile executable on the PATH, a bridge that
returns garbage, a truncated pipe. Limits (named below): the output's size, the JSON's nesting depth,
how many messages and how much of each text are kept. Anything over them, and anything that is not
smartctl's JSON, is a `SmartParseError` naming what was wrong; a field of the wrong type or out of
physical range is treated as absent, never trusted.

Exceptions:

    SmartError (OSError)
    ├── SmartParseError (ValueError)   the output is not smartctl's JSON, or is over a limit
    └── SmartUnavailable               smartctl is not installed, or did not finish in time
"""
from __future__ import annotations

import json
import re
import subprocess
import threading
from dataclasses import dataclass
from typing import Any

MAX_OUTPUT_BYTES = 1 << 20  # `smartctl -x --json` of a disk with full logs is ~100 KiB; ten times that is not smartctl
MAX_JSON_DEPTH = 32  # smartctl nests about 6 levels
MAX_MESSAGES = 16  # smartctl's messages kept, the rest counted
MAX_TEXT_CHARS = 200  # of a model, serial, firmware or message
MAX_ATTRIBUTES = 256  # ATA SMART attribute ids are one byte
TEMPERATURE_RANGE_C = (-40, 150)  # outside it a reading is a bridge's garbage, not a temperature
SMARTCTL_TIMEOUT_S = 60.0  # a disk spinning up answers in ~10 s; a hung bridge must not hold the poller forever
DEVICE_TYPES = ("sat", "scsi", "nvme", "ata", "usbjmicron", "usbprolific", "usbsunplus", "usbcypress")

# smartctl's exit status bits (smartctl(8), "RETURN VALUES")
EXIT_OPEN_FAILED = 1 << 1  # the device could not be opened, or is in a low-power mode (-n)
EXIT_DISK_FAILING = 1 << 3  # SMART status says "DISK FAILING"
EXIT_PREFAIL_BELOW_THRESHOLD = 1 << 4  # a pre-failure attribute is at or below its threshold now

# ATA SMART attribute ids
ATTR_REALLOCATED, ATTR_POWER_ON_HOURS, ATTR_REPORTED_UNCORRECT = 5, 9, 187
ATTR_AIRFLOW_TEMPERATURE, ATTR_TEMPERATURE, ATTR_PENDING, ATTR_OFFLINE_UNCORRECTABLE = 190, 194, 197, 198

_ASLEEP = re.compile(r"\bin (STANDBY|SLEEP)\b", re.IGNORECASE)
_LEADING_INT = re.compile(r"\s*(-?[0-9]{1,12})")
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


class SmartError(OSError):
    """S.M.A.R.T. data could not be had."""


class SmartParseError(SmartError, ValueError):
    """What smartctl printed is not its JSON, or is over one of this module's limits."""


class SmartUnavailable(SmartError):
    """smartctl could not be run (not installed) or did not finish within SMARTCTL_TIMEOUT_S."""


@dataclass(frozen=True, slots=True)
class SmartReport:
    """One reading of one disk. Every field may be None: not every disk, bridge or protocol reports it.

    `passed` is the drive's own overall verdict; `asleep` means smartctl left a spun-down disk alone
    (`-n standby`) and the reading holds nothing else.
    """

    device: str
    device_type: str | None = None
    protocol: str | None = None
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    capacity_bytes: int | None = None
    passed: bool | None = None
    temperature_c: int | None = None
    power_on_hours: int | None = None
    reallocated_sectors: int | None = None
    pending_sectors: int | None = None
    uncorrectable_sectors: int | None = None
    exit_status: int = 0
    messages: tuple[str, ...] = ()
    asleep: bool = False

    @property
    def has_data(self) -> bool:
        """Whether smartctl read anything of the disk itself (not only its own messages)."""
        return any(v is not None for v in (self.model, self.serial, self.passed, self.temperature_c))

    @property
    def failing(self) -> bool:
        """The drive says it is failing, or a pre-failure attribute is at or below its threshold."""
        return self.passed is False or bool(self.exit_status & (EXIT_DISK_FAILING | EXIT_PREFAIL_BELOW_THRESHOLD))

    @property
    def health(self) -> str:
        """'failing', 'passed', 'standby' or 'unknown'."""
        if self.asleep:
            return "standby"
        if self.failing:
            return "failing"
        return "passed" if self.passed else "unknown"

    def as_dict(self) -> dict:
        return {"device": self.device, "type": self.device_type, "protocol": self.protocol, "model": self.model,
                "serial": self.serial, "firmware": self.firmware, "capacity_bytes": self.capacity_bytes,
                "health": self.health, "temperature_c": self.temperature_c, "power_on_hours": self.power_on_hours,
                "reallocated_sectors": self.reallocated_sectors, "pending_sectors": self.pending_sectors,
                "uncorrectable_sectors": self.uncorrectable_sectors, "messages": list(self.messages)}


# --- parsing ---------------------------------------------------------------------------------------

def parse_smartctl_json(data: bytes, *, device: str = "") -> SmartReport:
    """The report in smartctl's `--json` output `data`. Linear in its input, which is at most
    MAX_OUTPUT_BYTES. Raises SmartParseError saying what is wrong with anything else."""
    doc = _load(data)
    smartctl = _dict(doc.get("smartctl"))
    if smartctl is None and _dict(doc.get("device")) is None:
        raise SmartParseError("this JSON is not smartctl's: it has neither a smartctl nor a device object "
                              "(smartmontools 7.0 or newer prints them with --json)")
    smartctl = smartctl or {}  # saved reports are sometimes trimmed to the disk's part
    messages = _messages(smartctl.get("messages"))
    found = _dict(doc.get("device")) or {}
    return SmartReport(
        device=_text(found.get("name")) or device, device_type=_text(found.get("type")),
        protocol=_text(found.get("protocol")), model=_model(doc), serial=_text(doc.get("serial_number")),
        firmware=_text(doc.get("firmware_version")), capacity_bytes=_capacity(doc),
        passed=_bool(_get(doc, "smart_status", "passed")), temperature_c=_temperature(doc),
        power_on_hours=_power_on_hours(doc), **_sector_counts(doc),
        exit_status=(_int(smartctl.get("exit_status")) or 0) & 0xFF, messages=messages,
        asleep=any(_ASLEEP.search(m) for m in messages),
    )


def _load(data: bytes) -> dict:
    if len(data) > MAX_OUTPUT_BYTES:
        raise SmartParseError(f"smartctl printed {len(data)} bytes, more than the {MAX_OUTPUT_BYTES} "
                              "any disk's report takes; is `smartctl` on the PATH smartmontools'?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SmartParseError(f"smartctl's output is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    _check_depth(text)
    try:
        doc = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, and ints over Python's digit limit
        shown = "empty output" if not text.strip() else f"not JSON: {exc}"
        raise SmartParseError(f"smartctl's output is {shown}; it needs smartmontools 7.0 or newer for --json") from None
    if not isinstance(doc, dict):
        raise SmartParseError(f"smartctl's JSON is a {type(doc).__name__}, expected an object")
    return doc


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than MAX_JSON_DEPTH before json.loads recurses into it."""
    depth = 0
    for match in _BRACKETS.finditer(_STRINGS.sub('""', text)):
        depth += 1 if match.group() in "[{" else -1
        if depth > MAX_JSON_DEPTH:
            raise SmartParseError(f"smartctl's JSON nests deeper than {MAX_JSON_DEPTH} levels; smartctl's never does")


def _get(doc: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _dict(value: Any) -> dict | None:
    return value if isinstance(value, dict) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _count(value: Any) -> int | None:
    """A non-negative count, or None."""
    number = _int(value)
    return number if number is not None and number >= 0 else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return "".join(c if c.isprintable() else "?" for c in value.strip()[:MAX_TEXT_CHARS])


def _messages(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    texts = [text for item in value[:MAX_MESSAGES] if (text := _text(_get(item, "string"))) is not None]
    if len(value) > MAX_MESSAGES:
        texts.append(f"... and {len(value) - MAX_MESSAGES} more messages")
    return tuple(texts)


def _model(doc: dict) -> str | None:
    model = _text(doc.get("model_name"))
    if model is None:  # SCSI and SAS disks name vendor and product instead
        parts = [_text(doc.get("scsi_vendor")), _text(doc.get("scsi_product")) or _text(doc.get("scsi_model_name"))]
        model = " ".join(p for p in parts if p) or None
    return model


def _capacity(doc: dict) -> int | None:
    return _first(_get(doc, "user_capacity", "bytes"), doc.get("nvme_total_capacity"))


def _temperature(doc: dict) -> int | None:
    candidates = [_get(doc, "temperature", "current"), _get(doc, "nvme_smart_health_information_log", "temperature")]
    attributes = _attributes(doc)
    candidates += [attributes.get(ATTR_TEMPERATURE), attributes.get(ATTR_AIRFLOW_TEMPERATURE)]
    low, high = TEMPERATURE_RANGE_C
    for value in candidates:
        if (number := _int(value)) is not None and low <= number <= high:
            return number
    return None


def _power_on_hours(doc: dict) -> int | None:
    # Attribute 9's raw value is vendor-packed on many drives (minutes, or hours with milliseconds);
    # smartctl decodes it into power_on_time, so only its own decoding is trusted.
    return _first(_get(doc, "power_on_time", "hours"), _get(doc, "nvme_smart_health_information_log", "power_on_hours"))


def _sector_counts(doc: dict) -> dict[str, int | None]:
    attributes = _attributes(doc)
    nvme = _dict(doc.get("nvme_smart_health_information_log")) or {}
    scsi_errors = [_count(_get(doc, "scsi_error_counter_log", way, "total_uncorrected_errors"))
                   for way in ("read", "write", "verify")]
    scsi_uncorrected = sum(n for n in scsi_errors if n is not None) if any(n is not None for n in scsi_errors) else None
    uncorrectable = attributes.get(ATTR_OFFLINE_UNCORRECTABLE)
    if uncorrectable is None:
        uncorrectable = attributes.get(ATTR_REPORTED_UNCORRECT)
    return {
        "reallocated_sectors": _first(attributes.get(ATTR_REALLOCATED), doc.get("scsi_grown_defect_list")),
        "pending_sectors": _count(attributes.get(ATTR_PENDING)),
        "uncorrectable_sectors": _first(uncorrectable, nvme.get("media_errors"), scsi_uncorrected),
    }


def _first(*values: Any) -> int | None:
    for value in values:
        if (number := _count(value)) is not None:
            return number
    return None


def _attributes(doc: dict) -> dict[int, int]:
    """ATA attribute id -> its raw count as smartctl prints it (its decoding of vendor formats: the
    leading number of `raw.string`, e.g. 32 of '32 (Min/Max 18/45)'), else `raw.value`."""
    table = _get(doc, "ata_smart_attributes", "table")
    if not isinstance(table, list):
        return {}
    found: dict[int, int] = {}
    for row in table[:MAX_ATTRIBUTES]:
        attr_id = _int(_get(row, "id"))
        if attr_id is None or attr_id in found:
            continue
        raw_text = _get(row, "raw", "string")
        match = _LEADING_INT.match(raw_text) if isinstance(raw_text, str) else None
        value = int(match.group(1)) if match else _int(_get(row, "raw", "value"))
        if value is not None:
            found[attr_id] = value
    return found


# --- running smartctl ------------------------------------------------------------------------------

def smartctl_command(device: str, *, device_type: str | None = None, smartctl: str = "smartctl") -> list[str]:
    """The command line of one reading: JSON, all SMART information, and never spin up a sleeping disk."""
    if device_type is not None and device_type not in DEVICE_TYPES:
        raise ValueError(f"unknown smartctl device type {device_type!r}; expected one of {', '.join(DEVICE_TYPES)}")
    return [smartctl, "--json", "-a", "-n", "standby", *(("-d", device_type) if device_type else ()), device]


def read_smart(device: str, *, device_type: str | None = None, smartctl: str = "smartctl",
               timeout_s: float = SMARTCTL_TIMEOUT_S) -> SmartReport:
    """Run smartctl once on `device` and parse its report (whatever its exit status: the status is in
    the report). Raises SmartUnavailable or SmartParseError."""
    command = smartctl_command(device, device_type=device_type, smartctl=smartctl)
    try:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
    except OSError as exc:
        raise SmartUnavailable(exc.errno, f"cannot run {smartctl!r} ({exc.strerror}); install smartmontools") from None
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        proc.kill()

    killer = threading.Timer(timeout_s, kill)  # a guard on a child process, not appliance timing
    killer.start()
    try:
        data = proc.stdout.read(MAX_OUTPUT_BYTES + 1)
        if len(data) > MAX_OUTPUT_BYTES:
            proc.kill()
        proc.stdout.close()
        proc.wait()
    finally:
        killer.cancel()
    if timed_out.is_set():
        raise SmartUnavailable(f"{' '.join(command)} did not finish within {timeout_s:g} s (a hung USB bridge?)")
    return parse_smartctl_json(data, device=device)


def probe(device: str, *, device_type: str | None = None, smartctl: str = "smartctl") -> SmartReport:
    """`read_smart`, and when smartctl cannot tell what an un-typed device is (USB-SATA bridges often
    do not say), once more with `-d sat`, the pass-through most bridges speak."""
    report = read_smart(device, device_type=device_type, smartctl=smartctl)
    if device_type is None and not report.has_data and not report.asleep:
        retried = read_smart(device, device_type="sat", smartctl=smartctl)
        if retried.has_data or retried.asleep:
            return retried
    return report

