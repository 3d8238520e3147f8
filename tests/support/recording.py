"""Recording without real time: a test pattern encoded and segmented under SimulatedClocks."""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import av

from base.clock import SimulatedClocks
from base.media import EncodedPacket
from hal.video.simulated import TestPatternCapture
from recorder.faults import FaultBoard
from recorder.encode import EncodedCapture
from recorder.index import Index
from recorder.segmenter import Segmenter


def make_segmenter(root: Path, index: Index, clocks: SimulatedClocks, *, channel: int = 1, stream: str = "main",
                   segment_seconds: float = 4, stagger_fraction: float = 0.0, faults: FaultBoard | None = None,
                   free_space=None) -> Segmenter:
    return Segmenter(channel=channel, stream=stream, root=root, index=index, clocks=clocks,
                     faults=faults or FaultBoard(clocks=clocks), segment_seconds=segment_seconds,
                     stagger_fraction=stagger_fraction, sync=False, free_space=free_space)


def test_pattern_source(clocks: SimulatedClocks, *, channel: int = 1, width: int = 160, height: int = 120,
                        fps: float = 25, keyframe_interval_s: float = 1.0) -> EncodedCapture:
    capture = TestPatternCapture(width=width, height=height, fps=fps, channel_id=channel, clocks=clocks)
    return EncodedCapture(capture, name=f"pattern {channel}", clocks=clocks, bitrate=200_000,
                          keyframe_interval_s=keyframe_interval_s)


def record(segmenter: Segmenter, clocks: SimulatedClocks, *, seconds: float, channel: int = 1,
           keyframe_interval_s: float = 1.0,
           on_packet: Callable[[int, EncodedPacket], None] | None = None) -> int:
    """Record `seconds` of simulated time through `segmenter` as one run; returns packets pushed."""
    source = test_pattern_source(clocks, channel=channel, keyframe_interval_s=keyframe_interval_s)
    segmenter.start_run(source.open())
    end_us = clocks.monotonic_us() + round(seconds * 1e6)
    count = 0
    for packet in source.packets():
        if on_packet is not None:
            on_packet(count, packet)
        segmenter.push(packet)
        count += 1
        if clocks.monotonic_us() >= end_us:
            break
    segmenter.finish()
    source.close()
    return count


def decoded_frames(path: Path) -> int:
    """Decode every frame of a file with FFmpeg (PyAV); raises on a decode error."""
    with av.open(str(path)) as container:
        container.streams.video[0].codec_context.options = {"err_detect": "explode"}
        return sum(1 for _ in container.decode(video=0))


def pattern_with_audio(clocks: SimulatedClocks, *, channel: int = 1, width: int = 160, height: int = 120,
                       fps: float = 25, keyframe_interval_s: float = 1.0, drift_ppm: float = 0.0,
                       sample_rate: int = 48000) -> EncodedCapture:
    """A simulated analog camera whose picture flashes and whose microphone beeps on every second."""
    from hal.audio import SimulatedAudioCapture
    from recorder.audio_encode import CapturedAudio

    capture = TestPatternCapture(width=width, height=height, fps=fps, channel_id=channel, clocks=clocks,
                                 sync_flash=True)
    microphone = SimulatedAudioCapture(sample_rate=sample_rate, clocks=clocks, drift_ppm=drift_ppm)
    return EncodedCapture(capture, name=f"pattern {channel}", clocks=clocks, bitrate=200_000,
                          keyframe_interval_s=keyframe_interval_s,
                          audio=CapturedAudio(microphone, bitrate=64_000, clocks=clocks))


def record_source(segmenter: Segmenter, source, clocks: SimulatedClocks, *, seconds: float) -> int:
    """Record `seconds` of simulated time of `source` as one run; returns packets pushed."""
    segmenter.start_run(source.open())
    end_us = clocks.monotonic_us() + round(seconds * 1e6)
    count = 0
    for packet in source.packets():
        segmenter.push(packet)
        count += 1
        if clocks.monotonic_us() >= end_us:
            break
    segmenter.finish()
    source.close()
    return count


def video_packets(path: Path) -> list[tuple[float, str]]:
    """(pts in seconds, sha256 of the sample) of every video frame of a file, as FFmpeg demuxes it."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(float(p.pts * stream.time_base), hashlib.sha256(bytes(p)).hexdigest())
                for p in container.demux(stream) if p.size]


def assert_each_moment_once(frames: list[tuple[float, str]], what: str, *, fps: float) -> None:
    """Strictly increasing times, no gap over one frame interval, no frame twice (by its bytes)."""
    times = [t for t, _ in frames]
    steps = [b - a for a, b in zip(times, times[1:])]
    assert all(step > 0 for step in steps), f"{what}: timestamps go back or repeat"
    assert max(steps) <= 1 / fps + 0.002, f"{what}: a gap of {max(steps):.3f} s"  # no more than one frame interval
    assert len({digest for _, digest in frames}) == len(frames), f"{what}: a frame is there twice"
