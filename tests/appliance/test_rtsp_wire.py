"""The pipe to the RTSP engine (framing, split reads, out-of-step input) and the access units it carries."""
from __future__ import annotations

import pytest

from appliance.rtsp_server import wire
from appliance.rtsp_server.mounts import mounts, parse_mount
from appliance.rtsp_server.service import annexb_unit
from appliance.config.model import parse_config
from base.media import EncodedPacket

SPS, PPS = b"\x67\x42\x00\x1e\xab", b"\x68\xce\x38\x80"
IDR, SLICE = b"\x65\x88\x84\x00", b"\x41\x9a\x02"


def test_frames_come_out_whole_however_the_pipe_cuts_them():
    stream = wire.video_frame(3, 90_000, 0, True, b"unit-1") + wire.frame(wire.USERS, b"{}") + \
        wire.video_frame(0, 93_600, 3_600, False, b"unit-2")
    for size in (1, 2, 7, len(stream)):
        reader, frames = wire.FrameReader(), []
        for pos in range(0, len(stream), size):
            frames += reader.feed(stream[pos:pos + size])
        assert [kind for kind, _ in frames] == [wire.VIDEO, wire.USERS, wire.VIDEO]
        assert wire.parse_video(frames[0][1]) == (3, 90_000, 0, True, b"unit-1")
        assert wire.parse_video(frames[2][1]) == (0, 93_600, 3_600, False, b"unit-2")


@pytest.mark.parametrize("garbage", [b"X\x00\x00\x00\x01a", b"V\xff\xff\xff\xff"])
def test_an_unknown_kind_or_an_oversized_length_means_the_pipe_is_out_of_step(garbage):
    with pytest.raises(wire.WireError):
        wire.FrameReader().feed(garbage)


def test_a_keyframe_gets_the_streams_parameter_sets_in_front_and_other_frames_do_not():
    avcc_idr = len(IDR).to_bytes(4, "big") + IDR
    key, sps, pps = annexb_unit(EncodedPacket(avcc_idr, 0, 0, True), 4, SPS, PPS)
    delta, _, _ = annexb_unit(EncodedPacket(b"\x00\x00\x00\x01" + SLICE, 1, 1, False), 0, sps, pps)

    assert key == b"".join(b"\x00\x00\x00\x01" + nal for nal in (SPS, PPS, IDR))
    assert delta == b"\x00\x00\x00\x01" + SLICE


def test_parameter_sets_sent_in_band_replace_the_ones_known():
    new_sps = SPS + b"\x01"
    unit = b"".join(b"\x00\x00\x01" + nal for nal in (new_sps, PPS, IDR))

    data, sps, _ = annexb_unit(EncodedPacket(unit, 0, 0, True), 0, SPS, PPS)

    assert sps == new_sps and data.count(new_sps) == 1 and data.count(PPS) == 1


def test_every_enabled_channel_has_main_and_a_sub_where_the_camera_has_one():
    config = parse_config("channels:\n  - {id: 1, source: {type: test-pattern}}\n"
                          "  - {id: 2, enabled: false, source: {type: test-pattern}}\n"
                          "  - {id: 12, source: {type: rtsp, url: 'rtsp://cam/1', sub_url: 'rtsp://cam/2'}}\n")

    assert [path for path, _, _ in mounts(config)] == ["/ch1/main", "/ch12/main", "/ch12/sub"]
    assert parse_mount("/ch12/sub") == (12, "sub") and parse_mount("/ch0/main") is None


def test_the_rtsp_server_is_off_by_default_and_a_bad_listen_address_says_what_is_expected():
    from appliance.config.model import ConfigError, default_config
    assert not default_config().rtsp_server.enabled and default_config().rtsp_server.listen == "0.0.0.0:8554"
    with pytest.raises(ConfigError, match="rtsp_server.listen: expected host:port"):
        parse_config("rtsp_server: {listen: 'box'}\n")


@pytest.mark.parametrize("yaml_text, message", [
    ("onvif_server: {enabled: true}\n", "onvif_server.enabled: needs rtsp_server.enabled"),
    ("rtsp_server: {enabled: true, listen: '0.0.0.0:8080'}\n", "rtsp_server.listen: port 8080 is taken by web.listen"),
    ("rtsp_server: {enabled: true}\nonvif_server: {enabled: true, listen: '0.0.0.0:8554'}\n",
     "onvif_server.listen: port 8554 is taken by rtsp_server.listen"),
])
def test_inconsistent_box_source_settings_are_refused_with_their_key(yaml_text, message):
    from appliance.config.model import ConfigError
    with pytest.raises(ConfigError, match=message):
        parse_config(yaml_text)
