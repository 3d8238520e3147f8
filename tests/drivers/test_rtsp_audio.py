"""Network cameras' audio recorded with their video: AAC remuxed as it is, G.711 transcoded to AAC once,
against the GStreamer test server on loopback (video + AAC, video + PCMU mounts), in real time."""
from __future__ import annotations

import time
from pathlib import Path

import av
import pytest

from drivers.rtsp.ffmpeg import RtspCamera
from base.clock import RealClocks
from recorder.faults import FaultBoard
from recorder.fmp4 import read_segment
from recorder.index import Index
from recorder.segmenter import Segmenter
from recorder.stream_recorder import StreamRecorder
from support.av_sync import make_av_clip, measure
from support.rtsp import RtspServer, rtsp_audio_available

pytestmark = pytest.mark.rtsp

AUDIO_MOUNTS = {
    "/aac": "live:320x240@25,gop=25,bitrate=300,audio=aac",
    "/pcmu": "live:320x240@25,gop=25,bitrate=300,audio=pcmu",
    "/pcma": "live:320x240@25,gop=25,bitrate=300,audio=pcma",
    "/mute": "live:320x240@25,gop=25,bitrate=300",
}


@pytest.fixture(scope="module")
def audio_server(tmp_path_factory):
    """Live mounts (above), and /sync-aac, /sync-pcmu: clips that flash and beep on every second."""
    ok, reason = rtsp_audio_available()
    if not ok:
        pytest.skip(f"RTSP test server unavailable: {reason}")
    folder = tmp_path_factory.mktemp("clips")
    clips = {"/sync-aac": f"avfile:{make_av_clip(folder / 'aac.mp4', seconds=15)}",
             "/sync-pcmu": f"avfile:{make_av_clip(folder / 'pcmu.mov', seconds=15, audio='pcmu')},audio=pcmu"}
    with RtspServer() as server:
        yield server.start({**AUDIO_MOUNTS, **clips})


def record_camera(root: Path, url: str, *, seconds: float, audio: bool = True) -> tuple[Index, StreamRecorder]:
    clocks = RealClocks()
    index = Index(root)
    faults = FaultBoard(clocks=clocks)
    segmenter = Segmenter(channel=1, stream="main", root=root, index=index, clocks=clocks, faults=faults,
                          segment_seconds=2, sync=False)
    recorder = StreamRecorder(source=RtspCamera(url, name="cam", clocks=clocks, audio=audio), segmenter=segmenter,
                              faults=faults, clocks=clocks)
    recorder.start()
    time.sleep(seconds)
    recorder.stop()
    return index, recorder


def test_a_camera_with_aac_tells_its_audio_and_delivers_it_on_the_video_clock(audio_server):
    camera = RtspCamera(audio_server.url("/aac"), name="cam", clocks=RealClocks(), batch_s=0)
    info = camera.open()
    try:
        assert (info.audio.codec, info.audio.sample_rate, info.audio.channels) == ("aac", 48000, 1)
        assert info.audio.extradata[:2] == b"\x11\x88"
        first, last, started = {}, {}, time.monotonic()
        for packet in camera.packets():
            base = info.time_base if packet.track == "video" else info.audio.time_base
            first.setdefault(packet.track, float(packet.pts * base))
            last[packet.track] = float(packet.pts * base)
            if time.monotonic() - started > 3:
                break
    finally:
        camera.close()
    # One timeline (RTP's random per-stream offsets are gone); what arrived last differs by delivery
    # jitter only. Sync itself is measured from decoded sound and picture further down.
    assert abs(first["audio"] - first["video"]) < 0.3 and abs(last["audio"] - last["video"]) < 0.3
    stats = camera.statistics()
    assert stats["audio_packets"] > 100 and stats["packets"] > 60


def test_a_camera_without_audio_or_with_audio_turned_off_gives_no_audio(audio_server):
    for url, audio in ((audio_server.url("/mute"), True), (audio_server.url("/aac"), False)):
        camera = RtspCamera(url, name="cam", clocks=RealClocks(), audio=audio)
        try:
            assert camera.open().audio is None
        finally:
            camera.close()


def _check_segments(root: Path, index: Index, *, rate: int) -> tuple[float, float]:
    """Every segment has both tracks and decodes; returns (video, audio) seconds recorded in all."""
    rows = index.segments()
    assert len(rows) >= 3
    video_s = audio_s = 0.0
    for row in rows:
        contents = read_segment(root / row.path)
        assert contents.samples and contents.audio_samples, row.path
        assert contents.audio.sample_rate == rate
        video_s += contents.duration_ticks / 90_000
        audio_s += sum(s.duration for s in contents.audio_samples) / rate
        with av.open(str(root / row.path)) as container:
            decoded = list(container.decode(video=0, audio=0))
        assert sum(isinstance(f, av.AudioFrame) for f in decoded) == len(contents.audio_samples)
    return video_s, audio_s


def test_aac_from_a_camera_is_recorded_as_it_came(audio_server, tmp_path):
    index, recorder = record_camera(tmp_path, audio_server.url("/aac"), seconds=7)
    video_s, audio_s = _check_segments(tmp_path, index, rate=48000)
    assert abs(video_s - audio_s) < 0.2
    stats = recorder.statistics()
    assert recorder.transcoder is None and stats["audio_frames_recorded"] > 5 * 46
    assert stats["frames_lost"] == 0 and stats["audio_dropped"] < 50  # what came before the first keyframe
    index.close()


@pytest.mark.parametrize("mount", ["/pcmu", "/pcma"])
def test_g711_from_a_camera_is_transcoded_to_aac_once_and_recorded(audio_server, tmp_path, mount):
    index, recorder = record_camera(tmp_path, audio_server.url(mount), seconds=7)
    video_s, audio_s = _check_segments(tmp_path, index, rate=8000)
    assert abs(video_s - audio_s) < 0.3
    stats = recorder.statistics()
    assert stats["audio_transcoded_from"] == ("pcm_mulaw" if mount == "/pcmu" else "pcm_alaw")
    assert stats["audio_packets_in"] > 5 * 50 and stats["audio_transcode_dropped"] == 0
    with av.open(str(tmp_path / index.segments()[1].path)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
    index.close()


@pytest.mark.parametrize("mount", ["/sync-aac", "/sync-pcmu"])
def test_a_cameras_sound_and_picture_stay_in_sync_through_the_recorder(audio_server, tmp_path, mount):
    """The clip's picture flashes while its sound beeps; in every recorded segment, decoded, they
    still coincide (remuxed AAC, and G.711 transcoded to AAC)."""
    index, _ = record_camera(tmp_path, audio_server.url(mount), seconds=7)
    offsets = []
    for row in index.segments():
        offsets += measure(tmp_path / row.path).offsets_s
    assert len(offsets) >= 5
    assert max(abs(o) for o in offsets) < 0.1, offsets
    index.close()
