"""Motion detection on synthetic pictures: zones, masks, sensitivity, start/hold logic, raw frames and H.264 packets."""
from __future__ import annotations

import itertools
import threading
import time
from fractions import Fraction

import av
import numpy as np
import pytest

from base.clock import RealClocks
from base.media import EncodedPacket, RawFrame, StreamInfo
from recorder.live import LiveStream
from recorder.motion import MotionDetector, MotionWatcher, area_mask, sensitivity_thresholds
from support.waiting import DEFAULT_TIMEOUT_S, wait_for

W, H = 352, 288
LEFT_HALF = [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]
BOTTOM_STRIP = [[0, 0.85], [1, 0.85], [1, 1], [0, 1]]


def picture(square_at: tuple[float, float] | None = None, *, side: int = 40, noise_seed: int | None = None) -> np.ndarray:
    """A grey 352x288 picture with a textured background and optionally a bright square centred at (x, y)."""
    grey = np.full((H, W), 90, np.uint8)
    grey[::16, :] = 60  # some structure, so the background is not flat
    if noise_seed is not None:  # sensor noise: +-3 levels
        grey = np.clip(grey.astype(np.int16) + np.random.default_rng(noise_seed).integers(-3, 4, grey.shape), 0, 255
                       ).astype(np.uint8)
    if square_at is not None:
        x, y = round(square_at[0] * W), round(square_at[1] * H)
        grey[max(0, y - side // 2):y + side // 2, max(0, x - side // 2):x + side // 2] = 230
    return grey


def scores(detector: MotionDetector, pictures) -> list[float]:
    return [detector.score(p) for p in pictures]


def test_a_still_noisy_picture_scores_no_motion_and_a_square_in_the_zone_does():
    detector = MotionDetector(zones=[LEFT_HALF], sensitivity=50)
    quiet = scores(detector, [picture(noise_seed=n) for n in range(10)])
    assert max(quiet) == 0.0
    assert detector.is_motion(detector.score(picture((0.25, 0.5))))


def test_motion_outside_the_zones_or_under_a_mask_is_ignored():
    detector = MotionDetector(zones=[LEFT_HALF], masks=[BOTTOM_STRIP], sensitivity=100)
    scores(detector, [picture()] * 3)
    assert detector.score(picture((0.75, 0.5))) == 0.0  # right half: outside the zone
    scores(detector, [picture()] * 10)
    assert detector.score(picture((0.25, 0.93), side=30)) == 0.0  # in the zone but under the mask (a clock overlay)


def test_sensitivity_sets_how_small_a_change_counts():
    assert sensitivity_thresholds(50) == (30, pytest.approx(0.0058, rel=0.02))
    small = (0.25, 0.5)
    keen, dull = MotionDetector(sensitivity=95), MotionDetector(sensitivity=5)
    for detector in (keen, dull):
        scores(detector, [picture()] * 3)
    assert keen.is_motion(keen.score(picture(small, side=12)))
    assert not dull.is_motion(dull.score(picture(small, side=12)))


def test_zone_masks_are_drawn_from_normalized_polygons():
    mask = area_mask(100, 50, [LEFT_HALF], [BOTTOM_STRIP])
    assert mask[10, 10] == 255 and mask[10, 90] == 0 and mask[48, 10] == 0


class Recorder:
    def __init__(self):
        self.changes, self.event = [], threading.Event()

    def __call__(self, channel, active, at_us, score):
        self.changes.append((channel, active))
        self.event.set()


def test_motion_starts_after_two_frames_over_the_threshold_and_ends_after_hold_s(clocks):
    got = Recorder()
    watcher = MotionWatcher(channel=3, live=LiveStream(3, "main"), detector=MotionDetector(), clocks=clocks,
                            on_motion=got, fps=5, hold_s=2.0)
    for _ in range(3):
        watcher.analyse(picture())
        clocks.advance(0.2)
    watcher.analyse(picture((0.3, 0.3)))
    assert got.changes == []  # one frame could be noise
    clocks.advance(0.2)
    watcher.analyse(picture((0.5, 0.5)))
    assert got.changes == [(3, True)]
    last_motion_s, ended_s = None, None
    for step in range(1, 40):  # the square stays: the background takes it in, and motion fades
        clocks.advance(0.2)
        score = watcher.analyse(picture((0.5, 0.5)))
        if watcher.detector.is_motion(score):
            last_motion_s = step * 0.2
        if len(got.changes) == 2 and ended_s is None:
            ended_s = step * 0.2
    assert got.changes == [(3, True), (3, False)]
    assert ended_s - (last_motion_s or 0) == pytest.approx(2.0, abs=0.01)


def yuv_frame(grey: np.ndarray, sequence: int) -> RawFrame:
    data = np.empty((H * 3 // 2, W), np.uint8)
    data[:H], data[H:] = grey, 128
    return RawFrame(data, "yuv420p", W, H, time.monotonic_ns() // 1000, sequence)


def test_the_watcher_reads_raw_analog_frames_from_the_live_tap():
    live, got = LiveStream(1, "main"), Recorder()
    watcher = MotionWatcher(channel=1, live=live, detector=MotionDetector(zones=[LEFT_HALF]), clocks=RealClocks(),
                            on_motion=got, fps=20, hold_s=0.2, source="frames")
    watcher.start()
    frames = itertools.count()

    def publish_until_reported() -> bool:
        # A camera goes on sending pictures: the scene keeps moving until the watcher, sampling the
        # newest picture at its own pace (slower on a busy machine), has seen two that differ.
        sequence = next(frames)
        moving = (0.1 + 0.005 * ((sequence - 20) % 60), 0.5) if sequence >= 20 else None
        live.publish_frame(yuv_frame(picture(moving), sequence))
        return got.event.is_set()
    try:
        wait_for(publish_until_reported, what="motion to be reported", poll_s=0.01)
    finally:
        watcher.stop()
    assert got.changes[0] == (1, True) and watcher.statistics()["analysed"] >= 3


def test_the_watcher_decodes_an_h264_sub_stream_from_the_live_tap():
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = W, H, "yuv420p"
    encoder.time_base, encoder.framerate = Fraction(1, 25), Fraction(25)
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency"}
    live, got = LiveStream(2, "sub"), Recorder()
    watcher = MotionWatcher(channel=2, live=live, detector=MotionDetector(), clocks=RealClocks(),
                            on_motion=got, fps=25, hold_s=0.2, source="packets")
    watcher.start()
    try:
        # Subscribed before the one keyframe is sent (a later subscription starts at the next keyframe).
        wait_for(lambda: live.subscribers == 1, what="the watcher to subscribe")
        live.publish_run(StreamInfo("h264", W, H, Fraction(1, 25)))
        for n in range(75):
            moving = (0.1 + 0.01 * n, 0.5) if n >= 25 else None
            frame = av.VideoFrame.from_ndarray(yuv_frame(picture(moving), n).data, format="yuv420p")
            frame.pts = n
            for packet in encoder.encode(frame):
                live.publish(EncodedPacket(bytes(packet), packet.pts, packet.dts, packet.is_keyframe))
            time.sleep(0.01)  # a camera's pace; the subscription queues what the watcher has not read yet
        assert got.event.wait(DEFAULT_TIMEOUT_S)
    finally:
        watcher.stop()
    stats = watcher.statistics()
    assert got.changes[0] == (2, True) and stats["decoded"] > 0 and stats["decode_errors"] == 0
