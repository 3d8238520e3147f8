"""One RTSP camera recorded in real time by the real StreamRecorder + Segmenter into a fresh data root: the
rig of the end-to-end recording and interoperability tests, with the camera seen through the test's tap."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from base.clock import RealClocks
from drivers.rtsp.auto import rtsp_camera
from recorder.faults import FaultBoard
from recorder.index import Index, Segment
from recorder.segmenter import Segmenter
from recorder.stream_recorder import StreamRecorder

CHANNEL, STREAM = 1, "main"


class CameraRig:
    """The camera at `url` (drivers.rtsp.auto.rtsp_camera with `client`, named "cam", `.camera`) reaches a
    StreamRecorder through `tap(camera)` (`.tap`: a PacketSource wrapper noting what the test checks) and
    is recorded as channel 1's main stream in `segment_seconds` segments into `root`, which must not exist
    yet. The recorder is built, not started."""

    def __init__(self, root: Path, url: str, *, tap: Callable, client: str, timeout_s: float = 3.0,
                 segment_seconds: float = 2, reconnect_min_s: float = 0.2, reconnect_max_s: float = 1.0):
        root.mkdir()
        self.root = root
        self.clocks = RealClocks()
        self.index = Index(root)
        self.faults = FaultBoard(clocks=self.clocks)
        self.camera = rtsp_camera(url, client=client, name="cam", clocks=self.clocks, timeout_s=timeout_s)
        self.tap = tap(self.camera)
        self.segmenter = Segmenter(channel=CHANNEL, stream=STREAM, root=root, index=self.index, clocks=self.clocks,
                                   faults=self.faults, segment_seconds=segment_seconds, sync=False)
        self.recorder = StreamRecorder(source=self.tap, segmenter=self.segmenter, faults=self.faults,
                                       clocks=self.clocks, reconnect_min_s=reconnect_min_s,
                                       reconnect_max_s=reconnect_max_s)

    def segments(self) -> list[Segment]:
        return self.index.segments(channel=CHANNEL, stream=STREAM)

    def source_lost(self) -> bool:
        return any(a.kind == "source_lost" and a.channel == CHANNEL for a in self.faults.active())

    def stop(self) -> None:
        self.recorder.stop()

    def close(self) -> None:
        self.recorder.stop()
        self.index.close()


@contextmanager
def started_rigs(folder: Path, make_rig: Callable[..., CameraRig]) -> Iterator[Callable[..., CameraRig]]:
    """`start(url, **kwargs)`: a rig `make_rig(folder / "dataN", url, **kwargs)` (N counting from 0) with its
    recorder started; every rig started is closed when the block ends."""
    rigs: list[CameraRig] = []

    def start(url: str, **kwargs) -> CameraRig:
        rig = make_rig(folder / f"data{len(rigs)}", url, **kwargs)
        rigs.append(rig)
        rig.recorder.start()
        return rig

    try:
        yield start
    finally:
        for rig in rigs:
            rig.close()
