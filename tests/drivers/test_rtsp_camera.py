"""Both RTSP clients (FFmpeg's RtspCamera and our NativeRtspCamera) against a real RTSP server (GStreamer, in a
subprocess): packets, errors, stalls, loops."""
from __future__ import annotations

import threading
import time
from fractions import Fraction

import pytest

from base.credentials import mask_credentials
from drivers.rtsp.ffmpeg import CameraError, CameraStalled, RtspCamera, has_picture
from drivers.rtsp.auto import rtsp_camera
from base.clock import RealClocks
from support.rtsp import TcpFreezeProxy

pytestmark = pytest.mark.rtsp

START_CODE = b"\x00\x00\x00\x01"


def camera(url: str, *, timeout_s: float = 5.0, name: str = "cam", client: str = "ffmpeg") -> RtspCamera:
    return rtsp_camera(url, client=client, name=name, clocks=RealClocks(), timeout_s=timeout_s)


@pytest.fixture(params=["ffmpeg", "native"])
def client(request) -> str:
    """Each test below runs with both RTSP clients."""
    return request.param


def read_for(cam: RtspCamera, seconds: float) -> list:
    """Packets `cam` delivers in `seconds` of wall time."""
    out = []
    deadline = time.monotonic() + seconds
    for packet in cam.packets():
        out.append(packet)
        if time.monotonic() >= deadline:
            break
    return out


def assert_increasing(values: list[int]) -> None:
    assert all(b > a for a, b in zip(values, values[1:])), values


def test_live_stream_info_and_packets(rtsp_server, client):
    cam = camera(rtsp_server.url("/cam1"), client=client)
    try:
        info = cam.open()
        packets = read_for(cam, 2.0)
    finally:
        cam.close()
    assert (info.codec, info.width, info.height) == ("h264", 640, 360)
    assert info.time_base == Fraction(1, 90000)
    assert info.fps == pytest.approx(25)
    assert len(packets) >= 40
    assert packets[0].keyframe
    assert all(p.pts == p.dts for p in packets)  # x264 zerolatency: no B-frames
    assert_increasing([p.dts for p in packets])
    assert all(b.arrival_us >= a.arrival_us for a, b in zip(packets, packets[1:]))
    stats = cam.statistics()
    assert stats["packets"] >= len(packets)
    assert stats["last_packet_monotonic_us"] is not None
    if client == "ffmpeg":
        assert info.extradata is not None and info.extradata.startswith(START_CODE)  # Annex B SPS+PPS
        assert all(p.data.startswith(START_CODE) for p in packets)  # Annex B, not length-prefixed
        assert stats["backfilled_timestamps"] == 1  # the timestamp-less first packet is kept, with a backfilled DTS
    else:
        assert info.extradata[0] == 1  # an avcC record, from the SDP's sprop-parameter-sets
        assert all(length_prefixed_nal_types(p.data) for p in packets)  # MP4-ready samples, no start codes
        assert 9 not in {t for p in packets for t in length_prefixed_nal_types(p.data)}  # delimiters left out
        assert packets[0].dts == 0  # media time starts at PLAY (RTP-Info)
        assert stats["video_rtp_lost"] == 0 and stats["video_dropped_frames"] == 0


def length_prefixed_nal_types(data: bytes) -> list[int]:
    """The NAL types of a 4-byte length-prefixed access unit; fails if the lengths do not add up."""
    types, pos = [], 0
    while pos < len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        assert size > 0, data[:16]
        types.append(data[pos + 4] & 0x1F)
        pos += 4 + size
    assert pos == len(data)
    return types


def test_refused_connection_is_camera_error_with_masked_password(make_rtsp_server, client):
    server = make_rtsp_server()
    url = server.url("/cam1", userinfo="admin:s3cret")
    server.stop()
    cam = camera(url, timeout_s=3, client=client)
    started = time.monotonic()
    with pytest.raises(CameraError) as caught:
        cam.open()
    assert time.monotonic() - started < 3
    assert not isinstance(caught.value, CameraStalled)
    for text in (str(caught.value), str(caught.value.__cause__), repr(caught.value.__cause__), repr(cam)):
        assert "s3cret" not in text
    assert "rtsp://admin:***@127.0.0.1" in str(caught.value)


def test_unknown_mount_is_camera_error(rtsp_server, client):
    with pytest.raises(CameraError, match="404"):
        camera(rtsp_server.url("/nope"), timeout_s=3, client=client).open()


def test_hevc_is_refused(rtsp_server, client):
    with pytest.raises(CameraError, match="codec hevc not supported yet"):
        camera(rtsp_server.url("/h265"), client=client).open()


def test_server_going_away_ends_the_stream_and_a_restart_can_be_reopened(make_rtsp_server, client):
    server = make_rtsp_server()
    cam = camera(server.url("/cam1"), timeout_s=3, client=client)
    cam.open()
    assert read_for(cam, 0.3)
    server.restart()  # GStreamer closes the connection: FFmpeg sees a clean EOF, the stream ends
    started = time.monotonic()
    rest = list(cam.packets())
    assert time.monotonic() - started < 3 and len(rest) < 25
    info = cam.open()  # same URL, same port
    assert info.width == 640 and read_for(cam, 0.5)
    cam.close()


def test_frozen_camera_stalls_within_timeout(rtsp_server, client):
    with TcpFreezeProxy("127.0.0.1", rtsp_server.port) as proxy:
        cam = camera(proxy.url("/cam2"), timeout_s=1.5, client=client)
        cam.open()
        packets = cam.packets()
        for _ in range(5):
            next(packets)
        proxy.freeze()
        started = time.monotonic()
        with pytest.raises(CameraStalled, match="no packet for 1.5 s"):
            for _ in packets:
                pass
        waited = time.monotonic() - started
        cam.close()
    assert 1.0 < waited < 1.5 + 1.0
    assert cam.statistics()["stalls"] == 1


def test_camera_that_accepts_but_never_answers_fails_to_open(rtsp_server, client):
    with TcpFreezeProxy("127.0.0.1", rtsp_server.port) as proxy:
        proxy.freeze()
        started = time.monotonic()
        with pytest.raises(CameraError, match="no answer within 1 s"):
            camera(proxy.url("/cam1"), timeout_s=1, client=client).open()
        assert time.monotonic() - started < 2 * 1 + 1


def test_close_from_another_thread_ends_a_blocked_read(rtsp_server, client):
    with TcpFreezeProxy("127.0.0.1", rtsp_server.port) as proxy:
        cam = camera(proxy.url("/cam1"), timeout_s=10, client=client)
        cam.open()
        packets = cam.packets()
        next(packets)
        proxy.freeze()
        closer = threading.Timer(0.5, cam.close)
        started = time.monotonic()
        closer.start()
        list(packets)  # whatever was buffered, then blocks until close()
        waited = time.monotonic() - started
        closer.join()
    assert 0.4 < waited < 1.0


def test_clip_mount_loops_with_rising_timestamps(rtsp_clip_server, client):
    cam = camera(rtsp_clip_server.url("/clip"), client=client)
    try:
        info = cam.open()
        packets = read_for(cam, 6.0)
    finally:
        cam.close()
    assert (info.width, info.height) == (1920, 1080)
    dts = [p.dts for p in packets]
    assert_increasing(dts)
    assert (dts[-1] - dts[0]) * info.time_base > 4  # well past the 3 s clip's end
    # The 3 s clip has keyframes at 0 and 2 s, so 0, 2, 3, 5, 6, 8... s once looped: any 6 s hold 4 of them
    # (3 leaves room for the start; FFmpeg's client also gets a burst of its probing second on top).
    assert sum(p.keyframe for p in packets) >= 3


def test_eight_clients_share_the_clip_mount(rtsp_clip_server, client):
    cams = [camera(rtsp_clip_server.url("/clip"), name=f"c{i}", client=client) for i in range(8)]
    results: dict[int, list | BaseException] = {}

    def run(i: int) -> None:
        try:
            cams[i].open()
            results[i] = read_for(cams[i], 2.5)  # the clip's keyframes are at most 2 s apart
        except BaseException as exc:  # reported below
            results[i] = exc
        finally:
            cams[i].close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(results) == list(range(8))
    for i, packets in results.items():
        assert isinstance(packets, list), f"client {i}: {packets!r}"
        assert len(packets) >= 40 and any(p.keyframe for p in packets)
        assert_increasing([p.dts for p in packets])


def test_masked_urls_and_has_picture():
    assert mask_credentials("rtsp://admin:pa:ss@10.0.0.5:554/s0") == "rtsp://admin:***@10.0.0.5:554/s0"
    assert mask_credentials("rtsp://10.0.0.5/s0") == "rtsp://10.0.0.5/s0"
    assert mask_credentials("rtsp://admin@10.0.0.5/s0") == "rtsp://admin@10.0.0.5/s0"
    assert mask_credentials("rtsp://admin:a/b@c@10.0.0.5/s0") == "rtsp://admin:***@10.0.0.5/s0"
    aud_only = START_CODE + b"\x09\x10"
    idr = START_CODE + b"\x09\x10" + START_CODE + b"\x67\x42" + START_CODE + b"\x65\x88"
    assert not has_picture(aud_only) and has_picture(idr)
    assert has_picture(b"\x00\x00\x00\x02\x09\x10" + b"\x00\x00\x00\x02\x41\x9a")  # length-prefixed
