"""A fake `smartctl` on the PATH serving real devices' reports (tests/hal/data/smartctl): this VM has no
disk that answers S.M.A.R.T., so the poller and the appliance are tested against smartctl's real output
through a real child process."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

SAMPLES = Path(__file__).parents[1] / "hal" / "data" / "smartctl"  # README.md there says where each came from


class FakeSmartctl:
    """An executable `smartctl` in `folder` that prints `report.json` and logs its arguments to `calls`."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.report = folder / "report.json"
        exe = folder / "smartctl"
        exe.write_text(f'#!/bin/sh\necho "$@" >> {folder}/calls\ncat {self.report}\n')
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)

    def serve(self, name: str, **changes) -> None:
        """Print the sample `name` from now on, with top-level keys replaced by `changes`."""
        data = json.loads((SAMPLES / name).read_text())
        data.update(changes)
        self.report.write_text(json.dumps(data))

    def serve_standby(self) -> None:
        """Answer as smartctl does for a spun-down disk under `-n standby` (smartmontools' message text)."""
        self.report.write_text(json.dumps({"smartctl": {"exit_status": 2, "messages": [
            {"string": "Device is in STANDBY mode, exit(2)", "severity": "information"}]}}))

    @property
    def calls(self) -> list[str]:
        path = self.folder / "calls"
        return path.read_text().splitlines() if path.exists() else []


def install(tmp_path: Path, monkeypatch) -> FakeSmartctl:
    """A FakeSmartctl first on the PATH, serving a healthy WD disk."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    fake = FakeSmartctl(folder)
    fake.serve("scrutiny-smart-ata.json")
    return fake
