"""The `mqtt:` section of the config: the broker, topics, Home Assistant discovery, TLS and the command allow-list.

Validated at load like every section (key path and line per problem); a URL's password never appears
in a message (`base.credentials.mask_credentials`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, ValidationInfo, field_validator

from appliance.config.section import Section
from base.credentials import mask_credentials

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
MAX_TOPIC_PREFIX_CHARS = 128
# Topic levels: no wildcards, no NUL, no empty levels; HA's node ids take only [A-Za-z0-9_-].
_TOPIC_PREFIX_RE = re.compile(r"[^/+#\x00\s]+(/[^/+#\x00\s]+)*")
_DISCOVERY_PREFIX_RE = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*")
_CLIENT_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")

MqttCommand = Literal["output", "arm", "ptz_preset", "record"]


class MqttTlsConfig(Section):
    """TLS for mqtts:// (and for mqtt:// when any file is given): the CA to trust and an optional client certificate."""

    ca_file: Path | None = Field(None, strict=False, description=(
        "PEM file of the CA(s) that signed the broker's certificate; null trusts the system's CAs."))
    cert_file: Path | None = Field(None, strict=False, description="PEM client certificate, for brokers that ask for one.")
    key_file: Path | None = Field(None, strict=False, description="PEM private key of cert_file.")
    insecure: bool = Field(False, description=(
        "Do not check that the broker's certificate names its host (a broker reached by IP address with a "
        "certificate for a name). The chain is still checked against ca_file."))

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _from_the_config_folder(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        if path is None:
            return None
        base_dir = (info.context or {}).get("base_dir") or Path.cwd()
        return Path(os.path.abspath(Path(base_dir) / path.expanduser()))

    @property
    def configured(self) -> bool:
        return any(f is not None for f in (self.ca_file, self.cert_file, self.key_file))


class MqttConfig(Section):
    """MQTT: the box's alarms, motion, faults, recording state and disk space on the home's message bus,
    Home Assistant discovery, and the commands it accepts (design/mqtt.md)."""

    enabled: bool = Field(False, description="Connect to the broker and publish.")
    url: str = Field("mqtt://localhost:1883", description=(
        "Broker: mqtt://[user:password@]host[:port] (default port 1883) or mqtts://... for TLS (8883)."))
    client_id: str | None = Field(None, description="MQTT client id; default nvr-<hostname>.")
    topic_prefix: str | None = Field(None, description=(
        "First levels of every topic the box publishes; default nvr/<hostname>."))
    discovery: bool = Field(True, description="Publish Home Assistant discovery configs (retained).")
    discovery_prefix: str = Field("homeassistant", description="Home Assistant's discovery prefix.")
    tls: MqttTlsConfig = Field(default_factory=dict, description=MqttTlsConfig.__doc__)
    commands: list[MqttCommand] = Field(default_factory=list, description=(
        "Commands accepted from the bus, none by default: output (switch alarm outputs), arm (arm/disarm "
        "alarm inputs), ptz_preset (send a dome to a preset), record (a manual event recording). Anyone who "
        "may publish to <topic_prefix>/.../set on the broker can use these: restrict it with the broker's ACL."))
    outbox_max: int = Field(1000, ge=10, le=100_000, description=(
        "Messages kept while the broker is unreachable; beyond this the oldest are dropped and counted."))
    keepalive_s: int = Field(30, ge=5, le=600, description="MQTT keep-alive; the broker sends the last will after 1.5x this.")
    reconnect_max_s: float = Field(60.0, ge=1, le=600, description="Longest wait between reconnection attempts (doubles from 1 s).")
    state_interval_s: float = Field(30.0, ge=1, le=3600, description=(
        "How often recording state and free disk space are looked at; published when they change."))
    snapshots: bool = Field(True, description=(
        "Publish a JPEG of the channel on <topic_prefix>/channel/N/snapshot when its motion starts or a rule "
        "recording it fires."))
    snapshot_max_width: int = Field(640, ge=64, le=3840, description="Snapshots are scaled down to this width.")
    ptz_preset_buttons: int = Field(4, ge=0, le=64, description=(
        "Home Assistant buttons per PTZ channel for presets 1..N (any preset can still be sent as a command)."))
    manual_record_s: float = Field(30.0, ge=1, le=3600, description=(
        "Length of a manual event recording started by the record command without a duration."))
    web_url: str | None = Field(None, description=(
        "How the home network reaches the web UI (http://nvr.local:8080), for the playback links in rule "
        "events; null gives links relative to the web UI."))

    @field_validator("url")
    @classmethod
    def _is_broker_url(cls, url: str) -> str:
        broker_address(url)
        return url

    @field_validator("client_id")
    @classmethod
    def _is_client_id(cls, value: str | None) -> str | None:
        if value is not None and not _CLIENT_ID_RE.fullmatch(value):
            raise ValueError(f"expected 1-64 letters, digits, '_', '.' or '-', got {value!r}")
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _is_topic_prefix(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > MAX_TOPIC_PREFIX_CHARS or not _TOPIC_PREFIX_RE.fullmatch(value)):
            raise ValueError(f"expected topic levels separated by '/' without '+', '#', spaces or empty levels, "
                             f"at most {MAX_TOPIC_PREFIX_CHARS} characters, got {value!r}")
        return value

    @field_validator("discovery_prefix")
    @classmethod
    def _is_discovery_prefix(cls, value: str) -> str:
        if not _DISCOVERY_PREFIX_RE.fullmatch(value) or len(value) > MAX_TOPIC_PREFIX_CHARS:
            raise ValueError(f"expected topic levels of letters, digits, '_' or '-', such as 'homeassistant', got {value!r}")
        return value

    @field_validator("commands")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"expected each command once, got {value!r}")
        return value

    @field_validator("web_url")
    @classmethod
    def _is_web_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
            raise ValueError(f"expected an http:// or https:// URL without credentials, got {mask_credentials(value)!r}")
        return value.rstrip("/")


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker is and who we are, from `mqtt.url`."""

    tls: bool
    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)


def broker_address(url: str) -> BrokerAddress:
    """Split mqtt[s]://[user[:password]@]host[:port]; ValueError (showing the URL masked) if it is not one."""
    shown = mask_credentials(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"expected mqtt://host:port or mqtts://host:port with a port from 1 to 65535, got {shown!r}") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or any(c.isspace() for c in url) \
            or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"expected mqtt://[user:password@]host[:port] or mqtts://..., got {shown!r}")
    if port == 0:
        raise ValueError(f"expected a port from 1 to 65535, got {shown!r}")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return BrokerAddress(parts.scheme == "mqtts", parts.hostname, port or DEFAULT_PORTS[parts.scheme], username, password)
