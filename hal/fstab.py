"""The filesystem table (/etc/fstab) as the appliance reads it, and mounting one of its entries.

fstab is a file an admin (or a script) edits: it is parsed as hostile input, in one pass over at most
MAX_FSTAB_BYTES, lines longer than MAX_LINE_CHARS and malformed lines skipped, at most MAX_ENTRIES kept.
A source is found the way udev names it under /dev/disk/by-* (UUID=, LABEL=, PARTUUID=, PARTLABEL=) or
as a device path; anything else (a network share, tmpfs, a bind) has no local device to wait for.
"""
from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

FSTAB = Path("/etc/fstab")
MAX_FSTAB_BYTES = 64 * 1024  # a real fstab is a few hundred bytes; more is not read
MAX_LINE_CHARS = 4096  # a longer line is skipped
MAX_ENTRIES = 256
MAX_TAG_VALUE_CHARS = 255  # a UUID, label or partition name
MOUNT_TIMEOUT_S = 30.0  # mount(8) or systemctl: a disk that has not answered by then is left for the next try
_OCTAL = re.compile(r"\\([0-7]{3})")
_BY_TAG = {"UUID": "by-uuid", "LABEL": "by-label", "PARTUUID": "by-partuuid", "PARTLABEL": "by-partlabel"}
_UDEV_PLAIN = frozenset(b"#+-.:=@_")  # besides letters and digits, what udev leaves as it is in a link name


@dataclass(frozen=True, slots=True)
class FstabEntry:
    source: str  # 'LABEL=nvr-a', 'UUID=...', '/dev/sdb1', 'server:/share'
    mount_point: str
    fs_type: str
    options: tuple[str, ...]


def _unescape(field: str) -> str:
    """fstab writes space, tab and backslash in a field as octal escapes (\\040)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_fstab(text: str) -> list[FstabEntry]:
    """The entries of fstab `text` (at most MAX_ENTRIES; comments, blank, overlong and malformed lines skipped)."""
    entries: list[FstabEntry] = []
    for line in text[:MAX_FSTAB_BYTES].splitlines():
        if len(line) > MAX_LINE_CHARS:
            continue
        fields = line.split()
        if not fields or fields[0].startswith("#") or len(fields) < 3:
            continue
        source, mount_point, fs_type = (_unescape(f) for f in fields[:3])
        if not mount_point.startswith("/") or "\0" in source + mount_point:
            continue
        options = tuple(o for o in _unescape(fields[3]).split(",") if o) if len(fields) > 3 else ("defaults",)
        entries.append(FstabEntry(source, os.path.normpath(mount_point), fs_type, options))
        if len(entries) >= MAX_ENTRIES:
            break
    return entries


def read_fstab(path: Path = FSTAB) -> list[FstabEntry]:
    """The entries of the fstab at `path` (its first MAX_FSTAB_BYTES); [] if it cannot be read."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FSTAB_BYTES)
    except OSError:
        return []
    return parse_fstab(data.decode("utf-8", errors="replace"))


def entry_for(entries: list[FstabEntry], folder: str | os.PathLike) -> FstabEntry | None:
    """The entry that mounts `folder`; the last one if several do, as mount(8) takes it."""
    target = os.path.normpath(folder)
    found = None
    for entry in entries:
        if entry.mount_point == target:
            found = entry
    return found


def _udev_name(value: str) -> str:
    """`value` as udev writes it in a /dev/disk/by-* link name: bytes other than letters, digits, multi-byte
    UTF-8 and #+-.:=@_ as \\xNN (a label 'a b/c' is 'a\\x20b\\x2fc')."""
    out = bytearray()
    for byte in value.encode("utf-8", errors="replace"):
        if byte >= 0x80 or chr(byte).isalnum() or byte in _UDEV_PLAIN:
            out.append(byte)
        else:
            out += f"\\x{byte:02x}".encode()
    return out.decode("utf-8", errors="replace")


def source_device(source: str, *, dev: Path = Path("/dev")) -> Path | None:
    """The device node path an fstab source names (`dev`/disk/by-label/... for LABEL=..., the path itself
    for /dev/...), whether or not it is there now; None for a source with no local device (a network
    share, tmpfs, proc) or one that cannot be a name (empty, too long, a path in a tag)."""
    tag, equals, value = source.partition("=")
    if equals and tag in _BY_TAG:
        value = value[1:-1] if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'" else value
        if not value or len(value) > MAX_TAG_VALUE_CHARS:
            return None
        name = _udev_name(value)
        if name in (".", "..") or "/" in name:
            return None
        return dev / "disk" / _BY_TAG[tag] / name
    if source.startswith("/dev/") and ".." not in source.split("/"):
        return dev / source[len("/dev/"):]
    return None


def mount_unit(folder: str | os.PathLike) -> str:
    """systemd's mount unit for `folder` ('/srv/disk-a' -> 'srv-disk\\x2da.mount'), as systemd-escape --path."""
    path = os.path.normpath(folder).strip("/")
    if not path:
        return "-.mount"
    out = []
    for position, char in enumerate(path):
        if char == "/":
            out.append("-")
        elif (char.isascii() and char.isalnum()) or char in ":_" or (char == "." and position > 0):
            out.append(char)
        else:
            out.extend(f"\\x{byte:02x}" for byte in char.encode("utf-8"))
    return "".join(out) + ".mount"


def mount_entry(folder: str | os.PathLike, *, fstab: Path = FSTAB, timeout_s: float = MOUNT_TIMEOUT_S,
                systemd: bool | None = None) -> tuple[bool, str]:
    """Mount `folder` as its entry in `fstab` says: (mounted, what happened). Under systemd with the system's
    own fstab through its mount unit (so systemd follows the mount and its device as at boot), else with
    `mount --fstab FSTAB FOLDER`. Never raises for a failing or hanging mount."""
    if systemd is None:
        systemd = Path(fstab) == FSTAB and os.path.isdir("/run/systemd/system")
    command = ["systemctl", "start", mount_unit(folder)] if systemd else \
        ["mount", "--fstab", str(fstab), os.path.normpath(folder)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False, f"{' '.join(command)} did not finish within {timeout_s:g} s"
    except OSError as exc:
        return False, f"{command[0]} cannot be run: {exc}"
    if done.returncode != 0:
        return False, f"{' '.join(command)} failed: {(done.stderr or done.stdout).strip()[-300:]}"
    return True, f"mounted {folder} ({' '.join(command)})"
