"""Crash safety of a real `nvr run`: SIGKILL at random moments, restart, and check what survived.

Each cycle starts `nvr run` on two test-pattern channels, waits until both record, kills it with
SIGKILL after a random (seeded) time, and restarts it; the start-up recovery pass must then have
indexed every file the killed process left, each playable to its last frame, and each channel must
have lost at most about one fragment (one second) of video. The suite runs the 20-cycle acceptance
run (about 100 s).
"""
from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import time
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.logging
import pytest

from appliance.web.client import ApiClient
from recorder.index import Index
from recorder.recovery import recover
from support.waiting import wait_for
from support.nvr_process import nvr_command
from support.web import WEB_USER, add_web_user, free_port

FPS = 25
CHANNELS = (1, 2)
MAX_LOSS_S = 1.5  # one fragment (1 s) plus the frame held back, encoder latency and scheduling
READY_PACKETS = FPS + 5  # packets pushed per stream once the first fragment is on disk
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


# --- the nvr process ------------------------------------------------------------------------------

def write_config(folder: Path, *, segment_seconds: int = 4) -> Path:
    channels = "".join(
        f"  - id: {channel}\n"
        f"    source: {{type: test-pattern, width: 320, height: 240, fps: {FPS}, bitrate: 300000,"
        f" keyframe_interval_s: 1}}\n"
        for channel in CHANNELS
    )
    config = folder / "nvr.yaml"
    config.write_text(
        "storage:\n"
        "  path: ./data\n"
        f"  segment_seconds: {segment_seconds}\n"
        "  retention: {max_used_percent: 99, min_free_bytes: 0, locked_floor_bytes: 0}\n"
        f"channels:\n{channels}"
        f"web:\n  listen: 127.0.0.1:{free_port()}\n"
    )
    return config


@dataclass
class Nvr:
    """One `nvr run` child process, its web port and its log file."""

    proc: subprocess.Popen
    port: int
    log: Path
    api: ApiClient | None = None

    @classmethod
    def start(cls, config: Path, log: Path) -> "Nvr":
        port = free_port()
        add_web_user(config.parent / "data")  # the health API needs a login
        with open(log, "ab") as out:
            proc = subprocess.Popen([*nvr_command(), "run", "--config", str(config), "--listen", f"127.0.0.1:{port}"],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        return cls(proc, port, log, ApiClient(f"http://127.0.0.1:{port}", *WEB_USER, timeout_s=2))

    def health(self) -> dict | None:
        try:
            return self.api.get_json("/api/health")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def wait_recording(self, *, packets: int = READY_PACKETS) -> dict:
        """Wait until every channel is connected and has pushed `packets` packets; the health then."""
        def recording() -> dict | None:
            if self.proc.poll() is not None:
                pytest.fail(f"nvr run exited with {self.proc.returncode} before recording:\n{self.log_tail()}")
            status = self.health()
            streams = status["streams"] if status else []
            ready = len(streams) == len(CHANNELS) and all(s["connected"] and s["packets"] >= packets for s in streams)
            return status if ready else None
        return wait_for(recording, timeout_s=START_TIMEOUT_S, what="nvr run to record", details=self.log_tail,
                        poll_s=0.05)

    def kill(self) -> float:
        """SIGKILL; returns the wall time of the kill."""
        os.kill(self.proc.pid, signal.SIGKILL)
        killed_s = time.time()
        self.proc.wait(STOP_TIMEOUT_S)
        return killed_s

    def terminate(self) -> tuple[int, float]:
        """SIGTERM and wait; (exit status, wall time of the signal)."""
        self.proc.send_signal(signal.SIGTERM)
        sent_s = time.time()
        return self.proc.wait(STOP_TIMEOUT_S), sent_s

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


# --- what is on disk and in the index ---------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    run_id: int
    channel: int
    stream: str
    seq: int
    start_us: int
    end_us: int
    path: str
    bytes: int
    frames: int
    recovered: bool


def index_rows(root: Path) -> list[Row]:
    """Every live segment row, read with a plain connection (safe while nvr writes)."""
    db = sqlite3.connect(root / "index.sqlite3", timeout=30)
    try:
        rows = db.execute("SELECT run_id, channel, stream, seq, start_us, end_us, path, bytes, frames, recovered"
                          " FROM segments WHERE deleting = 0 ORDER BY channel, stream, start_us").fetchall()
    finally:
        db.close()
    return [Row(*row[:-1], recovered=bool(row[-1])) for row in rows]


def segment_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*.mp4") if "lost+found" not in p.parts}


def assert_nothing_in_lost_and_found(root: Path) -> None:
    found = root / "lost+found"
    assert not found.exists() or not any(found.iterdir()), f"quarantined files: {sorted(os.listdir(found))}"


def assert_in_order_without_overlap(rows: list[Row]) -> None:
    by_stream: dict[tuple[int, str], list[Row]] = {}
    for row in rows:
        by_stream.setdefault((row.channel, row.stream), []).append(row)
    for key, stream_rows in by_stream.items():
        assert stream_rows == sorted(stream_rows, key=lambda r: (r.run_id, r.seq)), f"{key}: time order != write order"
        for before, after in zip(stream_rows, stream_rows[1:]):
            assert before.end_us > before.start_us, before
            assert after.start_us >= before.end_us, f"{key}: {after.path} starts before {before.path} ends"


def decoded_frames(path: Path) -> tuple[int, float, list[str]]:
    """Decode every frame of `path` with PyAV: (frames, seconds the file's samples span, errors logged).

    The span runs from the first sample's time to the last sample's end (its time plus the duration the
    file gives it), so frames the source skipped before a cut (an overloaded machine: the test pattern
    skips rather than bursts, as a capture card drops) lengthen the last sample instead of the gap."""
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture(local=False) as logs, av.open(str(path)) as container:
            frames = sum(1 for _ in container.decode(container.streams.video[0]))
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            samples = [(p.pts, p.pts + (p.duration or 0)) for p in container.demux(stream) if p.pts is not None]
            time_base = stream.time_base  # PyAV 18.1.1 refuses a closed container's stream attributes
    finally:
        av.logging.set_level(previous)
    span = float((max(e for _, e in samples) - min(s for s, _ in samples)) * time_base) if samples else 0.0
    return frames, span, [f"{name}: {message.strip()}" for _level, name, message in logs]


def assert_decodes_completely(root: Path, row: Row) -> None:
    frames, span_s, errors = decoded_frames(root / row.path)
    assert not errors, f"{row.path}: decoder errors {errors}"
    assert frames == row.frames, f"{row.path}: decoded {frames} frames, the index says {row.frames}"
    indexed_s = (row.end_us - row.start_us) / 1e6
    # The index's end is the end of the last sample the file holds: they agree to within a frame.
    assert abs(span_s - indexed_s) <= 1 / FPS + 1e-6, f"{row.path}: {span_s:.3f} s of frames, the index says {indexed_s:.3f} s"


@dataclass
class Checker:
    """Checks a data root after each restart, decoding each segment once, and keeps the measurements."""

    root: Path
    decoded: set[tuple[str, int]] = field(default_factory=set)
    losses_s: list[float] = field(default_factory=list)
    recovered: int = 0

    def check_segments(self, rows: list[Row]) -> None:
        assert_in_order_without_overlap(rows)
        for row in rows:
            if (row.path, row.bytes) not in self.decoded:
                assert_decodes_completely(self.root, row)
                self.decoded.add((row.path, row.bytes))

    def check_after_crash(self, killed_s: float, left_behind: set[str], unindexed: set[str]) -> None:
        """After the restart's recovery pass: every file the killed process left (`left_behind`, of
        which `unindexed` were still being written) is indexed and playable, and little was lost."""
        assert len(unindexed) <= len(CHANNELS), f"more open segments than streams: {sorted(unindexed)}"
        rows = index_rows(self.root)
        self.check_segments(rows)
        indexed = {row.path for row in rows}
        still_there = left_behind & segment_files(self.root)  # recovery deletes files with no playable fragment
        assert still_there <= indexed, f"left unindexed after recovery: {sorted(still_there - indexed)}"
        assert_nothing_in_lost_and_found(self.root)
        killed_us = round(killed_s * 1e6)
        for channel in CHANNELS:
            ends = [row.end_us for row in rows if row.channel == channel and row.start_us < killed_us]
            assert ends, f"channel {channel}: nothing recorded before the kill"
            loss_s = (killed_us - max(ends)) / 1e6
            self.losses_s.append(loss_s)
            assert -0.2 <= loss_s <= MAX_LOSS_S, f"channel {channel}: {loss_s:.3f} s of video lost by the crash"
        self.recovered += sum(row.recovered and row.path in unindexed for row in rows)

    def check_stopped_cleanly(self) -> None:
        """On a stopped data root: every file indexed, and a recovery pass that has nothing to do."""
        index = Index(self.root, create=False)
        try:
            report = recover(self.root, index)
        finally:
            index.close()
        assert not report.repaired, report.summary()
        rows = index_rows(self.root)
        self.check_segments(rows)
        assert segment_files(self.root) == {row.path for row in rows}
        assert_nothing_in_lost_and_found(self.root)


@pytest.fixture
def nvr_processes():
    """Starts `nvr run` processes and kills any a failing test leaves behind."""
    started: list[Nvr] = []

    def start(config: Path, log: Path) -> Nvr:
        nvr = Nvr.start(config, log)
        started.append(nvr)
        return nvr

    yield start
    for nvr in started:
        nvr.close()


# --- tests -------------------------------------------------------------------------------------------

def run_kill_cycles(tmp_path: Path, start, *, cycles: int, seed: int) -> Checker:
    config = write_config(tmp_path)
    checker = Checker(tmp_path / "data")
    log = tmp_path / "nvr.log"
    rng = random.Random(seed)
    began = time.monotonic()
    nvr = start(config, log)
    nvr.wait_recording()
    for _ in range(cycles):
        time.sleep(rng.uniform(0.5, 4.0))
        killed_s = nvr.kill()
        left_behind = segment_files(checker.root)
        unindexed = left_behind - {row.path for row in index_rows(checker.root)}
        nvr = start(config, log)
        nvr.wait_recording()
        checker.check_after_crash(killed_s, left_behind, unindexed)
    status, _ = nvr.terminate()
    assert status == 0, nvr.log_tail()
    checker.check_stopped_cleanly()
    assert "Traceback" not in log.read_text(), nvr.log_tail(80)
    print(f"\n{cycles} SIGKILL cycles in {time.monotonic() - began:.0f} s; {checker.recovered} segments recovered; "
          f"video lost per crash and channel: worst {max(checker.losses_s):.3f} s, "
          f"mean {sum(checker.losses_s) / len(checker.losses_s):.3f} s")
    return checker


def test_sigkill_at_random_moments_loses_at_most_one_fragment_and_leaves_everything_playable(
        tmp_path, nvr_processes, record_property):
    cycles = 20
    checker = run_kill_cycles(tmp_path, nvr_processes, cycles=cycles, seed=20_240 + cycles)
    record_property("worst_loss_s", round(max(checker.losses_s), 3))
    assert checker.recovered >= cycles  # each crash left open segments that recovery had to adopt


def test_sigterm_stops_cleanly_with_the_open_segments_indexed(tmp_path, nvr_processes):
    config = write_config(tmp_path)
    root = tmp_path / "data"
    nvr = nvr_processes(config, tmp_path / "nvr.log")
    nvr.wait_recording(packets=2 * FPS + 10)  # channel 2's first segment (staggered to 2 s) is closed
    status, stopped_s = nvr.terminate()
    assert status == 0, nvr.log_tail()
    assert "Traceback" not in nvr.log.read_text(), nvr.log_tail()
    rows = index_rows(root)
    for channel in CHANNELS:
        last_end_s = max(row.end_us for row in rows if row.channel == channel) / 1e6
        assert stopped_s - last_end_s < 0.5, f"channel {channel}: the open segment was not closed at stop"
    checker = Checker(root)
    checker.check_stopped_cleanly()  # recover() finds nothing to recover, remove or quarantine


def test_second_nvr_run_on_the_same_data_root_is_refused_without_disturbing_the_first(tmp_path, nvr_processes):
    config = write_config(tmp_path)
    root = tmp_path / "data"
    first = nvr_processes(config, tmp_path / "first.log")
    before = first.wait_recording()
    second = subprocess.run([*nvr_command(), "run", "--config", str(config), "--listen", f"127.0.0.1:{free_port()}"],
                            capture_output=True, text=True, timeout=START_TIMEOUT_S, stdin=subprocess.DEVNULL)
    assert second.returncode != 0
    assert "Traceback" not in second.stderr, second.stderr
    assert re.search(r"another nvr process is already recording to .*data", second.stderr), second.stderr
    assert (root / ".nvr.lock").read_text().strip() == str(first.proc.pid)
    after = first.wait_recording(packets=max(s["packets"] for s in before["streams"]) + FPS)
    assert [s["connects"] for s in after["streams"]] == [1] * len(CHANNELS), "the first process's streams restarted"
    assert not after["alarms"], after["alarms"]
    status, _ = first.terminate()
    assert status == 0, first.log_tail()
    Checker(root).check_stopped_cleanly()
