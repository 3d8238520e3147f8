"""The names this appliance answers to, and the check of `Host` and `Origin` on state-changing requests.

DNS rebinding: a page on evil.example re-points its own name at the appliance's LAN address, and
the victim's browser then sends it requests as "same-origin" -- with `Host: evil.example`. A fresh
box has no session to steal, but `/api/setup` would hand the page the administrator account, and a
logged-in browser's cookies are not sent to the foreign name anyway, so the check is cheap and
complete: every request that changes state (any method but GET, HEAD, OPTIONS; that includes
`/api/login` and `/api/setup`) must name this appliance in `Host`, and in `Origin` when the browser
sends one. Allowed names: the host of `web.listen` (unless a wildcard), the machine's host name and
`<hostname>.local` (mDNS), its IP addresses, loopback, and `web.allowed_hosts` (for a DNS name or
a port-forwarding router's address).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from base.clock import Clocks
from hal.network import host_name, local_addresses

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"0.0.0.0", "::", ""})
REFRESH_S = 10.0  # addresses change with DHCP; re-read them at most this often


def host_of(header: str) -> str:
    """The host name of a `Host` header value (`name:port`, `[v6]:port`, `name`), lower case, without
    a trailing dot. '' if it cannot be one."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        return header[1:end] if end > 0 else ""
    if header.count(":") == 1:
        header = header.partition(":")[0]
    elif ":" in header:  # a bare IPv6 address without brackets is not a valid Host; refuse it
        return ""
    return header.rstrip(".")


def origin_host(origin: str) -> str:
    """The host of an `Origin` header (`scheme://host[:port]`); '' for `null` or anything malformed."""
    try:
        parts = urlsplit(origin.strip())
        return (parts.hostname or "").rstrip(".") if parts.scheme in ("http", "https") else ""
    except ValueError:
        return ""


class HostCheck:
    """Answers whether a request names this appliance. Thread-safe; the machine's names and addresses
    are read again at most every `REFRESH_S` seconds."""

    def __init__(self, *, listen_host: str, allowed_hosts: Iterable[str] = (),
                 addresses: Callable[[], set[str]] = local_addresses, hostname: Callable[[], str] = host_name,
                 clocks: Clocks):
        fixed = {host_of(h) or h.lower() for h in allowed_hosts} | set(LOOPBACK_NAMES)
        if listen_host.lower() not in WILDCARDS:
            fixed.add(listen_host.lower().strip("[]"))
        self._fixed = frozenset(fixed)
        self._addresses, self._hostname = addresses, hostname
        self._now = lambda: clocks.monotonic_us() / 1e6
        self._names: frozenset[str] = frozenset()
        self._read_at = -REFRESH_S
        self._lock = threading.Lock()

    def names(self) -> frozenset[str]:
        """Every name allowed now."""
        with self._lock:
            if self._now() - self._read_at >= REFRESH_S:
                name = self._hostname().lower().rstrip(".")
                machine = {name, f"{name.split('.')[0]}.local"} if name else set()
                self._names = self._fixed | machine | {a.lower() for a in self._addresses()}
                self._read_at = self._now()
            return self._names

    def refusal(self, host: str | None, origin: str | None) -> str | None:
        """None if `Host` (and `Origin`, when sent) name this appliance; else why not, for a 403."""
        allowed = self.names()
        name = host_of(host or "")
        if name not in allowed:
            return (f"Host {name or host!r} is not a name of this appliance (DNS rebinding protection); "
                    f"use its address or host name, or add the name to web.allowed_hosts")
        if origin is not None and origin_host(origin) not in allowed:
            return (f"Origin {origin!r} is not this appliance; requests that change anything must come from "
                    f"its own page (add the name to web.allowed_hosts if it is yours)")
        return None
