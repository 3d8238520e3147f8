"""The supervisor: opens the data root, runs recovery, then starts retention and every channel's streams.

It is the recording part of the appliance; `appliance.app.Appliance` starts the other parts (PTZ,
alarm I/O, monitor, web server, systemd) around it.
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from base.clock import Clocks
from hal.storage import make_dirs_durable, unmount
from recorder.disk_health import DiskHealthWatch
from recorder.disk_set import DiskSet, RecordingDisk
from recorder.faults import Fault, FaultBoard
from recorder.index import Index
from recorder.live import LiveHub
from recorder.recovery import RecoveryReport, recover
from recorder.retention import Retention
from recorder.segmenter import DiscardingSegmenter, Segmenter
from recorder.source import PacketSource
from recorder.stream_recorder import StreamRecorder
from recorder.video_loss import VideoLossGuard

from appliance.config.model import ChannelConfig, Config
from appliance.disk_mount import FstabRemount
from appliance.disks import ROLE_INDEX, ROLE_RECORDINGS, disk_row, disks_capacity, make_disk_health, retention_policy
from appliance.sources import channel_sources, reconnect_max_s

log = logging.getLogger("nvr.supervisor")

LOCK_FILE = ".nvr.lock"
EJECT_TIMEOUT_S = 15.0  # a stream reaches a keyframe within its keyframe interval (at most 10 s)
SourceFactory = Callable[[ChannelConfig], dict[str, PacketSource]]


class DataRootBusy(RuntimeError):
    """Another `nvr run` already records to this data root."""


class Supervisor:
    """Owns the recording: the data root and its lock, the index, recovery, retention, one StreamRecorder
    per stream, the fault board (`alarms`) and the live taps every viewer subscribes to.

    `start` returns once recovery is done and recording threads run; `stop` closes every open segment
    and indexes it before returning. One failing channel never affects another: each stream has its
    own thread, source and segmenter.
    """

    def __init__(self, config: Config, *, clocks: Clocks, sources: SourceFactory | None = None, sync: bool = True,
                 remount: Callable[[Path], bool] | None = None):
        """`remount(folder)`: mounts a recording disk that must be mounted and is not (default: from
        /etc/fstab once its device is back, `FstabRemount`)."""
        self.config, self.clocks, self._sync = config, clocks, sync
        self._remount = remount if remount is not None else FstabRemount()
        # storage.require_mount and no disk on storage.path: record nothing, and keep the index (events,
        # alarms) in a scratch folder in RAM. Live view, the monitor and alarm inputs run as usual.
        # With storage.disks the mount is required of each disk (the disk set's), not of the index's folder.
        self.disk_absent = config.storage.require_mount and not config.storage.disks and \
            not os.path.ismount(config.storage.path)
        self.root: Path = Path(tempfile.mkdtemp(prefix="nvr-no-disk-")) if self.disk_absent else config.storage.path
        self._sources = sources or (lambda channel: channel_sources(channel, clocks=clocks, faults=self.faults))
        self.recorders: list[StreamRecorder] = []
        self.recovery: RecoveryReport | None = None
        self.disk_recoveries: list[RecoveryReport] = []  # the passes of disks that came back while recording
        self.index: Index | None = None
        self.retention: Retention | None = None  # the data root's
        self.retentions: list[Retention] = []  # the data root's, then each recording disk's
        self.disk_set: DiskSet | None = None  # with storage.disks
        self.disk_health: DiskHealthWatch | None = None  # the data root's
        self.disk_watches: dict[str, DiskHealthWatch] = {}  # by disk uuid, '' the data root
        self.faults = FaultBoard(clocks=clocks, record=self._record_fault)
        self.live = LiveHub()  # what viewers (web live view, HDMI monitor, motion) subscribe to
        self._lock_fd: int | None = None
        self.started_us: int | None = None
        self._stopping = False

    def start(self) -> None:
        """Lock the data root, open the index, run recovery and retention, start every enabled channel.
        Raises DataRootBusy (nothing started) when another process records there."""
        if self.disk_absent:
            log.error("no disk is mounted on %s (storage.require_mount): nothing is recorded until one is; "
                      "live view, the monitor and alarm inputs go on", self.config.storage.path)
        self.root.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        self.index = Index(self.root)
        present = [""]
        if self.config.storage.disks and not self.disk_absent:
            disks = self.config.storage.disks
            must_mount = [d.path for d in disks if self.config.storage.mount_required(d)]
            self.disk_set = DiskSet(root=self.root, disks=[(d.path, d.name) for d in disks], index=self.index,
                                    clocks=self.clocks, faults=self.faults,
                                    groups={d.name: d.group for d in disks if d.group},
                                    pinned={c.id: c.storage for c in self.config.channels if c.storage},
                                    on_back=self._disk_back, recover=self._recover_disk,
                                    must_mount=must_mount,
                                    remount=self._remount if must_mount else None)
            self.disk_set.open()
            present = self.disk_set.present()
        self.recovery = recover(self.root, self.index, sync=self._sync, disks=present)
        self.retention = self._make_retention()
        self.retentions = [self.retention, *self._disk_retentions()]
        for retention in self.retentions:
            retention.enforce()  # make room before the first segment, not a pass later
            retention.start()
        self.disk_health = make_disk_health(self.config, self.root, faults=self.faults, clocks=self.clocks,
                                            smart=not self.disk_absent)
        self.disk_watches = {"": self.disk_health, **self._disk_watches()}
        for watch in self.disk_watches.values():
            watch.start()
        channels = [c for c in self.config.channels if c.enabled]
        for position, channel in enumerate(channels):
            self._start_channel(channel, position, len(channels))
        self.started_us = self.clocks.utc_now_us()
        log.info("recording %d channel(s) to %s", len(channels), self.root)

    def _take_lock(self) -> None:
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataRootBusy(f"another nvr process is already recording to {self.root}; stop it first") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _make_retention(self) -> Retention:
        """The data root's: ages and quotas over every disk present; its space bounds over its own
        segments (all of them without storage.disks)."""
        r = self.config.storage.retention
        policy = retention_policy(self.config)
        several = self.disk_set is not None
        return Retention(root=self.root, index=self.index, clocks=self.clocks, faults=self.faults, policy=policy,
                         interval_s=r.interval_s, sync=self._sync, disk="" if several else None,
                         present=self.disk_set.present if several else None)

    def _disk_retentions(self) -> list[Retention]:
        """One per recording disk known by its identity: its own space bounds, measured at its folder,
        and only while it is present."""
        if self.disk_set is None:
            return []
        return [self._disk_retention(disk) for disk in self.disk_set.disks if disk.uuid]

    def _disk_retention(self, disk: RecordingDisk) -> Retention:
        r = self.config.storage.retention
        return Retention(root=self.root, index=self.index, clocks=self.clocks, faults=self.faults,
                         policy=retention_policy(self.config), interval_s=r.interval_s, sync=self._sync,
                         disk=disk.uuid, measure_at=disk.path, ages=False, present=self.disk_set.present,
                         label=disk.label)

    def _disk_watches(self) -> dict[str, DiskHealthWatch]:
        if self.disk_set is None:
            return {}
        return {disk.uuid: make_disk_health(self.config, disk.path, faults=self.faults, clocks=self.clocks,
                                            label=disk.label, one_disk=False)
                for disk in self.disk_set.disks if disk.uuid}

    def _free_space(self) -> None:
        """A write found its disk full: every disk's retention makes room now."""
        for retention in self.retentions:
            retention.enforce()

    def _io_error(self, exc: OSError, disk: str) -> None:
        watch = self.disk_watches.get(disk)
        if watch is not None:
            watch.note_io_error(exc)

    def _disk_back(self, disk: RecordingDisk) -> None:
        """A pulled or failed disk was taken back and written to: its earlier I/O errors stop raising
        disk_errors. A disk recognised only now (not mounted at the start) gets its health watch and
        retention here."""
        watch = self.disk_watches.get(disk.uuid)
        if watch is not None:
            watch.io_recovered()
            return
        if self._stopping:
            return
        log.info("disk %r is recorded on from now: its health watch and retention start", disk.label)
        watch = make_disk_health(self.config, disk.path, faults=self.faults, clocks=self.clocks, label=disk.label,
                                 one_disk=False)
        self.disk_watches = {**self.disk_watches, disk.uuid: watch}  # replaced whole: other threads read it
        retention = self._disk_retention(disk)
        self.retentions = [*self.retentions, retention]
        watch.start()
        retention.start()

    def recheck_disk_writes(self) -> None:
        """With one data disk (no storage.disks): once RETRY_S has passed since its last I/O error, a synced
        test write tells whether it works again; if so its I/O errors stop raising disk_errors, as a
        returning disk's do with storage.disks (`_disk_back`). Called every few seconds (the health watch)."""
        if self.disk_set is None and not self.disk_absent and self.disk_health is not None:
            self.disk_health.recheck_writes()

    def _start_channel(self, channel: ChannelConfig, position: int, count: int) -> None:
        try:
            streams = self._sources(channel)
        except Exception as exc:  # a channel that cannot even be built must not stop the others
            log.exception("channel %d: cannot set up its source", channel.id)
            self.faults.raise_fault("source_lost", f"channel {channel.id}: {exc}", channel=channel.id)
            return
        for stream, source in streams.items():
            # Spread segment cuts over the segment length so channels do not all rotate together.
            stagger = ((position + (0.5 if stream == "sub" else 0.0)) / max(count, 1)) % 1.0
            if self.disk_absent:  # the stream still feeds live view and motion detection; nothing is written
                segmenter = DiscardingSegmenter(channel=channel.id, stream=stream)
            else:
                if self.disk_set is None:  # with several disks each segment's folder is made on its disk
                    make_dirs_durable(self.root / f"ch{channel.id:02d}" / stream, self.root)
                segmenter = Segmenter(
                    channel=channel.id, stream=stream, root=self.root, index=self.index, clocks=self.clocks,
                    faults=self.faults, segment_seconds=self.config.storage.segment_seconds,
                    stagger_fraction=stagger, sync=self._sync, free_space=self._free_space,
                    io_error=self._io_error, placer=self.disk_set,
                )
            live = self.live.stream(channel.id, stream)
            if hasattr(source, "frame_tap"):  # analog: the local view gets raw frames before encoding
                source.frame_tap = live.publish_frame
            recorder = StreamRecorder(source=source, segmenter=segmenter, faults=self.faults, clocks=self.clocks,
                                      reconnect_max_s=reconnect_max_s(channel), live=live)
            recorder.start()
            self.recorders.append(recorder)

    def learnt_stream_url(self, channel_id: int) -> str | None:
        """The RTSP URL channel `channel_id`'s main stream learnt from its camera at its last connect (an
        ONVIF source; with the ONVIF credentials in it), or None (not ONVIF, not connected yet)."""
        for recorder in list(self.recorders):
            if recorder.segmenter.channel == channel_id and recorder.segmenter.stream == "main":
                return getattr(recorder.source, "learnt_url", None)
        return None

    def _recover_disk(self, uuid: str) -> None:
        """The start-up recovery pass for one disk that came back while recording (the disk set's thread)."""
        # A writer may still have a file open there (a disk marked failed by another writer's error):
        # no new segment goes to the disk during the pass, so these are all the files to leave alone.
        writing = {path for recorder in self.recorders for path in getattr(recorder.segmenter, "open_paths", list)()}
        self.disk_recoveries.append(recover(self.root, self.index, sync=self._sync, disks=[uuid], open_paths=writing))

    def stop(self) -> None:
        """Stop every stream (closing and indexing its open segment), retention, and the index; release
        the data root. Safe after a `start` that failed part-way."""
        self._stopping = True
        for recorder in self.recorders:  # all at once: a camera stuck connecting must not hold up the rest
            recorder.request_stop()
        for recorder in self.recorders:
            recorder.join()
        for retention in self.retentions:
            retention.stop()
        for watch in self.disk_watches.values():
            watch.stop()
        if self.disk_set is not None:
            self.disk_set.close()  # a returning disk's recovery pass still writes to the index
        if self.index is not None:
            self.index.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if self.disk_absent:  # the scratch index in RAM holds nothing worth keeping
            shutil.rmtree(self.root, ignore_errors=True)
        log.info("stopped; every segment is closed and indexed")

    def restart_channels(self, config: Config, channel_ids: list[int]) -> list[int]:
        """Take `config` as the running config and restart only the channels in `channel_ids`: their
        streams stop (open segments closed and indexed), then those enabled in `config` start again with
        their new settings. Other channels keep recording untouched. Returns the ids started again.
        Storage and web settings are not applied here (they need a restart of `nvr run`)."""
        ids = set(channel_ids)
        stopping = [r for r in self.recorders if r.segmenter.channel in ids]
        for recorder in stopping:
            recorder.request_stop()
        for recorder in stopping:
            recorder.join()
        self.recorders = [r for r in self.recorders if r.segmenter.channel not in ids]
        for channel_id in ids:
            self.faults.clear_fault("source_lost", channel=channel_id)
        self.config = config
        enabled = [c for c in config.channels if c.enabled]
        started = []
        for position, channel in enumerate(enabled):
            if channel.id in ids:
                self._start_channel(channel, position, len(enabled))
                started.append(channel.id)
        log.info("restarted channel(s) %s with the new config", ", ".join(map(str, sorted(ids))) or "none")
        return started

    def eject_disk(self, label: str, *, timeout_s: float = EJECT_TIMEOUT_S) -> dict:
        """Eject the recording disk called `label` safely: no new segments on it, the open ones ended at
        their next keyframe (their rows committed), the filesystem synced and unmounted. Recording goes
        on on the other disks. KeyError for an unknown label; the result says what was done."""
        if self.disk_set is None:
            raise KeyError(label)
        disk = self.disk_set.eject(label)
        stop = threading.Event()
        deadline_us = self.clocks.monotonic_us() + round(timeout_s * 1e6)
        while self._writing_to(disk.uuid) and self.clocks.monotonic_us() < deadline_us:
            self.clocks.wait(stop, 0.05)
        still = self._writing_to(disk.uuid)
        if still:
            self.disk_set.ejected(disk, f"the disk {label!r} was not unmounted: {still} stream(s) did not reach a "
                                        f"keyframe within {timeout_s:g} s")
            return {"label": label, "unmounted": False, "streams_still_writing": still,
                    "message": f"{still} stream(s) still writing after {timeout_s:g} s; not unmounted"}
        os.sync()
        unmounted, why = unmount(disk.path)
        if unmounted and isinstance(self._remount, FstabRemount):
            self._remount.hold(disk.path)  # not mounted again under the hands of whoever unplugs it
        self.disk_set.ejected(disk, f"the disk {label!r} was ejected ({why}); plug it back in to record on it again")
        log.warning("disk %r ejected: %s", label, why)
        return {"label": label, "unmounted": unmounted, "streams_still_writing": 0, "message": why}

    def _writing_to(self, disk: str) -> int:
        return sum(1 for r in list(self.recorders) if getattr(r.segmenter, "writing_to", lambda: None)() == disk)

    def _record_fault(self, alarm: Fault) -> None:
        if self.index is not None:
            self.index.add_alarm(at_us=alarm.since_us, kind=alarm.kind, channel=alarm.channel, message=alarm.message)

    def _disks_status(self, index: Index | None) -> list[dict]:
        """The disks with their health, space and retention preview ("at today's rate ... N days")."""
        if self.disk_health is None:
            return []
        policy = self.retention.policy if self.retention else retention_policy(self.config)
        usable_index, now_us = None if self.disk_absent else index, self.clocks.utc_now_us()
        if self.disk_set is None:
            return [disk_row(self.disk_health, index=usable_index, policy=policy, now_us=now_us)]
        capacity = disks_capacity(self.disk_set, usable_index, policy) if usable_index is not None else None
        rows = [disk_row(self.disk_health, index=None, policy=policy, now_us=now_us, role=ROLE_INDEX)]
        for disk in self.disk_set.statistics():
            watch = self.disk_watches.get(disk["uuid"])
            if watch is not None:
                rows.append(disk_row(watch, index=usable_index, policy=policy, now_us=now_us, extra=disk,
                                     capacity_bytes=capacity))
            else:  # never recognised (foreign, or away since its first use): only what the set knows
                rows.append({"role": ROLE_RECORDINGS, **disk, "ok": False, "error": disk["reason"],
                             "health": "unknown", "retention_preview": None})
        return rows

    def status(self, *, index: Index | None = None) -> dict:
        """The recording's part of the health page, as plain data. `index`: a reader connection to count
        through (the web's), so the count never holds the recorders' connection."""
        index = index or self.index
        count, size = index.totals() if index else (0, 0)
        now = self.clocks.utc_now_us()
        return {
            "data_root": str(self.root),
            "uptime_s": round((now - self.started_us) / 1e6, 1) if self.started_us else 0,
            "recording": not self.disk_absent,  # False: storage.require_mount and no disk mounted
            "segments": count, "bytes": size,
            "retention": self.retention.statistics() if self.retention else None,
            "disks": self._disks_status(index),
            "recovery": self.recovery.summary() if self.recovery else None,
            "alarms": [{"kind": a.kind, "channel": a.channel, "disk": a.disk, "message": a.message, "since_us": a.since_us}
                       for a in self.faults.active()],
            "streams": [{"channel": r.segmenter.channel, "stream": r.segmenter.stream, "source": r.source.name,
                         **r.statistics(), "capture": _capture_statistics(r.source)} for r in self.recorders],
        }


def _capture_statistics(source: PacketSource) -> dict | None:
    """Analog channels' capture counters (fps measured, frames dropped, signal, video loss); None for cameras."""
    return source.statistics() if isinstance(source, VideoLossGuard) else None
