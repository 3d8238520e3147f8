"""Running the `nvr` command in a process of its own, as the image's systemd unit runs it."""
from __future__ import annotations

import sys
from pathlib import Path


def nvr_command() -> list[str]:
    """The argv prefix that runs `nvr` from this interpreter's environment: its console script where it is
    installed, else the module (a source tree on PYTHONPATH)."""
    script = Path(sys.executable).with_name("nvr")
    return [str(script)] if script.exists() else [sys.executable, "-m", "appliance.cli"]
