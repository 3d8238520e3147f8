"""Config models for alarm I/O, motion detection and linkage rules, and the check of their references.

`alarms:` holds the GPIO inputs and outputs and the temperature watch; `channels[].motion` the motion
detection of one channel; `rules:` the linkage (`when` one signal, `do` a list of actions). A rule
naming an input, output or channel that does not exist is rejected at load with the key path of the
reference (`reference_errors`, called by the root `Config`).
"""
from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from appliance.config.section import Section


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ALL_DAYS: list[str] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_CLOCK_RE = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])|24:00")
_CAMERA_INPUT_RE = re.compile(r"ch([0-9]{1,3}):[A-Za-z0-9_.-]{1,32}")  # appliance.alarms.camera_events
CAMERA_SIGNALS = ("line_crossing", "intrusion", "tamper")  # signals only an ONVIF camera's events raise


def _check_id(value: str) -> str:
    if not _ID_RE.fullmatch(value):
        raise ValueError(f"expected an id of 1 to 32 letters, digits, '-' or '_', got {value!r}")
    return value


def _check_pin(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "" or \
            (isinstance(value, int) and not 0 <= value <= 1023):
        raise ValueError(f"expected a GPIO number such as 17, or a name such as 'GPIO17', 'BOARD11' or "
                         f"'gpiochip0:17', got {value!r}")
    return value


def parse_clock(text: str) -> time:
    """'08:30' -> time(8, 30); '24:00' -> midnight (an end of day)."""
    if not _CLOCK_RE.fullmatch(text):
        raise ValueError(f"expected a time of day as HH:MM (00:00 to 24:00), got {text!r}")
    hours, minutes = (int(part) for part in text.split(":"))
    return time(0, 0) if hours == 24 else time(hours, minutes)


class ArmingWindowConfig(Section):
    """A time window in which an input is armed (local time); an end before the start runs past midnight."""

    days: list[Weekday] = Field(default_factory=lambda: list(ALL_DAYS), min_length=1, description=(
        "Weekdays the window starts on: mon, tue, wed, thu, fri, sat, sun."))
    start: str = Field("00:00", description="Start time of day, HH:MM.")
    end: str = Field("24:00", description="End time of day, HH:MM; 24:00 is the end of the day.")

    @field_validator("start", "end")
    @classmethod
    def _is_clock(cls, value: str) -> str:
        parse_clock(value)
        return value


class _PinItem(Section):
    """What alarm inputs and outputs share: an id rules refer to, a display name, and a GPIO pin."""

    id: str = Field(description="Unique id that rules refer to (letters, digits, '-', '_').")
    name: str = Field("", max_length=64, description="Display name; the id when left out.")
    pin: int | str = Field(description="GPIO: 17, 'GPIO17', 'BOARD11', or 'gpiochip0:17' on non-Raspberry boards.")

    @field_validator("id")
    @classmethod
    def _is_id(cls, value: str) -> str:
        return _check_id(value)

    @field_validator("pin", mode="before")
    @classmethod
    def _is_pin(cls, value: object) -> object:
        return _check_pin(value)


class AlarmInputConfig(_PinItem):
    """A dry-contact alarm input on a GPIO pin (internal pull-up; contact to ground)."""

    contact: Literal["NO", "NC"] = Field("NO", description=(
        "NO: open at rest, alarms when it closes. NC: closed at rest, alarms when it opens (or the wire is cut)."))
    debounce_ms: float = Field(50.0, ge=0, le=10_000, description=(
        "The line must stay put this long before a change counts; shorter bursts are ignored and counted."))
    schedule: list[ArmingWindowConfig] = Field(default_factory=list, description=(
        "When the input is armed; empty means always."))

    @field_validator("contact", mode="before")
    @classmethod
    def _no_is_not_false(cls, value: object) -> object:
        # YAML 1.1 reads an unquoted NO as false: `contact: NO` is what installers write, so take it.
        if value is False:
            return "NO"
        return value.upper() if isinstance(value, str) and value.upper() in ("NO", "NC") else value


class AlarmOutputConfig(_PinItem):
    """A relay (or open-collector) alarm output on a GPIO pin; off at start and on shutdown."""

    active_high: bool = Field(True, description="True: the pin is high when the output is on.")
    mode: Literal["latch", "pulse"] = Field("pulse", description=(
        "pulse: on for pulse_s (or the rule's for_s); latch: on until cleared by hand (or a rule's for_s)."))
    pulse_s: float = Field(5.0, gt=0, le=3600, description="Seconds a pulse lasts.")


class Sht3xConfig(Section):
    """An SHT3x temperature/humidity sensor on I2C."""

    bus: int = Field(1, ge=0, le=255, description="I2C bus number (/dev/i2c-N).")
    address: int = Field(0x44, ge=0x03, le=0x77, description="7-bit I2C address: 68 (0x44) or 69 (0x45).")


class TemperatureConfig(Section):
    """The appliance's own health: SoC temperature and, optionally, the enclosure's temperature and humidity."""

    thermal_zones: bool = Field(True, description="Watch the kernel's thermal zones (CPU/SoC temperature).")
    thermal_root: Path = Field(Path("/sys/class/thermal"), strict=False, description="Where the thermal zones are.")
    sht3x: Sht3xConfig | None = Field(None, description="An SHT3x sensor; null for none.")
    min_c: float = Field(-10.0, ge=-60, le=150, description="Lowest allowed temperature, °C.")
    max_c: float = Field(55.0, ge=-60, le=150, description="Highest allowed temperature, °C (SoC zones use max_soc_c).")
    max_soc_c: float = Field(80.0, ge=0, le=150, description="Highest allowed SoC (thermal zone) temperature, °C.")
    min_rh: float = Field(10.0, ge=0, le=100, description="Lowest allowed relative humidity, %.")
    max_rh: float = Field(90.0, ge=0, le=100, description="Highest allowed relative humidity, %.")
    hysteresis: float = Field(2.0, ge=0, le=20, description="How far back inside the range a reading must be to clear.")
    interval_s: float = Field(30.0, ge=1, le=3600, description="Seconds between readings.")


class AlarmsConfig(Section):
    """GPIO alarm inputs and outputs, and the health watch."""

    gpio: Literal["auto", "gpiozero", "linuxpy"] = Field("auto", description=(
        "auto: gpiozero on a Raspberry Pi, else the GPIO character device through linuxpy."))
    gpio_chip: str = Field("/dev/gpiochip0", description="Default chip for the linuxpy backend.")
    inputs: list[AlarmInputConfig] = Field(default_factory=list, description="Alarm inputs.")
    outputs: list[AlarmOutputConfig] = Field(default_factory=list, description="Alarm outputs (relays).")
    temperature: TemperatureConfig = Field(default_factory=dict, description=TemperatureConfig.__doc__)


class MotionAreaConfig(Section):
    """A polygon in normalized picture coordinates: (0, 0) top left, (1, 1) bottom right."""

    name: str = Field("", max_length=64, description="Optional label.")
    points: list[list[float]] = Field(min_length=3, description="At least three [x, y] corners, each 0 to 1.")

    @field_validator("points")
    @classmethod
    def _are_points(cls, points: list[list[float]]) -> list[list[float]]:
        for point in points:
            if len(point) != 2 or not all(0.0 <= value <= 1.0 for value in point):
                raise ValueError(f"expected [x, y] with x and y from 0 to 1, got {point!r}")
        return points


class MotionConfig(Section):
    """Motion detection of one channel, on its sub stream (or scaled-down frames of an analog channel)."""

    enabled: bool = Field(True, description="Detect motion on this channel.")
    fps: float = Field(5.0, ge=0.5, le=15, description="Pictures analysed per second.")
    sensitivity: int = Field(50, ge=1, le=100, description="1 (only large, strong changes) to 100 (the slightest).")
    zones: list[MotionAreaConfig] = Field(default_factory=list, description="Where to look; empty means everywhere.")
    masks: list[MotionAreaConfig] = Field(default_factory=list, description=(
        "Where never to look (a clock overlay, a road, trees)."))
    hold_s: float = Field(5.0, ge=0, le=600, description="Motion ends after this long without any.")


class WhenConfig(Section):
    """The one signal that fires a rule."""

    alarm_input: str | None = Field(None, description=(
        "An alarms.inputs[] id, or a camera's own digital input as chN:TOKEN (channel N's ONVIF camera, "
        "its input token, e.g. ch3:AlarmIn_0)."))
    motion: int | None = Field(None, description=(
        "A channel id whose motion detection is configured, or whose ONVIF camera reports motion "
        "(either source makes it active)."))
    video_loss: int | None = Field(None, description="A channel id.")
    line_crossing: int | None = Field(None, description="A channel id whose ONVIF camera reports line crossing.")
    intrusion: int | None = Field(None, description=(
        "A channel id whose ONVIF camera reports field detection (intrusion into an area)."))
    tamper: int | None = Field(None, description=(
        "A channel id whose ONVIF camera reports tampering (covered, moved, blurred, scene change)."))
    disk: Literal["full", "error", "missing", "failing", "hot", "errors"] | None = Field(None, description=(
        "A data disk problem: full, error (a write failed), missing, or from its health: failing "
        "(S.M.A.R.T. verdict), hot, errors (bad sectors, I/O errors). With several recording disks it "
        "matches each of them: another disk's problem fires the rule again while the first's stands."))
    temperature: Literal["out_of_range"] | None = Field(None, description="Temperature or humidity out of range.")

    @model_validator(mode="after")
    def _exactly_one(self) -> WhenConfig:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"expected exactly one of {', '.join(type(self).model_fields)}, got "
                             f"{', '.join(given) if given else 'none'}")
        return self

    @property
    def signal(self) -> tuple[str, str]:
        """(kind, key), e.g. ('alarm_input', 'door'), ('motion', '1'), ('disk', 'full')."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is not None:
                return name, str(value)
        raise AssertionError("validated to have one signal")


class RecordAction(Section):
    """Mark an event on these channels, from pre_s before the alarm to post_s after it ends."""

    channels: list[int] = Field(min_length=1, description="Channel ids.")
    pre_s: float = Field(10.0, ge=0, le=600, description="Seconds before the alarm the event starts.")
    post_s: float = Field(30.0, ge=0, le=3600, description="Seconds after the alarm ends the event ends.")
    lock: bool = Field(True, description="Keep the event's recordings from retention.")


class OutputAction(Section):
    """Switch an alarm output on."""

    id: str = Field(description="An alarms.outputs[] id.")
    for_s: float | None = Field(None, gt=0, le=86_400, description=(
        "Seconds on; null: the output's own pulse_s (pulse mode) or until cleared (latch mode)."))


class PtzPresetAction(Section):
    """Turn a PTZ dome to a preset."""

    channel: int = Field(description="A channel id.")
    preset: int = Field(ge=1, le=255, description="Preset number.")


class WebhookAction(Section):
    """POST JSON to a URL (in the background; never delays the alarm)."""

    url: str = Field(description="http:// or https:// URL.")
    body: dict[str, Any] | None = Field(None, description=(
        "JSON body; text values may use {rule}, {source}, {active}, {at}, {event_id}, {channels}. "
        "Null sends those fields as they are."))
    timeout_s: float = Field(5.0, gt=0, le=60, description="Seconds to wait for the server.")

    @field_validator("url")
    @classmethod
    def _is_http(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL with a host, got {url!r}")
        return url


class PlayAction(Section):
    """Play a sound file (a siren, a spoken warning) on the box's AUDIO OUT (audio_out.device), or with
    `channel` on that channel's talk output (its camera's speaker). One sound is heard at a time on each
    output: a newer alarm's sound replaces an older one's; an older sound that loops comes back when the
    newer one ends, until its alarm clears. On the AUDIO OUT an alarm sound interrupts the monitor's
    channel sound, and talk and the LINE IN intercom interrupt alarm sounds; on a camera's speaker an
    operator who is talking keeps it, and the alarm's sound is skipped and logged."""

    file: str = Field(max_length=4096, description=(
        "Full path of the sound file: WAV, MP3, AAC, FLAC or Ogg, at most 120 s (decoded once at start)."))
    repeat: int = Field(1, ge=1, le=1000, description="Times to play it (unless `loop`).")
    loop: bool = Field(False, description="Play it again and again while the alarm is active (repeat is ignored).")
    pause_s: float = Field(0.0, ge=0, le=600, description="Silence between two plays of it.")
    volume_percent: float = Field(100.0, ge=0, le=100, description="Its loudness, in percent of the file's own.")
    stop_on_clear: bool = Field(True, description=(
        "Stop it as soon as the alarm's signal clears, even with plays left; false plays every repeat."))
    channel: int | None = Field(None, description=(
        "Play it on this channel's talk output (channels[].talk: the camera's speaker through its ONVIF back "
        "channel, as 8 kHz G.711, or the AUDIO OUT); null: on the AUDIO OUT."))


class ActionConfig(Section):
    """One action: exactly one of record, output, ptz_preset, webhook, log, play."""

    record: RecordAction | None = None
    output: OutputAction | None = None
    ptz_preset: PtzPresetAction | None = None
    webhook: WebhookAction | None = None
    log: str | None = Field(None, max_length=200, description="A message for the log and the event list.")
    play: PlayAction | None = Field(None, description=(
        "A sound on the AUDIO OUT: `play: /path/siren.wav`, or with options {file, repeat, loop, pause_s, "
        "volume_percent, stop_on_clear, channel} (channel: on that camera's speaker instead)."))

    @field_validator("play", mode="before")
    @classmethod
    def _file_alone(cls, value: object) -> object:
        return {"file": value} if isinstance(value, str) else value  # `play: FILE`, the short form

    @model_validator(mode="after")
    def _exactly_one(self) -> ActionConfig:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"expected exactly one action of {', '.join(type(self).model_fields)}, got "
                             f"{', '.join(given) if given else 'none'}")
        return self


class RuleConfig(Section):
    """When a signal fires, do these actions."""

    name: str = Field("", max_length=64, description="Shown in events and logs; 'rule N' when left out.")
    enabled: bool = Field(True, description="False keeps the rule configured but inactive.")
    when: WhenConfig = Field(description=WhenConfig.__doc__)
    do: list[ActionConfig] = Field(min_length=1, description="Actions, run in order.")


# --- references ------------------------------------------------------------------------------

Reference = tuple[tuple[Any, ...], object, str]  # (pydantic loc from the root, value, message)


def reference_errors(config: Any) -> list[Reference]:
    """Every dangling or repeated reference in a validated root config, as (loc, value, message)."""
    alarms: AlarmsConfig = config.alarms
    errors = _duplicates("inputs", [i.id for i in alarms.inputs], "alarm input id")
    errors += _duplicates("outputs", [o.id for o in alarms.outputs], "alarm output id")
    errors += _pin_clashes(alarms)
    for index, rule in enumerate(config.rules):
        errors += _rule_errors(("rules", index), rule, config)
    return errors


def _duplicates(section: str, ids: list[str], what: str) -> list[Reference]:
    first: dict[str, int] = {}
    found = []
    for index, value in enumerate(ids):
        if value in first:
            found.append((("alarms", section, index, "id"), value,
                          f"duplicate {what} {value!r}; already used by alarms.{section}[{first[value]}]"))
        first.setdefault(value, index)
    return found


def _pin_clashes(alarms: AlarmsConfig) -> list[Reference]:
    seen: dict[str, str] = {}
    found = []
    for section, items in (("inputs", alarms.inputs), ("outputs", alarms.outputs)):
        for index, item in enumerate(items):
            key = str(item.pin).upper().removeprefix("GPIO")
            if key in seen:
                found.append((("alarms", section, index, "pin"), item.pin,
                              f"pin {item.pin!r} is already used by {seen[key]}"))
            seen.setdefault(key, f"alarms.{section}[{index}]")
    return found


def has_onvif(channel: Any) -> bool:
    """Whether a channel's camera is reached over ONVIF (a `type: onvif` source or an rtsp `onvif:`)."""
    source = channel.source
    return getattr(source, "type", None) == "onvif" or getattr(source, "onvif", None) is not None


def _rule_errors(loc: tuple[Any, ...], rule: RuleConfig, config: Any) -> list[Reference]:
    channels = {channel.id: channel for channel in config.channels}
    inputs = [i.id for i in config.alarms.inputs]
    outputs = [o.id for o in config.alarms.outputs]
    when, errors = rule.when, []
    if when.alarm_input is not None and when.alarm_input not in inputs:
        errors += _camera_input_errors((*loc, "when", "alarm_input"), when.alarm_input, channels, inputs)
    for key in ("motion", "video_loss", *CAMERA_SIGNALS):
        channel = getattr(when, key)
        if channel is not None and channel not in channels:
            errors.append(((*loc, "when", key), channel, f"unknown channel {channel}; {_known('channels', channels)}"))
    if when.motion in channels and getattr(channels[when.motion], "motion", None) is None \
            and not has_onvif(channels[when.motion]):
        errors.append(((*loc, "when", "motion"), when.motion,
                       f"channel {when.motion} has no motion detection; add a `motion:` section to that channel "
                       f"(or an `onvif:` endpoint to its source for the camera's own motion)"))
    for key in CAMERA_SIGNALS:
        channel = getattr(when, key)
        if channel in channels and not has_onvif(channels[channel]):
            errors.append(((*loc, "when", key), channel,
                           f"channel {channel} is not an ONVIF camera: only a camera's own analytics report "
                           f"{key.replace('_', ' ')}; give its source an `onvif:` endpoint or use `type: onvif`"))
    temperature = config.alarms.temperature
    if when.temperature and not (temperature.thermal_zones or temperature.sht3x):
        errors.append(((*loc, "when", "temperature"), when.temperature,
                       "no temperature sensor is watched: enable alarms.temperature.thermal_zones or sht3x"))
    for index, action in enumerate(rule.do):
        errors += _action_errors((*loc, "do", index), action, channels, outputs)
        if action.play is not None:
            errors += _play_errors((*loc, "do", index, "play"), action.play, config)
    return errors


def _camera_input_errors(loc: tuple[Any, ...], value: str, channels: dict, inputs: list[str]) -> list[Reference]:
    match = _CAMERA_INPUT_RE.fullmatch(value)
    if match is None:
        hint = " (a camera's own input is chN:TOKEN, e.g. ch3:AlarmIn_0)" \
            if any(has_onvif(channel) for channel in channels.values()) else ""
        return [(loc, value, f"unknown alarm input {value!r}; {_known('alarms.inputs', inputs)}{hint}")]
    channel = int(match.group(1))
    if channel not in channels or not has_onvif(channels[channel]):
        return [(loc, value, f"{value!r} names channel {channel}, which is not an ONVIF camera; "
                             f"{_known('channels', channels)}")]
    return []


def _play_errors(loc: tuple[Any, ...], play: PlayAction, config: Any) -> list[Reference]:
    from appliance.config.talk import play_target
    from appliance.sound.clips import SPEAKER_CHANNELS, SPEAKER_RATE, ClipError, decode_clip  # PyAV: only here

    channels = [channel.id for channel in config.channels]
    if play.channel is not None and play.channel not in channels:
        return [((*loc, "channel"), play.channel, f"unknown channel {play.channel}; {_known('channels', channels)}")]
    target = play_target(play.channel, config)
    if target[0] == "off" and play.channel is not None:
        return [((*loc, "channel"), play.channel, (
            f"channel {play.channel} has no talk output to play on: set its talk.output (camera or audio_out), "
            "or leave channel out to play on the AUDIO OUT"))]
    if target[0] == "off":
        return [(loc, play.file, "the box has no AUDIO OUT configured for this sound: set audio_out.device "
                                 "(an ALSA playback device, `aplay -L` lists them), or give the channel whose "
                                 "camera speaker plays it")]
    speaker = {"rate": SPEAKER_RATE, "channels": SPEAKER_CHANNELS} if target[0] == "camera" else {}
    try:  # in the format its output plays, as the player will
        decode_clip(play.file, **speaker)
    except ClipError as exc:
        return [((*loc, "file"), play.file, str(exc))]
    return []


def _action_errors(loc: tuple[Any, ...], action: ActionConfig, channels: dict, outputs: list[str]) -> list[Reference]:
    errors = []
    if action.record is not None:
        for index, channel in enumerate(action.record.channels):
            if channel not in channels:
                errors.append(((*loc, "record", "channels", index), channel,
                               f"unknown channel {channel}; {_known('channels', channels)}"))
    if action.output is not None and action.output.id not in outputs:
        errors.append(((*loc, "output", "id"), action.output.id,
                       f"unknown alarm output {action.output.id!r}; {_known('alarms.outputs', outputs)}"))
    preset = action.ptz_preset
    if preset is not None and preset.channel not in channels:
        errors.append(((*loc, "ptz_preset", "channel"), preset.channel,
                       f"unknown channel {preset.channel}; {_known('channels', channels)}"))
    elif preset is not None and getattr(channels[preset.channel], "ptz", None) is None \
            and not has_onvif(channels[preset.channel]):
        errors.append(((*loc, "ptz_preset", "channel"), preset.channel,
                       f"channel {preset.channel} has no PTZ dome; add a `ptz:` section (port and address) "
                       f"to that channel, or an `onvif:` endpoint to its source for an ONVIF PTZ camera"))
    return errors


def _known(section: str, ids) -> str:
    listed = ", ".join(str(i) for i in ids)
    return f"{section} defines: {listed}" if listed else f"{section} defines none"
