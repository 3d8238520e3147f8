"""`nvr discover`: list the ONVIF cameras on the LAN (WS-Discovery) and, with credentials, their profiles
and stream URIs; also the one place that turns what a camera reported into plain dicts (the command
line's JSON and the web's add-camera page show the same)."""
from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor

from base.clock import Clocks
from drivers.onvif.camera import CameraReport, read_camera
from drivers.onvif.discovery import DiscoveredDevice, discover
from drivers.onvif.errors import OnvifError

MAX_PARALLEL_READS = 4  # cameras read at once when credentials are given


def report_dict(report: CameraReport) -> dict[str, object]:
    """A camera's report as JSON-ready data (no password in it: ONVIF URIs carry none)."""
    device = report.device
    return {"url": report.url, "auth": report.auth, "clock_offset_s": round(report.clock_offset_s, 1),
            "manufacturer": device.manufacturer, "model": device.model, "firmware": device.firmware_version,
            "serial": device.serial_number, "hardware_id": device.hardware_id,
            "profiles": [{"token": p.token, "name": p.name, "encoding": p.encoding, "width": p.width,
                          "height": p.height, "stream_uri": report.stream_uris.get(p.token),
                          "snapshot_uri": report.snapshot_uris.get(p.token)} for p in report.profiles]}


def read_devices(devices: list[DiscoveredDevice], *, username: str, password: str,
                 timeout_s: float) -> list[dict[str, object]]:
    """Each device's report dict, or {"error": why} for a device that could not be read."""

    def read(device: DiscoveredDevice) -> dict[str, object]:
        try:
            return report_dict(read_camera(device.url, username=username, password=password, timeout_s=timeout_s))
        except OnvifError as exc:
            return {"error": str(exc)}

    with ThreadPoolExecutor(max_workers=MAX_PARALLEL_READS) as pool:
        return list(pool.map(read, devices))


def run_discover(*, timeout_s: float, as_json: bool, interface_ip: str | None, username: str | None,
                 password: str | None, clocks: Clocks, out=sys.stdout) -> int:
    """Probe, print, and return the exit status: 0 when a device answered, 1 when none did."""
    devices = discover(timeout_s=timeout_s, interface_ip=interface_ip, clocks=clocks)
    rows = [device.as_dict() for device in devices]
    if username is not None:
        for row, camera in zip(rows, read_devices(devices, username=username, password=password or "",
                                                  timeout_s=max(timeout_s, 5.0))):
            row["camera"] = camera
    if as_json:
        print(json.dumps(rows, indent=1), file=out)
    else:
        print(discover_text(rows), file=out)
    return 0 if rows else 1


def discover_text(rows: list[dict[str, object]]) -> str:
    if not rows:
        return ("no ONVIF device answered (is the camera on this network segment, with ONVIF and discovery "
                "enabled? `--interface IP` picks the network to probe)")
    lines = []
    for row in rows:
        label = " ".join(str(row[key]) for key in ("name", "hardware") if row[key]) or "(no name)"
        lines.append(f"{row['url']}  {label}" + (f"  [{row['location']}]" if row["location"] else ""))
        camera = row.get("camera")
        if isinstance(camera, dict) and "error" in camera:
            lines.append(f"  cannot read it: {camera['error']}")
        elif isinstance(camera, dict):
            lines.append(f"  {camera['manufacturer']} {camera['model']} firmware {camera['firmware']}, "
                         f"password sent as {camera['auth']}, clock offset {camera['clock_offset_s']} s")
            for profile in camera["profiles"]:
                size = f"{profile['width']}x{profile['height']}" if profile["width"] else "no video"
                lines.append(f"  profile {profile['token']}: {profile['name']}, {profile['encoding']} {size}, "
                             f"{profile['stream_uri'] or '-'}")
    return "\n".join(lines)
