"""bench/onvif_cost: what ONVIF costs the box: importing the client library (time and peak RSS, each in a fresh
interpreter), asking a camera for its stream URI (first and later reconnects, against ipycam's ONVIF
service on loopback), and parsing WS-Discovery answers (seeds, and a datagram at the size cap).

    ./dev bench onvif_cost [--repeats 5] [--resolves 20]

Prints Markdown tables. Needs ipycam (`pip install --no-deps ipycam`) for the resolve rows.
"""
from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Stopwatch, print_table  # noqa: E402

IMPORTS = {
    "a box without ONVIF cameras (appliance.sources, appliance.supervisor)": ["appliance.sources", "appliance.supervisor"],
    "the same + the ONVIF client (drivers.onvif.camera)": ["appliance.sources", "appliance.supervisor",
                                                          "drivers.onvif.camera"],
    "the ONVIF client alone": ["drivers.onvif.camera"],
    "WS-Discovery alone (drivers.onvif.discovery)": ["drivers.onvif.discovery"],
    "nothing (the interpreter)": [],
}
# VmHWM, not ru_maxrss: a child's ru_maxrss starts from its parent's at fork (Linux keeps it across exec).
PROBE = ("import importlib, re, sys, time; t = time.perf_counter(); "
         "[importlib.import_module(m) for m in sys.argv[1:]]; elapsed_s = time.perf_counter() - t; "
         "hwm_kib = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)); "
         "print(elapsed_s, hwm_kib / 1024)")


def import_rows(repeats: int) -> list[list[object]]:
    rows = []
    for label, modules in IMPORTS.items():
        runs = [subprocess.run([sys.executable, "-c", PROBE, *modules], capture_output=True, text=True, check=True,
                               cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}).stdout.split()
                for _ in range(repeats)]
        rows.append([label, statistics.median(float(t) for t, _ in runs) * 1000,
                     statistics.median(float(r) for _, r in runs)])
    return rows


def resolve_rows(resolves: int) -> list[list[object]]:
    from drivers.onvif.camera import read_camera, resolve_stream_uris
    from tests.support.onvif_device import OnvifDevice, ipycam_available

    ok, why = ipycam_available()
    if not ok:
        return [[f"(skipped: {why})", "", ""]]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    times = []
    with OnvifDevice(onvif_port=port) as device:
        for _ in range(resolves):
            with Stopwatch() as sw:
                resolve_stream_uris(device.url, username="admin", password="secret", profile="Profile_Main")
            times.append(sw.seconds * 1000)
        with Stopwatch() as whole:
            read_camera(device.url, username="admin", password="secret")
    return [["first resolve in the process (WSDLs parsed)", times[0], ""],
            [f"later resolves (median, max of {resolves - 1})", statistics.median(times[1:]), max(times[1:])],
            ["read_camera (device, 2 profiles, URIs, snapshots)", whole.seconds * 1000, ""]]


def parse_rows() -> list[list[object]]:
    from drivers.onvif.discovery import MAX_DATAGRAM_BYTES, ProbeMatchError, parse_probe_matches

    seeds = [p.read_bytes() for p in sorted((ROOT / "tests/fuzz/corpus/onvif_probe_match").glob("*"))]
    match = seeds[-1]
    start, end = match.index(b"<wsdd:ProbeMatch>"), match.index(b"</wsdd:ProbeMatches>")
    many = match[:start] + match[start:end] * ((MAX_DATAGRAM_BYTES - len(match)) // (end - start)) + match[end:]
    rows = []
    for label, data in (("seed datagrams (each)", seeds), (f"one {len(many)}-byte datagram at the cap", [many])):
        refused = 0
        with Stopwatch() as sw:
            for _ in range(200):
                for datagram in data:
                    try:
                        parse_probe_matches(datagram)
                    except ProbeMatchError:
                        refused += 1
        rows.append([label, sw.seconds * 1e6 / (200 * len(data)), f"{refused} refused"])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--resolves", type=int, default=20)
    args = parser.parse_args()
    print_table(f"Import cost (median of {args.repeats} fresh interpreters)", ["imported", "ms", "peak RSS MiB"],
                import_rows(args.repeats))
    print_table("Asking ipycam (loopback) for a stream URI", ["call", "ms", "max ms"], resolve_rows(args.resolves))
    print_table("Parsing WS-Discovery answers", ["input", "µs per datagram", "refused"], parse_rows())
    return 0


if __name__ == "__main__":
    sys.exit(main())
