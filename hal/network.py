"""The machine's own network identity: its host name and the IP addresses of its interfaces (Linux /proc)."""
from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

FIB_TRIE = Path("/proc/net/fib_trie")
IF_INET6 = Path("/proc/net/if_inet6")
MAX_PROC_BYTES = 1 << 20  # a router's full table can be large; an appliance's is a few KiB


def host_name() -> str:
    """The machine's host name, as `hostname` prints it."""
    return socket.gethostname()


def local_addresses(*, fib_trie: Path = FIB_TRIE, if_inet6: Path = IF_INET6) -> set[str]:
    """Every IPv4 and IPv6 address assigned to an interface of this machine, as text (no scope id).
    Addresses come and go with DHCP and SLAAC: ask again rather than keeping the answer long."""
    found: set[str] = set()
    lines = _read(fib_trie).splitlines()
    for line, following in zip(lines, lines[1:]):
        text = line.strip().removeprefix("|-- ").strip()
        if "/32 host LOCAL" in following and _is_ip(text):
            found.add(text)
    for line in _read(if_inet6).splitlines():
        parts = line.split()
        if parts and len(parts[0]) == 32:
            try:
                found.add(str(ipaddress.IPv6Address(int(parts[0], 16))))
            except ValueError:
                continue
    return found


def _read(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(MAX_PROC_BYTES).decode("ascii", "replace")
    except OSError:
        return ""


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
