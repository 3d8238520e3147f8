"""The recordings disk's health: S.M.A.R.T. polled gently, the I/O errors the recorder meets, and the
faults they raise (`disk_failing`, `disk_hot`, `disk_errors`), which rules[] can watch like any other.

- `disk_failing`: the drive's own overall verdict is FAILED, or a pre-failure attribute is at its
  threshold (smartctl's exit status bits 3 and 4). Cleared when a reading says otherwise.
- `disk_hot`: the drive's temperature is at or above `max_temperature_c`; cleared once it is
  HOT_HYSTERESIS_C below, so a drive hovering at the limit does not flap.
- `disk_errors`: sectors pending reallocation or uncorrectable, the count of reallocated sectors grown
  since this watch started, or an I/O error (EIO, EROFS) met by the segment writer. An I/O error keeps
  the fault up until the disk has been taken back and written to (`io_recovered`: with several disks,
  the disk set does it when a pulled or failed disk returns; with one disk, `recheck_writes` does it
  once a block written and synced there RETRY_S after the last error succeeds).

Faults name the disk by its label when it has one, then its device: "Bay 1 (/dev/sdc, WDC ... serial)".

Polling never wakes a sleeping disk (`smartctl -n standby`: a spun-down disk is left alone and keeps its
last reading) and runs every `interval_s` (default half an hour, as smartd does), on this watch's own
thread through the injected clocks. A disk that answers no S.M.A.R.T. (a VM's virtio disk, an SD card,
a bridge that passes nothing) is reported as such; it raises nothing.
"""
from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from base.clock import Clocks
from hal.smart import SmartError, SmartReport
from hal.storage import block_device_of, disk_usage, written_bytes
from recorder import disk_set
from recorder.faults import FaultSink
from recorder.io_worker import IoWorker

log = logging.getLogger("nvr.disk_health")

HOT_HYSTERESIS_C = 3
IO_ERRNOS = frozenset({errno.EIO, errno.EROFS})  # the disk failed a request / the kernel made it read-only after errors

SmartReader = Callable[[str], SmartReport]  # device ('/dev/sda') -> one reading; raises SmartError


class DiskHealthWatch:
    """Health of the disk holding `root`. `read` reads S.M.A.R.T. (e.g. `hal.smart.probe`); None: no
    polling, I/O errors and space only. `device` names the disk when it cannot be found from `root`."""

    def __init__(self, *, root: Path, faults: FaultSink, clocks: Clocks, read: SmartReader | None,
                 interval_s: float = 1800.0, max_temperature_c: float = 55.0, device: str | None = None,
                 locate: Callable[[Path], str | None] = block_device_of, label: str | None = None):
        """`label`: the disk's name in its faults when there are several recording disks (None: one)."""
        self.root, self._faults, self._clocks, self._read = root, faults, clocks, read
        self.label = label
        self.interval_s, self.max_temperature_c = interval_s, max_temperature_c
        self._device, self._locate = device, locate
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # The test write runs on a thread of its own: a disk whose writes hang holds up the caller (the
        # health watch, which also watches the mount) at most the stall bound, then counts as not written.
        self._checker = IoWorker(f"disk {label or root} write check")
        self.report: SmartReport | None = None  # the last reading with data
        self.device: str | None = device
        self.asleep = False
        self.hot = False
        self.polls = 0
        self.read_errors = 0
        self.last_error: str | None = None
        self.io_errors = 0
        self.last_io_error: str | None = None
        self._io_errors_recovered = 0  # the I/O errors met before the disk was last taken back and written to
        self._io_error_at_us: int | None = None  # the last I/O error, or the last failed write check after it
        self.write_checks = 0  # `recheck_writes` attempts
        self._reallocated_at_start: int | None = None

    # --- the thread ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._read is None:
            return
        self._thread = threading.Thread(target=self._loop, name="disk-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(90)  # one smartctl run at most (its own timeout is 60 s)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._clocks.wait(self._stop, self.interval_s)

    # --- readings ------------------------------------------------------------------------------

    def poll(self) -> None:
        """Read S.M.A.R.T. once (unless the disk sleeps) and raise or clear the faults it bears on."""
        self.device = self._device or self._locate(self.root)
        if self.device is None or self._read is None:
            self.last_error = f"no block device found under {self.root} (tmpfs, overlay or a network share?)"
            return
        try:
            report = self._read(self.device)
        except SmartError as exc:
            self.read_errors += 1
            if str(exc) != self.last_error:
                log.warning("disk health: cannot read S.M.A.R.T. of %s: %s", self.device, exc)
            self.last_error = str(exc)
            return
        self.polls += 1
        self.asleep = report.asleep
        if report.asleep:  # smartctl left it spinning down; the last reading stands
            return
        if not report.has_data:
            self.last_error = "; ".join(report.messages) or f"{self.device} answers no S.M.A.R.T."
            return
        self.report, self.last_error = report, None
        if self._reallocated_at_start is None:
            self._reallocated_at_start = report.reallocated_sectors
        self._judge(report)

    def _judge(self, report: SmartReport) -> None:
        name = self._name(report)
        if report.failing:
            verdict = "overall health FAILED" if report.passed is False else "a pre-failure attribute is at its threshold"
            self._faults.raise_fault("disk_failing", f"{name}: S.M.A.R.T. says {verdict} (smartctl exit status "
                                     f"{report.exit_status}); copy off what matters and replace the disk", disk=self.label)
        else:
            self._faults.clear_fault("disk_failing", disk=self.label)
        temperature = report.temperature_c
        if temperature is not None and temperature >= self.max_temperature_c and not self.hot:
            self.hot = True
            self._faults.raise_fault("disk_hot", f"{name}: {temperature} °C, at or above {self.max_temperature_c:g} °C; "
                                     "check the enclosure's airflow and fan", disk=self.label)
        elif temperature is not None and temperature <= self.max_temperature_c - HOT_HYSTERESIS_C and self.hot:
            self.hot = False
            self._faults.clear_fault("disk_hot", disk=self.label)
        self._update_errors()

    def note_io_error(self, exc: OSError) -> None:
        """The recorder met an I/O error on this disk (the segment writer calls this); counted, and
        `disk_errors` raised for the rest of this run. Other errors (a full disk) are not the disk's health."""
        if getattr(exc, "errno", None) not in IO_ERRNOS:
            return
        with self._lock:
            self.io_errors += 1
            self.last_io_error = str(exc)
            self._io_error_at_us = self._clocks.monotonic_us()
        self._update_errors()

    def recheck_writes(self) -> bool:
        """With one disk (no disk set takes it back): once RETRY_S has passed since the last I/O error (or
        the last failed check), write a block to the disk and sync it; if that succeeds the disk works
        again and its I/O errors stop raising `disk_errors` (`io_recovered`). True if they did. Cheap when
        there is nothing standing; call it every few seconds."""
        now_us = self._clocks.monotonic_us()
        with self._lock:
            standing = self.io_errors - self._io_errors_recovered
            due = self._io_error_at_us is None or now_us - self._io_error_at_us >= disk_set.RETRY_S * 1e6
        if not standing or not due:
            return False
        self.write_checks += 1
        try:
            self._checker.call(disk_set.write_check, self.root)
        except OSError as exc:
            with self._lock:
                self._io_error_at_us = now_us  # tried again RETRY_S from now
            log.warning("disk health: %s still cannot be written (%s); disk_errors stays", self._name(self.report), exc)
            return False
        self.io_recovered()
        return True

    def io_recovered(self) -> None:
        """The disk came back and a write to it succeeded: the I/O errors met so far no longer keep
        `disk_errors` up (they stay counted; bad sectors in S.M.A.R.T. still keep it)."""
        with self._lock:
            standing, self._io_errors_recovered = self.io_errors - self._io_errors_recovered, self.io_errors
        if standing:
            log.info("disk health: %s is back and written to: its %d I/O error(s) no longer raise disk_errors",
                     self._name(self.report), standing)
        self._update_errors()

    def _update_errors(self) -> None:
        reasons = self._error_reasons()
        if reasons:
            self._faults.raise_fault("disk_errors", f"{self._name(self.report)}: " + "; ".join(reasons), disk=self.label)
        else:
            self._faults.clear_fault("disk_errors", disk=self.label)

    def _error_reasons(self) -> list[str]:
        reasons = []
        with self._lock:
            standing = self.io_errors - self._io_errors_recovered
            if standing:
                reasons.append(f"{standing} I/O error(s) writing recordings, the last: {self.last_io_error}")
        report = self.report
        if report is not None:
            if report.pending_sectors:
                reasons.append(f"{report.pending_sectors} sector(s) pending reallocation")
            if report.uncorrectable_sectors:
                reasons.append(f"{report.uncorrectable_sectors} uncorrectable sector(s)")
            grown = (report.reallocated_sectors or 0) - (self._reallocated_at_start or 0)
            if grown > 0:
                reasons.append(f"{grown} sector(s) reallocated since the recorder started")
        return reasons

    def _name(self, report: SmartReport | None) -> str:
        """'Bay 1 (/dev/sdc, WDC WD140EDFZ 9RK1XXXX)' with a label, '/dev/sdc (WDC WD140EDFZ 9RK1XXXX)' without."""
        drive = " ".join(p for p in (report.model, report.serial) if p) if report is not None else ""
        where = self.device or str(self.root)
        if self.label:
            return f"{self.label} ({', '.join(p for p in (where, drive) if p)})"
        return f"{where} ({drive})" if drive else where

    # --- what the health page, `nvr disks` and /metrics show ------------------------------------

    def statistics(self) -> dict:
        """This disk as plain data: identity, S.M.A.R.T., errors, space and the kernel's write counter."""
        report = self.report
        smart = (report or SmartReport(device=self.device or "")).as_dict()  # the same keys with or without a reading
        if self.asleep:
            smart["health"] = "standby" if report is None else f"{report.health} (standby now)"
        try:
            usage = disk_usage(self.root)
            space = {"total_bytes": usage.total_bytes, "free_bytes": usage.free_bytes,
                     "used_percent": round(usage.used_percent, 2)}
        except OSError as exc:
            space = {"total_bytes": None, "free_bytes": None, "used_percent": None, "space_error": str(exc)}
        with self._lock:
            io_errors, last_io_error = self.io_errors, self.last_io_error
        return {
            "path": str(self.root), **smart, "device": self.device, **space,
            "written_bytes": written_bytes(self.device) if self.device else None,
            "io_errors": io_errors, "last_io_error": last_io_error, "write_checks": self.write_checks,
            "smart_polls": self.polls,
            "smart_read_errors": self.read_errors, "smart_error": self.last_error, "asleep": self.asleep,
        }
