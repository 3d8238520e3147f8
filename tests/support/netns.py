"""Two network namespaces joined by a veth pair, for multicast tests that must never touch the host's network.

    with veth_pair() as pair:       # pair.a / pair.b: namespace names; pair.ip_a / pair.ip_b: their addresses
        subprocess.run(pair.exec_a(["python3", ...]))

Needs root and `ip` (iproute2). Each namespace has only `lo` and its end of the pair, with a route for
multicast (224.0.0.0/4) over the pair, so a multicast datagram from one reaches the other and nothing else.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass


def netns_available() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "network namespaces need root"
    if shutil.which("ip") is None:
        return False, "needs `ip` (iproute2)"
    return True, "ok"


@dataclass(frozen=True)
class VethPair:
    a: str
    b: str
    ip_a: str
    ip_b: str

    def exec_a(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.a, *argv]

    def exec_b(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.b, *argv]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@contextmanager
def veth_pair(prefix: str = "nvrd"):
    tag = f"{prefix}{os.getpid() % 100000}"
    pair = VethPair(f"{tag}a", f"{tag}b", "10.213.0.1", "10.213.0.2")
    try:
        _ip("netns", "add", pair.a)
        _ip("netns", "add", pair.b)
        _ip("link", "add", f"{tag}va", "netns", pair.a, "type", "veth", "peer", "name", f"{tag}vb", "netns", pair.b)
        for ns, dev, address in ((pair.a, f"{tag}va", pair.ip_a), (pair.b, f"{tag}vb", pair.ip_b)):
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up", "multicast", "on")
            _ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", dev)
        yield pair
    finally:
        for ns in (pair.a, pair.b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
