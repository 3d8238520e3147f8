"""The live fMP4 muxer (sans-IO): what the live tap yields becomes init segments and per-frame fragments
that FFmpeg decodes, across a restart of the stream, with malformed packets passed over, and the sound
track for a viewer who asks for it."""
from __future__ import annotations

import io

import av

from base.media import EncodedPacket
from recorder.live import RunStarted
from recorder.fmp4 import read_segment
from recorder.live_mux import LiveFragment, LiveInit, LiveMuxer, codec_string
from support.av_sync import measure
from support.recording import pattern_with_audio
from support.recording import test_pattern_source as pattern_source


def packets(clocks, count: int):
    source = pattern_source(clocks, width=160, height=120)
    info = source.open()
    out = []
    for packet in source.packets():
        out.append(packet)
        if len(out) == count:
            break
    source.close()
    return info, out


def decoded(data: bytes) -> int:
    with av.open(io.BytesIO(data), format="mp4") as container:
        container.streams.video[0].codec_context.options = {"err_detect": "explode"}
        return sum(1 for _ in container.decode(video=0))


def test_codec_string_comes_from_the_avcc_profile_and_level():
    assert codec_string(bytes([1, 0x64, 0x00, 0x1F, 0xFF])) == "avc1.64001f"


def test_a_run_becomes_one_init_then_one_decodable_fragment_per_frame(clocks):
    info, pkts = packets(clocks, 30)
    mux = LiveMuxer()
    out = mux.push(RunStarted(info))
    for p in pkts:
        out += mux.push(p)
    assert isinstance(out[0], LiveInit) and out[0].codec.startswith("avc1.") and (out[0].width, out[0].height) == (160, 120)
    fragments = out[1:]
    assert all(isinstance(f, LiveFragment) for f in fragments) and len(fragments) == 30
    assert fragments[0].keyframe and fragments[0].media_s == 0
    assert [round(f.media_s, 2) for f in fragments[:3]] == [0, 0.04, 0.08]
    assert decoded(out[0].data + b"".join(f.data for f in fragments)) == 30


def test_a_restart_sends_a_new_init_and_time_keeps_going_forward(clocks):
    info, pkts = packets(clocks, 10)
    mux = LiveMuxer()
    first = [o for p in [RunStarted(info), *pkts] for o in mux.push(p)]
    info2, pkts2 = packets(clocks, 10)
    second = [o for p in [RunStarted(info2), *pkts2] for o in mux.push(p)]
    assert isinstance(second[0], LiveInit)
    assert second[1].media_s > first[-1].media_s


def test_audio_and_malformed_packets_are_passed_over(clocks):
    info, pkts = packets(clocks, 3)
    mux = LiveMuxer()
    mux.push(RunStarted(info))
    assert mux.push(EncodedPacket(b"\x21\x10", 0, 0, True, track="audio")) == []
    assert mux.push(EncodedPacket(b"\x00\x00\x00\x09\x65", 0, 0, True)) == []  # a length past the end
    assert mux.bad_packets == 1
    assert isinstance(mux.push(pkts[0])[0], LiveInit)


def test_nothing_is_sent_before_the_first_keyframe(clocks):
    info, pkts = packets(clocks, 5)
    mux = LiveMuxer()
    mux.push(RunStarted(info))
    assert mux.push(pkts[1]) == []  # a P frame: no track yet, nothing a player could decode


def live_with_sound(clocks, seconds: float, *, audio: bool):
    """What a viewer gets of a simulated camera that flashes and beeps on every second."""
    source = pattern_with_audio(clocks)
    info = source.open()
    mux = LiveMuxer(audio=audio)
    out = mux.push(RunStarted(info))
    end_us = clocks.monotonic_us() + round(seconds * 1e6)
    for packet in source.packets():
        out += mux.push(packet)
        if clocks.monotonic_us() >= end_us:
            break
    source.close()
    return out


def test_a_viewer_who_asks_for_sound_gets_the_aac_track_in_sync_with_the_picture(clocks, tmp_path):
    out = live_with_sound(clocks, 4.5, audio=True)
    init = out[0]
    assert isinstance(init, LiveInit) and init.has_audio
    assert init.codec.startswith("avc1.") and init.codec.endswith(",mp4a.40.2")
    path = tmp_path / "live.mp4"
    path.write_bytes(b"".join(o.data for o in out))
    contents = read_segment(path)  # the project's own box reader: an mp4a track with AAC-LC 48 kHz mono
    assert contents.audio is not None and (contents.audio.sample_rate, contents.audio.channels) == (48000, 1)
    assert contents.audio.asc[:2] == b"\x11\x88"  # AAC-LC, 48 kHz, mono (FFmpeg adds an SBR sync extension)
    sound = [o for o in out[1:] if o.audio]
    assert len(contents.audio_samples) == len(sound) > 4 * 46
    starts = [s.decode_time for s in contents.audio_samples]
    assert all(b - a == 1024 for a, b in zip(starts, starts[1:]))  # back to back, no hole
    sync = measure(path)  # decoded by FFmpeg: beeps against flashes
    assert len(sync.offsets_s) >= 3 and sync.worst_s < 0.03, sync


def test_a_viewer_who_does_not_ask_for_sound_gets_the_picture_only_and_is_told_there_is_sound(clocks):
    out = live_with_sound(clocks, 1.5, audio=False)
    init = out[0]
    assert init.has_audio and "mp4a" not in init.codec and b"mp4a" not in init.data
    assert not any(o.audio for o in out[1:])
