"""`listen: host:port` of the box's services (web, RTSP server, ONVIF server): checked at load, and split."""
from __future__ import annotations

import ipaddress
import re

from pydantic import field_validator

from appliance.config.section import Section

_HOST_LABEL_RE = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)", re.IGNORECASE | re.ASCII)


def split_host_port(listen: str) -> tuple[str, int]:
    """``'127.0.0.1:8080'`` -> ``('127.0.0.1', 8080)``; ``'[::1]:80'`` -> ``('::1', 80)``.

    The host is an IPv4 address, a host name, or an IPv6 address in brackets (returned without
    them); the port is 1-65535. Raises ValueError naming what was expected.
    """
    host, colon, port_text = listen.rpartition(":")
    if not colon or not host:
        raise ValueError(f"expected host:port such as '127.0.0.1:8080', '0.0.0.0:80' or "
                         f"'[::]:8080', got {listen!r}")
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"expected a port from 1 to 65535 after the last ':', got {listen!r}")
    if host.startswith("[") and host.endswith("]") and _is_ipv6(host[1:-1]):
        return host[1:-1], int(port_text)
    if ":" in host:
        raise ValueError(f"expected an IPv6 address in brackets, like '[::1]:8080', got {listen!r}")
    if not _is_ipv4_or_host_name(host):
        raise ValueError(f"expected an IPv4 address, a host name or a bracketed IPv6 address "
                         f"before the ':', got {listen!r}")
    return host, int(port_text)


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _is_ipv4_or_host_name(host: str) -> bool:
    labels = host.split(".")
    if all(label.isascii() and label.isdigit() for label in labels):  # looks like an address: must be one
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    return len(host) <= 253 and all(_HOST_LABEL_RE.fullmatch(label) for label in labels)


def is_host_name_or_address(host: str) -> bool:
    """An IPv4 address, a host name or an IPv6 address (with or without its brackets)."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return _is_ipv6(bare) or _is_ipv4_or_host_name(bare)


class ListenService(Section):
    """A service listening on `listen` (host:port, checked at load; each service declares the field with its
    own default and description), with its host and port apart."""

    @field_validator("listen", check_fields=False)
    @classmethod
    def _is_host_port(cls, listen: str) -> str:
        split_host_port(listen)
        return listen

    @property
    def host(self) -> str:
        """The host part of `listen`, IPv6 without brackets."""
        return split_host_port(self.listen)[0]

    @property
    def port(self) -> int:
        """The port part of `listen`."""
        return split_host_port(self.listen)[1]
