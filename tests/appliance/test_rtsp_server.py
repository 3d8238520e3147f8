"""The box as an RTSP source, pulled by clients nobody here wrote: FFmpeg and GStreamer's rtspsrc.

They log in with HTTP Digest as web users, and what they receive is what the recorder writes: the same
H.264 slices, byte for byte, in the same order (remuxed, never re-encoded)."""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

import av
import pytest

from support.box_rtsp import Box, annexb_slices, is_run_of, recorded_slices, start_box
from support.rtsp import rtsp_available
from support.waiting import wait_for

FFMPEG, FFPROBE, GST_LAUNCH = "/usr/bin/ffmpeg", "/usr/bin/ffprobe", shutil.which("gst-launch-1.0")
pytestmark = pytest.mark.skipif(not rtsp_available()[0] or not Path(FFMPEG).exists(),
                                reason=f"needs GStreamer's RTSP server and Debian's ffmpeg: {rtsp_available()[1]}")


@pytest.fixture(scope="module")
def box(tmp_path_factory) -> Box:
    box = start_box(tmp_path_factory.mktemp("box"))
    wait_for(lambda: box.nvr.supervisor.recorders and box.nvr.supervisor.recorders[0].connected,
             what="channel 1 to record")
    yield box
    box.nvr.stop()


def ffmpeg_pull(url: str, out: Path, frames: int = 50) -> subprocess.CompletedProcess:
    return subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-y", "-rtsp_transport", "tcp", "-i", url, "-map", "0:v",
                           "-c", "copy", "-frames:v", str(frames), "-f", "h264", str(out)],
                          capture_output=True, text=True, timeout=60)


def decoded_frames(path: Path) -> int:
    with av.open(str(path), format="h264") as container:
        return sum(1 for _ in container.decode(video=0))


def test_ffmpeg_pulls_a_test_pattern_channel_with_digest_and_gets_the_recorded_slices(box, tmp_path):
    out = tmp_path / "pulled.h264"

    done = ffmpeg_pull(box.url(), out)

    assert done.returncode == 0, done.stderr
    pulled = annexb_slices(out.read_bytes())
    assert len(pulled) == 50 and decoded_frames(out) == 50
    wait_for(lambda: is_run_of(pulled, recorded_slices(box.root)), what="the pulled slices to be on disk, in order",
             details=lambda: (len(pulled), len(recorded_slices(box.root))))


def test_a_wrong_password_is_refused_with_401(box):
    done = subprocess.run([FFPROBE, "-v", "error", "-rtsp_transport", "tcp", box.url(password="wrong-pass-1")],
                          capture_output=True, text=True, timeout=60)

    assert done.returncode != 0 and "401" in done.stderr


def test_no_credentials_and_an_unknown_user_are_refused(box):
    anonymous = f"rtsp://127.0.0.1:{box.rtsp_port}/ch1/main"
    for url in (anonymous, box.url().replace("viewer:", "nobody:")):
        done = subprocess.run([FFPROBE, "-v", "error", "-rtsp_transport", "tcp", url], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode != 0 and "401" in done.stderr, url


def test_a_channel_that_does_not_exist_is_not_found(box):
    done = subprocess.run([FFPROBE, "-v", "error", "-rtsp_transport", "tcp", box.url("/ch9/main")],
                          capture_output=True, text=True, timeout=60)

    assert done.returncode != 0 and "404" in done.stderr


def test_two_viewers_at_once_both_get_decodable_video_over_udp_and_tcp(box, tmp_path):
    udp = subprocess.Popen([FFMPEG, "-nostdin", "-v", "error", "-y", "-rtsp_transport", "udp", "-i", box.url(user="admin"),
                            "-c", "copy", "-frames:v", "50", "-f", "h264", str(tmp_path / "udp.h264")],
                           stderr=subprocess.PIPE, text=True)
    tcp = ffmpeg_pull(box.url(), tmp_path / "tcp.h264")
    _, udp_errors = udp.communicate(timeout=60)

    assert tcp.returncode == 0 and udp.returncode == 0, (tcp.stderr, udp_errors)
    assert decoded_frames(tmp_path / "tcp.h264") == 50 and decoded_frames(tmp_path / "udp.h264") == 50


@pytest.mark.skipif(GST_LAUNCH is None, reason="needs gst-launch-1.0 (gstreamer1.0-tools)")
def test_gstreamer_rtspsrc_pulls_the_recorded_slices_too(box, tmp_path):
    out = tmp_path / "gst.h264"
    gst = subprocess.Popen([GST_LAUNCH, "-q", "-e", "rtspsrc", f"location=rtsp://127.0.0.1:{box.rtsp_port}/ch1/main",
                            "user-id=viewer", "user-pw=viewer-pass-1", "protocols=tcp", "!", "rtph264depay", "!",
                            "h264parse", "!", "video/x-h264,stream-format=byte-stream,alignment=au", "!",
                            "filesink", f"location={out}"], stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: out.exists() and len(annexb_slices(out.read_bytes())) >= 40, what="rtspsrc to receive 40 frames")
    finally:
        gst.send_signal(signal.SIGINT)
        gst.communicate(timeout=30)

    pulled = annexb_slices(out.read_bytes())
    wait_for(lambda: is_run_of(pulled, recorded_slices(box.root)), what="rtspsrc's slices to be on disk, in order")


def test_a_user_added_while_running_can_pull_within_moments(box, tmp_path):
    box.nvr.users.add_user("latecomer", "late-pass-1", "viewer")
    url = box.url().replace("viewer:viewer-pass-1", "latecomer:late-pass-1")

    wait_for(lambda: ffmpeg_pull(url, tmp_path / "late.h264", frames=5).returncode == 0,
             what="the new user to be let in", poll_s=0.5)  # unhurried: ten refusals would lock the address out


def test_a_killed_engine_is_started_again_on_its_port_and_recording_never_stopped(tmp_path):
    box = start_box(tmp_path)
    try:
        service = box.nvr.rtsp_server
        assert ffmpeg_pull(box.url(), tmp_path / "before.h264", frames=5).returncode == 0
        recorder = box.nvr.supervisor.recorders[0]
        packets_before = recorder.statistics()["packets"]

        os.kill(service.statistics()["engine_pid"], signal.SIGKILL)

        wait_for(lambda: service.restarts == 1 and ffmpeg_pull(box.url(), tmp_path / "after.h264", frames=5).returncode == 0,
                 what="the engine to be started again and serve", details=service.statistics)
        assert service.port == box.rtsp_port and recorder.statistics()["packets"] > packets_before
    finally:
        box.nvr.stop()


def test_a_channel_added_on_the_config_page_is_served_and_a_removed_one_is_not(tmp_path):
    box = start_box(tmp_path)
    try:
        config = box.nvr.config
        added = config.model_copy(update={"channels": [*config.channels, config.channels[0].model_copy(update={"id": 2})]})
        box.nvr.restart_channels(added, [2])
        wait_for(lambda: ffmpeg_pull(box.url("/ch2/main"), tmp_path / "ch2.h264", frames=5).returncode == 0,
                 what="channel 2 to be served")

        box.nvr.restart_channels(config, [2])

        gone = subprocess.run([FFPROBE, "-v", "error", "-rtsp_transport", "tcp", box.url("/ch2/main")],
                              capture_output=True, text=True, timeout=60)
        assert gone.returncode != 0 and "404" in gone.stderr
        assert ffmpeg_pull(box.url("/ch1/main"), tmp_path / "ch1.h264", frames=5).returncode == 0
    finally:
        box.nvr.stop()


def test_when_the_port_is_taken_the_appliance_records_without_the_rtsp_server(tmp_path):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        box = start_box(tmp_path, rtsp_port=taken.getsockname()[1])
        try:
            wait_for(lambda: box.nvr.supervisor.recorders and box.nvr.supervisor.recorders[0].statistics()["packets"] > 5,
                     what="channel 1 to record")
            assert box.nvr.rtsp_server is None and box.nvr.status()["rtsp_server"] is None
        finally:
            box.nvr.stop()


def test_an_ip_camera_channel_is_served_main_and_sub_with_the_slices_it_records(tmp_path):
    from support.rtsp import RtspServer
    with RtspServer().start({"/main": "live:640x360@25,gop=25", "/sub": "live:320x180@25,gop=25"}) as camera:
        channel = (f"  - {{id: 1, source: {{type: rtsp, url: '{camera.url('/main')}', "
                   f"sub_url: '{camera.url('/sub')}'}}}}\n")
        box = start_box(tmp_path, channels_yaml=channel)
        try:
            for stream in ("main", "sub"):
                out = tmp_path / f"{stream}.h264"
                wait_for(lambda: ffmpeg_pull(box.url(f"/ch1/{stream}"), out, frames=30).returncode == 0,
                         what=f"ch1/{stream} to be served")
                pulled = annexb_slices(out.read_bytes())
                wait_for(lambda: is_run_of(pulled, recorded_slices(box.root, 1, stream)),
                         what=f"the {stream} slices pulled to be the ones recorded")
        finally:
            box.nvr.stop()


def test_a_viewer_that_stops_reading_slows_neither_recording_nor_the_other_viewers_of_its_stream(tmp_path):
    from support.box_rtsp import StalledViewer
    from support.rtsp import RtspServer, make_clip
    clip = make_clip(tmp_path / "clip.mp4", duration_s=2, size="1280x720", bitrate="8M", gop=25)
    with RtspServer().start({"/cam": f"file:{clip}"}) as camera:
        box = start_box(tmp_path, channels_yaml=f"  - {{id: 1, source: {{type: rtsp, url: '{camera.url('/cam')}'}}}}\n")
        stalled = StalledViewer(box.url())
        try:
            stalled.play()  # and never reads: about 1 MB/s piles up at the server for it
            feeds = box.nvr.rtsp_server.statistics
            wait_for(lambda: feeds()["watched"].get("/ch1/main", {}).get("sent", 0) > 250,
                     what="10 s of stream (10 MB) to be sent towards the stalled viewer", timeout_s=60)
            recorder = box.nvr.supervisor.recorders[0]
            packets = recorder.statistics()["packets"]

            other = ffmpeg_pull(box.url(), tmp_path / "other.h264", frames=50)

            assert other.returncode == 0 and decoded_frames(tmp_path / "other.h264") == 50, other.stderr
            assert recorder.statistics()["packets"] >= packets + 50
        finally:
            stalled.close()
            box.nvr.stop()


def test_an_address_that_guesses_wrong_ten_times_is_refused_even_the_right_password_for_a_while(tmp_path):
    box = start_box(tmp_path)
    try:
        for _ in range(10):
            wrong = subprocess.run([FFPROBE, "-v", "error", "-rtsp_transport", "tcp", box.url(password="guess-guess")],
                                   capture_output=True, text=True, timeout=60)
            assert "401" in wrong.stderr

        right = subprocess.run([FFPROBE, "-v", "error", "-rtsp_transport", "tcp", box.url()],
                               capture_output=True, text=True, timeout=60)

        assert right.returncode != 0 and "401" in right.stderr
    finally:
        box.nvr.stop()


def adts_payloads(data: bytes) -> list[str]:
    """SHA-256 of every raw AAC frame in an ADTS stream (headers taken off)."""
    out, pos = [], 0
    while pos + 7 <= len(data):
        length = ((data[pos + 3] & 3) << 11) | (data[pos + 4] << 3) | (data[pos + 5] >> 5)
        header = 7 if data[pos + 1] & 1 else 9
        out.append(hashlib.sha256(data[pos + header:pos + length]).hexdigest())
        pos += length
    return out


def recorded_aac(root: Path) -> list[str]:
    hashes = []
    for path in sorted(root.glob("ch01/main/*.mp4")):
        try:
            with av.open(str(path)) as container:
                hashes += [hashlib.sha256(bytes(p)).hexdigest() for p in container.demux(audio=0) if p.size]
        except av.error.FFmpegError:
            pass
    return hashes


def test_a_channel_with_sound_is_served_with_its_aac_frames_as_recorded(tmp_path):
    channel = ("  - {id: 1, source: {type: test-pattern, width: 320, height: 240, fps: 25, bitrate: 300000, "
               "keyframe_interval_s: 1}, audio: {enabled: true, device: simulated}}\n")
    box = start_box(tmp_path, channels_yaml=channel)
    try:
        wait_for(lambda: box.nvr.live.stream(1, "main").info and box.nvr.live.stream(1, "main").info.audio,
                 what="the channel's sound to start")
        out = tmp_path / "sound.aac"
        wait_for(lambda: subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-y", "-rtsp_transport", "tcp", "-i",
                                         box.url(), "-map", "0:a", "-c", "copy", "-t", "3", "-f", "adts", str(out)],
                                        capture_output=True, timeout=60).returncode == 0,
                 what="ffmpeg to pull the sound track")
        pulled = adts_payloads(out.read_bytes())

        assert len(pulled) > 50  # 3 s of 48 kHz AAC is about 140 frames
        wait_for(lambda: is_run_of(pulled, recorded_aac(box.root)), what="the AAC frames pulled to be the ones recorded")
    finally:
        box.nvr.stop()
