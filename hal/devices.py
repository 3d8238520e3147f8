"""What hardware an installer can put in the config: V4L2 capture devices, serial ports, ALSA capture devices.

Each lister takes the folders it reads as keyword arguments (so tests point them at fakes), returns
plain dicts (the JSON of `nvr devices --json`), and never raises for a device it cannot read: the
device is listed with an `error` instead.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from hal.video.v4l2_device import InputInfo, V4l2Device
from hal.video.v4l2 import PIXEL_FORMAT_FOURCCS, standard_names

USABLE_FOURCCS = {fourcc for fourccs in PIXEL_FORMAT_FOURCCS.values() for fourcc in fourccs}
SERIAL_PATTERN = re.compile(r"tty(S|USB|AMA|ACM)[0-9]+")
_STATUS_WORDS = ((0x1, "no power"), (0x2, "no signal"), (0x100, "no horizontal lock"), (0x10000, "no sync"),
                 (0x4, "no colour"), (0x400, "no vertical lock"), (0x800, "no standard lock"))


# --- capture devices --------------------------------------------------------------------------

def list_capture_devices(*, dev_dir: Path = Path("/dev"),
                         open_device: Callable[[str], V4l2Device] = V4l2Device) -> list[dict]:
    """Every /dev/video* node: driver, card, bus, stable links, and for capture nodes inputs, standards, formats."""
    links = _stable_links(dev_dir / "v4l")
    nodes = sorted(dev_dir.glob("video[0-9]*"), key=lambda path: int(path.name[5:]) if path.name[5:].isdigit() else 0)
    return [_describe_node(str(node), links.get(os.path.realpath(node), []), open_device) for node in nodes]


def _stable_links(v4l_dir: Path) -> dict[str, list[str]]:
    """realpath of each device -> its /dev/v4l/by-path and by-id links."""
    links: dict[str, list[str]] = {}
    for kind in ("by-path", "by-id"):
        folder = v4l_dir / kind
        for link in sorted(folder.iterdir()) if folder.is_dir() else []:
            links.setdefault(os.path.realpath(link), []).append(str(link))
    return links


def _describe_node(path: str, links: list[str], open_device: Callable[[str], V4l2Device]) -> dict:
    entry: dict = {"path": path, "links": links}
    try:
        dev = open_device(path)
    except OSError as exc:
        return {**entry, "error": _open_problem(path, exc)}
    try:
        entry.update(_describe_open(dev))
    except OSError as exc:
        entry["error"] = f"reading {path} failed: {exc.strerror or exc}"
    finally:
        dev.close()
    return entry


def _open_problem(path: str, exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return f"no permission to open {path}; add your user to the 'video' group"
    return f"cannot open {path}: {exc.strerror or exc}"


def _describe_open(dev: V4l2Device) -> dict:
    info = dev.info()
    entry = {"driver": info.driver, "card": info.card, "bus_info": info.bus_info, "capture": info.capture}
    if not info.capture:
        entry["note"] = ("multi-planar capture, not supported yet" if info.capture_mplane
                         else "not a video capture node (metadata, output or codec)")
        return entry
    selected = _selected_input(dev)
    entry["inputs"] = [_input_dict(item, item.index == selected) for item in dev.inputs()]
    entry["standards"] = _safe_list(lambda: [name for name, _ in dev.standards()])
    entry["formats"] = [_format_dict(dev, fourcc, description) for fourcc, description in dev.capture_formats()]
    return entry


def _selected_input(dev: V4l2Device) -> int | None:
    try:
        return dev.get_input()
    except OSError:
        return None


def _input_dict(item: InputInfo, selected: bool) -> dict:
    return {
        "index": item.index, "name": item.name, "type": item.kind, "selected": selected,
        "standards": standard_names(item.std_mask) if item.has_std and item.std_mask else None,
        "status_flags": item.status,
        # Drivers fill the status in for the selected input only.
        "signal": status_text(item.status) if selected else None,
    }


def status_text(status: int) -> str:
    """'ok', or what the V4L2_IN_ST_* flags report, e.g. 'no signal, no sync'."""
    words = [word for flag, word in _STATUS_WORDS if status & flag]
    return ", ".join(words) if words else "ok"


def _format_dict(dev: V4l2Device, fourcc: str, description: str) -> dict:
    usable = fourcc in USABLE_FOURCCS
    sizes = _safe_list(lambda: dev.frame_sizes(fourcc)) if usable else []
    return {"fourcc": fourcc, "description": description, "usable": usable, "sizes": sizes}


def _safe_list(read: Callable[[], list]) -> list:
    try:
        return read()
    except OSError:
        return []


# --- serial ports -----------------------------------------------------------------------------

def list_serial_ports(*, sys_tty_dir: Path = Path("/sys/class/tty"), dev_dir: Path = Path("/dev"),
                      use_pyserial: bool = True) -> list[dict]:
    """UARTs, USB serial adapters and CDC-ACM ports (ttyS*, ttyAMA*, ttyUSB*, ttyACM*) that exist.

    pyserial's port list is used where it is installed (it knows which ttyS* are real); otherwise
    /sys/class/tty is read, and a ttyS* counts only if its UART type is known.
    """
    if use_pyserial:
        try:
            from serial.tools import list_ports
        except ImportError:
            pass
        else:
            return [{"path": port.device, "driver": None, "description": port.description}
                    for port in sorted(list_ports.comports(), key=lambda port: port.device)
                    if SERIAL_PATTERN.fullmatch(os.path.basename(port.device))]
    return [port for name in _sorted_tty_names(sys_tty_dir)
            if (port := _sys_serial_port(sys_tty_dir / name, dev_dir / name)) is not None]


def _sorted_tty_names(sys_tty_dir: Path) -> list[str]:
    names = [path.name for path in sys_tty_dir.iterdir()] if sys_tty_dir.is_dir() else []
    return sorted((name for name in names if SERIAL_PATTERN.fullmatch(name)), key=_natural_key)


def _natural_key(name: str) -> tuple[str, int]:
    match = re.fullmatch(r"(\D+)(\d+)", name)
    return (match.group(1), int(match.group(2))) if match else (name, 0)


def _sys_serial_port(sys_dir: Path, node: Path) -> dict | None:
    if not node.exists():
        return None
    if node.name.startswith("ttyS") and _read(sys_dir / "type") in ("", "0"):
        return None  # a placeholder the 8250 driver registers for a UART that is not there
    return {"path": str(node), "driver": _driver_name(sys_dir / "device"),
            "description": _usb_product(sys_dir / "device")}


def _parents(device_dir: Path, levels: int = 4) -> list[Path]:
    """The device's sysfs folder and a few of its parents (a tty hangs off a port, a UART, a USB interface)."""
    if not device_dir.exists():
        return []
    folder = Path(os.path.realpath(device_dir))
    return [folder, *list(folder.parents)[:levels - 1]]


def _driver_name(device_dir: Path) -> str | None:
    """The UART or USB serial driver ('serial8250', 'ftdi_sio', 'cdc_acm'), skipping the serial core's 'port'."""
    for folder in _parents(device_dir):
        if (folder / "driver").exists():
            name = os.path.basename(os.path.realpath(folder / "driver"))
            if name not in ("port", "ctrl"):
                return name
    return None


def _usb_product(device_dir: Path) -> str | None:
    """The USB product string of the device a tty hangs off, if it is a USB adapter."""
    for folder in _parents(device_dir):
        product = _read(folder / "product")
        if product:
            return product
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


# --- ALSA capture devices ---------------------------------------------------------------------

_CARD_RE = re.compile(r"\s*(\d+)\s+\[([^\]]*)\]\s*:\s*(.*)")
_PCM_RE = re.compile(r"(\d+)-(\d+):\s*([^:]*?)\s*:\s*([^:]*?)\s*:(.*)")


def list_audio_capture(*, asound_dir: Path = Path("/proc/asound")) -> list[dict]:
    """ALSA PCM devices that can capture, as 'hw:CARD,DEVICE' with their names (from /proc/asound)."""
    cards = _alsa_cards(_read(asound_dir / "cards"))
    devices = []
    for line in _read(asound_dir / "pcm").splitlines():
        match = _PCM_RE.fullmatch(line.strip())
        if match is None or "capture" not in match.group(5):
            continue
        card, device = int(match.group(1)), int(match.group(2))
        devices.append({"device": f"hw:{card},{device}", "name": match.group(3),
                        "card": cards.get(card, ""), "card_id": f"hw:CARD={_card_id(asound_dir, card)},DEV={device}"})
    return devices


def _alsa_cards(text: str) -> dict[int, str]:
    cards = {}
    for line in text.splitlines():
        match = _CARD_RE.fullmatch(line)
        if match:
            cards[int(match.group(1))] = match.group(3).strip()
    return cards


def _card_id(asound_dir: Path, card: int) -> str:
    """The card's stable id ('Device', 'PCH'), which survives renumbering when cards are added."""
    return _read(asound_dir / f"card{card}" / "id") or str(card)


# --- everything -------------------------------------------------------------------------------

def list_devices(*, dev_dir: Path = Path("/dev"), sys_tty_dir: Path = Path("/sys/class/tty"),
                 asound_dir: Path = Path("/proc/asound"), use_pyserial: bool = True,
                 open_device: Callable[[str], V4l2Device] = V4l2Device) -> dict[str, list[dict]]:
    """All three lists, as `nvr devices --json` prints them."""
    return {
        "capture": list_capture_devices(dev_dir=dev_dir, open_device=open_device),
        "serial": list_serial_ports(sys_tty_dir=sys_tty_dir, dev_dir=dev_dir, use_pyserial=use_pyserial),
        "audio": list_audio_capture(asound_dir=asound_dir),
    }


def devices_text(report: dict[str, list[dict]]) -> str:
    """The report for a person at a terminal."""
    lines = ["Video capture devices (channels[].source: type: v4l2):"]
    lines += [line for entry in report["capture"] for line in _capture_lines(entry)] or \
        ["  no capture devices found (/dev/video*)"]
    lines += ["", "Serial ports (PTZ, RS-485):"]
    lines += [f"  {port['path']}" + "".join(f"  {part}" for part in (port.get("driver"), port.get("description"))
                                            if part)
              for port in report["serial"]] or ["  no serial ports found"]
    lines += ["", "Audio capture devices (ALSA; channels[].audio.device):"]
    lines += [f"  {item['device']}  {item['name']}  ({item['card']}; stable name {item['card_id']})"
              for item in report["audio"]] or ["  no audio capture devices found"]
    return "\n".join(lines)


def _capture_lines(entry: dict) -> list[str]:
    head = f"  {entry['path']}"
    if "error" in entry:
        return [f"{head}: {entry['error']}"]
    lines = [f"{head}  {entry['driver']} {entry['card']!r}  bus {entry['bus_info']}"]
    if not entry["capture"]:
        return [f"{lines[0]}  ({entry['note']})"]
    lines += [f"    link: {link}" for link in entry["links"]]
    lines.append("    inputs:")
    for item in entry["inputs"]:
        standards = item["standards"] or "no analog standard"
        signal = f"signal: {item['signal']}" if item["selected"] else "not selected"
        lines.append(f"      {item['index']}  {item['name']!r}  {item['type']}  {standards}  {signal}")
    if entry["standards"]:
        lines.append(f"    standards of the selected input: {', '.join(entry['standards'])}")
    usable = [fmt for fmt in entry["formats"] if fmt["usable"]]
    if usable:
        lines.append("    formats (frame sizes as the selected input offers them):")
    for fmt in usable:
        sizes = ", ".join(fmt["sizes"]) if fmt["sizes"] else "sizes set by the standard"
        lines.append(f"      {fmt['fourcc']} ({fmt['description']}): {sizes}")
    others = [fmt["fourcc"] for fmt in entry["formats"] if not fmt["usable"]]
    if not usable:
        lines.append("    no usable format (needs YUYV, UYVY, NV12 or MJPEG)")
    if others:
        lines.append(f"    other formats (not used): {' '.join(others)}")
    return lines
