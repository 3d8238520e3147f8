"""Issue 12: one bad camera never stops the others.

Each row of the issue's table is played by a scripted hostile camera (support.fake_rtsp) on the same
native RTSP loop as a good camera (the GStreamer test server), both recorded by the real
StreamRecorder + Segmenter. The good camera must keep recording with no gap over 2 s, and the
process must stay under 400 MB; the hostile camera's failures stay its own (its recorder retries).

The 400 MB are for a process that records these cameras. The suite runs this file in a pytest worker
that other test files have already grown, so the check is on what the test adds to the process while
it runs: at most 400 MB less what a fresh process holding this test's imports and cameras takes
(FRESH_PROCESS_MB, measured 110-180 MB running this file alone).
"""
from __future__ import annotations

import base64
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.fake_rtsp import SDP_VIDEO, SPROP
from support.open_files import files_open_under
from support.rtp_bytes import IDR, P_SLICE, PPS, SPS, aac_payload, fu_a, interleaved, rtp, stap_a
from support.waiting import wait_for

from drivers.rtsp.auto import rtsp_camera
from drivers.rtsp.loop import RtspLoop
from base.clock import RealClocks
from recorder.faults import FaultBoard
from recorder.index import Index
from recorder.segmenter import Segmenter
from recorder.stream_recorder import StreamRecorder

pytestmark = pytest.mark.rtsp

GOOD_GAP_LIMIT_S = 2.0
RSS_LIMIT_MB = 400
FRESH_PROCESS_MB = 150
RSS_GROWTH_LIMIT_MB = RSS_LIMIT_MB - FRESH_PROCESS_MB
RESUME_LIMIT_S = 3.0
HOSTILE_WINDOW_S = 8.0  # how long each hostile camera plays beside the good one


# --- instruments -----------------------------------------------------------------------------------

class Tap:
    """A PacketSource wrapper noting when video packets reached the recorder, and every open."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.video_at: list[float] = []
        self.opens: list[float] = []
        self.opened: list[float] = []
        self.failed_open_s: list[float] = []  # how long each failed open took

    def open(self):
        started = time.monotonic()
        self.opens.append(started)
        try:
            info = self.inner.open()
        except Exception:
            self.failed_open_s.append(time.monotonic() - started)
            raise
        self.opened.append(time.monotonic())
        return info

    def packets(self):
        for packet in self.inner.packets():
            if packet.track == "video":
                self.video_at.append(time.monotonic())
            yield packet

    def close(self) -> None:
        self.inner.close()

    def probe(self) -> bool:
        return self.inner.probe()

    def statistics(self):
        return self.inner.statistics()


class RssSampler:
    """The process's resident memory (VmRSS), sampled every 50 ms while running; `peak_mb`."""

    def __init__(self) -> None:
        self.start_mb = self.peak_mb = self.now_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def now_mb() -> float:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak_mb = max(self.peak_mb, self.now_mb())

    def stop(self) -> float:
        """Stop sampling; the most the process grew by since the start (MB)."""
        self._stop.set()
        self._thread.join()
        return self.peak_mb - self.start_mb


class Recorded:
    """One camera recorded by StreamRecorder + Segmenter into its own data root."""

    def __init__(self, root: Path, url: str, *, channel: int, loop: RtspLoop, client: str = "native",
                 timeout_s: float = 2.0):
        root.mkdir()
        clocks = RealClocks()
        self.index = Index(root)
        self.faults = FaultBoard(clocks=clocks)
        self.tap = Tap(rtsp_camera(url, client=client, name=f"cam{channel}", clocks=clocks, timeout_s=timeout_s,
                                   loop=loop))
        self.segmenter = Segmenter(channel=channel, stream="main", root=root, index=self.index, clocks=clocks,
                                   faults=self.faults, segment_seconds=2, sync=False)
        self.recorder = StreamRecorder(source=self.tap, segmenter=self.segmenter, faults=self.faults, clocks=clocks)

        self.segments: list = []

    def stop(self) -> None:
        self.recorder.stop()
        self.segments = self.index.segments()
        self.index.close()


@dataclass
class Outcome:
    good_max_gap_s: float
    rss_growth_mb: float
    hostile: Recorded
    good: Recorded
    loop: RtspLoop


def max_gap(times: list[float], start: float, end: float) -> float:
    inside = [start] + [t for t in times if start <= t <= end] + [end]
    return max(b - a for a, b in zip(inside, inside[1:]))


def open_segments_under(root: Path) -> list[str]:
    """The segment files (.mp4) under `root` this process holds open."""
    return files_open_under(root, suffix=".mp4")


@pytest.fixture
def beside_good_camera(tmp_path, rtsp_server):
    """`run(hostile_url, until=...)`: record the good camera, then the hostile one beside it on the same
    loop for HOSTILE_WINDOW_S (or until `until()` holds, at most twice that); returns an Outcome."""
    made: list[Recorded] = []

    def run(hostile_url: str, *, until: Callable[[Recorded], bool] | None = None,
            window_s: float = HOSTILE_WINDOW_S, client: str = "native") -> Outcome:
        loop = RtspLoop(clocks=RealClocks(), name="rtsp-loop-isolation")
        good = Recorded(tmp_path / "good", rtsp_server.url("/cam1"), channel=1, loop=loop, timeout_s=3.0)
        made.append(good)
        good.recorder.start()
        wait_for(lambda: len(good.tap.video_at) >= 25, timeout_s=15, what="the good camera's first second")
        rss = RssSampler()
        hostile = Recorded(tmp_path / "hostile", hostile_url, channel=2, loop=loop, client=client)
        made.append(hostile)
        started = time.monotonic()
        hostile.recorder.start()
        deadline = started + (2 * window_s if until is not None else window_s)
        while time.monotonic() < deadline:
            if until is not None and time.monotonic() - started >= window_s and until(hostile):
                break
            time.sleep(0.1)
        ended = time.monotonic()
        peak = rss.stop()
        gap = max_gap(good.tap.video_at, started, ended)
        hostile.stop()
        good.stop()
        made.clear()
        outcome = Outcome(gap, peak, hostile, good, loop)
        print(f"\ngood camera's longest gap {gap:.2f} s; RSS grew {peak:.0f} MB to {rss.peak_mb:.0f} MB; hostile: "
              f"{hostile.recorder.failures} failures, last error {hostile.recorder.last_error!r}; "
              f"loop {loop.statistics()}")
        return outcome

    yield run
    for recorded in made:
        recorded.stop()


def assert_isolated(outcome: Outcome) -> None:
    assert outcome.good_max_gap_s <= GOOD_GAP_LIMIT_S, outcome.good_max_gap_s
    assert outcome.rss_growth_mb < RSS_GROWTH_LIMIT_MB, outcome.rss_growth_mb
    assert outcome.good.recorder.failures == 0, outcome.good.recorder.last_error
    assert outcome.good.segments, "the good camera recorded segments"


@pytest.fixture
def hostile_camera(fake_camera):
    return fake_camera


# --- what hostile cameras send -----------------------------------------------------------------------

def good_frames(send, stopped, *, extra: Callable[[int], bytes] = lambda number: b"", frames: int = 100_000,
                keyframe: Callable[[int], list[bytes]] | None = None) -> None:
    """The usual 25 fps H.264 stream (keyframe every second), with `extra(n)` bytes after frame n."""
    seq = 1
    for number in range(frames):
        if stopped():
            return
        key = number % 25 == 0
        first = (keyframe(number) if keyframe else [stap_a(SPS, PPS)]) if key else []
        payloads = first + fu_a(IDR if key else P_SLICE, 3)
        packets = [rtp(seq + i, number * 3600, p, marker=i == len(payloads) - 1) for i, p in enumerate(payloads)]
        seq += len(payloads)
        send(b"".join(interleaved(0, p) for p in packets) + extra(number))
        time.sleep(0.04)


def paced(send, stopped, chunk: bytes, bytes_per_s: float) -> None:
    """`chunk` over and over at `bytes_per_s` (one send per chunk: the fake camera's own thread stays
    off the GIL while the kernel takes the bytes)."""
    interval = len(chunk) / bytes_per_s
    while not stopped():
        send(chunk)
        time.sleep(interval)


AAC_BAD_FMTP = ("m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/16000/1\r\n"
                "a=fmtp:97 streamtype=5;mode=AAC-hbr;config=1408;sizelength=13;indexlength=0;"
                "indexdeltalength=-13\r\na=control:trackID=2\r\n")
PCMU_AUDIO = "m=audio 0 RTP/AVP 0\r\na=control:trackID=2\r\n"


# --- the rows ----------------------------------------------------------------------------------------

def test_row1_aac_au_headers_of_width_zero_do_not_hang_the_loop(beside_good_camera, hostile_camera):
    """SDP indexdeltalength=-13 (each AU header then has width 0), then AAC packets: the loop used to
    spin for ever in the AU-header loop. Now such audio parameters leave the audio out."""
    camera = hostile_camera(sdp_media=SDP_VIDEO.format(sprop=SPROP) + AAC_BAD_FMTP, after_play=lambda send, stopped:
                            good_frames(send, stopped, extra=lambda n: interleaved(
                                2, rtp(n, n * 640, aac_payload(b"\x21\x10" + bytes(20)), pt=97, marker=True,
                                       ssrc=0x5678))))
    outcome = beside_good_camera(camera.url())
    assert_isolated(outcome)
    hostile = outcome.hostile
    assert hostile.recorder.connects >= 1 and hostile.segments  # its video is recorded, audio left out
    assert "SETUP" in camera.methods() and sum(1 for m in camera.methods() if m == "SETUP") == hostile.recorder.connects


def test_row2_a_60_kB_digest_challenge_mid_stream_costs_no_freeze(beside_good_camera, hostile_camera):
    """Unsolicited 401s with 60 kB (and 7 kB) WWW-Authenticate headers, to a camera whose URL has
    credentials: the quadratic challenge regex froze the whole process 25 s per message."""
    huge = (b"RTSP/1.0 401 Unauthorized\r\nCSeq: 99\r\nWWW-Authenticate: Digest " + b"a" * 60_000 + b"\r\n\r\n")
    big = (b"RTSP/1.0 401 Unauthorized\r\nCSeq: 98\r\nWWW-Authenticate: Digest " + b"a" * 7_000 + b"\r\n\r\n")

    def play(send, stopped):
        good_frames(send, stopped, extra=lambda n: (huge if n % 10 == 0 else big if n % 10 == 5 else b""))

    camera = hostile_camera(user="admin", password="pw", after_play=play)
    outcome = beside_good_camera(camera.url(userinfo="admin:pw"))
    assert_isolated(outcome)
    assert outcome.hostile.segments and outcome.hostile.recorder.failures == 0  # garbage, skipped


def test_row3_an_access_unit_that_never_ends_is_bounded_and_the_camera_counts_as_stalled(
        beside_good_camera, hostile_camera):
    """An FU-A start, then FU-A middles at one timestamp without end (about 10 MB/s), plus a G.711
    packet every 0.1 s: the frame grew without limit and the audio kept the stall timeout away."""
    middle = interleaved(0, rtp(0, 7200, bytes((0x7C, 0x05)) + bytes(1400)))  # FU-A middle of an IDR

    def play(send, stopped):
        send(interleaved(0, rtp(1, 7200, bytes((0x7C, 0x85)) + bytes(1400))))  # FU-A start
        chunk = middle * 700  # ~1 MB
        audio_seq = 0
        while not stopped():
            send(chunk)
            send(interleaved(2, rtp(audio_seq, audio_seq * 800, bytes(160), pt=0, ssrc=0x5678)))
            audio_seq += 1
            time.sleep(0.1)

    camera = hostile_camera(sdp_media=SDP_VIDEO.format(sprop=SPROP) + PCMU_AUDIO, after_play=play)
    outcome = beside_good_camera(camera.url(), until=lambda h: h.recorder.failures >= 2)
    assert_isolated(outcome)
    assert outcome.hostile.recorder.failures >= 2
    assert "no video frame" in outcome.hostile.recorder.last_error  # the stall is seen despite the audio


def test_row4_status_line_garbage_costs_a_linear_scan(beside_good_camera, hostile_camera):
    """After PLAY, `RTSP/\\r\\n` repeated at 0.6 MB/s: the resync search cost 379 ms of CPU per 64 KiB."""
    camera = hostile_camera(after_play=lambda send, stopped: paced(send, stopped, b"RTSP/\r\n" * 8_600, 600_000))
    outcome = beside_good_camera(camera.url(), until=lambda h: h.recorder.failures >= 1)
    assert_isolated(outcome)
    assert outcome.loop.statistics()["slow_calls"] == 0
    assert "no video frame" in outcome.hostile.recorder.last_error or "no packet" in outcome.hostile.recorder.last_error


def crafted_sps(payload_bytes: int) -> bytes:
    """A baseline SPS with pic_order_cnt_type 1 and a huge cycle count, padded to `payload_bytes`
    with 1 bits (each an se(v) of 0): the quadratic bit reader spent seconds on it."""
    bits = "01000010" + "00000000" + "00011110"  # profile 66, constraints, level 30
    bits += "1" + "1" + "010"  # sps id 0, log2_max_frame_num_minus4 0, pic_order_cnt_type 1
    bits += "0" + "1" + "1"  # delta_pic_order_always_zero, offset_for_non_ref_pic 0, top_to_bottom 0
    cycle = payload_bytes * 8
    code = bin(cycle + 1)[2:]
    bits += "0" * (len(code) - 1) + code
    bits += "1" * (payload_bytes * 8 - len(bits) % 8 - 8)
    bits += "0" * (-len(bits) % 8)
    return b"\x67" + int(bits, 2).to_bytes(len(bits) // 8, "big")


@pytest.mark.parametrize("sps_bytes", [128 * 1024, 3000])
def test_row5_a_crafted_sps_in_the_sdp_is_refused_quickly(beside_good_camera, hostile_camera, sps_bytes):
    """A 128 kB (and a 3 kB, within the SDP limit) crafted SPS in sprop-parameter-sets: 9.3 s of CPU in
    open() with timeout_s=3."""
    sprop = "sprop-parameter-sets=" + base64.b64encode(crafted_sps(sps_bytes)).decode() + ",aMuDyyA="
    camera = hostile_camera(sdp_media=SDP_VIDEO.format(sprop=sprop))
    outcome = beside_good_camera(camera.url(), until=lambda h: h.recorder.failures >= 2)
    assert_isolated(outcome)
    tap = outcome.hostile.tap
    assert outcome.hostile.recorder.failures >= 2 and len(tap.failed_open_s) >= 2
    assert any(why in outcome.hostile.recorder.last_error for why in ("session description of", "pic_order_cnt"))
    print(f"failed opens took {[round(t, 3) for t in tap.failed_open_s]} s")
    assert max(tap.failed_open_s) < 1.0
    cpu_s = time.process_time()
    from base.h264 import H264Error, parse_sps
    with pytest.raises(H264Error):
        parse_sps(crafted_sps(sps_bytes))
    assert time.process_time() - cpu_s < 0.05


ROW7_CROPPED_SPS = bytes.fromhex("6742001ef4a4") + b"\x80"  # cropping 200 px of a 16 px picture (see the unit test)

ROW6_VARIANTS = {
    "session timeout of 5000 digits": dict(session="F00D;timeout=" + "9" * 5000),
    "interleaved of 5000 digits": dict(transport="RTP/AVP/TCP;unicast;interleaved=" + "1" * 5000),
    "AAC sizelength=0": dict(sdp_media=SDP_VIDEO.format(sprop=SPROP) + AAC_BAD_FMTP.replace(
        "sizelength=13;indexlength=0;indexdeltalength=-13", "sizelength=0;indexlength=3;indexdeltalength=3")),
    "an in-band SPS over 65535 bytes": dict(sprop=False, after_play=lambda send, stopped: good_frames(
        send, stopped, keyframe=lambda n: [*fu_a(SPS + bytes(70_000), 60), stap_a(PPS)])),
}


@pytest.mark.parametrize("variant", sorted(ROW6_VARIANTS))
def test_row6_absurd_numbers_fail_with_the_clients_own_error_or_are_ignored(beside_good_camera, hostile_camera,
                                                                           variant):
    """`Session: …;timeout=<5000 digits>`, `interleaved=<5000 digits>`, `sizelength=0`, an SPS over
    65535 bytes: plain ValueError/OverflowError escaped open(), so `client: auto` never fell back."""
    camera = hostile_camera(**ROW6_VARIANTS[variant])
    outcome = beside_good_camera(camera.url(), window_s=5)
    assert_isolated(outcome)
    hostile = outcome.hostile.recorder
    if variant == "an in-band SPS over 65535 bytes":
        assert hostile.failures >= 1 and "parameter sets" in hostile.last_error  # CameraError: retried
    else:  # a number that cannot be right is ignored: the camera records
        assert hostile.failures == 0 and outcome.hostile.segments


def test_row7_garbage_in_band_parameter_sets_leak_no_file_descriptor(beside_good_camera, hostile_camera, tmp_path):
    """In-band SPS under 4 bytes, and one whose cropping leaves width <= 0, and the camera dropping the
    connection every 2 s: Segmenter.push raised, and each reconnect leaked the open segment's fd."""
    cropped = ROW7_CROPPED_SPS
    frames = iter(range(10**9))

    def play(send, stopped):
        good_frames(send, stopped, frames=50, keyframe=lambda n: [
            stap_a(b"\x67\x42", PPS) if next(frames) % 2 else stap_a(cropped, PPS)])

    camera = hostile_camera(after_play=play)
    held: list[int] = []

    def reconnected_often(hostile: Recorded) -> bool:
        held.append(len(open_segments_under(tmp_path / "hostile")))
        return hostile.recorder.connects >= 4

    outcome = beside_good_camera(camera.url(), until=reconnected_often)
    assert_isolated(outcome)
    assert outcome.hostile.recorder.connects >= 4 and outcome.hostile.segments
    assert outcome.hostile.segmenter.stats.bad_packets > 0  # the garbage SPS were seen, counted, and skipped
    assert "SPS" not in (outcome.hostile.recorder.last_error or "")
    print(f"segment files the hostile camera's recorder held open: at most {max(held)} at a time")
    assert max(held) <= 1  # the segment being written, none left over from a reconnect
    assert open_segments_under(tmp_path / "hostile") == [] and open_segments_under(tmp_path / "good") == []


def test_row9_a_flapping_camera_records_again_within_3_s_of_every_return(beside_good_camera, hostile_camera,
                                                                         request):
    """Up 4-8 s, down 0.5-4 s (a PoE switch or Wi-Fi link that keeps dropping), on real sockets: the
    doubling backoff sat out whole windows in which the camera was up."""
    cycles = int(os.environ.get("NVR_FLAP_CYCLES", "6"))
    camera = hostile_camera()
    rng = random.Random(9)
    returns: list[float] = []
    done = threading.Event()

    def flap():
        for cycle in range(cycles):
            time.sleep(rng.uniform(4, 8))
            camera.go_down()
            time.sleep(rng.uniform(0.5, 4))
            camera.come_up()
            returns.append(time.monotonic())
        time.sleep(4)
        done.set()

    threading.Thread(target=flap, daemon=True).start()
    outcome = beside_good_camera(camera.url(), until=lambda h: done.is_set(), window_s=cycles * 12.5)
    assert_isolated(outcome)
    arrivals = outcome.hostile.tap.video_at
    resumed = [next((t for t in arrivals if t >= back), float("inf")) - back for back in returns]
    print(f"flapping camera: resumed after {[round(r, 2) for r in resumed]} s "
          f"(worst {max(resumed):.2f} s over {len(resumed)} returns)")
    assert len(resumed) == cycles and max(resumed) <= RESUME_LIMIT_S, resumed


# --- the whole appliance: four hostile cameras at once, and the web ---------------------------------------

def test_the_web_and_a_good_channel_stay_responsive_beside_a_hostile_camera_of_every_row(tmp_path, rtsp_server,
                                                                                        hostile_camera):
    """The camera rows 1-7 and 9 at the same time, in the Appliance with its web server: the good
    channel records without a gap over 2 s, every web request is answered within 3 s, and what the
    hostile cameras add to the process stays inside the 400 MB. (Row 8 is a PTZ dome, tested on its
    bus in tests/drivers/test_pelco_bus.py.)"""
    import httpx
    from support.web import WEB_USER, add_web_user

    from appliance.app import Appliance
    from appliance.config.model import parse_config

    huge = b"RTSP/1.0 401 Unauthorized\r\nCSeq: 99\r\nWWW-Authenticate: Digest " + b"a" * 60_000 + b"\r\n\r\n"
    middle = interleaved(0, rtp(0, 7200, bytes((0x7C, 0x05)) + bytes(1400)))

    def endless_frame(send, stopped):
        send(interleaved(0, rtp(1, 7200, bytes((0x7C, 0x85)) + bytes(1400))))
        seq = 0
        while not stopped():
            send(middle * 700)
            send(interleaved(2, rtp(seq, seq * 800, bytes(160), pt=0, ssrc=0x5678)))
            seq += 1
            time.sleep(0.1)

    hostile = {
        2: hostile_camera(sdp_media=SDP_VIDEO.format(sprop=SPROP) + AAC_BAD_FMTP, after_play=lambda send, stopped:
                          good_frames(send, stopped, extra=lambda n: interleaved(
                              2, rtp(n, n * 640, aac_payload(b"\x21\x10" + bytes(20)), pt=97, marker=True,
                                     ssrc=0x5678)))).url(),
        3: hostile_camera(user="admin", password="pw", after_play=lambda send, stopped: good_frames(
            send, stopped, extra=lambda n: huge if n % 10 == 0 else b"")).url(userinfo="admin:pw"),
        4: hostile_camera(sdp_media=SDP_VIDEO.format(sprop=SPROP) + PCMU_AUDIO, after_play=endless_frame).url(),
        5: hostile_camera(after_play=lambda send, stopped: paced(send, stopped, b"RTSP/\r\n" * 8_600, 600_000)).url(),
        6: hostile_camera(sdp_media=SDP_VIDEO.format(sprop="sprop-parameter-sets=" + base64.b64encode(
            crafted_sps(128 * 1024)).decode() + ",aMuDyyA=")).url(),  # row 5
        7: hostile_camera(**ROW6_VARIANTS["session timeout of 5000 digits"]).url(),  # row 6
        8: hostile_camera(**ROW6_VARIANTS["an in-band SPS over 65535 bytes"]).url(),  # row 6
        9: hostile_camera(after_play=lambda send, stopped: good_frames(send, stopped, frames=50, keyframe=lambda n: [
            stap_a(b"\x67\x42", PPS) if n % 2 else stap_a(ROW7_CROPPED_SPS, PPS)])).url(),  # row 7
    }
    flapper = hostile_camera()  # row 9: down and up again every few seconds while the web is asked
    hostile[10] = flapper.url()
    flapping = threading.Event()

    def flap():
        while not flapping.wait(2.5):
            flapper.go_down()
            if flapping.wait(1.0):
                break
            flapper.come_up()
        flapper.come_up()
    channels = f"""
  - id: 1
    name: good
    source: {{type: rtsp, url: "{rtsp_server.url('/cam1')}", timeout_s: 3, client: native}}
""" + "".join(f"""
  - id: {number}
    name: hostile {number}
    source: {{type: rtsp, url: "{url}", timeout_s: 2, client: native}}
""" for number, url in hostile.items())
    root = tmp_path / "data"
    config = parse_config(f"""
storage:
  path: {root}
  segment_seconds: 2
  retention: {{max_used_percent: 99, min_free_bytes: 0, locked_floor_bytes: 0}}
web: {{listen: "127.0.0.1:8080"}}
channels:
{channels}
""", source="test.yaml")
    from appliance.sources import channel_sources
    clocks = RealClocks()
    taps: dict[int, Tap] = {}

    def sources(channel):
        built = channel_sources(channel, clocks=clocks)
        main = Tap(built["main"])
        taps[channel.id] = main
        return {**built, "main": main}

    nvr = Appliance(config, clocks=clocks, sources=sources, listen=("127.0.0.1", socket_free_port()))
    nvr.start()
    try:
        wait_for(lambda: len(taps[1].video_at) >= 25, timeout_s=15, what="the good channel's first second")
        add_web_user(nvr.supervisor.root)
        web = nvr.web_server
        rss = RssSampler()
        latencies: list[float] = []
        started = time.monotonic()
        threading.Thread(target=flap, daemon=True).start()
        with httpx.Client(base_url=web.address, timeout=10) as client:
            wait_for(lambda: _pings(client), timeout_s=5, what="the web server")
            client.post("/api/login", json=dict(zip(("username", "password"), WEB_USER))).raise_for_status()
            while time.monotonic() - started < HOSTILE_WINDOW_S:
                asked = time.monotonic()
                assert client.get("/api/health").status_code == 200
                latencies.append(time.monotonic() - asked)
                time.sleep(0.2)
        ended = time.monotonic()
        flapping.set()
        peak = rss.stop()
        gap = max_gap(taps[1].video_at, started, ended)
        by_channel = {r.segmenter.channel: r for r in nvr.supervisor.recorders}
        failures = {number: by_channel[number].failures for number in hostile}
        print(f"\nweb: slowest answer {max(latencies):.3f} s over {len(latencies)}; good channel's longest gap "
              f"{gap:.2f} s; RSS grew {peak:.0f} MB to {rss.peak_mb:.0f} MB; hostile failures {failures}")
    finally:
        nvr.stop()
    assert max(latencies) <= 3.0
    assert gap <= GOOD_GAP_LIMIT_S and peak < RSS_GROWTH_LIMIT_MB
    assert by_channel[1].failures == 0


def socket_free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pings(client) -> bool:
    import httpx
    try:
        return client.get("/api/ping").status_code == 200
    except httpx.TransportError:
        return False
