"""Audio in segments: the AAC track in the fMP4 writer and reader, the segmenter, recovery and export."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from fractions import Fraction

import av
import pytest

from base.clock import SimulatedClocks
from base.media import AudioInfo, EncodedPacket, StreamInfo
from recorder.aac import (AacError, asc_from_esds, audio_specific_config, esds_payload, parse_audio_specific_config,
                          split_adts)
from recorder.export import export
from recorder.fmp4 import (AUDIO_TRACK_ID, AudioTrack, Sample, TrackRun, VideoTrack, init_segment, media_fragment,
                           read_segment)
from recorder.index import Index
from recorder.live import LiveHub
from recorder.recovery import recover
from support.av_sync import measure
from support import recording
from support.recording import make_segmenter, pattern_with_audio, record_source

FFPROBE = "/usr/bin/ffprobe"
AVCC = b"\x01\x64\x00\x1f\xff\xe1\x00\x04abcd\x01\x00\x02ef"


# --- AAC configuration, sans-IO ---

@pytest.mark.parametrize(("rate", "channels", "asc"), [(48000, 1, b"\x11\x88"), (44100, 2, b"\x12\x10"),
                                                       (8000, 1, b"\x15\x88"), (16000, 1, b"\x14\x08")])
def test_audio_specific_config_round_trips(rate, channels, asc):
    assert audio_specific_config(rate, channels) == asc
    config = parse_audio_specific_config(asc)
    assert (config.object_type, config.sample_rate, config.channels) == (2, rate, channels)


def test_esds_carries_the_audio_specific_config_and_reads_back():
    payload = esds_payload(b"\x11\x88", avg_bitrate=64000, track_id=2)
    assert payload == bytes.fromhex("0319" "0002" "00" "0411" "40" "15" "000000" "0000fa00" "0000fa00" "05021188"
                                    "060102")
    assert asc_from_esds(payload) == b"\x11\x88"
    with pytest.raises(AacError):
        asc_from_esds(b"\x04\x02\x00\x00")


def test_adts_frames_lose_their_header_and_tell_their_configuration():
    body = b"\x21\x10\x05"
    header = bytes([0xFF, 0xF1, 0x4C, 0x40, ((7 + 3) >> 3) & 0xFF, (((7 + 3) & 7) << 5) | 0x1F, 0xFC])
    assert split_adts(header + body) == (body, b"\x11\x88")  # AAC-LC 48 kHz mono
    assert split_adts(body) is None
    with pytest.raises(AacError):
        split_adts(header + body + b"\x00")  # the header's length disagrees


# --- writer and reader ---

def test_a_stream_without_audio_is_written_byte_for_byte_as_before():
    track = VideoTrack(640, 360, AVCC)
    samples = [Sample(b"\x00\x00\x00\x03xyz", 3600, True, 0), Sample(b"\x00\x00\x00\x02ab", 3600, False, 3600)]
    # Digests of the video-only writer before the audio track existed.
    assert hashlib.sha256(init_segment(track)).hexdigest() == \
        "b069c45204016ffa8d4f9e48b5c909cbed82684f9d40512f547721b408ea8471"
    assert hashlib.sha256(init_segment(track, None)).hexdigest() == \
        "b069c45204016ffa8d4f9e48b5c909cbed82684f9d40512f547721b408ea8471"
    assert hashlib.sha256(media_fragment(7, 123456, samples)).hexdigest() == \
        "20d371db5acc21f3fcb82d3fd3316b672ad3b6d8d5f6be8507720284bb7a31c5"


def test_a_fragment_with_audio_reads_back_both_tracks(tmp_path):
    audio = AudioTrack(48000, 1, b"\x11\x88", 64000)
    video = [Sample(b"\x00\x00\x00\x01\x65", 3600, True), Sample(b"\x00\x00\x00\x01\x41", 3600, False)]
    sound = TrackRun(AUDIO_TRACK_ID, 1024, [Sample(b"\x21" * 10, 1024, True), Sample(b"\x21" * 12, 1024, True)])
    path = tmp_path / "a.mp4"
    path.write_bytes(init_segment(VideoTrack(64, 48, AVCC), audio) + media_fragment(1, 0, video, sound)
                     + media_fragment(2, 7200, video,
                                      TrackRun(AUDIO_TRACK_ID, 3072, [Sample(b"\x21" * 9, 1024, True)])))
    contents = read_segment(path)
    assert contents.audio == audio
    assert [s.decode_time for s in contents.samples] == [0, 3600, 7200, 10800]
    assert [(s.decode_time, s.size) for s in contents.audio_samples] == [(1024, 10), (2048, 12), (3072, 9)]
    data = path.read_bytes()
    assert data[contents.audio_samples[1].offset:][:12] == b"\x21" * 12
    assert data[contents.samples[1].offset:][:5] == b"\x00\x00\x00\x01\x41"
    assert contents.usable_bytes == contents.file_bytes == len(data)


# --- recording through the segmenter ---

@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """12 s of a simulated analog camera with its microphone, in 4 s segments (shared: do not change it)."""
    root = tmp_path_factory.mktemp("data")
    clocks = SimulatedClocks()
    index = Index(root)
    segmenter = make_segmenter(root, index, clocks)
    record_source(segmenter, pattern_with_audio(clocks), clocks, seconds=12.5)
    yield root, index, segmenter
    index.close()


def test_every_segment_has_audio_and_video_and_the_audio_runs_on_across_cuts(recorded):
    root, index, segmenter = recorded
    rows = index.segments()
    assert len(rows) == 4
    previous_end = None
    for row in rows[:-1]:
        contents = read_segment(root / row.path)
        assert contents.samples and contents.audio_samples and contents.audio.sample_rate == 48000
        first, last = contents.audio_samples[0], contents.audio_samples[-1]
        assert previous_end is None or first.decode_time == previous_end  # no frame lost at a cut
        previous_end = last.decode_time + last.duration
        # The encoder holds about two AAC frames, so the sound of a segment's last moments arrives
        # after its last picture; the segment waits for it, and its sound ends with its picture,
        # less than a frame early (the frame across the cut opens the next segment).
        video_start, video_end = contents.start_ticks * 48000 // 90_000, \
            (contents.start_ticks + contents.duration_ticks) * 48000 // 90_000
        assert video_end - 1024 < previous_end <= video_end
        if row.seq > 0:
            assert video_start - 1024 < first.decode_time <= video_start
    assert segmenter.stats.audio_frames_recorded > 12 * 46


def test_segments_with_audio_play_in_ffmpeg_and_ffprobe(recorded):
    root, index, _ = recorded
    path = root / index.segments()[1].path
    with av.open(str(path)) as container:
        container.streams.video[0].codec_context.options = {"err_detect": "explode"}
        kinds = [frame.__class__.__name__ for frame in container.decode(video=0, audio=0)]
    assert kinds.count("VideoFrame") == 100 and kinds.count("AudioFrame") > 180
    if not os.access(FFPROBE, os.X_OK):
        pytest.skip("Debian's ffprobe is not installed")
    probe = subprocess.run([FFPROBE, "-v", "error", "-show_entries", "stream=codec_name,sample_rate,channels",
                            "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True)
    assert probe.stdout.split() == ["h264", "aac,48000,1"]
    decode = subprocess.run(["/usr/bin/ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                            capture_output=True, text=True)
    assert decode.returncode == 0 and decode.stderr == ""


def test_audio_and_video_line_up_in_the_decoded_recording(recorded):
    root, index, _ = recorded
    for row in index.segments()[:-1]:
        report = measure(root / row.path)
        assert len(report.offsets_s) >= 3
        assert report.worst_s < 0.02, report.offsets_s  # a frame period is 40 ms; this is much better


@pytest.mark.parametrize("drift_ppm", [3000, -3000])  # a poor USB card; crystals are usually within 100
def test_a_microphone_clock_that_drifts_is_corrected_and_measured(tmp_path, clocks, drift_ppm):
    index = Index(tmp_path)
    source = pattern_with_audio(clocks, drift_ppm=drift_ppm, sample_rate=16000)
    segmenter = make_segmenter(tmp_path, index, clocks, segment_seconds=20)
    record_source(segmenter, source, clocks, seconds=20.5)
    stats = source.statistics()
    assert abs(stats["audio_drift_ppm"] - drift_ppm) < 50
    assert abs(stats["audio_offset_ms"]) <= 15
    corrected = stats["audio_samples_dropped"] if drift_ppm > 0 else stats["audio_samples_inserted"]
    assert corrected == pytest.approx(20 * 16000 * abs(drift_ppm) / 1e6, rel=0.15)
    first = index.segments()[0]  # 20 s: uncorrected, 3000 ppm would have moved the sound by 60 ms
    report = measure(tmp_path / first.path)
    assert report.worst_s < 0.03 and len(report.offsets_s) >= 18
    index.close()


def test_audio_delivered_before_the_first_keyframe_is_kept_if_it_belongs_after_it(tmp_path, index, clocks):
    source = recording.test_pattern_source(clocks)  # imported by name, pytest would collect it
    info = source.open()
    segmenter = make_segmenter(tmp_path, index, clocks)
    segmenter.start_run(StreamInfo(info.codec, info.width, info.height, info.time_base, info.extradata, info.fps,
                                   audio=AudioInfo("aac", 48000, 1, Fraction(1, 48000), b"\x11\x88")))
    video = source.packets()
    keyframe = next(video)
    assert keyframe.keyframe
    at_keyframe = int(keyframe.dts * info.time_base * 48000)
    segmenter.push(EncodedPacket(b"\x21\x01", at_keyframe - 4800, 0, True, track="audio"))  # 0.1 s before it
    for n in range(30):  # a camera whose audio runs ahead of its video in delivery order
        segmenter.push(EncodedPacket(b"\x21\x02", at_keyframe + 1024 * n, 0, True, track="audio"))
    segmenter.push(keyframe)
    for _ in range(40):
        segmenter.push(next(video))
    segmenter.finish()
    source.close()
    contents = read_segment(tmp_path / index.segments()[0].path)
    assert [s.decode_time for s in contents.audio_samples] == [1024 * n for n in range(30)]
    assert segmenter.stats.audio_dropped == 1


def test_audio_of_a_stream_declared_without_audio_is_dropped_and_counted(tmp_path, index, clocks):
    segmenter = make_segmenter(tmp_path, index, clocks)
    segmenter.start_run(StreamInfo("h264", 64, 48, Fraction(1, 90000)))
    segmenter.push(EncodedPacket(b"\x21\x00", 0, 0, True, track="audio"))
    assert segmenter.stats.audio_dropped == 1 and segmenter.stats.packets == 0


def test_a_stream_whose_audio_is_not_aac_records_its_video_alone(tmp_path, index, clocks, caplog):
    segmenter = make_segmenter(tmp_path, index, clocks)
    segmenter.start_run(StreamInfo("h264", 64, 48, Fraction(1, 90000),
                                   audio=AudioInfo("pcm_mulaw", 8000, 1, Fraction(1, 8000))))
    assert "recording without audio" in caplog.text


def test_live_viewers_get_audio_packets_after_the_first_video_keyframe():
    tap = LiveHub().stream(1)
    with tap.subscribe() as sub:
        tap.publish(EncodedPacket(b"a", 0, 0, True, track="audio"))  # before any picture: useless to a viewer
        tap.publish(EncodedPacket(b"v", 0, 0, True))
        tap.publish(EncodedPacket(b"a", 1024, 1024, True, track="audio"))
        got = [(item.track, item.pts) for item in iter(lambda: sub.get(0), None)]
    assert got == [("video", 0), ("audio", 1024)]


# --- recovery and export ---

def test_a_segment_cut_short_keeps_its_playable_part_of_both_tracks(recorded, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(recorded[0], root)
    index = Index(root)
    last = index.segments()[1]
    index.delete_rows([last.id])
    path = root / last.path
    full = read_segment(path)
    # A power cut in the middle of the last video frame: its fragment and the segment's audio-only tail
    # (the sound up to the cut, written after the video's last fragment) are lost.
    last_frame = full.samples[-1]
    os.truncate(path, last_frame.offset + last_frame.size // 2)
    report = recover(root, index, sync=False)
    assert report.recovered == [last.path]
    kept = read_segment(path)
    assert len(kept.samples) < len(full.samples) and kept.fragments < full.fragments
    assert kept.audio_samples == full.audio_samples[:len(kept.audio_samples)] and kept.audio_samples
    assert kept.usable_bytes == path.stat().st_size
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0, audio=0))
    assert sum(isinstance(f, av.AudioFrame) for f in frames) == len(kept.audio_samples)
    assert measure(path).worst_s < 0.02
    index.close()


def test_an_export_has_both_tracks_in_sync_across_segments(recorded, tmp_path):
    root, index, _ = recorded
    rows = index.segments()
    out = tmp_path / "clip.mp4"
    result = export(index, root, channel=1, start_us=rows[0].start_us + 1_500_000, end_us=rows[-1].end_us, out=out)
    assert result.audio_frames > 10 * 46
    with av.open(str(out)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
    report = measure(out)
    assert len(report.offsets_s) >= 10
    assert max(abs(o) for o in report.offsets_s[1:]) < 0.02  # the first beep is half cut by the clip start
