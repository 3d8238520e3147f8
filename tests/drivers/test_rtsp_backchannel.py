"""The ONVIF audio back channel (talk to a camera's speaker) against GStreamer's ONVIF RTSP server: the
handshake with `Require: www.onvif.org/ver20/backchannel`, the camera's `sendonly` G.711 media picked,
and a tone sent as 20-ms RTP packets arriving at the camera's pitch, in µ-law and A-law; plus the
sans-IO pieces (G.711 tables, the RTP packetizer, SDP direction) as tables."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from base import g711
from base.clock import RealClocks
from drivers.rtsp.backchannel import BackChannel, BackChannelError, NoBackChannel, pick_speaker
from drivers.rtsp.rtp_send import G711Packetizer, interleaved
from drivers.rtsp.sdp import parse_sdp
from support.talk import BackChannelCamera, backchannel_available, dominant_frequency, level, tone
from support.waiting import wait_for

ONVIF_SDP = b"""v=0\r
o=- 1 1 IN IP4 127.0.0.1\r
s=cam\r
t=0 0\r
a=control:*\r
m=video 0 RTP/AVP 96\r
a=rtpmap:96 H264/90000\r
a=control:stream=0\r
a=recvonly\r
m=audio 0 RTP/AVP 0\r
a=rtpmap:0 PCMU/8000\r
a=control:stream=1\r
a=recvonly\r
m=audio 0 RTP/AVP 8\r
a=rtpmap:8 PCMA/8000\r
a=control:stream=2\r
a=sendonly\r
"""


def test_sdp_keeps_each_medias_direction_and_the_speaker_is_the_sendonly_g711_one():
    sdp = parse_sdp(ONVIF_SDP, base_url="rtsp://cam/live")
    assert [m.direction for m in sdp.media] == ["recvonly", "recvonly", "sendonly"]
    speaker = pick_speaker(sdp.media)
    assert (speaker.encoding, speaker.payload_type, speaker.control) == ("PCMA", 8, "rtsp://cam/live/stream=2")
    assert pick_speaker(sdp.media[:2]) is None  # the camera's microphone is no speaker


@pytest.mark.parametrize("encoding", g711.ENCODINGS)
def test_g711_encoding_is_decodings_inverse_and_agrees_with_ffmpeg_within_a_step(encoding):
    av = pytest.importorskip("av")
    codes = bytes(range(256))
    decoded = g711.decode(codes, encoding)
    assert g711.decode(g711.encode(decoded, encoding), encoding).tolist() == decoded.tolist()
    ramp = np.arange(-32768, 32768, 7, dtype=np.int32).astype(np.int16)
    context = av.CodecContext.create("pcm_mulaw" if encoding == "PCMU" else "pcm_alaw", "w")
    context.sample_rate, context.layout, context.format = 8000, "mono", "s16"
    frame = av.AudioFrame.from_ndarray(ramp.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = 8000
    theirs = g711.decode(b"".join(bytes(p) for p in context.encode(frame)), encoding).astype(int)
    ours = g711.decode(g711.encode(ramp, encoding), encoding).astype(int)
    assert np.abs(ours - ramp).max() <= np.abs(theirs - ramp).max()  # never further from the sample than FFmpeg
    assert np.mean(ours != theirs) < 0.01  # they differ only where two codes are equally near


def test_the_packetizer_cuts_20ms_packets_with_rising_sequence_and_timestamp_and_a_first_marker():
    p = G711Packetizer(payload_type=0, ssrc=0x01020304)
    seq0, ts0 = p.sequence, p.timestamp
    assert p.push(b"\xff" * 100) == []  # not a whole packet yet
    packets = p.push(b"\xff" * 250)  # 350 bytes: two packets of 160, 30 wait
    assert [len(x) for x in packets] == [172, 172]
    headers = [struct.unpack("!BBHII", x[:12]) for x in packets]
    assert headers[0] == (0x80, 0x80 | 0, seq0, ts0, 0x01020304)  # marker: a talk spurt starts
    assert headers[1] == (0x80, 0, (seq0 + 1) & 0xFFFF, (ts0 + 160) & 0xFFFFFFFF, 0x01020304)
    p.spurt()
    assert p.push(b"\xff" * 130)[0][1] == 0x80
    assert interleaved(2, b"abc") == b"$\x02\x00\x03abc"
    with pytest.raises(ValueError):
        interleaved(256, b"")


def test_a_silence_not_sent_moves_the_next_packets_timestamp_on_and_starts_a_talk_spurt():
    p = G711Packetizer(payload_type=8, ssrc=7)
    first = p.push(b"\xd5" * 160)[0]
    p.skip(1200)  # 150 ms of silence suppressed (RFC 3551 4.1)
    after = p.push(b"\xd5" * 160)[0]
    (_, m0, s0, t0, _), (_, m1, s1, t1, _) = (struct.unpack("!BBHII", x[:12]) for x in (first, after))
    assert (m1 & 0x80, (s1 - s0) & 0xFFFF, (t1 - t0) & 0xFFFFFFFF) == (0x80, 1, 160 + 1200)
    with pytest.raises(ValueError):
        p.skip(-1)


@pytest.fixture
def camera_factory(tmp_path):
    ok, reason = backchannel_available()
    if not ok:
        pytest.skip(reason)
    cameras = []

    def make(codec: str = "pcmu", latency_ms: int | None = None) -> BackChannelCamera:
        cameras.append(BackChannelCamera(tmp_path / f"heard-{codec}.raw", codec=codec, latency_ms=latency_ms))
        return cameras[-1]
    yield make
    for camera in cameras:
        camera.stop()


@pytest.mark.parametrize(("codec", "latency_ms"), [("pcmu", None), ("pcma", None), ("pcmu", 20)])
def test_a_tone_sent_on_the_back_channel_is_heard_by_the_camera_at_its_pitch(camera_factory, codec, latency_ms):
    """Also with the test camera's jitter buffer set low (bench/talk measures the box's share with it)."""
    camera = camera_factory(codec, latency_ms)
    talk = BackChannel(camera.url(), clocks=RealClocks(), timeout_s=10)
    speaker = talk.open()
    assert speaker.encoding == codec.upper()
    sound = tone(700, 1.0)
    try:
        for at in range(0, len(sound), 160):  # as the browser's frames come: a few at a time
            talk.send(sound[at:at + 160])
        wait_for(lambda: len(camera.heard()) >= 7000, what="the camera to hear most of the second of tone",
                 details=lambda: (len(camera.heard()), talk.statistics()))
    finally:
        talk.close()
    heard = camera.heard()
    assert talk.statistics()["packets_sent"] == 50 and talk.error is None
    assert abs(dominant_frequency(heard, 8000) - 700) < 10
    assert level(heard) > 0.15  # the tone's RMS is 0.21 of full scale; G.711 keeps it


def test_a_camera_without_back_channel_is_told_apart_from_one_that_cannot_be_reached(camera_factory):
    from support.rtsp import RtspServer

    with RtspServer() as server:
        server.start({"/plain": "live:160x120@10,audio=pcmu"})
        plain = BackChannel(server.url("/plain"), clocks=RealClocks(), timeout_s=5)
        with pytest.raises(NoBackChannel, match="back channel"):
            plain.open()
    from support.web import free_port

    nobody = BackChannel(f"rtsp://127.0.0.1:{free_port()}/talk", clocks=RealClocks(), timeout_s=2)
    with pytest.raises(BackChannelError, match="cannot connect") as info:
        nobody.open()
    assert not isinstance(info.value, NoBackChannel)


def test_sending_after_the_camera_went_away_raises_and_never_hangs(camera_factory):
    camera = camera_factory()
    talk = BackChannel(camera.url(), clocks=RealClocks(), timeout_s=5)
    talk.open()
    camera.stop()
    wait_for(lambda: talk.error is not None, what="the talk session to notice the camera went away")
    with pytest.raises(BackChannelError, match="closed|broke|stopped"):
        talk.send(tone(500, 0.1))
    talk.close()


def test_a_short_sound_closed_at_once_is_still_heard_whole_session_after_session(camera_factory):
    """`close` lets what was sent play before TEARDOWN: GStreamer holds a session's first ~200 ms, and a
    camera drops what its playout buffer holds when the session ends."""
    camera = camera_factory()
    for number in range(3):
        before = len(camera.heard())
        talk = BackChannel(camera.url(), clocks=RealClocks(), timeout_s=5)
        talk.open()
        talk.send(tone(400 + 100 * number, 0.2))
        talk.close()
        wait_for(lambda: len(camera.heard()) - before >= 1600, what=f"sound {number} heard whole",
                 details=lambda: len(camera.heard()) - before)
        assert abs(dominant_frequency(camera.heard()[before:], 8000) - (400 + 100 * number)) < 20


SENDONLY_PCMA = ("m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=1\r\na=recvonly\r\n"
                 "m=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=control:trackID=3\r\na=sendonly\r\n")


def test_the_back_channel_answers_digest_requires_onvif_on_every_step_and_keeps_the_session_alive():
    """Against the scripted camera (its Digest check written apart from the client's): each request says
    `Require`, only the speaker's track is SETUP, 20-ms A-law packets arrive, and GET_PARAMETER keeps a
    2-second session alive until TEARDOWN."""
    import time

    from drivers.rtsp.backchannel import REQUIRE
    from support.fake_rtsp import FakeCamera, Script

    def idle(send, stopped) -> None:
        while not stopped():
            time.sleep(0.05)

    script = Script(user="admin", password="s3cret", session_timeout_s=2, sdp_media=SENDONLY_PCMA, after_play=idle)
    with FakeCamera(script) as camera:
        talk = BackChannel(camera.url("/cam", userinfo="admin:s3cret"), clocks=RealClocks(), timeout_s=5)
        assert talk.open().encoding == "PCMA"
        talk.send(tone(1000, 0.1))
        wait_for(lambda: camera.methods().count("GET_PARAMETER") >= 2, timeout_s=10,
                 what="two keep-alives within a 2-second session", details=camera.methods)
        talk.close()
        wait_for(lambda: "TEARDOWN" in camera.methods(), what="the TEARDOWN")
        requests, packets = camera.requests, list(camera.rtcp)
    assert [m for m, _, _ in requests][:5] == ["DESCRIBE", "DESCRIBE", "SETUP", "PLAY", "GET_PARAMETER"]
    assert all(h.get("require") == REQUIRE for _, _, h in requests)
    assert all(h.get("authorization", "").startswith("Digest ") for _, _, h in requests[1:])
    assert [uri for m, uri, _ in requests if m == "SETUP"] == [camera.url("/cam") + "/trackID=3"]
    assert len(packets) == 5 and all(len(p) == 12 + 160 and p[1] & 0x7F == 8 for p in packets)
    assert abs(dominant_frequency(g711.decode(b"".join(p[12:] for p in packets), "PCMA"), 8000) - 1000) < 20
