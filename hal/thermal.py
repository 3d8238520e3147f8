"""Board temperatures from the kernel's thermal zones (/sys/class/thermal), and the system uptime."""
from __future__ import annotations

from pathlib import Path


def thermal_zones(root: Path = Path("/sys/class/thermal")) -> list[dict]:
    """Each readable zone as {"zone", "type", "celsius"}; zones that cannot be read are left out
    (a container or a board without sensors simply has none)."""
    zones = []
    for zone in sorted(root.glob("thermal_zone*")):
        try:
            millidegrees = int((zone / "temp").read_text().strip())
            kind = (zone / "type").read_text().strip()
        except (OSError, ValueError):
            continue
        zones.append({"zone": zone.name, "type": kind, "celsius": round(millidegrees / 1000, 1)})
    return zones


def system_uptime_s(proc_uptime: Path = Path("/proc/uptime")) -> float | None:
    try:
        return float(proc_uptime.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
