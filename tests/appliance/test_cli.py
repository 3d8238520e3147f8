"""The `nvr` command as a person at a shell uses it: run, check-config, recordings, export, --version.

Every test runs the real command in a subprocess. Recordings to list and export are made in-process
with the recorder library and simulated clocks (seconds of video in well under a second), so only
the test of `nvr run` itself spends real time.
"""
from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

import av
import pytest

from base.clock import SimulatedClocks
from hal.video.simulated import TestPatternCapture
from recorder.faults import FaultBoard
from recorder.encode import EncodedCapture
from recorder.index import Index, Segment
from recorder.segmenter import Segmenter
from support.nvr_process import nvr_command
from support.waiting import wait_for
from support.web import free_port

FPS = 25
SEGMENT_S = 4
RECORDED_S = 10
START_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z, where SimulatedClocks starts
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
RECORDING_KEYS = {"channel", "stream", "start", "end", "path", "bytes", "locked"}
FFPROBE, FFMPEG = Path("/usr/bin/ffprobe"), Path("/usr/bin/ffmpeg")


# --- helpers -------------------------------------------------------------------------------------

def nvr(*args: str | Path, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*nvr_command(), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def assert_usage_error(result: subprocess.CompletedProcess) -> None:
    """Exit status 2, a message, and no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.strip(), "no message on standard error"
    assert "Traceback" not in result.stderr, result.stderr


def iso(us: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us // 1_000_000)) + f".{us % 1_000_000 // 1000:03d}Z"


def record_test_pattern(root: Path, *, channel: int, seconds: float) -> None:
    """Record `seconds` of a 320x240 test pattern into `root` with simulated clocks (no real waiting)."""
    clocks = SimulatedClocks()
    index = Index(root)
    capture = TestPatternCapture(width=320, height=240, fps=FPS, channel_id=channel, clocks=clocks)
    source = EncodedCapture(capture, name=f"test pattern {channel}", clocks=clocks, bitrate=300_000,
                            keyframe_interval_s=1)
    segmenter = Segmenter(channel=channel, stream="main", root=root, index=index, clocks=clocks,
                          faults=FaultBoard(clocks=clocks), segment_seconds=SEGMENT_S, sync=False)
    try:
        segmenter.start_run(source.open())
        for count, packet in enumerate(source.packets(), start=1):
            segmenter.push(packet)
            if count >= seconds * FPS:
                break
        segmenter.finish()
    finally:
        source.close()
        index.close()


@dataclass(frozen=True)
class Recorded:
    folder: Path  # holds nvr.yaml, whose storage.path is the relative ./data
    config: Path
    root: Path

    def segments(self, channel: int) -> list[Segment]:
        index = Index(self.root, create=False)
        try:
            return index.segments(channel=channel, stream="main")
        finally:
            index.close()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Recorded:
    """Channels 1 and 2, each 10 s from 2026-01-01T00:00:00Z in 4 s segments, under a config file's ./data."""
    folder = tmp_path_factory.mktemp("site")
    config = folder / "nvr.yaml"
    config.write_text(
        f"storage:\n  path: ./data\n  segment_seconds: {SEGMENT_S}\n"
        "channels:\n"
        "  - id: 1\n    source: {type: test-pattern, width: 320, height: 240}\n"
        "  - id: 2\n    source: {type: test-pattern, width: 320, height: 240}\n"
    )
    root = folder / "data"
    root.mkdir()
    for channel in (1, 2):
        record_test_pattern(root, channel=channel, seconds=RECORDED_S)
    return Recorded(folder, config, root)


def packets(path: Path) -> list[tuple[float, bool, bytes]]:
    """(seconds from the file's first packet, keyframe, bytes) of every video packet, in decode order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        found = [(packet.dts, packet.is_keyframe, bytes(packet)) for packet in container.demux(stream) if packet.size]
        time_base = stream.time_base
    return [(float((dts - found[0][0]) * time_base), key, data) for dts, key, data in found]


# --- check-config and bad configs ----------------------------------------------------------------

GOOD_CONFIG = """\
storage:
  path: ./data
channels:
  - id: 1
    source: {type: test-pattern, width: 320, height: 240}
  - id: 2
    source:
      type: rtsp
      url: rtsp://admin:secret@192.0.2.10:554/stream1
"""

BAD_CONFIGS = {
    "bad-type": ("storage:\n  path: ./data\n  segment_seconds: four\n", 3, "storage.segment_seconds",
                 "expected an integer"),
    "unknown-key": ("storage:\n  path: ./data\n  colour: blue\n", 3, "storage.colour", "unknown key"),
    "duplicate-channel-id": (
        "channels:\n  - id: 1\n    source: {type: test-pattern}\n  - id: 1\n    source: {type: test-pattern}\n",
        4, "channels[1].id", "duplicate channel id 1"),
    "bad-url": ("channels:\n  - id: 1\n    source:\n      type: rtsp\n      url: http://cam.local/stream\n",
                5, "channels[0].source.url", "expected an rtsp:// or rtsps:// URL"),
}


def test_check_config_accepts_a_good_file(tmp_path):
    config = tmp_path / "nvr.yaml"
    config.write_text(GOOD_CONFIG)
    result = nvr("check-config", config)
    assert result.returncode == 0, result.stderr
    assert "OK (2 channel(s)" in result.stdout


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_check_config_names_the_key_path_and_line_of_a_mistake(tmp_path, case):
    text, line, key_path, message = BAD_CONFIGS[case]
    config = tmp_path / "nvr.yaml"
    config.write_text(text)
    result = nvr("check-config", config)
    assert_usage_error(result)
    assert f"{config}:{line}: {key_path}: {message}" in result.stderr


def test_check_config_lists_every_mistake_of_a_file_at_once(tmp_path):
    config = tmp_path / "nvr.yaml"
    config.write_text(
        "storage:\n  path: ./data\n  segment_seconds: four\n  colour: blue\n"
        "channels:\n  - id: 1\n    source: {type: test-pattern}\n"
        "  - id: 1\n    source:\n      type: rtsp\n      url: http://cam.local/stream\n"
    )
    result = nvr("check-config", config)
    assert_usage_error(result)
    problems = [line for line in result.stderr.splitlines() if line.startswith(f"{config}:")]
    assert [re.match(rf"{re.escape(str(config))}:(\d+): (\S+):", p).groups() for p in problems] == [
        ("3", "storage.segment_seconds"), ("4", "storage.colour"), ("8", "channels[1].id"),
        ("11", "channels[1].source.url")]
    assert "4 problem(s)" in result.stderr


def test_run_with_a_bad_config_exits_2_and_starts_nothing(tmp_path):
    config = tmp_path / "nvr.yaml"
    config.write_text("storage:\n  path: ./never-created\n  colour: blue\n")
    result = nvr("run", "--config", config, "--listen", f"127.0.0.1:{free_port()}", timeout=20)
    assert_usage_error(result)
    assert f"{config}:3: storage.colour: unknown key" in result.stderr
    assert "nothing was started" in result.stderr
    assert not (tmp_path / "never-created").exists()


def test_run_with_a_malformed_listen_address_exits_2(tmp_path):
    result = nvr("run", "--listen", "127.0.0.1", cwd=tmp_path, timeout=20)
    assert_usage_error(result)
    assert "--listen" in result.stderr and "host:port" in result.stderr
    assert not (tmp_path / "nvr-data").exists()


def test_missing_config_file_exits_2(tmp_path):
    result = nvr("check-config", tmp_path / "absent.yaml")
    assert_usage_error(result)
    assert "does not exist" in result.stderr


# --- version and the embedded default ------------------------------------------------------------

def test_version_prints_the_installed_package_version():
    result = nvr("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"nvr {version('nvr-appliance')}"


def test_run_without_arguments_records_the_embedded_default_into_nvr_data(tmp_path):
    if Path("/etc/nvr/nvr.yaml").exists():
        pytest.skip("/etc/nvr/nvr.yaml exists here, so `nvr run` would use it instead of the embedded default")
    port = free_port()
    log = tmp_path / "nvr.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([*nvr_command(), "run", "--listen", f"127.0.0.1:{port}"], cwd=tmp_path,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        status = wait_for_recording(proc, port, log)
        assert status["data_root"] == str(tmp_path / "nvr-data")
        assert [(s["channel"], s["stream"]) for s in status["streams"]] == [(1, "main")]
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
        assert "<title>nvr</title>" in page and "login-form" in page
        stopped_us = time.time_ns() // 1000
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
        exited_us = time.time_ns() // 1000
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in log.read_text(), log.read_text()
    assert (tmp_path / "nvr-data" / "index.sqlite3").exists()
    result = nvr("recordings", "--data", tmp_path / "nvr-data", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 1, rows  # the default's 60 s segment, closed at the stop
    assert (rows[0]["channel"], rows[0]["stream"]) == (1, "main")
    assert Path(rows[0]["path"]).is_file()
    end_us = round(datetime.fromisoformat(rows[0]["end"].replace("Z", "+00:00")).timestamp() * 1e6)
    # Closed at the stop: it holds what came in up to the signal (the pattern's frames are a 40 ms
    # period apart) and ends before the process did, however long a busy machine took to get there.
    assert stopped_us - 1_000_000 < end_us <= exited_us, "the open segment was not closed at the stop"


def wait_for_recording(proc: subprocess.Popen, port: int, log: Path, timeout_s: float = 60) -> dict:
    """The health JSON once every stream is connected and has written its first fragment. The public
    probe says when streams record; the full health needs a login, so a user is added with `nvr user add`."""
    base = f"http://127.0.0.1:{port}"
    cookie = None

    def recording() -> dict | None:
        nonlocal cookie
        if proc.poll() is not None:
            pytest.fail(f"nvr run exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if cookie is None:
                with urllib.request.urlopen(f"{base}/api/ping", timeout=5) as response:
                    ping = json.load(response)
                if ping["streams"] and ping["recording"] == ping["streams"]:
                    cookie = _log_in(base, folder=log.parent)
                return None
            request = urllib.request.Request(f"{base}/api/health", headers={"Cookie": cookie})
            with urllib.request.urlopen(request, timeout=5) as response:
                status = json.load(response)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None  # not listening yet
        return status if status["streams"] and all(s["connected"] and s["packets"] > 30
                                                   for s in status["streams"]) else None
    return wait_for(recording, timeout_s=timeout_s, what="nvr run to record", details=log.read_text, poll_s=0.1)


def _log_in(base: str, *, folder: Path) -> str:
    """Add a user to the run's data root (`folder`/nvr-data) and log in; returns the Cookie header."""
    add = subprocess.run([*nvr_command(), "user", "add", "tester", "--role", "viewer", "--data", "nvr-data"],
                         input="tester-pass-1\n", capture_output=True, text=True, timeout=60, cwd=folder)
    assert add.returncode == 0, add.stderr
    body = json.dumps({"username": "tester", "password": "tester-pass-1"}).encode()
    request = urllib.request.Request(f"{base}/api/login", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return "; ".join(h.split(";", 1)[0] for h in response.headers.get_all("Set-Cookie"))


# --- recordings ----------------------------------------------------------------------------------

def test_recordings_json_is_one_array_of_objects_with_the_documented_keys(recorded, tmp_path):
    result = nvr("recordings", "--config", recorded.config, "--json", cwd=tmp_path)  # another folder
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert isinstance(rows, list) and len(rows) == 2 * 3
    for row in rows:
        assert set(row) == RECORDING_KEYS
        assert ISO_Z.match(row["start"]) and ISO_Z.match(row["end"]), row
        path = Path(row["path"])
        assert path.is_absolute() and path.is_relative_to(recorded.root), row["path"]
        assert row["bytes"] == path.stat().st_size
        assert row["locked"] is False
    assert [(r["channel"], r["start"], r["end"]) for r in rows[:3]] == [
        (1, iso(START_US), iso(START_US + 4_000_000)),
        (1, iso(START_US + 4_000_000), iso(START_US + 8_000_000)),
        (1, iso(START_US + 8_000_000), iso(START_US + 10_000_000)),
    ]


def test_recordings_channel_option_lists_only_that_channel(recorded, tmp_path):
    result = nvr("recordings", "--config", recorded.config, "--json", "--channel", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 3 and {row["channel"] for row in rows} == {2}


def test_recordings_table_is_the_default_output(recorded):
    result = nvr("recordings", "--data", recorded.root)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["CH", "STREAM", "START"] and len(lines) == 1 + 6


def test_recordings_of_a_folder_with_no_index_exits_2(tmp_path):
    result = nvr("recordings", "--data", tmp_path, "--json")
    assert_usage_error(result)
    assert "nothing has been recorded" in result.stderr


# --- export --------------------------------------------------------------------------------------

def test_export_remuxes_a_range_across_segments_into_one_mp4_without_reencoding(recorded, tmp_path):
    if not (FFPROBE.exists() and FFMPEG.exists()):
        pytest.skip("Debian's ffmpeg package (/usr/bin/ffprobe, /usr/bin/ffmpeg) is not installed")
    start_us, end_us = START_US + 2_500_000, START_US + 9_500_000  # spans all three segments of channel 1
    out = tmp_path / "clip.mp4"
    result = nvr("export", "--config", recorded.config, "--channel", "1", "--start", iso(start_us),
                 "--end", iso(end_us), out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr

    probe = subprocess.run([FFPROBE, "-v", "error", "-show_entries", "stream=codec_type,codec_name",
                            "-show_entries", "format=duration", "-of", "json", out],
                           capture_output=True, text=True, check=True)
    info = json.loads(probe.stdout)
    assert [(s["codec_type"], s["codec_name"]) for s in info["streams"]] == [("video", "h264")]
    decode = subprocess.run([FFMPEG, "-v", "error", "-i", out, "-f", "null", "-"], capture_output=True, text=True)
    assert decode.returncode == 0 and not decode.stderr.strip(), decode.stderr

    # The source frames the clip must hold: from the keyframe at or before the start to the last
    # frame that begins before the end, with wall times from the index.
    source = [(seg.start_us / 1e6 + offset_s, key, data)
              for seg in recorded.segments(1) for offset_s, key, data in packets(recorded.root / seg.path)]
    first = max(i for i, (at_s, key, _) in enumerate(source) if key and at_s <= start_us / 1e6)
    wanted = [frame for frame in source[first:] if frame[0] < end_us / 1e6]
    clip = packets(out)
    assert clip[0][1], "the clip does not start with a keyframe"
    assert clip[0][2] == wanted[0][2], "the first keyframe's bytes differ from the recording's: re-encoded?"
    assert [data for _, _, data in clip] == [data for _, _, data in wanted]
    duration_s = float(info["format"]["duration"])
    assert abs(duration_s - (wanted[-1][0] + 1 / FPS - wanted[0][0])) <= 1 / FPS
    assert (end_us - start_us) / 1e6 <= duration_s <= (end_us - start_us) / 1e6 + 1.0 + 1 / FPS
    assert f"{len(wanted)} frames" in result.stdout


@pytest.mark.parametrize(("start_offset_s", "end_offset_s", "message"), [
    (3, 3, "end must be after its start"),
    (3, 2, "end must be after its start"),
    (-7200, -3600, "has no main recording between the times given"),
], ids=["zero-length", "end-before-start", "nothing-recorded"])
def test_export_of_an_empty_range_exits_2_with_a_clear_message(recorded, tmp_path, start_offset_s, end_offset_s, message):
    out = tmp_path / "clip.mp4"
    result = nvr("export", "--config", recorded.config, "--channel", "1",
                 "--start", iso(START_US + start_offset_s * 1_000_000),
                 "--end", iso(START_US + end_offset_s * 1_000_000), out)
    assert_usage_error(result)
    assert message in result.stderr
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("option", ["--start", "--end"])
def test_export_with_unreadable_time_text_exits_2(recorded, tmp_path, option):
    times = {"--start": iso(START_US), "--end": iso(START_US + 5_000_000), option: "yesterday at noon"}
    result = nvr("export", "--config", recorded.config, "--channel", "1", "--start", times["--start"],
                 "--end", times["--end"], tmp_path / "clip.mp4")
    assert_usage_error(result)
    assert "expected an ISO 8601 time" in result.stderr and "'yesterday at noon'" in result.stderr
    assert not (tmp_path / "clip.mp4").exists()
