"""Tests for the simulated analog camera (hal.video.simulated) and the built-in bitmap font (base.font)."""
from __future__ import annotations

import itertools
import threading
import time
from fractions import Fraction

import av
import numpy as np
import pytest

from base import font
from base.clock import RealClocks, SimulatedClocks
from base.media import CaptureFormat
from hal.video import CaptureError
from hal.video.simulated import PATTERNS, TestPatternCapture
from support.waiting import DEFAULT_TIMEOUT_S, wait_for

START_UTC_US = 1_767_225_600_000_000  # 2026-01-01 00:00:00 UTC
START_MONO_US = 10**9


def make_capture(*, width=352, height=288, fps=25.0, pattern="auto", channel_id=1, label="",
                 clocks=None):
    clocks = clocks or SimulatedClocks(utc_start_us=START_UTC_US, monotonic_start_us=START_MONO_US)
    return TestPatternCapture(width=width, height=height, fps=fps, pattern=pattern,
                              channel_id=channel_id, label=label, clocks=clocks)


def luma(data: np.ndarray, width: int, height: int) -> np.ndarray:
    return data.reshape(-1)[:width * height].reshape(height, width)


def pattern_area(data: np.ndarray, width: int, height: int) -> np.ndarray:
    """The middle of the picture, clear of the burnt-in text along the top and bottom edges."""
    return luma(data, width, height)[height // 8: height * 7 // 8]


def trimmed(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def find_text_scale(region: np.ndarray, text: str) -> int | None:
    """The font scale at which the bright pixels of `region` spell exactly `text`, or None."""
    ink = trimmed(region >= 200)
    for scale in range(1, 12):
        if np.array_equal(ink, trimmed(font.text_mask(text, scale))):
            return scale
    return None


# --- format -----------------------------------------------------------------------------------

@pytest.mark.parametrize("width,height", [(352, 288), (720, 576), (1920, 1080), (640, 360), (322, 242),
                                          (176, 144)])
def test_frames_are_yuv420p_arrays_pyav_accepts(width, height):
    capture = make_capture(width=width, height=height)
    assert capture.open() == CaptureFormat(width, height, "yuv420p", 25.0)
    frame = next(capture.frames())
    assert (frame.pixel_format, frame.width, frame.height) == ("yuv420p", width, height)
    assert frame.data.shape == (height * 3 // 2, width) and frame.data.dtype == np.uint8
    video_frame = av.VideoFrame.from_ndarray(frame.data, format="yuv420p")
    assert (video_frame.width, video_frame.height) == (width, height)
    assert np.array_equal(video_frame.to_ndarray(), frame.data)


def test_odd_or_tiny_sizes_and_bad_fps_are_refused():
    for width, height in [(351, 288), (352, 287), (8, 8)]:
        with pytest.raises(ValueError, match="must be an even integer"):
            make_capture(width=width, height=height)
    with pytest.raises(ValueError, match="fps"):
        make_capture(fps=0)


def test_frames_encode_with_libx264_and_decode_back_close_to_the_source():
    width, height, fps = 352, 288, 25
    capture = make_capture(width=width, height=height, fps=fps, pattern="bars")
    capture.open()
    sources = list(itertools.islice(capture.frames(), 10))
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base, encoder.framerate = Fraction(1, fps), Fraction(fps)
    encoder.options = {"preset": "ultrafast"}
    packets = []
    for raw in sources:
        frame = av.VideoFrame.from_ndarray(raw.data, format="yuv420p")
        frame.pts = raw.sequence
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    assert len(packets) == 10 and packets[0].is_keyframe
    decoder = av.CodecContext.create("h264", "r")
    decoded = [f for p in packets for f in decoder.decode(p)] + decoder.decode(None)
    # A mixed-up plane layout would wreck the chroma; a correct one survives encoding nearly intact.
    error = np.abs(decoded[0].to_ndarray().astype(int) - sources[0].data.astype(int)).mean()
    assert error < 4


# --- patterns ---------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern", PATTERNS)
def test_each_pattern_renders_a_picture_with_structure_and_colour(pattern):
    capture = make_capture(pattern=pattern)
    capture.open()
    data = next(capture.frames()).data
    assert capture.pattern == pattern
    assert pattern_area(data, 352, 288).std() > 10  # not a flat field
    chroma = data.reshape(-1)[352 * 288:]
    assert np.abs(chroma.astype(int) - 128).max() > 20  # not greyscale


def test_bars_come_out_as_the_standard_colours_through_pyav():
    # Proves the plane layout and colour conversion agree with what FFmpeg reads, not just the shape.
    data = make_capture(width=720, height=576, pattern="bars").render(0, START_UTC_US)
    rgb = av.VideoFrame.from_ndarray(data, format="yuv420p").to_ndarray(format="rgb24")
    expected = [(191, 191, 191), (191, 191, 0), (0, 191, 191), (0, 191, 0), (191, 0, 191), (191, 0, 0),
                (0, 0, 191)]
    for bar, colour in enumerate(expected):
        sample = rgb[576 // 3, (2 * bar + 1) * 720 // 14].astype(int)
        assert np.abs(sample - colour).max() <= 12, f"bar {bar}: {sample} != {colour}"


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("width,height,fps", [(352, 288, 25.0), (1280, 720, 60.0), (176, 144, 5.0)])
def test_every_frame_moves(pattern, width, height, fps):
    capture = make_capture(width=width, height=height, fps=fps, pattern=pattern)
    previous = pattern_area(capture.render(0, START_UTC_US), width, height)
    # Enough frames to take the ball and the zone plate through several bounces.
    for sequence in range(1, 400):
        current = pattern_area(capture.render(sequence, START_UTC_US), width, height)
        assert not np.array_equal(current, previous), f"frame {sequence} did not move"
        previous = current


def test_paced_frames_move_too():
    capture = make_capture(pattern="checker")
    capture.open()
    first, second = itertools.islice(capture.frames(), 2)
    assert not np.array_equal(pattern_area(first.data, 352, 288), pattern_area(second.data, 352, 288))


def test_auto_pattern_gives_neighbouring_channels_different_pictures():
    patterns = [make_capture(channel_id=channel).pattern for channel in range(1, 11)]
    assert patterns[:5] == ["bars", "ball", "checker", "gradient", "zoneplate"]
    assert patterns[5:] == patterns[:5]
    one, two = (make_capture(channel_id=c).render(0, START_UTC_US) for c in (1, 2))
    assert abs(float(one.mean()) - float(two.mean())) > 10
    assert np.abs(one.astype(int) - two.astype(int)).mean() > 40


def test_unknown_pattern_is_refused_with_the_allowed_names():
    with pytest.raises(ValueError) as excinfo:
        make_capture(pattern="plasma")
    message = str(excinfo.value)
    assert "'plasma'" in message
    for name in ("auto",) + PATTERNS:
        assert name in message


# --- burnt-in text ----------------------------------------------------------------------------

@pytest.mark.parametrize("pattern", PATTERNS)
def test_text_boxes_hold_bright_text_on_dark_ground_over_any_pattern(pattern):
    data = make_capture(pattern=pattern, label="Gate").render(7, START_UTC_US)
    y = luma(data, 352, 288)
    for corner in (y[:24, :100], y[-24:, :100], y[:24, -60:]):  # label, clock, counter
        assert (corner >= 230).any() and (corner <= 20).any()


@pytest.mark.parametrize("width,height", [(352, 288), (1920, 1080)])
def test_clock_is_burnt_in_bottom_left_as_utc_text_scaled_to_the_height(width, height):
    # Over the ball the only bright pixels are text, so the ink must spell the clock exactly.
    data = make_capture(width=width, height=height, pattern="ball").render(3, START_UTC_US + 59_999_999)
    bottom_left = luma(data, width, height)[-height // 8:, :]
    scale = find_text_scale(bottom_left, "2026-01-01 00:00:59 UTC")
    assert scale is not None
    assert font.GLYPH_HEIGHT * scale >= height / 40  # readable: at least ~2.5% of the picture height


def test_label_and_frame_counter_are_burnt_in_at_the_top():
    data = make_capture(pattern="ball", label="Back yard").render(1234, START_UTC_US)
    top = luma(data, 352, 288)[:288 // 8]
    assert find_text_scale(top[:, :200], "BACK YARD") is not None
    assert find_text_scale(top[:, 200:], "#1234") is not None


def test_clock_text_changes_when_the_clock_passes_a_second_and_nothing_else_does():
    capture = make_capture(pattern="zoneplate")
    base = capture.render(5, START_UTC_US)
    same_second = capture.render(5, START_UTC_US + 999_999)
    next_second = capture.render(5, START_UTC_US + 1_000_000)
    assert np.array_equal(base, same_second)
    changed_rows = np.flatnonzero((luma(base, 352, 288) != luma(next_second, 352, 288)).any(axis=1))
    assert changed_rows.size and changed_rows.min() >= 288 * 7 // 8


def test_paced_frames_carry_the_wall_clock_of_their_due_time():
    capture = make_capture(fps=25)
    capture.open()
    frames = list(itertools.islice(capture.frames(), 26))
    assert np.array_equal(frames[25].data, capture.render(25, START_UTC_US + 1_000_000))


def test_missing_glyphs_draw_a_box_instead_of_crashing():
    data = make_capture(pattern="ball", label="Caf\u00e9 \u2603~").render(0, START_UTC_US)
    top_left = luma(data, 352, 288)[:288 // 8, :200]
    assert find_text_scale(top_left, "CAF\u00e9 \u2603~") is not None
    assert np.array_equal(font.glyph("\u2603"), font.glyph("\u00e9"))
    assert font.glyph("\u2603")[0].all() and font.glyph("\u2603")[-1].all()  # a box's top and bottom edges


def test_font_covers_digits_letters_and_common_punctuation():
    required = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz -:./_#(),'"
    assert all(font.has_glyph(char) for char in required)
    assert np.array_equal(font.glyph("q"), font.glyph("Q"))
    distinct = {font.glyph(char).tobytes() for char in required.upper()}
    assert len(distinct) == len(set(required.upper()))
    assert font.text_mask("AB", 3).shape == (21, 33)


# --- pacing -----------------------------------------------------------------------------------

def test_frames_are_paced_at_fps_on_the_injected_clock():
    clocks = SimulatedClocks(utc_start_us=START_UTC_US, monotonic_start_us=START_MONO_US)
    capture = make_capture(fps=25, clocks=clocks)
    capture.open()
    frames = list(itertools.islice(capture.frames(), 50))
    assert [f.sequence for f in frames] == list(range(50))
    assert [f.timestamp_us for f in frames] == [START_MONO_US + n * 40_000 for n in range(50)]
    assert clocks.monotonic_us() - START_MONO_US == 49 * 40_000  # 50 frames span 49 periods
    stats = capture.statistics()
    assert (stats["frames_generated"], stats["frames_skipped"]) == (50, 0)
    assert stats["avg_render_ms"] > 0


def test_fractional_fps_keeps_timestamps_on_the_ideal_grid():
    capture = make_capture(fps=30000 / 1001)
    capture.open()
    frames = list(itertools.islice(capture.frames(), 3001))
    assert frames[-1].timestamp_us == START_MONO_US + round(3000 * 1001 / 30000 * 1_000_000)


def test_falling_behind_skips_frames_and_counts_them():
    clocks = SimulatedClocks(utc_start_us=START_UTC_US, monotonic_start_us=START_MONO_US)
    capture = make_capture(fps=25, clocks=clocks)
    capture.open()
    stream = capture.frames()
    for _ in range(6):
        frame = next(stream)
    assert frame.sequence == 5
    clocks.advance(0.040 * 3.5)  # the consumer stalls for 3.5 frame periods
    late = next(stream)
    assert (late.sequence, late.timestamp_us) == (8, START_MONO_US + 8 * 40_000)
    assert next(stream).sequence == 9
    assert capture.statistics()["frames_skipped"] == 2


def test_a_consumer_late_by_under_a_period_gets_every_frame():
    clocks = SimulatedClocks(utc_start_us=START_UTC_US, monotonic_start_us=START_MONO_US)
    capture = make_capture(fps=25, clocks=clocks)
    capture.open()
    stream = capture.frames()
    next(stream)
    clocks.advance(0.060)  # frame 1 is now 20 ms late, less than a period
    assert [next(stream).sequence for _ in range(3)] == [1, 2, 3]
    assert capture.statistics()["frames_skipped"] == 0


class StarvedClocks(SimulatedClocks):
    """SimulatedClocks whose `sleep` oversleeps by `late_s`: a process starved of CPU on a loaded host."""

    def __init__(self, late_s: float):
        super().__init__(utc_start_us=START_UTC_US, monotonic_start_us=START_MONO_US)
        self.late_s = late_s

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds + self.late_s)


def test_a_starved_capture_skips_to_the_latest_frame_instead_of_reporting_no_signal():
    # Every sleep oversleeps by 3 s, more than the 2 s no-frame timeout: the CPU is slow, the
    # signal is there. A card's driver keeps filling its queued buffers meanwhile.
    capture = make_capture(fps=5, clocks=StarvedClocks(late_s=3.0))
    capture.open()
    frames = list(itertools.islice(capture.frames(), 5))
    assert len(frames) == 5
    assert capture.statistics()["frames_skipped"] >= 4 * 14  # ~15 periods pass per frame delivered


def test_a_consumer_slower_than_the_no_frame_timeout_gets_the_latest_frame():
    # The recording thread held up for 3 s (a blocking microphone open, a slow disk): on a V4L2 card
    # the frame is waiting in the queue when it asks again, so the simulated card must not say NoSignal.
    clocks = SimulatedClocks(utc_start_us=START_UTC_US, monotonic_start_us=START_MONO_US)
    capture = make_capture(fps=5, clocks=clocks)
    capture.open()
    stream = capture.frames()
    next(stream)
    clocks.advance(3.0)
    late = next(stream)
    assert late.sequence == 15
    assert capture.statistics()["signal_losses"] == 0


def test_frames_before_open_or_after_close_raise_capture_error():
    capture = make_capture()
    with pytest.raises(CaptureError):
        capture.frames()
    capture.open()
    capture.close()
    with pytest.raises(CaptureError):
        capture.frames()
    capture.open()
    assert next(capture.frames()).sequence == 0


def test_close_from_another_thread_stops_frames_promptly():
    capture = make_capture(fps=5, clocks=RealClocks())  # 200 ms between frames
    capture.open()
    received = []
    consumer = threading.Thread(target=lambda: received.extend(capture.frames()), daemon=True)
    consumer.start()
    wait_for(lambda: received, what="the first frame")
    began = time.monotonic()
    capture.close()
    consumer.join(timeout=DEFAULT_TIMEOUT_S)
    assert not consumer.is_alive()  # frames would otherwise come every 200 ms forever
    # Within a frame period of the close (the pacing sleeps at most one); the rest is room for a busy machine.
    assert time.monotonic() - began < 5.0


def test_close_stops_a_consumer_on_simulated_clocks():
    capture = make_capture(fps=25)
    capture.open()
    count = 0
    for frame in capture.frames():
        count += 1
        if frame.sequence == 9:
            closer = threading.Thread(target=capture.close)
            closer.start()
            closer.join()  # closed from another thread before this consumer asks for more
    assert count == 10
