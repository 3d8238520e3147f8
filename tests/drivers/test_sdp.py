"""SDP parsing as cameras write it: media, rtpmap, fmtp, control URLs; malformed input noted, never a crash."""
from __future__ import annotations

import random

import pytest
from support.rtp_bytes import PPS, SPS

from drivers.rtsp.sdp import SdpError, h264_parameter_sets, hex_config, parse_sdp, resolve_control

CAMERA_SDP = b"""v=0\r
o=- 1109162014219182 1109162014219192 IN IP4 192.168.1.64\r
s=Media Presentation\r
e=NONE\r
c=IN IP4 0.0.0.0\r
t=0 0\r
a=control:*\r
m=video 0 RTP/AVP 96\r
a=rtpmap:96 H264/90000\r
a=fmtp:96 profile-level-id=42c00b; packetization-mode=1; sprop-parameter-sets=Z0LAC9kChH5cBEAAAAMAQAAADIPFCpI=,aMuDyyA=\r
a=control:trackID=1\r
a=framerate:25.000000\r
m=audio 0 RTP/AVP 0\r
a=control:trackID=2\r
m=audio 0 RTP/AVP 97\r
a=rtpmap:97 MPEG4-GENERIC/16000/1\r
a=fmtp:97 streamtype=5;profile-level-id=15;mode=AAC-hbr;config=1408;sizeLength=13;indexLength=3;indexDeltaLength=3\r
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=3\r
"""


def test_a_cameras_description_gives_codecs_parameters_and_absolute_control_urls():
    sdp = parse_sdp(CAMERA_SDP, base_url="rtsp://192.168.1.64:554/Streaming/Channels/101/")
    video, pcmu, aac = sdp.media
    assert sdp.control == "rtsp://192.168.1.64:554/Streaming/Channels/101/"
    assert (video.kind, video.encoding, video.clock_rate, video.payload_type) == ("video", "H264", 90000, 96)
    assert video.control == "rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1"
    assert video.framerate == 25.0 and video.fmtp["packetization-mode"] == "1"
    assert h264_parameter_sets(video.fmtp) == [SPS, PPS]
    assert (pcmu.encoding, pcmu.clock_rate, pcmu.channels) == ("PCMU", 8000, 1)  # static payload type 0
    assert (aac.encoding, aac.clock_rate, aac.fmtp["mode"], aac.fmtp["sizelength"]) == ("MPEG4-GENERIC", 16000,
                                                                                         "AAC-hbr", "13")
    assert hex_config(aac.fmtp) == b"\x14\x08"
    assert aac.control == "rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=3"  # absolute stays
    assert sdp.first("audio") is pcmu and sdp.problems == []


@pytest.mark.parametrize("base, control, expected", [
    ("rtsp://cam/live", "track1", "rtsp://cam/live/track1"),  # no trailing slash, still below it
    ("rtsp://cam/live/", "track1", "rtsp://cam/live/track1"),
    ("rtsp://cam/live", "*", "rtsp://cam/live"),
    ("rtsp://cam/live", None, "rtsp://cam/live"),
    ("rtsp://cam/live", "RTSP://other:8554/x", "RTSP://other:8554/x"),
    ("rtsp://cam/live", "/stream=0", "rtsp://cam/live/stream=0"),
])
def test_control_urls_resolve_as_cameras_mean_them(base, control, expected):
    assert resolve_control(base, control) == expected


def test_session_level_control_is_the_aggregate_url():
    text = "v=0\na=control:rtsp://cam/agg\nm=video 0 RTP/AVP 96\na=rtpmap:96 H264/90000\na=control:v\n"
    sdp = parse_sdp(text, base_url="rtsp://cam/live")
    assert sdp.control == "rtsp://cam/agg" and sdp.media[0].control == "rtsp://cam/live/v"


def test_malformed_lines_and_media_are_noted_and_skipped():
    text = ("v=0\nthis is not sdp\nm=video zero RTP/AVP 96\nm=video 0 RTP/AVP 96\na=rtpmap:96 H264\n"
            "m=video 0 RTP/AVP 98\na=rtpmap:98 H264/90000\n"
            "a=fmtp:98 packetization-mode=1;;sprop-parameter-sets=!!,aMuDyyA=\n"
            "m=audio 0 RTP/AVP 101\n")
    sdp = parse_sdp(text, base_url="rtsp://cam/s")
    assert [m.payload_type for m in sdp.media] == [98]
    assert h264_parameter_sets(sdp.media[0].fmtp) == [PPS]  # the unreadable one left out
    assert len(sdp.problems) == 4, sdp.problems
    assert any("not an SDP line" in p for p in sdp.problems) and any("bad rtpmap" in p for p in sdp.problems)


@pytest.mark.parametrize("text", ["", "v=0\ns=nothing\n", "<html>404</html>", "m=audio 0 RTP/AVP 120\n"])
def test_a_description_without_usable_media_is_an_error(text):
    with pytest.raises(SdpError, match="no usable media"):
        parse_sdp(text, base_url="rtsp://cam/s")


def test_random_bytes_are_rejected_or_parsed_never_a_crash():
    rng = random.Random(7)
    pieces = [b"v=0\n", b"m=video 0 RTP/AVP 96\n", b"a=rtpmap:96 H264/90000\n", b"a=fmtp:96 a=b;c\n",
              b"a=control:x\n", b"m=", b"a=rtpmap:", b"\xff\xfe", b"=\n", b"a=framerate:x\n"]
    for _ in range(2000):
        text = b"".join(rng.choice(pieces) if rng.random() < 0.7 else bytes([rng.getrandbits(8)])
                        for _ in range(rng.randrange(0, 12)))
        try:
            sdp = parse_sdp(text, base_url="rtsp://cam/s")
        except SdpError:
            continue
        assert all(m.clock_rate > 0 and m.control.startswith("rtsp://") for m in sdp.media)
