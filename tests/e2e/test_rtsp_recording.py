"""Recording real RTSP streams end to end: RtspCamera (FFmpeg's client) or NativeRtspCamera -> StreamRecorder ->
Segmenter -> files + index,
the whole Supervisor, and the Appliance's web page, against the GStreamer test server on loopback, in real time."""
from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import httpx
import pytest
from support.camera_rig import CameraRig, started_rigs
from support.recording import decoded_frames
from support.rtsp import TcpFreezeProxy
from support.waiting import wait_for
from support.web import WEB_USER, free_port

from appliance.config.model import Config, parse_config
from appliance.sources import channel_sources
from appliance.app import Appliance
from appliance.supervisor import Supervisor
from base.clock import RealClocks
from base.media import EncodedPacket, StreamInfo
from recorder.index import Index, Segment

pytestmark = pytest.mark.rtsp

SLACK_S = 1.0  # scheduling, FFmpeg's buffering and the server's pipeline start-up
STALL_TIMEOUT_S = 5  # long enough that a channel held up by a stalled one shows it, whatever the load


# --- instruments ------------------------------------------------------------------------------

class TapSource:
    """A PacketSource wrapper that records what the camera delivered and every connection attempt."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.delivered: list[EncodedPacket] = []
        self.arrivals_s: list[float] = []
        self.open_attempts_s: list[float] = []
        self.opened: list[StreamInfo] = []

    def open(self) -> StreamInfo:
        self.open_attempts_s.append(time.monotonic())
        info = self.inner.open()
        self.opened.append(info)
        return info

    def packets(self) -> Iterator[EncodedPacket]:
        for packet in self.inner.packets():
            self.delivered.append(packet)
            self.arrivals_s.append(time.monotonic())
            yield packet

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def make_rig(tmp_path):
    """`make_rig(url, client="ffmpeg", ...)`: one stream recorded into a fresh data root (support.camera_rig),
    seen through a TapSource, started, and closed after the test."""
    with started_rigs(tmp_path, functools.partial(CameraRig, tap=TapSource, client="ffmpeg")) as make:
        yield make


@pytest.fixture
def make_supervisor(tmp_path):
    """`make_supervisor(channels_yaml)`: a started Supervisor over RealClocks whose sources are the real
    ones (appliance.sources) wrapped in TapSource; `.taps[(channel, stream)]`."""
    supervisors: list[Supervisor] = []

    def make(channels_yaml: str) -> Supervisor:
        config = supervisor_config(tmp_path / f"data{len(supervisors)}", channels_yaml)
        clocks = RealClocks()
        taps: dict[tuple[int, str], TapSource] = {}

        def sources(channel):
            built = {stream: TapSource(src) for stream, src in channel_sources(channel, clocks=clocks).items()}
            taps.update({(channel.id, stream): tap for stream, tap in built.items()})
            return built

        sup = Supervisor(config, clocks=clocks, sources=sources)
        sup.taps = taps
        supervisors.append(sup)
        sup.start()
        return sup

    yield make
    for sup in supervisors:
        if sup._lock_fd is not None:
            sup.stop()


def supervisor_config(root: Path, channels_yaml: str) -> Config:
    text = f"""
storage:
  path: {root}
  segment_seconds: 2
  retention: {{max_used_percent: 99, min_free_bytes: 0, locked_floor_bytes: 0}}
web: {{listen: "127.0.0.1:8080"}}
channels:
{channels_yaml}
"""
    return parse_config(text, source="test.yaml")


def wait_until(predicate: Callable[[], object], timeout_s: float, what: str) -> float:
    """Wait for `predicate`; the monotonic time it was seen true (within a poll of support's wait_for)."""
    wait_for(predicate, timeout_s=timeout_s, what=what)
    return time.monotonic()


def annexb_nals(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B access unit (as the camera sends them), without trailing zero bytes.
    Parsed here, not by the recorder's own code."""
    out, pos = [], data.find(b"\x00\x00\x01")
    while pos >= 0:
        nxt = data.find(b"\x00\x00\x01", pos + 3)
        out.append(data[pos + 3:nxt if nxt >= 0 else len(data)].rstrip(b"\x00"))
        pos = nxt
    return out


def mp4_nals(data: bytes) -> list[bytes]:
    """The NAL units of an MP4 sample (4-byte lengths)."""
    out, pos = [], 0
    while pos < len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        out.append(data[pos + 4:pos + 4 + size])
        pos += 4 + size
    assert pos == len(data), "a NAL length runs past the sample"
    return out


def packet_nals(data: bytes, info: StreamInfo) -> list[bytes]:
    """The NAL units of a camera's access unit: length-prefixed when its extradata is an avcC record
    (the native client), else Annex B (FFmpeg's)."""
    return mp4_nals(data) if info.extradata and info.extradata[0] == 1 else annexb_nals(data)


def picture_nals(data: bytes, info: StreamInfo) -> list[bytes]:
    """The NALs an MP4 sample carries: the access unit minus SPS, PPS and delimiters (they go to avcC)."""
    return [n for n in packet_nals(data, info) if n[0] & 0x1F not in (7, 8, 9)]


@pytest.fixture(params=["ffmpeg", "native"])
def client(request) -> str:
    """The tests taking this run with both RTSP clients."""
    return request.param


def file_samples(path: Path) -> tuple[list[av.Packet], bytes]:
    """The demuxed samples of a segment (remux only) and its avcC record."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
        return packets, bytes(stream.codec_context.extradata)


def assert_playable(root: Path, seg: Segment) -> None:
    """Starts with a keyframe, and decodes without error to its last frame, which the index counts."""
    packets, _ = file_samples(root / seg.path)
    assert packets and packets[0].is_keyframe, seg.path
    assert 5 in {n[0] & 0x1F for n in mp4_nals(bytes(packets[0]))}, f"{seg.path} does not start with an IDR"
    assert len(packets) == seg.frames, seg.path
    assert decoded_frames(root / seg.path) == seg.frames, seg.path


def assert_contiguous(segs: list[Segment]) -> None:
    """One run, no gap: each segment starts where the previous one ended."""
    assert len({s.run_id for s in segs}) == 1, [s.run_id for s in segs]
    assert [s.seq for s in segs] == list(range(len(segs)))
    for a, b in itertools.pairwise(segs):
        assert b.start_us == a.end_us and b.media_start_ticks > a.media_start_ticks, (a, b)


def assert_everything_recorded(tap: TapSource, segs: list[Segment]) -> None:
    """Every frame the camera delivered from its first keyframe on is in the indexed segments (but
    the one in flight when the recorder was told to stop)."""
    first = next(i for i, p in enumerate(tap.delivered) if p.keyframe)
    expected = len(tap.delivered) - first
    assert expected - 1 <= sum(s.frames for s in segs) <= expected, (expected, [s.frames for s in segs])


def source_lost_channels(faults) -> set[int]:
    return {a.channel for a in faults.active() if a.kind == "source_lost"}


# --- one stream through StreamRecorder ----------------------------------------------------------

def test_rtsp_stream_is_remuxed_into_keyframe_led_segments_that_decode_to_the_last_frame(make_rig, rtsp_server, client):
    rig = make_rig(rtsp_server.url("/cam1"), client=client)  # GOP 25 at 25 fps: a keyframe every second
    wait_for(lambda: len(rig.segments()) >= 2, what="two closed segments")
    rig.stop()

    segs = rig.segments()
    assert len(segs) >= 3  # stopping closed and indexed the open one too
    assert_contiguous(segs)
    for seg in segs:
        assert_playable(rig.root, seg)
        assert 1.5e6 <= seg.end_us - seg.start_us <= 3.5e6 or seg is segs[-1], seg  # cut near 2 s at a keyframe

    # Remuxed, never re-encoded: every recorded sample is the camera's access unit, byte for byte.
    delivered, info = rig.tap.delivered, rig.tap.opened[0]
    first = next(i for i, p in enumerate(delivered) if p.keyframe)
    recorded = [bytes(p) for seg in segs for p in file_samples(rig.root / seg.path)[0]]
    assert len(delivered) - first - 1 <= len(recorded) <= len(delivered) - first  # the packet in flight at stop
    for n, (sample, packet) in enumerate(zip(recorded, delivered[first:])):
        assert mp4_nals(sample) == picture_nals(packet.data, info), f"sample {n} differs from what the camera sent"
    # ... and the parameter sets in the file are the camera's own.
    _, avcc = file_samples(rig.root / segs[0].path)
    camera_sps = next(n for n in packet_nals(delivered[first].data, info) if n[0] & 0x1F == 7)
    assert avcc[8:8 + int.from_bytes(avcc[6:8], "big")] == camera_sps
    assert rig.tap.opened[0].width == 640 and rig.index.run(segs[0].run_id).width == 640


def test_server_outage_closes_the_segment_backs_off_and_resumes_as_a_new_run(make_rig, make_rtsp_server, client):
    server = make_rtsp_server()
    rig = make_rig(server.url("/cam1"), reconnect_min_s=0.2, reconnect_max_s=0.8, client=client)
    wait_for(lambda: len(rig.segments()) >= 1, what="a first segment")
    wait_for(lambda: rig.segmenter.open_segment_row() is not None, what="a fragment into the next segment")
    before = len(rig.segments())

    server.stop()
    stopped = time.monotonic()
    lost = wait_until(rig.source_lost, 3 + SLACK_S, "the source_lost alarm")
    assert lost - stopped <= 3 + SLACK_S
    wait_for(lambda: len(rig.segments()) > before, what="the open segment to be indexed")
    first_run = rig.segments()
    assert_contiguous(first_run)
    for seg in first_run:
        assert_playable(rig.root, seg)
    assert rig.recorder.connected is False

    # Reconnection attempts (refused at once) back off 0.2, 0.4, 0.8, 0.8 s...: capped at reconnect_max_s.
    attempts = rig.tap.open_attempts_s
    wait_for(lambda: len(attempts) >= 6, what="five reconnection attempts")
    waits = [b - a for a, b in zip([lost] + attempts[1:], attempts[1:6])]
    for waited, expected in zip(waits, [0.2, 0.4, 0.8, 0.8, 0.8]):
        assert expected - 0.05 <= waited <= expected + 0.35, waits
    assert rig.source_lost()

    server.restart()  # the camera comes back on the same port
    wait_for(lambda: rig.recorder.connected, what="the reconnection")
    assert not rig.source_lost()
    wait_for(lambda: len(rig.segments()) > len(first_run), what="a segment of the new run")
    rig.stop()

    segs = rig.segments()
    old, new = segs[:len(first_run)], segs[len(first_run):]
    assert old == first_run  # untouched
    assert len({s.run_id for s in new}) == 1 and new[0].run_id > old[0].run_id
    assert new[0].seq == 0
    gap_us = new[0].start_us - old[-1].end_us
    assert gap_us > 1_000_000, gap_us  # the outage is a gap, not papered over, and nothing overlaps
    assert_contiguous(new)
    for seg in new:
        assert_playable(rig.root, seg)


def test_stalled_stream_is_detected_within_its_timeout_and_recording_resumes(make_rig, rtsp_server, client):
    timeout_s = 1.0
    with TcpFreezeProxy("127.0.0.1", rtsp_server.port) as proxy:
        rig = make_rig(proxy.url("/cam1"), timeout_s=timeout_s, reconnect_min_s=0.2, reconnect_max_s=0.5,
                       client=client)
        wait_for(lambda: len(rig.segments()) >= 1, what="a first segment")
        before = len(rig.segments())

        proxy.freeze()
        frozen = time.monotonic()
        detected = wait_until(rig.source_lost, timeout_s + 2 * SLACK_S, "the stall to be noticed")
        assert detected - frozen <= timeout_s + 0.5
        assert "no packet" in rig.recorder.last_error
        wait_for(lambda: len(rig.segments()) > before, what="the open segment to be indexed")
        first_run = rig.segments()
        for seg in first_run:
            assert_playable(rig.root, seg)

        proxy.thaw()
        wait_for(lambda: rig.recorder.connected, what="the reconnection")
        assert not rig.source_lost()
        wait_for(lambda: len(rig.segments()) > len(first_run), what="a segment of the new run")
        rig.stop()

    segs = rig.segments()
    new = segs[len(first_run):]
    assert new[0].run_id > first_run[0].run_id and new[0].start_us >= first_run[-1].end_us
    for seg in new:
        assert_playable(rig.root, seg)


# --- the Supervisor -----------------------------------------------------------------------------

def test_main_and_sub_streams_record_into_their_own_folders(make_supervisor, rtsp_server):
    sup = make_supervisor(f"""
  - id: 1
    name: door
    source: {{type: rtsp, url: "{rtsp_server.url('/cam1')}", sub_url: "{rtsp_server.url('/cam2')}", timeout_s: 3}}
""")
    index = sup.index
    wait_for(lambda: index.segments(channel=1, stream="main") and index.segments(channel=1, stream="sub"),
             what="segments of both streams")
    sup.stop()

    index = Index(sup.root)
    try:
        main, sub = index.segments(channel=1, stream="main"), index.segments(channel=1, stream="sub")
    finally:
        index.close()
    assert main and sub
    assert all(s.path.startswith("ch01/main/") for s in main)
    assert all(s.path.startswith("ch01/sub/") for s in sub)
    for seg in main + sub:
        assert_playable(sup.root, seg)
    assert {(r.segmenter.stream, r.source.name) for r in sup.recorders} == {("main", "door main"), ("sub", "door sub")}
    assert sup.taps[(1, "main")].inner.url.endswith("/cam1") and sup.taps[(1, "sub")].inner.url.endswith("/cam2")


@pytest.mark.parametrize("client", ["ffmpeg", "auto"])
def test_failing_channels_never_disturb_a_recording_channel(make_supervisor, rtsp_server, client):
    with TcpFreezeProxy("127.0.0.1", rtsp_server.port) as proxy:
        sup = make_supervisor(f"""
  - id: 1
    name: good
    source: {{type: rtsp, url: "{rtsp_server.url('/cam1')}", timeout_s: 3, client: {client}}}
  - id: 2
    name: wrong mount
    source: {{type: rtsp, url: "{rtsp_server.url('/nope')}", timeout_s: 2, reconnect_max_s: 1, client: {client}}}
  - id: 3
    name: nothing listening
    source: {{type: rtsp, url: "rtsp://127.0.0.1:{free_port()}/cam", timeout_s: 2, reconnect_max_s: 1,
              client: {client}}}
  - id: 4
    name: stalls
    source: {{type: rtsp, url: "{proxy.url('/cam2')}", timeout_s: {STALL_TIMEOUT_S}, reconnect_max_s: 1,
              client: {client}}}
""")
        stalls = sup.taps[(4, "main")]
        wait_for(lambda: len(stalls.delivered) > 10, what="channel 4 to deliver packets")
        proxy.freeze()  # channel 4 hangs, and its reconnections hang until their timeout
        wait_for(lambda: source_lost_channels(sup.faults) >= {2, 3, 4}, what="every failing channel's alarm")
        wait_for(lambda: len(sup.index.segments(channel=1)) >= 3, what="three segments of channel 1")
        assert sup.recorders[1].failures >= 2 and sup.recorders[2].failures >= 2
        assert source_lost_channels(sup.faults) == {2, 3, 4}
        sup.stop()

    good = sup.taps[(1, "main")]
    assert len(good.opened) == 1  # never dropped
    steps = {b.dts - a.dts for a, b in zip(good.delivered, good.delivered[1:])}
    assert steps == {3600}, steps  # 25 fps at 90 kHz: not one frame missing from the camera's stream
    arrivals_s = [p.arrival_us / 1e6 for p in good.delivered]  # stamped by the driver's reader thread
    # And they kept flowing: a channel waiting on channel 4's stall would show a gap of its timeout.
    # (How evenly they flow is the machine's load: 1.1 s gaps were seen with two CPU hogs beside the suite.)
    assert max(b - a for a, b in itertools.pairwise(arrivals_s)) < STALL_TIMEOUT_S / 2
    index = Index(sup.root)
    try:
        segs = index.segments(channel=1, stream="main")
        assert not index.segments(channel=2) and not index.segments(channel=3)
    finally:
        index.close()
    assert_contiguous(segs)
    for seg in segs:
        assert_playable(sup.root, seg)
    assert_everything_recorded(good, segs)


def test_supervisor_stop_closes_and_indexes_every_open_segment_within_seconds(make_supervisor, rtsp_server):
    with TcpFreezeProxy("127.0.0.1", rtsp_server.port) as proxy:
        proxy.freeze()  # channel 1 hangs while connecting: it must not hold up the others' stop
        sup = make_supervisor(f"""
  - id: 1
    source: {{type: rtsp, url: "{proxy.url('/cam1')}", timeout_s: 3}}
  - id: 2
    source: {{type: rtsp, url: "{rtsp_server.url('/cam1')}", sub_url: "{rtsp_server.url('/cam2')}", timeout_s: 3}}
  - id: 3
    source: {{type: rtsp, url: "{rtsp_server.url('/cam2')}", timeout_s: 3}}
""")
        live = [(2, "main"), (2, "sub"), (3, "main")]
        wait_for(lambda: all(len(sup.taps[s].delivered) > 40 for s in live), what="every live stream recording")
        assert not sup.taps[(1, "main")].opened
        stopping = time.monotonic()
        sup.stop()
        assert time.monotonic() - stopping < 3.0

    index = Index(sup.root)
    try:
        segs = {s: index.segments(channel=s[0], stream=s[1]) for s in live}
        assert not index.segments(channel=1)
    finally:
        index.close()
    for stream, rows in segs.items():
        tap = sup.taps[stream]
        assert tap.arrivals_s[-1] - stopping < 0.5, stream  # stopped at once, not after channel 1
        assert_everything_recorded(tap, rows)  # including the segment that was open at stop()
        for seg in rows:
            assert_playable(sup.root, seg)
    on_disk = {str(p.relative_to(sup.root)) for p in sup.root.glob("ch*/*/*.mp4")}
    assert on_disk == {s.path for rows in segs.values() for s in rows}  # nothing left unindexed


def test_web_api_shows_streams_and_alarms_and_lists_recordings(tmp_path, rtsp_server):
    config = supervisor_config(tmp_path / "data", f"""
  - id: 1
    name: front door
    source: {{type: rtsp, url: "{rtsp_server.url('/cam1')}", timeout_s: 3}}
  - id: 2
    name: back yard
    source: {{type: rtsp, url: "rtsp://127.0.0.1:{free_port()}/cam", timeout_s: 2}}
""")
    nvr = Appliance(config, clocks=RealClocks(), listen=("127.0.0.1", free_port()))
    nvr.users.add_user(*WEB_USER, "viewer")  # every API route needs a login
    nvr.start()
    try:
        wait_for(lambda: nvr.index.segments(channel=1) and 2 in source_lost_channels(nvr.faults),
                 what="a segment of channel 1 and the alarm of channel 2")
        with httpx.Client(base_url=nvr.url, timeout=5) as client:
            wait_for(lambda: _answers(client), what="the web server")
            assert client.get("/api/health").status_code == 401
            client.post("/api/login", json=dict(zip(("username", "password"), WEB_USER))).raise_for_status()
            check_status_page_and_api(client, nvr)
    finally:
        nvr.stop()


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/api/ping").status_code == 200
    except httpx.TransportError:
        return False


def check_status_page_and_api(client: httpx.Client, sup: Appliance) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    channels = {c["id"]: c for c in client.get("/api/channels").json()}
    assert channels[1]["name"] == "front door" and channels[1]["streams"][0]["connected"] is True
    assert channels[2]["name"] == "back yard" and channels[2]["streams"][0]["connected"] is False
    faults = client.get("/api/alarms").json()["active"]
    assert [a["channel"] for a in faults if a["kind"] == "source_lost"] == [2]
    assert any("channel 2 main" in a["message"] for a in faults)

    health = client.get("/api/health").json()
    assert [a["channel"] for a in health["alarms"] if a["kind"] == "source_lost"] == [2]
    by_channel = {s["channel"]: s for s in health["streams"]}
    assert by_channel[1]["connected"] and by_channel[1]["segments"] >= 1
    assert not by_channel[2]["connected"] and by_channel[2]["failures"] >= 1

    rows = client.get("/api/recordings", params={"channel": 1, "stream": "main"}).json()
    everything = client.get("/api/recordings").json()
    indexed = [str((sup.root / s.path).resolve()) for s in sup.index.segments(channel=1, stream="main")]
    assert rows and [r["path"] for r in rows] == indexed[:len(rows)]  # (recording goes on meanwhile)
    assert all(Path(r["path"]).is_file() and r["bytes"] > 0 and (r["channel"], r["stream"]) == (1, "main")
               for r in rows)
    assert everything[:len(rows)] == rows and {r["channel"] for r in everything} == {1}
    assert client.get("/api/recordings", params={"channel": 2}).json() == []
