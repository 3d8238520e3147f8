"""Turns the packets of one stream into runs of fragmented-MP4 segments and their index rows.

Timing: every run is labelled with one wall-clock instant (when its first keyframe arrived, never
earlier than the end of the stream's previous recording); inside a run, time is media time from the
packets' own timestamps. So a wall-clock jump cannot reorder or overlap recordings: it is detected
(the wall/monotonic offset moved) and ends the run at the next keyframe, and the next run starts at
the new wall time, clamped after everything already recorded.
"""
from __future__ import annotations

import dataclasses
import errno
import logging
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Protocol

from base.clock import Clocks
from base.media import EncodedPacket, StreamInfo
from hal.storage import make_dirs_durable
from recorder.faults import FaultSink
from recorder.audio_mux import AudioMuxer
from recorder.errors import DiskFull, StorageError
from recorder.fmp4 import TIMESCALE, Sample, VideoTrack, init_segment, media_fragment_parts
from base.h264 import ANNEX_B, H264Error, avcc_record, parameter_sets, parse_sps, stream_framing, to_mp4_sample
from recorder.index import Index, Run, Segment
from recorder.io_worker import WRITE_STALL_S, IoWorker
from recorder.segment_file import SegmentFile

log = logging.getLogger("nvr.segmenter")

WALL_JUMP_US = 2_000_000  # a wall/monotonic offset change above this is a clock step, not jitter
MAX_FRAME_GAP_TICKS = 10 * TIMESCALE  # a larger dts step is a timestamp discontinuity, not a frame
EARLY_AUDIO_PACKETS = 250  # audio held while waiting for a run's first keyframe: about 5 s of AAC at 48 kHz
MAX_CTO_TICKS = 10 * TIMESCALE  # a composition offset (pts - dts) beyond this is a broken timestamp, not B-frames
MIN_SPS_BYTES = 4  # NAL header, profile, constraints, level: anything shorter is no SPS
# A fragment is written after fragment_seconds of media time, or sooner at these bounds: a camera whose
# timestamps barely move must not make the segmenter hold minutes of frames in memory.
MAX_FRAGMENT_SAMPLES = 300  # 10 s at 30 fps
MAX_FRAGMENT_BYTES = 32 * 1024 * 1024
MAX_RESERVE_BYTES = 256 * 1024 * 1024  # reserved ahead for one segment at most (a 60 s segment at 32 Mbit/s)
# The frames written since the last keyframe stay in memory (references, not copies) so that a segment whose
# disk fails can go on on another disk at once, starting at that keyframe; a longer group of pictures is
# not kept (the next keyframe then starts the new segment, as before). 16 MiB: a 4 s GOP at 32 Mbit/s.
MAX_GOP_BYTES = 16 * 1024 * 1024
MAX_FAILOVERS = 3  # other disks tried in a row for the frames of one failed write


def segment_path(channel: int, stream: str, run_id: int, seq: int) -> str:
    """Relative path of a segment file. Names come from ids, never from wall time, so no clock
    step or DST change can make two recordings collide."""
    return f"ch{channel:02d}/{stream}/{run_id:08d}-{seq:05d}.mp4"


def ticks_to_us(ticks: int) -> int:
    return ticks * 1_000_000 // TIMESCALE


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a segment goes: its disk's uuid ('' for the data root), the prefix of its path in the index
    (`disks/UUID/`), and the folder below which the writer may create the channel's folders."""

    disk: str
    prefix: str
    root: Path


class SegmentPlacer(Protocol):
    """Chooses the disk of each new segment (recorder.disk_set.DiskSet)."""

    def place(self, channel: int | None = None) -> Placement | None: ...

    def failed(self, placement: Placement, exc: OSError) -> None: ...

    def leaving(self, disk: str) -> bool:
        """Whether segments on `disk` should end at the next keyframe (it is being ejected)."""
        ...


@dataclass(slots=True)
class _Pending:
    data: bytes
    ticks: int
    keyframe: bool
    cto: int


@dataclass(slots=True)
class _Unwritten:
    """A fragment queued for writing and not yet known to be written: what it holds, to write it elsewhere."""

    samples: list[Sample]
    start: int  # run ticks
    ticks: int
    audio: object  # its sound (a TrackRun) or None
    repeated: int  # its first frames were written (and counted) on a disk that failed
    data: list[bytes]


@dataclass(slots=True)
class _OpenSegment:
    file: SegmentFile
    seq: int
    path: str
    start_ticks: int
    frames: int = 0
    fragment: list[Sample] = field(default_factory=list)
    fragment_start: int = 0
    fragment_ticks: int = 0
    fragment_bytes: int = 0
    fragments_written: int = 0
    disk: str = ""  # the uuid of the disk it is written to ('' the data root)
    gop: list[Sample] | None = None  # written frames since the last keyframe (None: none yet, or over MAX_GOP_BYTES)
    gop_start: int = 0  # run ticks of that keyframe
    gop_bytes: int = 0
    io: IoWorker | None = None  # the thread its file's writes and syncs run on, in order
    unwritten: deque[_Unwritten] = field(default_factory=deque)  # queued fragments not yet written, oldest first
    fragments_queued: int = 0
    bytes_written: int = 0  # the init part and the written fragments
    written_end: int = 0  # run ticks where the written fragments end


@dataclass(slots=True)
class SegmenterStats:
    packets: int = 0
    frames_recorded: int = 0  # each frame once, when its fragment is written (not again when a failover rewrites it)
    frames_lost: int = 0  # dropped because the disk refused them
    failovers: int = 0  # writes that failed and went on at once on another disk
    frames_rewritten: int = 0  # frames written again on the other disk (since the keyframe they depend on)
    waiting_for_keyframe: int = 0
    bad_packets: int = 0
    timestamp_fixes: int = 0
    runs: int = 0
    segments: int = 0
    bytes: int = 0
    wall_jumps: int = 0
    audio_frames_recorded: int = 0
    audio_dropped: int = 0  # before the run began, too far ahead of the video, unreadable, or out of order
    audio_timestamp_fixes: int = 0


class Segmenter:
    """Writes one stream (`channel`, `stream`) under `root`. Not thread-safe: one recording thread.

    Call `start_run(info)` after each (re)connection, `push` for every packet, `finish` when the
    connection ends. Storage failures never raise out of `push`: the open segment is closed at its
    last good fragment, an alarm is raised, and recording resumes at the next keyframe. With a placer
    (several disks), a write that fails on a disk that is not just full goes on at once in a new segment
    on another disk, from the keyframe the unwritten frames depend on (`_fail_over`). Each segment's
    writes and syncs run in order on an I/O thread of its own (recorder.io_worker): fragments are written
    behind (queued, kept in memory until written, their outcomes taken in at the next frame), and a write
    that has not returned within `write_stall_s` fails like any write (the disk's writes hang), the
    recording thread goes on, and the stuck thread is left behind. `frames_recorded` counts a frame when its
    fragment is written, so it may lag the packets pushed by the fragments queued.

    With sound, a segment cut at a keyframe is closed (and indexed) only when the sound up to its cut
    has arrived, at the latest when the next segment writes its first fragment: its video is written
    at the cut, its sound follows in an audio-only fragment (design/recording.md, "Cuts").
    """

    def __init__(self, *, channel: int, stream: str, root: Path, index: Index, clocks: Clocks,
                 faults: FaultSink, segment_seconds: float, stagger_fraction: float = 0.0,
                 fragment_seconds: float = 1.0, sync: bool = True,
                 free_space: Callable[[], None] | None = None,
                 io_error: Callable[[OSError, str], None] | None = None, placer: SegmentPlacer | None = None,
                 reserve: bool = True, write_stall_s: float = WRITE_STALL_S):
        """`free_space`: retention's pass, called when a write finds the disk full (then one retry).
        `io_error(exc, disk)`: told of every storage error met (the disk's health watch counts the I/O errors).
        `placer`: chooses the disk of each new segment (several disks); without one, segments go under `root`.
        `reserve`: each segment file reserves the size of the last one (an eighth more) when it is
        created, for a disk-friendly layout (recorder/segment_file.py).
        `write_stall_s`: a segment's write or sync that has not returned after this long marks its disk
        failed (with a placer, the segment goes on on another disk at once)."""
        self.channel, self.stream = channel, stream
        self._root, self._index, self._clocks, self._faults = root, index, clocks, faults
        self._segment_ticks = round(segment_seconds * TIMESCALE)
        self._first_segment_ticks = max(TIMESCALE, round(self._segment_ticks * (1 - stagger_fraction)))
        self._fragment_ticks = round(fragment_seconds * TIMESCALE)
        self._sync = sync
        self._free_space = free_space
        self._io_error = io_error
        self._placer = placer
        self._reserve = reserve
        self._write_stall_s = write_stall_s
        self._last_segment_bytes = 0
        self._placement = Placement("", "", root)
        self.stats = SegmenterStats()
        self._info: StreamInfo | None = None
        self._reset_run_state()

    def _reset_run_state(self) -> None:
        self._run: Run | None = None
        self._segment: _OpenSegment | None = None
        self._pending: _Pending | None = None
        self._seq = 0
        self._track: VideoTrack | None = None
        self._checked: tuple[bytes, bytes, VideoTrack] | None = None  # what _note_parameter_sets last compared
        self._params_differ = False
        self._last_duration = TIMESCALE // 25
        self._audio: AudioMuxer | None = None
        self._early_audio: deque[EncodedPacket] = deque(maxlen=EARLY_AUDIO_PACKETS)
        self._finishing = False
        self._closed_at: int | None = None  # run ticks where the last segment ended (its audio goes on in the next)
        self._tail: _OpenSegment | None = None  # a segment cut at a keyframe, open until its last sound arrives

    # the connection's life

    def start_run(self, info: StreamInfo) -> None:
        """A new connection delivered `info`; the run itself begins at its first keyframe."""
        if info.codec != "h264":
            raise ValueError(f"codec {info.codec!r} cannot be recorded yet: only h264 is supported")
        self._close_tail()
        self._reset_run_state()
        self._info = info
        self._audio = self._audio_muxer(info)
        scale = Fraction(info.time_base) * TIMESCALE
        self._scale_num, self._scale_den = scale.numerator, scale.denominator
        self._length_size = ANNEX_B
        self._sps, self._pps = None, None
        self._track_sps = self._track_pps = None  # the parameter sets of the track being written
        if info.extradata:
            try:
                self._sps, self._pps = parameter_sets(info.extradata)
                self._length_size = stream_framing(info.extradata)
            except H264Error as exc:
                log.warning("channel %d %s: ignoring unreadable codec extradata: %s", self.channel, self.stream, exc)

    def _audio_muxer(self, info: StreamInfo) -> AudioMuxer | None:
        if info.audio is None:
            return None
        try:
            return AudioMuxer(info.audio, info.time_base, self.stats, label=f"channel {self.channel} {self.stream}")
        except ValueError as exc:
            log.warning("channel %d %s: recording without audio: %s", self.channel, self.stream, exc)
            return None

    def finish(self) -> None:
        """The connection ended: write what is held and close the segment (the run ends here)."""
        if self._pending is not None and self._segment is not None:
            self._append_pending(self._pending.ticks + self._last_duration)
        self._finishing = True  # the last fragment takes all the audio up to the video's end
        try:
            self._close_tail()
            self._close_segment()
        finally:
            self._finishing = False
        self._pending = None
        self._run = None

    def wait_written(self) -> None:
        """Wait, as long as the disk moves, until every fragment queued so far is written and taken in (the
        fragment being gathered stays open). On the recording thread, between pushes: a writer fed faster
        than real time (simulated clocks) uses it to be where a real one is after seconds of recording."""
        if self._segment is not None:
            self._settle(self._segment, wait=True)

    # packets

    def push(self, packet: EncodedPacket) -> None:
        """Take one packet (decode order). Malformed packets are counted and skipped, never raised."""
        try:
            self._push(packet)
        except Exception as exc:  # noqa: BLE001 - the contract: a camera's bytes never end the recording thread
            self._unexpected(exc)

    def _unexpected(self, exc: Exception) -> None:
        """A packet broke something no check foresaw: count it, close the segment at its last good
        fragment (so no file is left open) and start again at the next keyframe."""
        self.stats.bad_packets += 1
        log.warning("channel %d %s: dropped a packet that could not be recorded (%s: %s)", self.channel, self.stream,
                    type(exc).__name__, exc, exc_info=True)
        self._pending = None
        try:
            self._close_tail()
        except Exception:  # noqa: BLE001 - the last resort too: the segment below is still closed
            log.exception("channel %d %s: closing the segment waiting for its sound failed", self.channel, self.stream)
        seg = self._segment
        if seg is None:
            return
        self.stats.frames_lost += len(seg.fragment)
        seg.fragment.clear()  # the fragment may hold what failed: it is not written
        seg.fragment_ticks = seg.fragment_bytes = 0
        try:
            self._close_segment()
        except Exception:  # noqa: BLE001 - closing is the last resort: the file at least is released
            log.exception("channel %d %s: closing the segment failed", self.channel, self.stream)
            self._segment = None
            try:
                if not seg.io.after_stall(seg.file.abandon):
                    seg.io.call(seg.file.abandon)
            except Exception:  # noqa: BLE001
                log.exception("channel %d %s: abandoning the segment failed", self.channel, self.stream)

    def _push(self, packet: EncodedPacket) -> None:
        if packet.track == "audio":
            self._push_audio(packet)
            return
        self.stats.packets += 1
        try:
            unit = to_mp4_sample(packet.data, self._length_size)
        except H264Error as exc:
            self.stats.bad_packets += 1
            log.warning("channel %d %s: dropped a malformed packet: %s", self.channel, self.stream, exc)
            self._drop_to_next_keyframe()
            return
        keyframe = packet.keyframe or unit.idr
        track_changed = self._note_parameter_sets(unit.sps, unit.pps)
        if not unit.sample:
            return  # parameter sets only
        if self._run is None:
            self._begin_run_at(packet, keyframe)
            if self._run is None:
                return
        ticks, cto = self._ticks(packet)
        if not self._label_final:
            self._note_arrival(packet, ticks)
        if self._pending is not None:
            # The fragment before a cut is written by the cut, which keeps the sound across it for the next segment.
            self._append_pending(ticks, hold=keyframe and self._segment is not None and self._long_enough(ticks))
        if keyframe and self._segment is not None:
            ticks = self._maybe_cut(ticks, track_changed)
        if self._segment is None:
            if not keyframe or self._run is None:
                self.stats.waiting_for_keyframe += 1
                return
            self._open_segment(ticks)
            if self._segment is None:
                return
        self._pending = _Pending(unit.sample, ticks, keyframe, cto)

    def _push_audio(self, packet: EncodedPacket) -> None:
        """Audio waits in the muxer for the video fragment it belongs to. Before the run's first
        keyframe it waits here (a camera may deliver audio ahead of the video of the same moment);
        in a stream whose audio cannot be recorded it is dropped and counted."""
        if self._audio is None:
            self.stats.audio_dropped += 1
        elif self._run is None:
            if len(self._early_audio) == self._early_audio.maxlen:
                self.stats.audio_dropped += 1
            self._early_audio.append(packet)
        else:
            self._audio.push(packet, self._dts0, self._tick_fix)
            if self._tail is not None and self._audio.complete_until(self._tail.fragment_start):
                self._close_tail()

    def _drop_to_next_keyframe(self) -> None:
        """After a malformed packet the frames that depend on it are useless: end the segment at the
        last good frame; the next keyframe opens a new one."""
        if self._pending is not None and self._segment is not None:
            self._append_pending(self._pending.ticks + self._last_duration)
        self._pending = None
        self._close_segment()

    def _note_parameter_sets(self, sps: bytes | None, pps: bytes | None) -> bool:
        """Record in-band SPS/PPS; True if they differ from the track being written."""
        if sps is not None and len(sps) < MIN_SPS_BYTES:
            self.stats.bad_packets += 1  # the packet's picture may still be good: only the SPS is ignored
            sps = None
        if sps is not None:
            self._sps = sps
        if pps is not None:
            self._pps = pps
        if self._track is None or self._sps is None or self._pps is None:
            return False
        checked = self._checked
        if checked is None or checked[0] is not self._sps or checked[1] is not self._pps or checked[2] is not self._track:
            # Only when something changed: most packets carry no parameter sets (and this runs per packet).
            self._checked = (self._sps, self._pps, self._track)
            try:
                self._params_differ = avcc_record(self._sps, self._pps) != self._track.avcc
            except H264Error as exc:
                log.warning("channel %d %s: ignoring unusable parameter sets: %s", self.channel, self.stream, exc)
                self.stats.bad_packets += 1
                self._sps, self._pps = self._track_sps, self._track_pps
                self._checked = (self._sps, self._pps, self._track)
                self._params_differ = False
        return self._params_differ

    def _make_track(self) -> VideoTrack | None:
        """The track of the current parameter sets; None when there are none usable yet."""
        if self._sps is None or self._pps is None:
            return None
        try:
            avcc = avcc_record(self._sps, self._pps)
        except H264Error as exc:
            log.warning("channel %d %s: unusable parameter sets (%s)", self.channel, self.stream, exc)
            self.stats.bad_packets += 1
            self._sps = self._pps = None
            return None
        try:
            sps = parse_sps(self._sps)
            width, height = sps.width, sps.height
        except H264Error as exc:
            log.warning("channel %d %s: unreadable SPS (%s); using the stream's size", self.channel, self.stream, exc)
            width, height = self._info.width, self._info.height
        self._track_sps, self._track_pps = self._sps, self._pps
        return VideoTrack(width, height, avcc)

    def _begin_run_at(self, packet: EncodedPacket, keyframe: bool) -> None:
        self._track = self._make_track() if keyframe else None
        if self._track is None:
            self.stats.waiting_for_keyframe += 1
            return
        self._new_run()
        self._dts0 = packet.dts
        self._tick_fix = 0
        self._pending = None
        self._closed_at = None
        if self._audio is not None:
            self._audio.reset()
            for early in self._early_audio:  # those from before the keyframe are dropped (and counted) there
                self._audio.push(early, self._dts0, 0)
        self._early_audio.clear()

    def _new_run(self) -> None:
        now_us = self._clocks.utc_now_us()
        # Both clocks read together: begin_run below can wait seconds for the index when many streams
        # start at once, and an offset taken after it would look like a wall-clock step.
        wall_offset_us = now_us - self._clocks.monotonic_us()
        floor = self._index.last_end_us(self.channel, self.stream) or 0
        if floor > now_us + WALL_JUMP_US:
            log.warning("channel %d %s: wall clock is %.1f s behind the last recording; the new run starts after it",
                        self.channel, self.stream, (floor - now_us) / 1e6)
        try:
            self._run = self._with_space(
                self._index.begin_run,
                channel=self.channel, stream=self.stream, start_us=max(now_us, floor),  # no overlap, no reorder
                clock_source="arrival", codec="h264", width=self._track.width, height=self._track.height,
                timescale=TIMESCALE,
            )
        except StorageError as exc:
            self._run = None  # the next keyframe tries again
            self._storage_failed(exc)
            return
        self._wall_offset_us = wall_offset_us
        self._run_floor_us = floor
        self._anchor_us: int | None = None
        self._label_final = False
        self._seq = 0
        self.stats.runs += 1

    def _note_arrival(self, packet: EncodedPacket, ticks: int) -> None:
        """Track the earliest wall time this run's media time 0 can have had.

        A packet arrives no earlier than it was captured, so arrival minus media time bounds the run's
        start from above, and the minimum over the first segment is the best label. It matters for
        cameras: FFmpeg probes the stream for about a second and then delivers that second in a burst,
        which would otherwise make every run's label a second late.
        """
        now_us = self._clocks.utc_now_us()
        arrival_us = now_us - (self._clocks.monotonic_us() - packet.arrival_us) if packet.arrival_us else now_us
        implied = arrival_us - ticks_to_us(ticks)
        self._anchor_us = implied if self._anchor_us is None else min(self._anchor_us, implied)

    def _final_label(self) -> Run:
        """The run as its first segment is committed: relabelled with the best start estimate, which
        from then on is fixed (rows already depend on it)."""
        run = self._run
        self._label_final = True
        if self._anchor_us is None or self._anchor_us >= run.start_us:
            return run
        start_us = max(self._anchor_us, self._run_floor_us)
        try:
            self._index.relabel_run(run.id, start_us)
        except StorageError:
            return run  # keep the first label; being a little late is no reason to stop
        self._run = dataclasses.replace(run, start_us=start_us)
        return self._run

    def _ticks(self, packet: EncodedPacket) -> tuple[int, int]:
        num, den = self._scale_num, self._scale_den
        ticks = (packet.dts - self._dts0) * num // den + self._tick_fix
        cto = (packet.pts - packet.dts) * num // den
        if self._pending is not None:
            step = ticks - self._pending.ticks
            if step <= 0 or step > MAX_FRAME_GAP_TICKS:
                # Non-increasing or wildly jumping timestamps: keep media time moving at the last
                # frame rate so the file stays valid, and count it.
                self.stats.timestamp_fixes += 1
                fixed = self._pending.ticks + self._last_duration
                self._tick_fix += fixed - ticks
                ticks = fixed
        if cto > MAX_CTO_TICKS:
            self.stats.timestamp_fixes += 1  # a broken pts: the frame is shown at its dts
            cto = 0
        return ticks, max(cto, 0)

    def _maybe_cut(self, ticks: int, track_changed: bool) -> int:
        """At a keyframe: close the segment if it is long enough, or end the run if the wall clock
        stepped or the picture format changed. Returns the keyframe's ticks in the (new) run."""
        if track_changed or self._wall_jumped():
            self._close_segment()
            return self._restart_run(ticks)
        leaving = self._placer is not None and self._placer.leaving(self._segment.disk)
        if leaving:  # its disk is being ejected: close now, not after the sound of the cut arrives
            self._close_segment()
        elif self._long_enough(ticks):
            self._close_segment(await_sound=True)
        return ticks

    def _long_enough(self, ticks: int) -> bool:
        """Whether the open segment ends at a keyframe at `ticks` (run time)."""
        limit = self._first_segment_ticks if self._segment.seq == 0 else self._segment_ticks
        return ticks - self._segment.start_ticks >= limit

    def _wall_jumped(self) -> bool:
        offset = self._clocks.utc_now_us() - self._clocks.monotonic_us()
        if abs(offset - self._wall_offset_us) <= WALL_JUMP_US:
            return False
        self.stats.wall_jumps += 1
        log.warning("channel %d %s: wall clock stepped by %+.1f s; starting a new run",
                    self.channel, self.stream, (offset - self._wall_offset_us) / 1e6)
        return True

    def _restart_run(self, ticks: int) -> int:
        """End the run at this keyframe and begin a new one with it (new wall label, new track)."""
        self._track = self._make_track()
        self._pending = None
        self._new_run()
        self._closed_at = None
        if self._audio is not None:
            self._audio.reset()
        self._tick_fix -= ticks  # media time of the new run starts at zero with this keyframe
        return 0

    # segments and fragments

    def _open_segment(self, ticks: int) -> None:
        tried: set[str] = set()
        while True:
            if self._placer is not None:
                placement = self._placer.place(self.channel)
                if placement is None:
                    self.stats.frames_lost += 1
                    self._faults.raise_fault("disk_error", f"channel {self.channel} {self.stream}: none of its "
                                             "recording disks is usable (see the disk_offline alarms)",
                                             channel=self.channel)
                    return
                self._placement = placement
            if self._placement.disk in tried:  # the disk that just failed, again (no other): lost, as before
                self.stats.frames_lost += 1
                return
            rel = self._placement.prefix + segment_path(self.channel, self.stream, self._run.id, self._seq)
            # A thread of the segment's own: a hung disk's writes hold up no other segment (a closing one on
            # another disk), and the next segment does not queue behind them.
            io, made = IoWorker(f"channel {self.channel} {self.stream} segment {self._seq}",
                                stall_s=self._write_stall_s), []
            try:
                # A full disk: retention makes room and the same keyframe gets a second try, as a
                # fragment or an index row does, instead of losing the time up to the next keyframe.
                file = self._with_space(io.call, self._create_file, self._root / rel, self._placement.root,
                                        init_segment(self._track, self._audio and self._audio.track),
                                        self._reserve_bytes(), made)
            except (StorageError, OSError) as exc:
                io.after_stall(lambda: made and made[0].release())  # a file made after all: its fd is let go
                io.close()
                tried.add(self._placement.disk)
                self._storage_failed(exc)
                if self._placer is not None and not isinstance(exc, DiskFull) and len(tried) <= MAX_FAILOVERS:
                    continue  # its disk is marked failed: the keyframe goes to another one at once
                self.stats.frames_lost += 1  # this keyframe: the disk refused it (the frames after it wait for the next)
                return
            break
        self._segment = _OpenSegment(file, self._seq, rel, ticks, fragment_start=ticks, disk=self._placement.disk,
                                     io=io, bytes_written=file.bytes_written, written_end=ticks)
        if self._audio is not None and ticks != self._closed_at:
            self._audio.drop_before(ticks)  # audio of a stretch whose video was not recorded
        self._seq += 1
        self._faults.clear_fault("disk_error", channel=self.channel)

    def _create_file(self, path: Path, disk_root: Path, init: bytes, reserve_bytes: int,
                     made: list[SegmentFile]) -> SegmentFile:
        """Runs on the I/O thread: the segment's folders and its file, made durable."""
        make_dirs_durable(path.parent, disk_root)
        file = SegmentFile(path, init, sync=self._sync, reserve_bytes=reserve_bytes)
        made.append(file)
        return file

    def _reserve_bytes(self) -> int:
        """The last segment's size and an eighth more (none before the first), at most MAX_RESERVE_BYTES."""
        if not self._reserve or not self._last_segment_bytes:
            return 0
        return min(self._last_segment_bytes * 9 // 8, MAX_RESERVE_BYTES)

    def _append_pending(self, next_ticks: int, *, hold: bool = False) -> None:
        if self._segment is not None and self._segment.unwritten:
            # Each frame takes in the writes done since (cheap: no wait), so a written fragment shows in
            # `open_segment_row` at once and a hung write is noticed within a frame of the stall bound.
            self._settle(self._segment, wait=False)
        pending, seg = self._pending, self._segment
        self._pending = None
        if seg is None:
            return
        duration = next_ticks - pending.ticks
        self._last_duration = duration
        seg.fragment.append(Sample(pending.data, duration, pending.keyframe, pending.cto))
        seg.fragment_ticks += duration
        seg.fragment_bytes += len(pending.data)
        if not hold and (seg.fragment_ticks >= self._fragment_ticks or len(seg.fragment) >= MAX_FRAGMENT_SAMPLES
                         or seg.fragment_bytes >= MAX_FRAGMENT_BYTES):
            self._flush_fragment()

    def _flush_fragment(self, *, cut: bool = False, wait: bool = False) -> None:
        """Queue the fragment being gathered for writing; with `wait`, until every queued one is written."""
        seg = self._segment
        if seg is None:
            return
        if not seg.fragment:
            if wait:
                self._settle(seg, wait=True)
            return
        if self._tail is not None and self._tail is not seg:
            self._close_tail()  # the sound before the cut goes to the old segment before any goes here
        audio = None
        if self._audio is not None:
            audio = self._audio.take(seg.fragment_start + seg.fragment_ticks, final=self._finishing, cut=cut)
        self._write_fragment(seg, audio, wait=wait)

    def _write_fragment(self, seg: _OpenSegment, audio, failovers: int = 0, repeated: int = 0,
                        wait: bool = False) -> None:
        """Queue `seg`'s fragment on its I/O thread (its first `repeated` frames were written, and counted, on
        a disk that failed) and take in the outcomes of those queued before; with `wait`, wait for all."""
        piece = _Unwritten(list(seg.fragment), seg.fragment_start, seg.fragment_ticks, audio, repeated,
                           media_fragment_parts(seg.fragments_queued + 1, seg.fragment_start, seg.fragment, audio))
        seg.fragments_queued += 1
        seg.unwritten.append(piece)
        seg.fragment_start += seg.fragment_ticks
        seg.fragment = []
        seg.fragment_bytes = seg.fragment_ticks = 0
        try:
            seg.io.submit(seg.file.append, piece.data)
        except StorageError as exc:
            self._write_failed(seg, exc, failovers, wait)
            return
        self._settle(seg, wait=wait, failovers=failovers)

    def _settle(self, seg: _OpenSegment, *, wait: bool, failovers: int = 0) -> None:
        """Take in the outcomes of `seg`'s queued writes: each written fragment is counted and remembered
        for its group of pictures; a failed or hung write hands the unwritten ones to `_write_failed`."""
        outcomes = seg.io.wait_all() if wait else seg.io.settle()
        for ok, value in outcomes:
            if not seg.unwritten:
                break  # a call's outcome, not a fragment's (never: calls take their own)
            if not ok:
                self._write_failed(seg, value, failovers, wait)
                return
            self._written(seg, seg.unwritten.popleft())
        if seg.io.stuck and seg.unwritten:
            self._write_failed(seg, seg.io.stalled_error(), failovers, wait)

    def _written(self, seg: _OpenSegment, piece: _Unwritten) -> None:
        seg.frames += len(piece.samples)
        self.stats.frames_recorded += len(piece.samples) - piece.repeated
        seg.fragments_written += 1
        seg.bytes_written += sum(len(part) for part in piece.data)
        seg.written_end = piece.start + piece.ticks
        self._keep_gop(seg, piece)

    def _write_failed(self, seg: _OpenSegment, exc: Exception, failovers: int, wait: bool) -> None:
        """The first of `seg`'s unwritten fragments failed (or hangs): retention and a second try for a full
        disk, else on to another disk (`_fail_over`), else they are lost and the segment ends."""
        if not isinstance(exc, StorageError):
            exc = StorageError(errno.EIO, f"writing {seg.path} failed: {exc}")
        if isinstance(exc, DiskFull) and self._free_space is not None and not seg.io.stuck and \
                self._write_again_after_retention(seg):
            return
        if failovers < MAX_FAILOVERS and self._fail_over(seg, exc, failovers, wait):
            return
        self._lose(seg.unwritten)
        seg.unwritten.clear()
        self._storage_failed(exc)
        self._close_segment()

    def _write_again_after_retention(self, seg: _OpenSegment) -> bool:
        """A full disk: let retention make room and write the unwritten fragments once more, waiting for them
        (rare: the disk is full). True if they are all written now."""
        seg.io.wait_all()  # those queued behind the failed one were refused; their outcomes do not matter
        self._free_space()
        seg.file.broken = False  # the I/O thread is idle: the file is as the last written fragment left it
        try:
            for piece in seg.unwritten:
                seg.io.submit(seg.file.append, piece.data)
            outcomes = seg.io.wait_all()
        except StorageError:
            return False
        while outcomes and seg.unwritten and outcomes[0][0]:
            outcomes.pop(0)
            self._written(seg, seg.unwritten.popleft())
        return not seg.unwritten

    def _lose(self, pieces) -> None:
        for piece in pieces:
            self.stats.frames_lost += len(piece.samples) - piece.repeated
            if piece.audio is not None:
                self.stats.audio_frames_recorded -= len(piece.audio.samples)
                self.stats.audio_dropped += len(piece.audio.samples)

    def _keep_gop(self, seg: _OpenSegment, piece: _Unwritten) -> None:
        """Remember the frames of the fragment just written that belong to the current group of pictures."""
        ticks = piece.start
        for sample in piece.samples:
            if sample.keyframe:
                seg.gop, seg.gop_start, seg.gop_bytes = [], ticks, 0
            if seg.gop is not None:
                seg.gop.append(sample)
                seg.gop_bytes += len(sample.data)
            ticks += sample.duration
        if seg.gop_bytes > MAX_GOP_BYTES:
            seg.gop, seg.gop_bytes = None, 0

    def _fail_over(self, seg: _OpenSegment, exc: StorageError, failovers: int, wait: bool) -> bool:
        """Fragments could not be written to `seg`'s disk (not a full one), or its writes hang: close `seg`
        at its last written fragment and go on at once in a new segment on another disk, starting at the
        keyframe the unwritten frames depend on (those since it that were written are written again), then
        the unwritten fragments as they were. So nothing is lost but what the failed disk may not have made
        durable. False (nothing done) where that keyframe is not held or there is no other disk to ask."""
        if self._placer is None or isinstance(exc, DiskFull) or not seg.unwritten:
            return False
        first = seg.unwritten[0]
        if first.samples and first.samples[0].keyframe:
            start, lead = first.start, []
        elif seg.gop is not None:
            start, lead = seg.gop_start, list(seg.gop)
        else:
            return False
        pieces = list(seg.unwritten)
        seg.unwritten.clear()
        # The frames gathered since (a hang noticed between fragments) go on in the new segment, not here.
        gathered, gathered_ticks, gathered_bytes = seg.fragment, seg.fragment_ticks, seg.fragment_bytes
        seg.fragment, seg.fragment_ticks, seg.fragment_bytes = [], 0, 0
        log.warning("channel %d %s: writing to disk %r failed (%s); going on on another disk from %d frames back",
                    self.channel, self.stream, seg.disk, exc, len(lead) + sum(len(p.samples) for p in pieces))
        self._storage_failed(exc)
        self._close_segment()  # its written fragments stay; its row waits for the disk's recovery pass
        self._segment = None
        self._open_segment(start)
        if self._segment is None:  # no other disk: lost as before, and the next keyframe asks again
            self._lose(pieces)
            self.stats.frames_lost += len(gathered)
            return True
        self.stats.failovers += 1
        self.stats.frames_rewritten += len(lead)
        for number, piece in enumerate(pieces):
            new = self._segment
            if new is None:  # that disk failed too, and no other was left
                self._lose(pieces[number:])
                break
            samples = lead + piece.samples if number == 0 else piece.samples
            new.fragment = list(samples)
            new.fragment_ticks = sum(sample.duration for sample in samples)
            new.fragment_bytes = sum(len(sample.data) for sample in samples)
            self._write_fragment(new, piece.audio, failovers + 1, piece.repeated + (len(lead) if number == 0 else 0),
                                 wait=wait and number == len(pieces) - 1)
        if self._segment is None:
            self.stats.frames_lost += len(gathered)
        else:
            new = self._segment
            new.fragment, new.fragment_ticks, new.fragment_bytes = gathered, gathered_ticks, gathered_bytes
        return True

    def _with_space(self, write, *args, **kwargs):
        """Call `write`; if the disk is full, let retention delete the oldest recordings now and try
        once more."""
        try:
            return write(*args, **kwargs)
        except DiskFull:
            if self._free_space is None:
                raise
            self._free_space()
            return write(*args, **kwargs)

    def _close_segment(self, *, await_sound: bool = False) -> None:
        """Write the last fragment and close the segment. With `await_sound` (a cut at a keyframe, the
        run going on) the file stays open, as the tail, until the sound up to the cut has arrived."""
        seg = self._segment
        if seg is None:
            return
        self._close_tail()
        await_sound = await_sound and self._audio is not None and not self._finishing
        self._flush_fragment(cut=await_sound, wait=True)
        seg = self._segment  # a write that failed may have moved the segment to another disk
        if seg is None:
            return  # the flush failed and closed it already
        self._segment = None
        self._closed_at = seg.fragment_start
        if await_sound and seg.frames:
            self._tail = seg
            if self._audio.complete_until(seg.fragment_start):
                self._close_tail()
            return
        self._end_segment(seg)

    def _close_tail(self) -> None:
        """Close the segment waiting for its sound: an audio-only fragment with every frame that ends
        by its cut (those that arrived: this also runs when waiting longer would hold up the next
        segment's first fragment, the run's end, or an error), then the file and its row."""
        seg, self._tail = self._tail, None
        if seg is None:
            return
        audio = self._audio.take(seg.fragment_start, final=True, cut=True) if self._audio is not None else None
        if audio is not None:
            try:
                self._append_now(seg, media_fragment_parts(seg.fragments_queued + 1, seg.fragment_start, [], audio))
                seg.fragments_queued += 1
                seg.fragments_written += 1
            except StorageError as exc:
                self.stats.audio_frames_recorded -= len(audio.samples)
                self.stats.audio_dropped += len(audio.samples)
                self._storage_failed(exc)  # the video is written and synced: the segment is still closed
        self._end_segment(seg)

    def _append_now(self, seg: _OpenSegment, data: list[bytes]) -> None:
        """Write `data` to `seg` and wait for it; on a full disk, once more after retention."""
        try:
            seg.io.call(seg.file.append, data)
        except DiskFull:
            if self._free_space is None:
                raise
            self._free_space()
            seg.file.broken = False  # the I/O thread is idle: the file is as its last written fragment left it
            seg.io.call(seg.file.append, data)

    def _end_segment(self, seg: _OpenSegment) -> None:
        """Close a segment whose fragments are written (or abandon it if it holds none) and index it. On a
        disk whose writes hang the file is left as it is (closed by the stuck thread once it returns):
        its synced fragments wait for the disk's recovery pass."""
        try:
            self._close_file(seg)
        finally:
            seg.io.close()  # its thread ends now (a stuck one once its write returns)

    def _close_file(self, seg: _OpenSegment) -> None:
        if seg.io.stuck:
            if not seg.io.after_stall(seg.file.abandon if seg.frames == 0 else seg.file.release):
                (seg.file.abandon if seg.frames == 0 else seg.file.release)()  # it has just returned
            return
        try:
            if seg.frames == 0:
                seg.io.call(seg.file.abandon)
                return
            seg.io.call(seg.file.close)
        except StorageError as exc:
            self._storage_failed(exc)  # the file stays for the recovery pass to judge
            return
        self._commit(seg)

    def _commit(self, seg: _OpenSegment) -> None:
        run = self._run if self._label_final else self._final_label()
        end_ticks = seg.written_end
        row = Segment(
            id=0, run_id=run.id, channel=self.channel, stream=self.stream, seq=seg.seq,
            start_us=run.start_us + ticks_to_us(seg.start_ticks), end_us=run.start_us + ticks_to_us(end_ticks),
            media_start_ticks=seg.start_ticks, path=seg.path, bytes=seg.file.bytes_written, frames=seg.frames,
            disk=seg.disk,
        )
        try:
            self._with_space(self._index.add_segment, row)
        except StorageError as exc:
            # The file is synced; the next start-up's recovery pass indexes it.
            self._storage_failed(exc)
            return
        self.stats.segments += 1
        self.stats.bytes += seg.file.bytes_written
        self._last_segment_bytes = seg.file.bytes_written

    def writing_to(self) -> str | None:
        """The disk (uuid, '' the data root) of the segment open now, or of the one still waiting for the
        sound up to its cut, or None. Read from other threads."""
        seg = self._segment or self._tail
        return None if seg is None else seg.disk

    def open_paths(self) -> list[str]:
        """The paths (as in the index) of the files this writer has open: the segment being written and
        the one waiting for its sound. Read from other threads (a recovery pass must leave them alone)."""
        return [seg.path for seg in (self._segment, self._tail) if seg is not None]

    def open_segment_row(self) -> Segment | None:
        """The segment being written, as the row it will get (id 0), for playback near the live edge;
        None before its first fragment is on disk. Read from other threads: a snapshot that may lag a
        fragment. Until the run's first segment is committed, its times use the provisional label."""
        seg, run = self._segment, self._run
        if seg is None or run is None or seg.fragments_written == 0:
            return None
        end_ticks = seg.written_end
        return Segment(id=0, run_id=run.id, channel=self.channel, stream=self.stream, seq=seg.seq,
                       start_us=run.start_us + ticks_to_us(seg.start_ticks), end_us=run.start_us + ticks_to_us(end_ticks),
                       media_start_ticks=seg.start_ticks, path=seg.path, bytes=seg.bytes_written, frames=seg.frames,
                       disk=seg.disk)

    def _storage_failed(self, exc: Exception) -> None:
        kind = "disk_full" if isinstance(exc, DiskFull) else "disk_error"
        self._faults.raise_fault(kind, f"channel {self.channel} {self.stream}: {exc}", channel=self.channel)
        if isinstance(exc, OSError):
            if self._io_error is not None:
                self._io_error(exc, self._placement.disk)
            if self._placer is not None:
                self._placer.failed(self._placement, exc)


class DiscardingSegmenter:
    """A segmenter's interface that writes nothing: the stream while no recordings disk is there.

    The stream recorder still connects, counts and feeds the live view (web and local monitor); the
    packets are counted here and dropped. `frames_recorded` stays 0, so the health page shows plainly
    that nothing is being kept.
    """

    def __init__(self, *, channel: int, stream: str):
        self.channel, self.stream = channel, stream
        self.stats = SegmenterStats()

    def start_run(self, info: StreamInfo) -> None:
        pass  # nothing to open: no run exists without a disk

    def push(self, packet: EncodedPacket) -> None:
        if packet.track != "audio":
            self.stats.packets += 1

    def finish(self) -> None:
        pass  # nothing was opened
