"""The appliance configuration: YAML file -> one typed, validated pydantic model tree.

Every model forbids unknown keys, and every setting has a default, bounds and a description, so
`Config.model_json_schema()` documents the file. Loading never stops at the first mistake: every
problem is collected and raised at once as a `ConfigError`, each with its key path as written in the
YAML (``channels[1].source.url``), the line of that key, and a message that says what was expected
and shows the value that was found::

    /etc/nvr/nvr.yaml:14: channels[1].source.url: expected an rtsp:// or rtsps:// URL with a host,
    got 'http://cam'

(one line per problem; wrapped here).

Exceptions:

    ConfigError (ValueError)    the file is missing, unreadable, not YAML, or not a valid config;
                                `.problems` lists every `Problem` found
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import (BeforeValidator, Field, PrivateAttr, ValidationError,
                      ValidationInfo, field_validator, model_validator)
from pydantic.fields import FieldInfo
from pydantic_core import InitErrorDetails, PydanticCustomError

from appliance.config.listen import ListenService, is_host_name_or_address
from appliance.config.section import Section
from base.credentials import mask_credentials
from appliance.config.ptz import ChannelPtzConfig, PtzConfig, unknown_port_errors
from appliance.config.monitor import MonitorConfig
from appliance.config.box_source import OnvifServerConfig, RtspServerConfig, box_source_errors
from appliance.config.mqtt import MqttConfig
from appliance.config.onvif import OnvifEndpoint, OnvifSource
from appliance.config.audio import AudioConfig, check_channel_audio
from appliance.config.talk import AudioOutConfig, TalkConfig, talk_errors
from appliance.config.line_in import LineInConfig, line_in_errors
from appliance.config.alarms import AlarmsConfig, MotionConfig, RuleConfig, reference_errors
from appliance.config.yaml_lines import (MAX_YAML_CHARS, Document, Location, YamlLimitError, error_line, error_message,
                                  format_path, load_document, locate, tagged_models)

MIB, GIB = 1 << 20, 1 << 30
TestPatternName = Literal["auto", "bars", "gradient", "checker", "ball", "zoneplate"]
TEST_PATTERNS: tuple[str, ...] = get_args(TestPatternName)
VideoStandard = Literal["PAL", "NTSC", "SECAM"]
EncoderName = Literal["auto", "libx264", "h264_v4l2m2m"]
X264Preset = Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"]


# --- errors -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    """One mistake in a config file: key path (``''`` for the whole file), 1-based line, message."""

    path: str
    line: int | None
    message: str

    def format(self, source: str) -> str:
        """``'FILE:LINE: path: message'``, leaving out the parts that are unknown or empty."""
        where = source if self.line is None else f"{source}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(ValueError):
    """A config that cannot be used; `problems` lists every mistake found, in file order."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        super().__init__(source, problems)
        self.source = source
        self.problems = list(problems)

    def __str__(self) -> str:
        return "\n".join(problem.format(self.source) for problem in self.problems)


class ConfigTooLarge(ConfigError):
    """A document refused before validation: over the size, depth, alias-expansion or number limits,
    or holding a NUL character (yaml_lines). Its one problem says which limit, where."""


# --- value syntax: sizes, RTSP URLs, host:port --------------------------------------------------

_SIZE_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-z]*)\s*", re.IGNORECASE | re.ASCII)
_SIZE_UNITS = {"": 1, "b": 1}
for _power, _letter in enumerate("kmgtp", start=1):
    # Bare letters are binary, as `df -h` and systemd print them; "KB", "MB", ... are SI.
    _SIZE_UNITS.update({_letter: 1024**_power, _letter + "i": 1024**_power,
                        _letter + "ib": 1024**_power, _letter + "b": 1000**_power})


def parse_size_bytes(value: object) -> object:
    """A byte count from an int or a string like ``'512MiB'``, ``'2G'``, ``'1.5GB'``, ``'100 MB'``.

    Units are case-insensitive: B; KB, MB, GB, TB, PB are powers of 1000; KiB, MiB, ... and the bare
    letters K, M, G, T, P are powers of 1024. Raises ValueError for negative or malformed sizes. Other
    types are returned unchanged, for pydantic to reject with its type message.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return value
    if isinstance(value, str):
        return _parse_size_text(value)
    if value < 0 or not math.isfinite(value) or value != int(value):
        raise ValueError(f"expected a whole, non-negative number of bytes, got {value!r}")
    return int(value)


def _parse_size_text(text: str) -> int:
    match = _SIZE_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"expected a size such as 1073741824, '512MiB', '2G' or '1.5GB', got {text!r}")
    number, unit = match.groups()
    if unit.lower() not in _SIZE_UNITS:
        raise ValueError(f"unknown size unit {unit!r} in {text!r}; use B, KB/MB/GB/TB (powers of "
                         f"1000) or KiB/MiB/GiB/TiB or K/M/G/T (powers of 1024)")
    size = float(number) * _SIZE_UNITS[unit.lower()]
    if not math.isfinite(size):
        raise ValueError(f"expected a size that fits the disk, got {text!r}")
    return round(size)


def check_rtsp_url(url: str) -> str:
    """Return `url` if it is ``rtsp://`` or ``rtsps://`` with a host and a valid port; else ValueError.

    Credentials (``rtsp://user:pass@host/...``) are allowed; messages show them masked.
    """
    shown = mask_credentials(url)
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        parts = None
    if parts is None or parts.scheme.lower() not in ("rtsp", "rtsps") or not parts.hostname \
            or any(char.isspace() for char in url):
        raise ValueError(f"expected an rtsp:// or rtsps:// URL with a host, got {shown!r}")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError(f"expected a port from 1 to 65535 in the URL, got {shown!r}")
    return url


# --- the model tree ---------------------------------------------------------------------------

ByteCount = Annotated[int, BeforeValidator(parse_size_bytes)]


class RetentionConfig(Section):
    """When to delete old segments."""

    max_used_percent: float = Field(90.0, ge=1, le=99, description=(
        "Delete the oldest unlocked segments while the data disk is fuller than this percentage."))
    min_free_bytes: ByteCount = Field(GIB, ge=0, description=(
        "Delete the oldest unlocked segments while less than this is free. Bytes, or a size "
        "such as '512MiB', '2G', '1.5GB'."))
    locked_floor_bytes: ByteCount = Field(64 * MIB, ge=0, description=(
        "Below this much free space even segments locked by events are deleted (and an alarm is "
        "raised), so the disk never fills completely. At most min_free_bytes."))
    max_age_days: float | None = Field(None, gt=0, description=(
        "Delete unlocked segments older than this many days; null for no age limit."))
    events_max_age_days: float | None = Field(None, gt=0, description=(
        "Delete event (locked) recordings older than this many days; null keeps them until the disk "
        "itself runs out (locked_floor_bytes). A channel's retention.events_max_age_days overrides it."))
    interval_s: float = Field(10.0, ge=1, le=3600, description="Seconds between retention passes.")

    @model_validator(mode="after")
    def _floor_is_below_target(self) -> RetentionConfig:
        if self.locked_floor_bytes > self.min_free_bytes:
            raise _located_error(("locked_floor_bytes",), self.locked_floor_bytes, (
                f"expected at most min_free_bytes ({self.min_free_bytes}), got "
                f"{self.locked_floor_bytes}: locked segments may only go once unlocked ones are gone"))
        return self


class ChannelRetentionConfig(Section):
    """One channel's own retention bounds, applied on top of storage.retention's disk-wide ones."""

    max_bytes: ByteCount | None = Field(None, ge=MIB, description=(
        "Most this channel's continuous (unlocked) recordings may occupy, all its streams together; its "
        "oldest go first beyond it. Event (locked) recordings do not count and are kept by "
        "events_max_age_days. Bytes or a size such as '200GiB'; null for no quota."))
    max_age_days: float | None = Field(None, gt=0, description=(
        "Delete this channel's unlocked recordings older than this many days; null: only the disk's bound."))
    events_max_age_days: float | None = Field(None, gt=0, description=(
        "Delete this channel's event (locked) recordings older than this many days; null: "
        "storage.retention.events_max_age_days."))


SmartDeviceType = Literal["sat", "scsi", "nvme", "ata", "usbjmicron", "usbprolific", "usbsunplus", "usbcypress"]


class DiskHealthConfig(Section):
    """Watching the recordings disk's health: S.M.A.R.T. through smartctl, and the faults disk_failing,
    disk_hot and disk_errors (which rules can watch as `disk: failing|hot|errors`)."""

    smart: bool = Field(True, description=(
        "Read the disk's S.M.A.R.T. health with smartctl (smartmontools). A disk that answers none (an SD "
        "card, a virtual disk) is shown as such; false skips it altogether."))
    interval_s: float = Field(1800.0, ge=60, le=86400, description=(
        "Seconds between S.M.A.R.T. readings. A sleeping disk is never woken for one (smartctl -n standby)."))
    max_temperature_c: float = Field(55.0, ge=30, le=80, description=(
        "Raise disk_hot at or above this drive temperature (°C); cleared 3 °C below it."))
    device: str | None = Field(None, description=(
        "The disk to read, e.g. /dev/sda; null finds the disk that holds storage.path."))
    device_type: SmartDeviceType | None = Field(None, description=(
        "smartctl's -d type; null lets smartctl choose and retries with 'sat' for USB-SATA bridges that "
        "need it. 'usbjmicron' and the like only for bridges that speak nothing else."))

    @field_validator("device")
    @classmethod
    def _is_device_path(cls, device: str | None) -> str | None:
        if device is not None and (not device.startswith("/dev/") or any(c.isspace() for c in device)):
            raise ValueError(f"expected a block device such as /dev/sda or /dev/disk/by-id/..., got {device!r}")
        return device


_LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,31}", re.ASCII)


class DiskConfig(Section):
    """One recording disk: the folder it is mounted at, and a name for people."""

    path: Path = Field(strict=False, description=(
        "The folder the disk is mounted at (better its own mount point); relative paths are taken from "
        "the config file's folder. A small identity file is written there on first use."))
    label: str | None = Field(None, description=(
        "The disk's name in alarms, `nvr disks` and the health page: 1-32 letters, digits, spaces, "
        "'_', '.', '-'. Default: the folder's name."))
    group: str | None = Field(None, description=(
        "The disk group it belongs to, for channels[].storage to pin channels to (e.g. 'outdoor'); null: "
        "only channels that are not pinned record onto it."))
    require_mount: bool | None = Field(None, description=(
        "true: the disk is used only while `path` is a mount point, so nothing (not even its identity "
        "file) lands on the filesystem under an empty mount point; while it is not mounted the disk is "
        "away (disk_offline) and, if `path` is in /etc/fstab, mounted again once its device is back. "
        "null: as storage.require_mount. false: a plain folder is used as it is."))

    @field_validator("path")
    @classmethod
    def _path_is_absolute(cls, path: Path, info: ValidationInfo) -> Path:
        base_dir = (info.context or {}).get("base_dir") or Path.cwd()
        return Path(os.path.abspath(Path(base_dir) / path.expanduser()))

    @field_validator("label", "group")
    @classmethod
    def _label_is_plain(cls, label: str | None) -> str | None:
        if label is not None and not _LABEL_RE.fullmatch(label):
            raise ValueError(f"expected 1-32 letters, digits, spaces, '_', '.' or '-' starting with a letter or "
                             f"digit, got {label!r}")
        return label

    @property
    def name(self) -> str:
        return self.label or self.path.name or str(self.path)


class StorageConfig(Section):
    """Where and how recordings are written."""

    path: Path = Field(Path("./nvr-data"), strict=False, description=(
        "Folder for segments and the index. A relative path is taken from the config file's "
        "folder; after loading it is always absolute."))
    segment_seconds: int = Field(60, ge=2, le=600, description=(
        "Target length of one segment file in seconds; segments are cut at the next keyframe."))
    retention: RetentionConfig = Field(default_factory=dict, description=RetentionConfig.__doc__)
    health: DiskHealthConfig = Field(default_factory=dict, description=DiskHealthConfig.__doc__)
    disks: list[DiskConfig] = Field(default_factory=list, max_length=16, description=(
        "Recording disks. Empty: segments go under `path`. Given: `path` keeps the index (put it on the "
        "system's own storage or one of the disks' mount points' parents, never inside a disk) and the "
        "segments spread over these disks, each recognised by its identity file; a disk that fails or is "
        "pulled is marked and recording goes on on the others."))
    require_mount: bool = Field(False, description=(
        "Record only onto mounted disks of their own (the appliance image sets this). Without `disks`: "
        "while `path` is not mounted, the disk_missing alarm is raised and nothing is recorded, never onto "
        "the SD card or into RAM; live view, the local monitor and alarm inputs go on, and the appliance "
        "restarts itself to record once the disk is mounted. With `disks`: `path` (the index) may be any "
        "folder, and each disk (unless its own require_mount says otherwise) is used only while mounted, "
        "and mounted again from /etc/fstab when its device comes back. Needs web.state_dir (users off "
        "that disk)."))

    @model_validator(mode="after")
    def _disks_are_apart(self) -> StorageConfig:
        """No disk folder is another's, inside another, or holds the index's folder or lies inside it."""
        errors = []
        for index, disk in enumerate(self.disks):
            for other_index, other in enumerate(self.disks[:index]):
                if _nested(disk.path, other.path):
                    errors.append(_error_details(("disks", index, "path"), str(disk.path), (
                        f"{disk.path} overlaps disks[{other_index}].path {other.path}: each disk needs its own folder")))
            if _nested(disk.path, self.path):
                errors.append(_error_details(("disks", index, "path"), str(disk.path), (
                    f"{disk.path} overlaps storage.path {self.path}, which keeps the index: give the disks "
                    f"folders of their own beside it")))
        names = [disk.name for disk in self.disks]
        for index, name in enumerate(names):
            if name in names[:index]:
                errors.append(_error_details(("disks", index, "label"), name, (
                    f"the disk name {name!r} is used twice; give each disk its own label")))
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def mount_required(self, disk: DiskConfig) -> bool:
        """Whether `disk` is used only while its folder is a mount point: its own require_mount, else ours."""
        return self.require_mount if disk.require_mount is None else disk.require_mount

    @field_validator("path", mode="before")
    @classmethod
    def _path_is_not_empty(cls, value: object) -> object:
        if value == "":  # Path("") would quietly mean "the current folder"
            raise ValueError("expected a folder path, got ''")
        return value

    @field_validator("path")
    @classmethod
    def _path_is_absolute(cls, path: Path, info: ValidationInfo) -> Path:
        base_dir = (info.context or {}).get("base_dir") or Path.cwd()
        return Path(os.path.abspath(Path(base_dir) / path.expanduser()))


class RtspSource(Section):
    """A network camera, recorded by remuxing its RTSP stream (never re-encoded)."""

    type: Literal["rtsp"] = Field("rtsp", description="Source kind.")
    url: str = Field(description=(
        "Main (recorded) stream: rtsp:// or rtsps://, optionally with user:password@ and a port."))
    sub_url: str | None = Field(None, description=(
        "Optional low-resolution sub stream for the live grid and motion detection."))
    timeout_s: float = Field(10.0, ge=1, le=120, description=(
        "Seconds without a packet after which the stream counts as stalled and is reopened."))
    reconnect_max_s: float = Field(30.0, ge=1, le=600, description=(
        "Longest wait between reconnection attempts to a camera that answers and refuses (wrong password, "
        "no such stream; the wait doubles up to this). Other failures are retried within 2 s, and a camera "
        "is reopened as soon as it accepts connections again."))
    client: Literal["auto", "native", "ffmpeg"] = Field("auto", description=(
        "RTSP client: 'native' (the appliance's own, cheapest: H.264 with AAC or G.711 audio over TCP), "
        "'ffmpeg' (FFmpeg's, via PyAV), or 'auto' (native, switching to FFmpeg for a camera that needs what "
        "the native client does not do, e.g. H.265, UDP-only transport or B-frames)."))

    onvif: OnvifEndpoint | None = Field(None, description=(
        "The camera's ONVIF device service, for PTZ and its own events only (the streams stay the URLs "
        "above); a camera whose streams should be asked of ONVIF is `type: onvif` instead."))

    @field_validator("url", "sub_url")
    @classmethod
    def _is_rtsp_url(cls, url: str | None) -> str | None:
        return url if url is None else check_rtsp_url(url)


class TestPatternSource(Section):
    """A simulated analog camera that generates and encodes a moving test pattern."""

    type: Literal["test-pattern"] = Field("test-pattern", description="Source kind.")
    width: int = Field(720, ge=16, le=3840, multiple_of=2, description="Frame width in pixels.")
    height: int = Field(576, ge=16, le=2160, multiple_of=2, description="Frame height in pixels.")
    fps: float = Field(25.0, ge=1, le=60, description="Frames per second.")
    pattern: TestPatternName = Field("auto", description=(
        "Picture to draw; 'auto' picks one per channel so channels look different."))
    bitrate: int = Field(1_500_000, ge=64_000, le=20_000_000, description=(
        "Target H.264 bit rate in bits per second."))
    keyframe_interval_s: float = Field(2.0, ge=0.5, le=10, description="Seconds between keyframes.")


def _check_v4l2_input(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "" or \
            (isinstance(value, int) and value < 0):
        raise ValueError(f"expected an input number (0, 1, ...) or an input name such as 'S-Video 0' "
                         f"(`nvr devices` lists them), got {_shown(value)}")
    return value


class V4l2Source(Section):
    """An analog camera on one input of a V4L2 capture card, encoded to H.264 once."""

    type: Literal["v4l2"] = Field("v4l2", description="Source kind.")
    device: str = Field(description=(
        "Capture device: /dev/video0, or better a stable /dev/v4l/by-path/... link, which keeps its "
        "name when cards are added. `nvr devices` lists them."))
    input: Annotated[int | str, BeforeValidator(_check_v4l2_input)] = Field(0, description=(
        "Input (connector) of the card: its number from 0, or its name as `nvr devices` shows it."))
    standard: VideoStandard | None = Field("PAL", description=(
        "Analog video standard; null for an input without one (HDMI bridge, webcam), whose size then "
        "comes from the device."))
    width: int | None = Field(None, ge=16, le=3840, multiple_of=2, description=(
        "Frame width in pixels; default from the standard (720)."))
    height: int | None = Field(None, ge=16, le=2160, multiple_of=2, description=(
        "Frame height in pixels; default from the standard (576 for PAL and SECAM, 480 for NTSC)."))
    fps: float | None = Field(None, ge=1, le=60, description=(
        "Frames per second; default from the standard (25 for PAL and SECAM, 29.97 for NTSC)."))
    encoder: EncoderName = Field("auto", description=(
        "H.264 encoder: 'auto' uses the board's hardware encoder (h264_v4l2m2m) where it has one, "
        "else libx264."))
    bitrate: int = Field(2_000_000, ge=64_000, le=20_000_000, description=(
        "Target H.264 bit rate in bits per second."))
    preset: X264Preset = Field("veryfast", description=(
        "libx264 speed preset; slower presets need more CPU per channel for the same quality."))
    keyframe_interval_s: float = Field(2.0, ge=0.5, le=10, description="Seconds between keyframes.")
    video_loss_s: float = Field(2.0, ge=0.5, le=60, description=(
        "Seconds without a frame after which the input counts as lost (the video_loss alarm; the run "
        "ends). An input whose status says 'no signal' is acted on within half a second regardless."))

    @field_validator("device")
    @classmethod
    def _is_device_path(cls, device: str) -> str:
        if not device.startswith("/") or device.endswith("/") or any(char.isspace() for char in device):
            raise ValueError(f"expected a device path such as /dev/video0 or /dev/v4l/by-path/..., "
                             f"got {device!r}")
        return device


SourceConfig = Annotated[RtspSource | OnvifSource | TestPatternSource | V4l2Source, Field(discriminator="type")]


class ChannelConfig(Section):
    """One camera input of the appliance."""

    id: int = Field(ge=1, le=256, description="Channel number, unique, shown in the UI and file names.")
    name: str = Field(min_length=1, max_length=64, description=(
        "Display name; 'Channel {id}' when left out. Names need not be unique."))
    enabled: bool = Field(True, description="Record and show this channel.")
    source: SourceConfig = Field(description="Where the video comes from; `type` picks the kind.")
    ptz: ChannelPtzConfig | None = Field(None, description=(
        "The PTZ dome filming this channel (an RS-485 port from ptz.ports and an address); null for none."))
    audio: AudioConfig = Field(default_factory=dict, description=AudioConfig.__doc__)
    talk: TalkConfig = Field(default_factory=dict, description=TalkConfig.__doc__)
    retention: ChannelRetentionConfig = Field(default_factory=dict, description=ChannelRetentionConfig.__doc__)
    storage: str | None = Field(None, description=(
        "The disk group (storage.disks[].group) this channel records onto; null: any disk not in a group. "
        "A pinned channel never records elsewhere: while no disk of its group is usable it records nothing "
        "and says so (disk_error)."))

    @model_validator(mode="after")
    def _audio_fits_source(self) -> ChannelConfig:
        check_channel_audio(self.source.type, self.audio)
        return self
    motion: MotionConfig | None = Field(None, description="Motion detection; null for none.")

    @model_validator(mode="before")
    @classmethod
    def _name_defaults_to_number(cls, data: Any) -> Any:
        if isinstance(data, dict) and "name" not in data:
            channel_id = data.get("id")
            number = channel_id if isinstance(channel_id, int) and not isinstance(channel_id, bool) else "?"
            return {**data, "name": f"Channel {number}"}
        return data


class WebConfig(ListenService):
    """The web status page and REST API."""

    listen: str = Field("127.0.0.1:8080", description=(
        "host:port to serve on: an IPv4 address, a host name or [IPv6]; 0.0.0.0 for all interfaces."))
    state_dir: Path | None = Field(None, strict=False, description=(
        "Folder for web users, sessions and the audit log (users.sqlite3); default: the storage path."))
    tls_cert: Path | None = Field(None, strict=False, description=(
        "PEM certificate file: serve HTTPS instead of HTTP (with tls_key)."))
    tls_key: Path | None = Field(None, strict=False, description="PEM private key file of tls_cert.")
    tls_self_signed: bool = Field(False, description=(
        "Serve HTTPS with a self-signed certificate made on first start (in state_dir) when no tls_cert is given."))
    allowed_hosts: list[str] = Field(default_factory=list, max_length=64, description=(
        "Extra names (or addresses) the web page may be reached by, besides the listen address, the "
        "machine's host name, <hostname>.local and its IP addresses: e.g. a DNS name or the address of a "
        "router forwarding to it. Requests that change anything (log-in and set-up included) naming "
        "another host in Host or Origin are refused, which defeats DNS rebinding."))

    @field_validator("allowed_hosts")
    @classmethod
    def _are_host_names(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            if not is_host_name_or_address(host):
                raise ValueError(f"expected host names or IP addresses without a port or scheme, such as "
                                 f"'nvr.example.com' or '203.0.113.7', got {host!r}")
        return hosts

    @field_validator("state_dir", "tls_cert", "tls_key")
    @classmethod
    def _paths_from_the_config_folder(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        if path is None:
            return None
        base_dir = (info.context or {}).get("base_dir") or Path.cwd()
        return Path(os.path.abspath(Path(base_dir) / path.expanduser()))


class Config(Section):
    """The whole appliance configuration."""

    # Defaults are raw mappings so that they are validated with the file's context (base_dir).
    storage: StorageConfig = Field(default_factory=dict, description=StorageConfig.__doc__)
    channels: list[ChannelConfig] = Field(default_factory=list, description=(
        "Camera inputs, each with a unique id."))
    web: WebConfig = Field(default_factory=dict, description=WebConfig.__doc__)
    ptz: PtzConfig = Field(default_factory=dict, description=PtzConfig.__doc__)
    monitor: MonitorConfig = Field(default_factory=dict, description=MonitorConfig.__doc__)
    alarms: AlarmsConfig = Field(default_factory=dict, description=AlarmsConfig.__doc__)
    rules: list[RuleConfig] = Field(default_factory=list, description="Linkage rules: when a signal fires, do actions.")
    mqtt: MqttConfig = Field(default_factory=dict, description=MqttConfig.__doc__)
    audio_out: AudioOutConfig = Field(default_factory=dict, description=AudioOutConfig.__doc__)
    line_in: LineInConfig = Field(default_factory=dict, description=LineInConfig.__doc__)
    rtsp_server: RtspServerConfig = Field(default_factory=dict, description=RtspServerConfig.__doc__)
    onvif_server: OnvifServerConfig = Field(default_factory=dict, description=OnvifServerConfig.__doc__)

    _source_name: str = PrivateAttr("<python>")

    @property
    def source_name(self) -> str:
        """Where this config came from: a file path, ``'<embedded>'``, or ``'<python>'``."""
        return self._source_name

    @field_validator("channels")
    @classmethod
    def _channel_ids_are_unique(cls, channels: list[ChannelConfig]) -> list[ChannelConfig]:
        ids = [channel.id for channel in channels]
        duplicates = _duplicate_indices(ids)
        if duplicates:
            raise ValidationError.from_exception_data(cls.__name__, [
                _error_details((index, "id"), ids[index], _duplicate_id_message(ids[index], first))
                for index, first in duplicates])
        return channels

    @model_validator(mode="after")
    def _references_exist(self) -> Config:
        errors = unknown_port_errors(self.ptz, self.channels) + reference_errors(self) + talk_errors(self)
        errors += line_in_errors(self) + box_source_errors(self)
        groups = {disk.group for disk in self.storage.disks if disk.group}
        for index, channel in enumerate(self.channels):
            if channel.storage is not None and channel.storage not in groups:
                errors.append((("channels", index, "storage"), channel.storage, (
                    f"no disk in storage.disks has group {channel.storage!r}" +
                    (f"; the groups are: {', '.join(sorted(groups))}" if groups else
                     "; give the disks a group (storage.disks[].group) to pin channels to"))))
        if self.storage.disks and all(disk.group for disk in self.storage.disks) and \
                any(c.storage is None and c.enabled for c in self.channels):
            errors.append((("storage", "disks"), None, (
                "every disk is in a group, so channels without `storage:` have nowhere to record; leave a disk "
                "without a group or pin every channel")))
        if self.storage.require_mount and self.web.state_dir is None:
            # Users default to the data root; without the disk they would be a fresh, empty store in RAM
            # that offers anyone on the network the "create the administrator" page.
            errors.append((("web", "state_dir"), None, (
                "required with storage.require_mount: web users must not live on the recordings disk, which "
                "may be missing; give a folder on the system's own storage, e.g. /var/lib/nvr/web")))
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, [
                _error_details(loc, value, message) for loc, value, message in errors])
        return self

    @field_validator("channels")
    @classmethod
    def _capture_devices_are_not_shared(cls, channels: list[ChannelConfig]) -> list[ChannelConfig]:
        problems = _shared_device_problems(channels)
        if problems:
            raise ValidationError.from_exception_data(cls.__name__, problems)
        return channels


def _shared_device_problems(channels: list[ChannelConfig]) -> list[InitErrorDetails]:
    """One problem for each enabled v4l2 channel whose device node an earlier enabled channel uses.

    A V4L2 node streams one input at a time, and switching inputs to share it would cost every channel
    most of its frames (design/analog-capture.md), so it is refused here rather than failing at run time.
    """
    first_user: dict[str, int] = {}
    problems = []
    for index, channel in enumerate(channels):
        if not channel.enabled or not isinstance(channel.source, V4l2Source):
            continue
        node = os.path.realpath(channel.source.device)  # /dev/v4l/by-path/... links name the same node
        if node not in first_user:
            first_user[node] = index
            continue
        first = channels[first_user[node]]
        problems.append(_error_details((index, "source", "device"), channel.source.device, (
            f"{channel.source.device} is already recorded by channels[{first_user[node]}] (channel {first.id}, "
            f"input {first.source.input!r}); a capture device node streams one input at a time. Cards that "
            f"capture inputs in parallel (TW6869/TW68, most multi-chip USB DVR cards) have a /dev/videoN per "
            f"input: give each channel its own (`nvr devices` lists them). A card with one node and several "
            f"inputs (EasyCAP-class stk1160, usbtv, em28xx) records one channel")))
    return problems


def _nested(a: Path, b: Path) -> bool:
    """Whether one of two absolute folders is the other or lies inside it."""
    return a == b or a in b.parents or b in a.parents


def _duplicate_indices(values: list[object]) -> list[tuple[int, int]]:
    """(index, index of first occurrence) for each repeated int in `values`; other values are skipped."""
    first_seen: dict[int, int] = {}
    duplicates = []
    for index, value in enumerate(values):
        if not isinstance(value, int) or isinstance(value, bool):
            continue
        if value in first_seen:
            duplicates.append((index, first_seen[value]))
        else:
            first_seen[value] = index
    return duplicates


def _duplicate_id_message(channel_id: int, first: int) -> str:
    return f"duplicate channel id {channel_id}; ids must be unique (already used by channels[{first}])"


def _error_details(loc: tuple[Any, ...], value: object, message: str) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError("config_check", message), loc=loc, input=value)


def _located_error(loc: tuple[Any, ...], value: object, message: str) -> ValidationError:
    """A cross-field error placed at `loc` below the model being validated (pydantic adds the rest)."""
    return ValidationError.from_exception_data("Config", [_error_details(loc, value, message)])


# --- loading ----------------------------------------------------------------------------------

def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the config file at `path`; a relative storage.path is taken from its folder.

    Raises ConfigError listing every problem (including a missing or unreadable file).
    """
    path = Path(path)
    return parse_config(_read_text(path), source=str(path), base_dir=path.absolute().parent)


def parse_config(text: str, *, source: str = "<embedded>", base_dir: Path | None = None) -> Config:
    """Validate config YAML `text`; `source` names it in messages, `base_dir` (default: the current
    folder) anchors a relative storage.path. Raises ConfigError listing every problem."""
    document = _parse_yaml(text, source)
    problems = _duplicate_key_problems(document) + _duplicate_channel_problems(document)
    try:
        config = Config.model_validate(document.data, context={"base_dir": base_dir})
    except ValidationError as exc:
        problems += [_problem_from_pydantic(error, document) for error in exc.errors(include_url=False)]
    if problems:
        raise ConfigError(source, _in_file_order(problems))
    config._source_name = source
    return config


def default_config() -> Config:
    """The built-in default (one test-pattern channel), with storage.path under the current folder."""
    text = resources.files("appliance").joinpath("default.yaml").read_text(encoding="utf-8")
    return parse_config(text, source="<built-in default.yaml>")


def _read_text(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_YAML_CHARS * 4 + 1)  # UTF-8: at most 4 bytes a character
        if len(raw) > MAX_YAML_CHARS * 4:
            raise ConfigTooLarge(str(path), [Problem("", None, f"the file is larger than {MAX_YAML_CHARS * 4} bytes; "
                                                               f"is it the config?")])
        return raw.decode("utf-8-sig")
    except FileNotFoundError as exc:
        raise ConfigError(str(path), [Problem("", None, "the config file does not exist")]) from exc
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        raise ConfigError(str(path), [Problem("", line, f"not UTF-8 text: {exc.reason} at byte "
                                                        f"{exc.start}")]) from exc
    except OSError as exc:
        raise ConfigError(str(path), [Problem("", None, f"cannot read the config file: "
                                                        f"{exc.strerror or exc}")]) from exc


def _parse_yaml(text: str, source: str) -> Document:
    """The YAML document of a config; ConfigError if it is not YAML, empty, or not a mapping."""
    try:
        document = load_document(text)
    except YamlLimitError as exc:
        raise ConfigTooLarge(source, [Problem(format_path(exc.path), exc.line, exc.message)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [Problem("", error_line(exc, text), error_message(exc))]) from exc
    if document.data is None:
        raise ConfigError(source, [Problem("", document.line_of(()) or 1, "the config file is empty")])
    if not isinstance(document.data, dict):
        raise ConfigError(source, [Problem("", document.line_of(()), (
            f"expected a mapping of settings (storage:, channels:, web:) at the top level, "
            f"got {_shown(document.data)}"))])
    return document


def _duplicate_key_problems(document: Document) -> list[Problem]:
    return [Problem(format_path(duplicate.path), duplicate.line,
                    f"duplicate key; first given on line {duplicate.first_line}, and YAML would "
                    f"silently keep only this later one")
            for duplicate in document.duplicates]


def _duplicate_channel_problems(document: Document) -> list[Problem]:
    """Repeated channel ids, from the raw data.

    Config checks this too, but pydantic runs that check only when every channel is otherwise
    valid; checking here reports duplicates together with the other problems. The identical
    problem from both checks is merged by `_in_file_order`.
    """
    channels = document.data.get("channels")  # type: ignore[union-attr]
    if not isinstance(channels, list):
        return []
    ids = [channel.get("id") if isinstance(channel, dict) else None for channel in channels]
    return [Problem(format_path(("channels", index, "id")), document.line_of(("channels", index, "id")),
                    _duplicate_id_message(ids[index], first))
            for index, first in _duplicate_indices(ids)]


def _in_file_order(problems: list[Problem]) -> list[Problem]:
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda problem: problem.line if problem.line is not None else 0)


# --- pydantic errors -> problems --------------------------------------------------------------

def _problem_from_pydantic(error: Any, document: Document) -> Problem:
    where = locate(error["loc"], Config)
    keys = where.keys
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        keys += (error["ctx"]["discriminator"].strip("'"),)  # point at `type:`, or at its parent
    return Problem(format_path(keys), document.line_of(keys), _message(error, where))


def _message(error: Any, where: Location) -> str:
    """A human message for one pydantic error: what was expected, and the value found."""
    return _MESSAGES.get(error["type"], _expected_message)(error, where)


def _unknown_key_message(error: Any, where: Location) -> str:
    if where.owner is None:
        return f"unknown key {error['input']!r}"
    return f"unknown key; allowed keys here: {', '.join(where.owner.model_fields)}"


def _union_tag_message(error: Any, where: Location) -> str:
    allowed = ", ".join(tagged_models(where.field)) if where.field is not None else "?"
    tag = (error.get("ctx") or {}).get("tag")
    found = "required key is missing" if tag is None else f"unknown {where.keys[-1]} type {tag!r}"
    return f"{found}; allowed types: {allowed}"


def _mapping_message(error: Any, where: Location) -> str:
    return f"expected a mapping of settings (indented `key: value` lines), got {_shown(error['input'])}"


def _expected_message(error: Any, where: Location) -> str:
    """'expected <what the field takes>, got <value>', or pydantic's words where the field is unknown."""
    expected, value = _expected(where.field), error.get("input")
    if expected is None:
        return f"{error['msg']}, got {_shown(value)}"
    return f"expected {expected}, got {_shown(value)}{_quote_hint(error['type'], value)}"


_MESSAGES: dict[str, Callable[[Any, Location], str]] = {
    "config_check": lambda error, where: error["msg"],  # our own cross-field checks, already worded
    "value_error": lambda error, where: str(error["ctx"]["error"]),  # from our validators, already worded
    "missing": lambda error, where: "required key is missing",
    "extra_forbidden": _unknown_key_message,
    "invalid_key": lambda error, where: f"keys must be text, got {error['input']!r}",
    "union_tag_invalid": _union_tag_message,
    "union_tag_not_found": _union_tag_message,
    "model_type": _mapping_message,
    "model_attributes_type": _mapping_message,
    "dict_type": _mapping_message,
    "list_type": lambda error, where: f"expected a list ('- ' lines), got {_shown(error['input'])}",
}


_NOUNS = {int: "an integer", float: "a number", bool: "true or false", str: "text", Path: "a path"}
_LIMIT_NAMES = ("ge", "gt", "le", "lt", "multiple_of", "min_length", "max_length")


def _expected(field: FieldInfo | None) -> str | None:
    """What a field accepts, e.g. 'an integer from 2 to 600', or None if it cannot be said simply."""
    if field is None:
        return None
    members = [member for member in get_args(field.annotation) if member is not type(None)]
    annotation = members[0] if len(members) == 1 else field.annotation
    nullable = " (or null)" if len(members) < len(get_args(field.annotation)) else ""
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(str(choice) for choice in get_args(annotation)) + nullable
    if annotation not in _NOUNS:
        return None
    limits = {name: _plain(getattr(item, name)) for item in field.metadata for name in _LIMIT_NAMES
              if getattr(item, name, None) is not None}
    even = annotation is int and limits.get("multiple_of") == 2
    return ("an even integer" if even else _NOUNS[annotation]) + _range_text(limits) + nullable


def _range_text(limits: dict[str, Any]) -> str:
    """' from 2 to 600', ' greater than 0', ' of 1 to 64 characters' ... from a field's limits."""
    if "min_length" in limits or "max_length" in limits:
        return f" of {limits.get('min_length', 0)} to {limits.get('max_length', 'any number of')} characters"
    if "ge" in limits and "le" in limits:
        return f" from {limits['ge']} to {limits['le']}"
    words = {"ge": "at least", "gt": "greater than", "le": "at most", "lt": "less than"}
    parts = [f"{words[name]} {limits[name]}" for name in words if name in limits]
    return " " + " and ".join(parts) if parts else ""


def _plain(number: Any) -> Any:
    """1.0 -> 1, so bounds read as written."""
    return int(number) if isinstance(number, float) and number.is_integer() else number


def _shown(value: object) -> str:
    """`value` as a message shows it: repr, shortened; a YAML null reads as an empty value."""
    if value is None:
        return "an empty value (null)"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _quote_hint(kind: str, value: object) -> str:
    """A hint for YAML's typing surprises: a quoted number or boolean, or an unquoted yes/no/on/off."""
    if isinstance(value, bool) and kind in ("int_type", "float_type", "string_type"):
        return " (YAML reads unquoted yes/no/on/off/true/false as true or false)"
    if not isinstance(value, str) or kind not in ("int_type", "float_type", "bool_type"):
        return ""
    try:
        unquoted = yaml.safe_load(value)
    except yaml.YAMLError:
        return ""
    wanted = bool if kind == "bool_type" else (int, float)
    if isinstance(unquoted, wanted) and (kind == "bool_type" or not isinstance(unquoted, bool)):
        return " (text in quotes; remove the quotes)"
    return ""
