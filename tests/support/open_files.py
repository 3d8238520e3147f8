"""What files this test process holds open: a leaked or stuck descriptor shows here."""
from __future__ import annotations

import os
from pathlib import Path


def files_open_under(folder: str | Path, *, suffix: str = "") -> list[str]:
    """The paths under `folder` (ending in `suffix`) this process has open, one per descriptor.
    Descriptors other threads open and close meanwhile are skipped, not an error."""
    prefix, found = f"{folder}/", []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed between listdir and readlink
            continue
        if target.startswith(prefix) and target.endswith(suffix):
            found.append(target)
    return found
