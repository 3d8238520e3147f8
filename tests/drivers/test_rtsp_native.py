"""The native RTSP client against a scripted fake camera: authentication, redirects, keep-alives, RTCP,
TEARDOWN, audio, loss, timestamp wrap, and what makes `client: auto` fall back to FFmpeg's client."""
from __future__ import annotations

import random
import shutil
import socket
import struct
import threading
import time
from fractions import Fraction

import pytest
from support.native_connection import playing_h264_connection
from support.rtp_bytes import IDR, P_SLICE, PPS, SPS, interleaved, length_prefixed, rtp
from support.waiting import wait_for

from appliance.config.model import ConfigError, parse_config
from drivers.rtsp.ffmpeg import CameraError
from drivers.rtsp.auto import AutoRtspCamera, rtsp_camera
from drivers.rtsp.mailbox import END
from drivers.rtsp.loop import RtspLoop
from drivers.rtsp.native import NativeRtspCamera, NativeUnsupported
from base.clock import RealClocks
from base.media import AudioInfo, EncodedPacket


STALL_S = 60.0  # a timeout_s so long that ending well before it tells "at once" from "at the timeout" on any load


def native(url: str, *, timeout_s: float = 3.0, loop: RtspLoop | None = None) -> NativeRtspCamera:
    return NativeRtspCamera(url, name="cam", clocks=RealClocks(), timeout_s=timeout_s, batch_s=0.05, loop=loop)


def take(cam, count: int, *, track: str = "video") -> list:
    out = []
    for packet in cam.packets():
        if packet.track == track:
            out.append(packet)
            if len(out) == count:
                return out
    raise AssertionError(f"the stream ended after {len(out)} {track} packets")


@pytest.fixture
def fake(fake_camera):
    return fake_camera


def test_digest_authentication_and_the_stream_it_opens(fake):
    camera = fake(user="admin", password="s3cr:t")
    cam = native(camera.url(userinfo="admin:s3cr%3At"))
    try:
        info = cam.open()
        packets = take(cam, 30)
    finally:
        cam.close()
    assert (info.codec, info.width, info.height, info.fps) == ("h264", 160, 120, 25.0)
    assert info.time_base == Fraction(1, 90000)
    assert info.extradata[0] == 1 and SPS in info.extradata and PPS in info.extradata  # avcC from sprop
    assert camera.methods()[:5] == ["OPTIONS", "OPTIONS", "DESCRIBE", "SETUP", "PLAY"]  # one challenge answered
    assert all("s3cr" not in uri for _, uri, _ in camera.requests)
    assert packets[0].data == length_prefixed(SPS, PPS, IDR) and packets[0].keyframe
    assert packets[1].data == length_prefixed(P_SLICE) and not packets[1].keyframe
    # the RTP timestamps wrapped past 2^32 right after the start: media time goes on from 0
    assert [p.dts for p in packets] == [n * 3600 for n in range(30)]


def test_wrong_password_is_a_camera_error_with_the_password_masked(fake):
    camera = fake(user="admin", password="right")
    with pytest.raises(CameraError, match="DESCRIBE answered 401") as caught:
        native(camera.url(userinfo="admin:wrong")).open()
    assert "wrong" not in str(caught.value).replace("wrong user", "")
    assert "rtsp://admin:***@127.0.0.1" in str(caught.value)
    assert camera.methods().count("DESCRIBE") == 1  # refused credentials are not retried in a loop


def test_basic_authentication(fake):
    camera = fake(user="viewer", password="pw", scheme="basic")
    cam = native(camera.url(userinfo="viewer:pw"))
    try:
        cam.open()
        assert len(take(cam, 3)) == 3
    finally:
        cam.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command for a test certificate")
def test_rtsps_with_digest_authentication(fake):
    camera = fake(tls=True, user="admin", password="pw")
    cam = native(camera.url(userinfo="admin:pw"))
    try:
        info = cam.open()
        packets = take(cam, 10)
    finally:
        cam.close()
    assert info.width == 160 and [p.dts for p in packets] == [n * 3600 for n in range(10)]
    assert camera.url().startswith("rtsps://")


def test_a_redirect_is_followed(fake):
    camera = fake(redirect_from="/cam", redirect_to="/real")
    cam = native(camera.url("/cam"))
    try:
        cam.open()
        take(cam, 3)
    finally:
        cam.close()
    assert [(m, uri.split(str(camera.port))[1]) for m, uri, _ in camera.requests[:4]] == [
        ("OPTIONS", "/cam"), ("DESCRIBE", "/cam"), ("OPTIONS", "/real"), ("DESCRIBE", "/real")]
    assert camera.connections == 2


def test_keep_alives_receiver_reports_and_teardown(fake):
    camera = fake(session_timeout_s=2)
    cam = native(camera.url())
    cam.open()
    packets = cam.packets()

    def kept_alive_and_reported() -> bool:
        next(packets)  # keep reading, as a recorder would
        return "GET_PARAMETER" in camera.methods() and any(r[1] == 201 for r in camera.rtcp)
    wait_for(kept_alive_and_reported, what="a keep-alive and a receiver report")
    keepalives = [h for m, _, h in camera.requests if m == "GET_PARAMETER"]
    assert keepalives and all(h["session"] == "F00D" for h in keepalives)  # within the 2 s session timeout
    reports = [r for r in camera.rtcp if r[1] == 201]
    assert reports and struct.unpack_from("!I", reports[0], 8)[0] == 0x1234  # a receiver report about the camera
    assert cam.statistics()["keepalives"] >= 1 and cam.statistics()["rtcp_reports"] >= 1
    cam.close()
    wait_for(lambda: "TEARDOWN" in camera.methods(), what="the TEARDOWN")


def test_audio_packets_come_with_the_video_on_one_clock(fake):
    camera = fake(audio=True)
    cam = native(camera.url())
    try:
        info = cam.open()
        audio = take(cam, 5, track="audio")
    finally:
        cam.close()
    assert info.audio == AudioInfo("aac", 16000, 1, Fraction(1, 16000), b"\x14\x08")
    assert [p.pts for p in audio] == [n * 640 for n in range(5)]  # from RTP-Info's rtptime, like the video
    assert all(p.keyframe and p.data == b"\x21\x10" + bytes(20) for p in audio)


def test_parameter_sets_only_in_band_are_waited_for(fake):
    camera = fake(sprop=False)
    cam = native(camera.url())
    try:
        info = cam.open()
        first = take(cam, 1)[0]
    finally:
        cam.close()
    assert (info.width, info.height) == (160, 120) and SPS in info.extradata
    assert first.keyframe


def test_a_lost_packet_drops_frames_up_to_the_next_keyframe_and_is_counted(fake):
    camera = fake(gap_after=3, fps=100)
    cam = native(camera.url())
    try:
        cam.open()
        packets = take(cam, 10)
    finally:
        cam.close()
    assert [p.dts // 900 for p in packets] == [0, 1, 2, *range(25, 32)]  # frames 3-24 dropped, 25 is a keyframe
    stats = cam.statistics()
    assert stats["video_rtp_lost"] == 1 and stats["video_dropped_frames"] == 22


def test_close_from_another_thread_ends_a_blocked_open():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (backlog) but never answers
        cam = native(f"rtsp://127.0.0.1:{silent.getsockname()[1]}/cam", timeout_s=STALL_S)
        threading.Timer(0.3, cam.close).start()
        started = time.monotonic()
        with pytest.raises(CameraError, match="closed while connecting"):
            cam.open()
        assert time.monotonic() - started < STALL_S / 2  # ended by the close, not by timeout_s


def test_one_loop_thread_reads_every_camera(fake):
    camera = fake()
    loop = RtspLoop(clocks=RealClocks(), name="rtsp-loop-test")
    cams = [native(camera.url(), loop=loop) for _ in range(3)]
    try:
        for cam in cams:
            cam.open()
        for cam in cams:
            take(cam, 5)
        assert loop.statistics()["connections"] == 3
        assert [t.name for t in threading.enumerate()].count("rtsp-loop-test") == 1
    finally:
        for cam in cams:
            cam.close()
    wait_for(lambda: loop.statistics()["connections"] == 0, what="every connection closed")


# what the native client does not do


def test_a_udp_only_camera_is_read_by_ffmpeg_over_udp_under_auto(fake):
    camera = fake(refuse_tcp=True)
    with pytest.raises(NativeUnsupported, match="will not send RTP over TCP"):
        native(camera.url()).open()
    auto = AutoRtspCamera(camera.url(), name="cam", clocks=RealClocks(), timeout_s=5)
    try:
        info = auto.open()
        packets = take(auto, 10)
    finally:
        auto.close()
    assert auto.client == "ffmpeg" and "RTP over TCP" in auto.statistics()["fallback_reason"]
    assert (info.width, info.height) == (160, 120) and len(packets) == 10
    assert "client_port=" in [h for m, _, h in camera.requests if m == "SETUP"][-1]["transport"]


def test_b_frames_end_the_native_stream_and_auto_uses_ffmpeg_next_time(fake):
    camera = fake(b_frames=True)
    auto = AutoRtspCamera(camera.url(), name="cam", clocks=RealClocks(), timeout_s=3)
    auto.open()
    with pytest.raises(NativeUnsupported, match="B-frames"):
        for _ in auto.packets():
            pass
    assert auto.client == "ffmpeg"
    auto.close()


@pytest.mark.rtsp
def test_h265_camera_falls_back_to_ffmpeg_under_auto(rtsp_server):
    auto = rtsp_camera(rtsp_server.url("/h265"), client="auto", name="cam", clocks=RealClocks(), timeout_s=5)
    with pytest.raises(CameraError, match="codec hevc not supported yet"):
        auto.open()  # the recorder takes H.264 only, whichever client reads the camera
    assert auto.client == "ffmpeg"
    with pytest.raises(NativeUnsupported, match="codec hevc"):
        rtsp_camera(rtsp_server.url("/h265"), client="native", name="cam", clocks=RealClocks()).open()


def test_client_config_key_takes_auto_native_or_ffmpeg():
    base = "channels:\n  - id: 1\n    source: {type: rtsp, url: 'rtsp://cam/s'%s}\n"
    assert parse_config(base % "", source="t.yaml").channels[0].source.client == "auto"
    assert parse_config(base % ", client: ffmpeg", source="t.yaml").channels[0].source.client == "ffmpeg"
    with pytest.raises(ConfigError, match=r"channels\[0\]\.source\.client: expected one of auto, native, ffmpeg"):
        parse_config(base % ", client: vlc", source="t.yaml")


def test_a_failure_while_reading_reaches_the_consumer_at_once(fake):
    camera = fake()
    cam = native(camera.url(), timeout_s=STALL_S)
    cam.open()
    packets = cam.packets()
    next(packets)

    def broken(chunk: bytes) -> None:
        raise RuntimeError("a bug")
    cam._connection.feed = broken  # the next bytes the loop reads hit it
    started = time.monotonic()
    with pytest.raises(CameraError, match="reading the stream failed: RuntimeError"):
        for _ in packets:
            pass
    assert time.monotonic() - started < STALL_S / 2  # not a stall until timeout_s
    cam.close()


def test_random_bytes_from_a_camera_never_escape_the_connection():
    rng = random.Random(11)
    pieces = [interleaved(0, rtp(1, 0, IDR, marker=True)), interleaved(1, b"\x80\xc8\x00\x06" + bytes(24)),
              interleaved(2, b"garbage"), b"RTSP/1.0 401 Unauthorized\r\nCSeq: 3\r\n\r\n",
              b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n", b"$\x00\xff\xff", b"RTSP/1.0 200", b"\r\n\r\n"]
    left, right = socket.socketpair()
    with left, right:
        connection = playing_h264_connection(left, mailbox_bound=10_000)
        right.setblocking(False)
        for _ in range(3000):
            chunk = b"".join(rng.choice(pieces) if rng.random() < 0.7 else bytes([rng.getrandbits(8)])
                             for _ in range(rng.randrange(1, 6)))
            connection.feed(chunk)
            try:
                right.recv(65536)  # our answers to the "server's" requests
            except BlockingIOError:
                pass
    assert all(isinstance(item, (EncodedPacket, BaseException)) or item is END for item in connection.mailbox.items)


def fed_connection(timestamps: list[int]) -> tuple[list, dict]:
    """What a connection's mailbox gets for one-packet frames (keyframe first) with these RTP timestamps."""
    left, right = socket.socketpair()
    with left, right:
        connection = playing_h264_connection(left)
        for seq, ts in enumerate(timestamps):
            connection.feed(interleaved(0, rtp(seq, ts, IDR if seq == 0 else P_SLICE, marker=True)))
    return list(connection.mailbox.items), connection.stats


def test_timestamps_going_back_a_little_are_jitter_not_b_frames():
    items, stats = fed_connection([0, 3600, 3000, 7200])  # back 6.7 ms
    assert [p.pts for p in items] == [0, 3600, 3000, 7200] and stats["timestamp_jitter"] == 1


def test_timestamps_going_back_a_frame_or_more_are_b_frames_or_a_restart():
    items, _ = fed_connection([0, 10800, 3600])
    assert [p.pts for p in items[:-1]] == [0, 10800] and "B-frames" in str(items[-1])
    items, _ = fed_connection([900000, 903600, 0])
    assert "jumped back 10.0 s" in str(items[-1]) and not isinstance(items[-1], NativeUnsupported)
