"""FFmpeg's client's reader thread (drivers.rtsp.ffmpeg._Reader) over a scripted container: which of the
frames FFmpeg's parser hands on reach the recorder. The cases were met reading VLC over UDP
(design/rtsp-interop.md, findings 1 and 5)."""
from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace

from base.clock import RealClocks
from base.media import EncodedPacket
from drivers.rtsp.ffmpeg import RtspStatistics, _Reader
from drivers.rtsp.mailbox import END

SPS_PPS = b"\x00\x00\x00\x01\x67\x64\x00\x0d\xac" + b"\x00\x00\x00\x01\x68\xef\x0f\xcb"


class FakePacket(bytes):
    """What PyAV's demux yields, as far as the reader looks at it."""

    def __new__(cls, data: bytes, *, pts: int, keyframe: bool = False):
        packet = super().__new__(cls, data)
        packet.pts = packet.dts = pts
        packet.is_keyframe = keyframe
        packet.stream_index = 0
        packet.duration = 3600
        return packet

    @property
    def size(self) -> int:
        return len(self)


class FakeContainer:
    def __init__(self, packets: list[FakePacket]):
        self.packets = packets
        self.closed = False

    def demux(self, _streams):
        yield from self.packets

    def close(self) -> None:
        self.closed = True


def keyframe(n: int) -> FakePacket:
    return FakePacket(SPS_PPS + b"\x00\x00\x00\x01\x65" + bytes([n]) * 600, pts=n * 3600, keyframe=True)


def p_frame(n: int) -> FakePacket:
    return FakePacket(b"\x00\x00\x00\x01\x41" + bytes([n]) * 200, pts=n * 3600)


def continuation(n: int) -> FakePacket:
    """The second piece of a split frame: the tail of a slice, no start code (then the next frame)."""
    return FakePacket(b"\x8c\x02\x01\x3c" + bytes([n]) * 300 + b"\x00\x00\x00\x01\x41" + bytes([n]) * 50,
                      pts=n * 3600)


def read_all(packets: list[FakePacket]) -> tuple[list[EncodedPacket], RtspStatistics]:
    stats = RtspStatistics()
    stream = SimpleNamespace(time_base=Fraction(1, 90000), codec_context=SimpleNamespace(extradata=None))
    container = FakeContainer(packets)
    reader = _Reader(container, stream, RealClocks(), stats, fps=25.0, timeout_s=5.0, batch_s=0.0)
    reader._run()
    items = []
    while True:
        batch = reader.take(1.0)
        assert batch is not None, "the reader ended without END"
        items += batch
        if items and items[-1] is END:
            break
    assert container.closed
    return [i for i in items if isinstance(i, EncodedPacket)], stats


def test_the_frame_flushed_at_the_end_of_the_stream_is_left_out():
    frames, stats = read_all([keyframe(0), p_frame(1), p_frame(2)])
    assert [f.pts for f in frames] == [0, 3600]  # the last may lack its tail: FFmpeg flushed it at EOF
    assert stats.dropped_at_end == 1 and stats.packets == 2


def test_a_frame_split_in_two_is_left_out_with_the_frames_up_to_the_next_keyframe():
    packets = [keyframe(0), p_frame(1), keyframe(2), continuation(3), p_frame(4), keyframe(5), p_frame(6), p_frame(7)]
    frames, stats = read_all(packets)
    # keyframe 2 lost its tail to the continuation; 3 (no start code) and 4 (refers to 2) are dropped too;
    # 7 is the frame flushed at the end.
    assert [f.pts // 3600 for f in frames] == [0, 1, 5, 6]
    assert all(f.data.startswith(b"\x00\x00\x00\x01") for f in frames)
    assert stats.dropped_split_frames == 3 and stats.dropped_at_end == 1 and stats.packets == 4
