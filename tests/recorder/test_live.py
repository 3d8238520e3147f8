"""The live tap: viewers get what is recorded without ever holding the recorder up."""
from fractions import Fraction

import numpy as np

from base.media import EncodedPacket, RawFrame, StreamInfo
from recorder.live import LiveHub, RunStarted

INFO = StreamInfo("h264", 64, 48, Fraction(1, 90_000))


def packet(n: int, keyframe: bool = False) -> EncodedPacket:
    return EncodedPacket(b"x", n, n, keyframe)


def test_a_subscriber_starts_with_the_run_info_and_the_next_keyframe():
    tap = LiveHub().stream(1)
    tap.publish_run(INFO)
    with tap.subscribe() as sub:
        tap.publish(packet(1))
        tap.publish(packet(2, keyframe=True))
        tap.publish(packet(3))
        assert sub.get(0) == RunStarted(INFO)
        assert [sub.get(0).pts, sub.get(0).pts] == [2, 3]
        assert sub.get(0) is None
        assert sub.dropped == 1


def test_a_slow_subscriber_loses_up_to_the_next_keyframe_and_memory_stays_bounded():
    tap = LiveHub().stream(1)
    with tap.subscribe(max_items=4) as sub:
        tap.publish(packet(0, keyframe=True))
        for n in range(1, 10):
            tap.publish(packet(n))
        tap.publish(packet(10, keyframe=True))
        tap.publish(packet(11))
        got = []
        while (item := sub.get(0)) is not None:
            got.append(item.pts)
        assert got[-2:] == [10, 11]
        assert len(got) <= 4
        assert sub.dropped >= 6


def test_closed_subscriptions_get_nothing_more_and_publishing_without_viewers_is_free():
    tap = LiveHub().stream(2, "sub")
    sub = tap.subscribe()
    sub.close()
    assert tap.subscribers == 0
    tap.publish(packet(0, keyframe=True))
    assert sub.get(0) is None


def test_raw_frames_are_latest_only():
    tap = LiveHub().stream(1)
    assert tap.latest_frame() is None
    for seq in range(3):
        tap.publish_frame(RawFrame(np.zeros((2, 2), np.uint8), "gray", 2, 2, seq * 40_000, seq))
    assert tap.latest_frame().sequence == 2
    assert tap.latest_frame(newer_than=2) is None
