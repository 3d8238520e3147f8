"""The start-up pass that reconciles segment files and index rows in both directions.

Run it before any recording starts. After a crash or power cut it finds:
- rows marked for deletion whose unlink may not have happened: the file goes, then the row;
- files with no row (a segment being written when the power went): the playable part is kept (the
  file is cut after its last complete fragment) and indexed with its true end time;
- rows whose file is gone or shorter than recorded: the row is fixed or dropped, and said so;
- files that belong to no known run: moved to `lost+found/` for a person to look at, never deleted.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from hal.storage import fsync_dir
from recorder.fmp4 import read_segment
from recorder.index import Index, Segment
from recorder.mp4 import Mp4Error
from recorder.segmenter import ticks_to_us

log = logging.getLogger("nvr.recovery")

# 90 kHz ticks from a run's start that a segment may end at: about 3 years, far beyond any run, and
# small enough that the index's microsecond times stay 64-bit integers.
MAX_MEDIA_TICKS = 90_000 * 100_000_000
_NAME = re.compile(r"^(?:disks/([0-9a-f-]{36})/)?ch(\d{2,3})/(main|sub)/(\d{8})-(\d{5})\.mp4$")


@dataclass
class RecoveryReport:
    """What the pass found and did, for the log, the health page and the tests."""

    rows_checked: int = 0
    recovered: list[str] = field(default_factory=list)  # unindexed files now indexed
    cut_bytes: int = 0  # bytes of incomplete fragments cut from recovered files
    removed_files: list[str] = field(default_factory=list)  # nothing playable in them
    removed_rows: list[str] = field(default_factory=list)  # their files were gone or unreadable
    finished_deletions: int = 0
    quarantined: list[str] = field(default_factory=list)

    @property
    def repaired(self) -> bool:
        return bool(self.recovered or self.removed_files or self.removed_rows or self.finished_deletions or self.quarantined)

    def summary(self) -> str:
        return (
            f"checked {self.rows_checked} rows; recovered {len(self.recovered)} unindexed segments "
            f"(cut {self.cut_bytes} bytes of incomplete fragments); removed {len(self.removed_files)} unplayable files "
            f"and {len(self.removed_rows)} rows without a usable file; finished {self.finished_deletions} deletions; "
            f"quarantined {len(self.quarantined)} unknown files"
        )


def recover(root: Path, index: Index, *, sync: bool = True, disks: Collection[str] = ("",),
            open_paths: Collection[str] = ()) -> RecoveryReport:
    """Reconcile `root`'s segment files with `index`, on the data root ('') and the disks in `disks`
    (those that are present: reached as `root/disks/UUID`). Rows of disks that are away are left as
    they are, for when the disk is back. `open_paths`: files a writer still has open (a pass for a disk
    that comes back while recording), left alone. Never raises for one bad file."""
    report = RecoveryReport()
    rows = {rel: seg for rel, seg in index.all_paths().items() if seg.disk in disks}
    report.rows_checked = len(rows)
    dirty: set[Path] = set()
    _finish_deletions(root, index, rows, report, dirty)
    _check_rows(root, index, rows, report)
    for rel in _files_on_disks(root, disks):
        if rel not in rows and rel not in open_paths:
            _adopt(root, index, rel, report, dirty, sync)
    if sync:
        for folder in dirty:
            fsync_dir(folder)
    index.delete_empty_runs()
    (log.warning if report.repaired else log.info)("recovery: %s", report.summary())
    return report


def _files_on_disks(root: Path, disks: Collection[str]) -> list[str]:
    found = []
    for disk in disks:
        prefix = f"disks/{disk}/" if disk else ""
        folder = root / prefix if disk else root
        found += [prefix + p.relative_to(folder).as_posix() for p in folder.glob("ch*/*/*.mp4")]
    return sorted(found)


def _finish_deletions(root: Path, index: Index, rows: dict[str, Segment], report: RecoveryReport, dirty: set[Path]) -> None:
    doomed = [seg for seg in rows.values() if seg.deleting]
    for seg in doomed:
        path = root / seg.path
        if path.exists():
            path.unlink()
            dirty.add(path.parent)
        del rows[seg.path]
    if doomed:
        index.delete_rows([seg.id for seg in doomed])
        report.finished_deletions = len(doomed)


def _check_rows(root: Path, index: Index, rows: dict[str, Segment], report: RecoveryReport) -> None:
    gone = []
    for rel, seg in list(rows.items()):
        try:
            size = (root / rel).stat().st_size
        except FileNotFoundError:
            size = -1
        if size < seg.bytes:
            # The file vanished or lost its tail (disk error, or someone deleted it): the row
            # would promise video that is not there. An unindexed remainder is adopted below.
            log.warning("recovery: %s has %s bytes but the index says %d; dropping the row",
                        rel, "no" if size < 0 else size, seg.bytes)
            gone.append(seg.id)
            report.removed_rows.append(rel)
            del rows[rel]
    if gone:
        index.delete_rows(gone)


def _adopt(root: Path, index: Index, rel: str, report: RecoveryReport, dirty: set[Path], sync: bool) -> None:
    path = root / rel
    match = _NAME.match(rel)
    run = index.run(int(match.group(4))) if match else None
    if run is None or run.channel != int(match.group(2)) or run.stream != match.group(3):
        _quarantine(root, rel, report, dirty)
        return
    try:
        contents = read_segment(path)
    except (Mp4Error, OSError) as exc:
        log.warning("recovery: %s holds nothing playable (%s); removing it", rel, exc)
        contents = None
    if contents is None or not contents.samples or not contents.samples[0].keyframe:
        path.unlink(missing_ok=True)
        dirty.add(path.parent)
        report.removed_files.append(rel)
        return
    start_ticks, end_ticks = contents.start_ticks, contents.start_ticks + contents.duration_ticks
    if not 0 <= start_ticks < end_ticks <= MAX_MEDIA_TICKS:
        # Damaged timestamps (a tfdt or sample duration with flipped bits): the index cannot hold such
        # a row, but the pictures may be fine, so a person gets to look at the file.
        log.error("recovery: %s has impossible timestamps (ticks %d to %d)", rel, start_ticks, end_ticks)
        _quarantine(root, rel, report, dirty)
        return
    # Truncated even when nothing is cut: a segment cut short by a crash may hold blocks reserved past
    # its end (SegmentFile's reserve_bytes), and only a truncate gives them back.
    _truncate(path, contents.usable_bytes, sync)
    report.cut_bytes += contents.file_bytes - contents.usable_bytes
    index.add_segment(Segment(
        id=0, run_id=run.id, channel=run.channel, stream=run.stream, seq=int(match.group(5)),
        start_us=run.start_us + ticks_to_us(start_ticks), end_us=run.start_us + ticks_to_us(end_ticks),
        media_start_ticks=start_ticks, path=rel, bytes=contents.usable_bytes, frames=len(contents.samples),
        recovered=True, disk=match.group(1) or "",
    ))
    report.recovered.append(rel)


def _truncate(path: Path, size: int, sync: bool) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _quarantine(root: Path, rel: str, report: RecoveryReport, dirty: set[Path]) -> None:
    target = root / "lost+found" / rel.replace("/", "_")
    target.parent.mkdir(exist_ok=True)
    shutil.move(root / rel, target)
    dirty.update({(root / rel).parent, target.parent})
    report.quarantined.append(rel)
    log.error("recovery: %s belongs to no known run; moved to %s for inspection", rel, target)
