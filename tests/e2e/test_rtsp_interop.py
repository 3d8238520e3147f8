"""Recording from RTSP peers nobody here wrote, through the appliance's RTSP path (`client: auto`, and
`native` where it applies) -> StreamRecorder -> Segmenter -> files + index, in real time.

The peers: VLC's RTSP server (UDP only), RTP packetized by FFmpeg (relayed untouched by GStreamer's
server), H.265 and B-frame cameras, Basic and Digest authentication (GStreamer's RTSPAuth), a camera with
SPS/PPS only in-band, a camera that reboots mid-stream, and a lossy link (tc netem in a namespace this
test makes). Every recording is checked by decoding it with FFmpeg (PyAV): frames, no decoder error, the
audio track where the peer sends one, the index's durations against the files' own sample times.
design/rtsp-interop.md holds the table these tests back.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import pytest
from support.camera_rig import CameraRig, started_rigs
from support.interop import (FfmpegRtpSender, InteropServer, LossyLink, SniffingProxy, VlcServer, make_av_clip,
                             netns_available, rtsp_answer, rtsp_describe, vlc_available)
from support.rtsp import rtsp_available
from support.waiting import wait_for

from base.clock import RealClocks
from base.media import EncodedPacket, StreamInfo
from drivers.rtsp.auto import rtsp_camera
from drivers.rtsp.ffmpeg import CameraError
from drivers.rtsp.native import NativeUnsupported
from drivers.rtsp.sdp import h264_parameter_sets, hex_config, parse_sdp
from recorder.index import Segment

pytestmark = pytest.mark.rtsp

SEGMENT_S = 2
LIVE = "live:320x240@25,gop=25,bitrate=300"  # GStreamer's x264enc, a keyframe every second


# --- fixtures ------------------------------------------------------------------------------------------

def _require(check: Callable[[], tuple[bool, str]], what: str) -> None:
    ok, reason = check()
    if not ok:
        pytest.skip(f"{what} unavailable: {reason}")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """20 s of 320x240@25 H.264 (a keyframe a second, no B-frames) + AAC 48 kHz mono."""
    _require(rtsp_available, "GStreamer RTSP server")
    folder = tmp_path_factory.mktemp("interop-clip")
    return make_av_clip(folder / "clip.mp4")


@pytest.fixture
def vlc(clip):
    _require(vlc_available, "VLC")
    servers: list[VlcServer] = []

    def make(**kwargs) -> VlcServer:
        servers.append(VlcServer(clip, **kwargs))
        return servers[-1].start()

    yield make
    for server in servers:
        server.__exit__()


@pytest.fixture
def interop_server():
    _require(rtsp_available, "GStreamer RTSP server")
    servers: list[InteropServer] = []

    def make(mounts: dict[str, str], **kwargs) -> InteropServer:
        prefix = kwargs.pop("command_prefix", ())
        host = kwargs.pop("host", "127.0.0.1")
        servers.append(InteropServer(host=host, command_prefix=prefix))
        return servers[-1].start(mounts, **kwargs)

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def ffmpeg_sender(tmp_path):
    senders: list[FfmpegRtpSender] = []

    def make(name: str) -> FfmpegRtpSender:
        senders.append(FfmpegRtpSender(tmp_path, name))
        return senders[-1]

    yield make
    for sender in senders:
        sender.stop()


# --- the recording rig -----------------------------------------------------------------------------------

class TapSource:
    """A PacketSource wrapper that keeps what the camera delivered, per connection."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.opened: list[StreamInfo] = []
        self.delivered: list[list[EncodedPacket]] = []
        self.errors: list[str] = []
        self.runs_counter: Callable[[], int] = lambda: 0
        self.runs_before: list[int] = []  # runs the segmenter had begun when each connection opened

    def open(self) -> StreamInfo:
        try:
            info = self.inner.open()
        except Exception as exc:
            self.errors.append(str(exc))
            raise
        self.opened.append(info)
        self.delivered.append([])
        self.runs_before.append(self.runs_counter())
        return info

    def packets(self) -> Iterator[EncodedPacket]:
        got = self.delivered[-1]
        try:
            for packet in self.inner.packets():
                got.append(packet)
                yield packet
        except Exception as exc:
            self.errors.append(str(exc))
            raise

    def close(self) -> None:
        self.inner.close()

    def probe(self) -> bool:
        """The client's cheap check between attempts (a TCP connect), passed through."""
        return self.inner.probe()

    def video(self, connection: int) -> list[EncodedPacket]:
        return [p for p in self.delivered[connection] if p.track == "video"]


class Rig(CameraRig):
    """One camera recorded into a fresh data root, seen through a TapSource that counts the segmenter's runs."""

    def __init__(self, root: Path, url: str, *, client: str, timeout_s: float = 3.0):
        super().__init__(root, url, tap=TapSource, client=client, timeout_s=timeout_s, segment_seconds=SEGMENT_S,
                         reconnect_max_s=0.5)
        self.tap.runs_counter = lambda: self.segmenter.stats.runs
        self.damaged: list[str] = []  # segments check_recording let through as damaged by UDP loss

    def runs(self) -> list[int]:
        return sorted({s.run_id for s in self.segments()})

    def connection_segments(self, connection: int) -> list[Segment]:
        """The segments recorded from connection number `connection` (run ids count up from 1 in a
        fresh index, one per run the segmenter begins)."""
        first = self.tap.runs_before[connection]
        last = self.tap.runs_before[connection + 1] if connection + 1 < len(self.tap.runs_before) else None
        return [s for s in self.segments() if s.run_id > first and (last is None or s.run_id <= last)]


@pytest.fixture
def make_rig(tmp_path):
    """`make_rig(url, client="auto", ...)`: a started Rig, closed after the test."""
    with started_rigs(tmp_path, functools.partial(Rig, client="auto")) as make:
        yield make


# --- what a recording must be ----------------------------------------------------------------------------

class SegmentDamaged(AssertionError):
    """A segment whose video does not decode cleanly."""


@dataclass
class SegmentCheck:
    video_frames: int
    video_span_s: float
    audio_frames: int
    audio_span_s: float
    frame_s: float


def check_segment(root: Path, seg: Segment, *, audio: bool, whole_audio: bool = True) -> SegmentCheck:
    """Decode one segment completely with FFmpeg and hold it to its index row: it starts with a keyframe,
    decodes without a single decoder message, has as many frames as the index says, its samples span
    what the index says (within two frames), and it has an audio track that decodes iff `audio`, spanning
    the video's time (within 0.5 s) when `whole_audio`."""
    path = root / seg.path
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.WARNING)
    try:
        with av.logging.Capture(local=False) as logs:
            with av.open(str(path)) as container:
                video = container.streams.video[0]
                samples = [p for p in container.demux(video) if p.size]
                frame_s = float(max(p.duration for p in samples) * video.time_base)
                span_s = float((max(p.pts + p.duration for p in samples) - min(p.pts for p in samples))
                               * video.time_base)
                first_keyframe = samples[0].is_keyframe
            with av.open(str(path)) as container:
                container.streams.video[0].codec_context.options = {"err_detect": "explode"}
                video_frames = 0
                try:
                    for _ in container.decode(video=0):
                        video_frames += 1
                except av.error.InvalidDataError as exc:
                    raise SegmentDamaged(f"{seg.path} (run {seg.run_id}, seq {seg.seq}, {seg.frames} frames): "
                                         f"frame {video_frames} does not decode: {exc}") from exc
            audio_frames, audio_span_s = 0, 0.0
            with av.open(str(path)) as container:
                has_audio = bool(container.streams.audio)
                if has_audio:
                    stream = container.streams.audio[0]
                    packets = [p for p in container.demux(stream) if p.size]
                    audio_span_s = float((packets[-1].pts + packets[-1].duration - packets[0].pts) * stream.time_base)
                    audio_frames = sum(len(stream.codec_context.decode(p)) for p in packets)
    finally:
        av.logging.set_level(previous)
    messages = [f"{name}: {message.strip()}" for _level, name, message in logs]
    if messages:
        raise SegmentDamaged(f"{seg.path}: decoder messages {messages}")
    assert first_keyframe, f"{seg.path} does not start with a keyframe"
    assert video_frames == seg.frames == len(samples), (seg.path, video_frames, seg.frames, len(samples))
    indexed_s = (seg.end_us - seg.start_us) / 1e6
    assert abs(span_s - indexed_s) <= 2 * frame_s + 1e-3, f"{seg.path}: {span_s:.3f} s of samples, index {indexed_s:.3f} s"
    assert has_audio == audio, f"{seg.path}: audio track {'missing' if audio else 'unexpected'}"
    if audio:
        assert audio_frames > 0, seg.path
        assert not whole_audio or abs(audio_span_s - span_s) < 0.5, (seg.path, audio_span_s, span_s)
    return SegmentCheck(video_frames, span_s, audio_frames, audio_span_s, frame_s)


def check_recording(rig: Rig, *, audio: bool, min_segments: int = 2, rtp_missed: int = 0) -> list[SegmentCheck]:
    """Check every segment (check_segment), allowing only damage the network did: over UDP a packet can
    go missing before FFmpeg's client sees it, and that client hands on the frame without it, so up to
    `rtp_missed` segments (the "RTP: missed" reports FFmpeg logged meanwhile) may fail to decode; they are
    kept in `rig.damaged`. Anything else is a failure."""
    segs = rig.segments()
    assert len(segs) >= min_segments, [s.path for s in segs]
    checks, rig.damaged = [], []
    last_of_run = {max((s for s in segs if s.run_id == run), key=lambda s: s.seq).id for run in {s.run_id for s in segs}}
    for seg in segs:
        try:
            # A run's last segment was cut by the camera going or by stop(): audio arriving behind the
            # video (FFmpeg's client over UDP, just after VLC restarted) is cut with it.
            checks.append(check_segment(rig.root, seg, audio=audio, whole_audio=seg.id not in last_of_run))
        except SegmentDamaged as exc:
            rig.damaged.append(str(exc))
    assert len(rig.damaged) <= rtp_missed, (rig.damaged, f"FFmpeg reported {rtp_missed} missed RTP packets")
    return checks


@pytest.fixture
def ffmpeg_log():
    """FFmpeg's warnings while the test runs (a lost RTP packet over UDP shows as "RTP: missed N packets")."""
    previous, skip = av.logging.get_level(), av.logging.get_skip_repeated()
    av.logging.set_level(av.logging.WARNING)
    av.logging.set_skip_repeated(False)  # count every report
    try:
        with av.logging.Capture(local=False) as logs:
            yield logs
    finally:
        av.logging.set_level(previous)
        av.logging.set_skip_repeated(skip)


def rtp_missed(logs) -> int:
    return sum(1 for _level, _name, message in logs if "RTP: missed" in message)


def recordable_frames(packets: list[EncodedPacket]) -> int:
    """How many of a connection's video frames the segmenter records: from the first keyframe on."""
    first = next((i for i, p in enumerate(packets) if p.keyframe), len(packets))
    return len(packets) - first


def record(rig: Rig, segments: int, timeout_s: float = 20) -> None:
    """Wait for `segments` closed segments, then stop (which closes and indexes the open one too)."""
    wait_for(lambda: len(rig.segments()) >= segments, timeout_s=timeout_s, what=f"{segments} segments")
    rig.recorder.stop()


# --- VLC ---------------------------------------------------------------------------------------------------

def test_vlc_serves_udp_only_and_auto_records_its_h264_and_aac_with_ffmpeg_over_udp(vlc, make_rig, ffmpeg_log):
    server = vlc()
    head, body = rtsp_describe(server.host, server.port, server.path)
    assert " 200 " in head.split("\r\n")[0] and "Server: VLC/" in head
    # VLC's SDP (both tracks on payload type 96, in either order, fmtp names capitalised) reads as it should
    sdp = parse_sdp(body, base_url=server.url)
    assert sorted(m.kind for m in sdp.media) == ["audio", "video"]
    video, audio = sdp.first("video"), sdp.first("audio")
    assert [n[0] & 0x1F for n in h264_parameter_sets(video.fmtp)] == [7, 8]
    assert hex_config(audio.fmtp) == bytes.fromhex("118856e500") and audio.fmtp["sizelength"] == "13"
    with pytest.raises(NativeUnsupported, match="will not send RTP over TCP"):
        rtsp_camera(server.url, client="native", name="cam", clocks=RealClocks(), timeout_s=5).open()

    rig = make_rig(server.url, client="auto")
    record(rig, 2)
    assert rig.camera.client == "ffmpeg" and "RTP over TCP" in rig.camera.fallback_reason
    assert rig.tap.opened[0].audio is not None and rig.tap.opened[0].audio.codec == "aac"
    checks = check_recording(rig, audio=True, rtp_missed=rtp_missed(ffmpeg_log))
    assert sum(c.video_frames for c in checks) >= 2 * SEGMENT_S * 25 - 25 or rig.damaged
    assert len(rig.runs()) == 1 and rig.recorder.failures == 0, rig.tap.errors


# --- RTP packetized by FFmpeg ----------------------------------------------------------------------------

def test_ffmpeg_packetized_h264_and_aac_are_recorded_by_the_native_client(interop_server, ffmpeg_sender, clip,
                                                                        make_rig):
    sender = ffmpeg_sender("copy").copy(clip)
    server = interop_server({"/ff": f"relay:{sender.sdp_path}"})
    ffmpeg_sdp = parse_sdp(sender.sdp_path.read_text(), base_url="rtsp://127.0.0.1/")
    _, body = rtsp_describe(server.host, server.port, "/ff")
    served = parse_sdp(body, base_url=server.url("/ff"))
    for kind, names in (("video", ("sprop-parameter-sets", "packetization-mode")), ("audio", ("config", "sizelength"))):
        for name in names:  # the format parameters the client reads are FFmpeg's
            assert served.first(kind).fmtp[name] == ffmpeg_sdp.first(kind).fmtp[name], (kind, name, body)
    rig = make_rig(server.url("/ff"), client="auto")
    record(rig, 2)
    assert rig.camera.client == "native", rig.camera.fallback_reason
    info = rig.tap.opened[0]
    assert (info.width, info.height) == (320, 240)
    assert info.audio is not None and (info.audio.codec, info.audio.sample_rate) == ("aac", 48000)
    check_recording(rig, audio=True)
    assert rig.recorder.failures == 0, rig.tap.errors


def test_parameter_sets_only_in_band_are_waited_for_and_recorded(interop_server, ffmpeg_sender, make_rig):
    sender = ffmpeg_sender("inband").encode(b_frames=0)
    assert "sprop-parameter-sets" not in sender.sdp_path.read_text()  # FFmpeg's own SDP has none either
    server = interop_server({"/inband": f"relay:{sender.sdp_path},sprop=no"})
    head, body = rtsp_describe(server.host, server.port, "/inband")
    assert " 200 " in head.split("\r\n")[0] and "H264/90000" in body and "sprop-parameter-sets" not in body
    rig = make_rig(server.url("/inband"), client="auto")
    record(rig, 2)
    assert rig.camera.client == "native", rig.camera.fallback_reason
    first = next(p for p in rig.tap.video(0) if p.keyframe)  # (the frames before it are not recorded)
    sps_in_band = _nals(first.data)[0]
    assert sps_in_band[0] & 0x1F == 7  # the first frame recorded is a keyframe led by the in-band SPS
    assert sps_in_band in rig.tap.opened[0].extradata  # and the avcC record was built from it
    check_recording(rig, audio=False)
    assert rig.recorder.failures == 0, rig.tap.errors


def _nals(sample: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(sample):
        size = int.from_bytes(sample[pos:pos + 4], "big")
        out.append(sample[pos + 4:pos + 4 + size])
        pos += 4 + size
    return out


def test_a_b_frame_camera_ends_the_native_stream_and_auto_records_it_with_ffmpeg(interop_server, ffmpeg_sender,
                                                                              make_rig):
    sender = ffmpeg_sender("bframes").encode(b_frames=2)
    server = interop_server({"/bf": f"relay:{sender.sdp_path}"})
    native = rtsp_camera(server.url("/bf"), client="native", name="cam", clocks=RealClocks(), timeout_s=5)
    try:
        with pytest.raises(NativeUnsupported, match="B-frames"):  # while opening (the SPS is in-band) or after
            native.open()
            for _ in native.packets():
                pass
    finally:
        native.close()

    rig = make_rig(server.url("/bf"), client="auto")
    wait_for(lambda: rig.camera.client == "ffmpeg", timeout_s=10, what="the fallback to FFmpeg's client")
    wait_for(lambda: len(rig.segments()) >= 2 and rig.recorder.connected, timeout_s=20,
             what="segments from FFmpeg's client")
    rig.recorder.stop()
    assert "B-frames" in rig.camera.fallback_reason
    # The native client noticed within the first frames: nothing of its connection was recorded, and
    # FFmpeg's connection is the one run.
    assert len(rig.runs()) == 1, (rig.runs(), rig.tap.errors)
    ffmpeg_connection = len(rig.tap.opened) - 1
    assert any(p.pts != p.dts for p in rig.tap.video(ffmpeg_connection)), "no reordered frame reached the recorder"
    check_recording(rig, audio=False)


def test_an_h265_camera_is_handed_to_ffmpeg_and_refused_by_the_recorder(interop_server, make_rig):
    server = interop_server({"/h265": "live:320x240@25,codec=h265"})
    rig = make_rig(server.url("/h265"), client="auto")
    wait_for(lambda: rig.recorder.failures >= 2, timeout_s=15, what="two failed attempts")
    rig.recorder.stop()
    assert rig.camera.client == "ffmpeg" and "hevc" in rig.camera.fallback_reason
    assert rig.source_lost() and "codec hevc not supported" in rig.recorder.last_error
    assert rig.segments() == []


# --- authentication --------------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["digest", "basic"])
def test_a_camera_that_needs_authentication_is_recorded_with_its_scheme(interop_server, make_rig, scheme):
    server = interop_server({"/cam": LIVE}, auth=(scheme, "admin", "pa:ss w"))
    challenge = rtsp_answer(server.host, server.port, "/cam")
    assert " 401 " in challenge.split("\r\n")[0]
    offered = [line.split(":", 1)[1].split()[0] for line in challenge.split("\r\n")
               if line.lower().startswith("www-authenticate:")]
    assert offered == [scheme.capitalize()], challenge  # the server takes this scheme and no other

    refused = rtsp_camera(server.url("/cam", userinfo="admin:wrong"), client="auto", name="cam", clocks=RealClocks(),
                          timeout_s=5)
    with pytest.raises(CameraError, match="401"):
        refused.open()
    assert refused.client == "native"  # a refusal is not a reason to try FFmpeg's client
    with SniffingProxy(server.host, server.port) as proxy:
        rig = make_rig(proxy.url("/cam", userinfo="admin:pa%3Ass%20w"), client="auto")
        record(rig, 2)
    assert rig.camera.client == "native", rig.camera.fallback_reason
    schemes = {line.split(b":", 1)[1].split()[0].decode() for line in bytes(proxy.sent).split(b"\r\n")
               if line.lower().startswith(b"authorization:")}
    assert schemes == {scheme.capitalize()}, schemes  # what the client sent on the wire
    check_recording(rig, audio=False)
    assert rig.recorder.failures == 0, rig.tap.errors


# --- a camera that reboots ---------------------------------------------------------------------------------

def _reboot_and_check(rig: Rig, server, *, audio: bool, ffmpeg_log=()) -> None:
    def current_connection_recorded() -> bool:
        return rig.recorder.connected and bool(rig.connection_segments(len(rig.tap.opened) - 1))

    wait_for(current_connection_recorded, timeout_s=15, what="a segment from the current connection")
    time.sleep(0.5)  # into the next segment
    cut = len(rig.tap.opened) - 1
    server.stop(kill=True)  # the power goes: no TEARDOWN, no clean close of the session
    wait_for(rig.source_lost, timeout_s=10, what="the source_lost alarm")
    server.restart()
    wait_for(lambda: len(rig.tap.opened) > cut + 1 and rig.connection_segments(len(rig.tap.opened) - 1),
             timeout_s=25, what="a segment from the connection after the reboot")
    rig.recorder.stop()
    # Nothing lost before the cut: every frame the cut connection delivered from its first keyframe on is
    # in its segments (the frame in flight when the power went may be left out).
    expected = recordable_frames(rig.tap.video(cut))
    recorded = sum(s.frames for s in rig.connection_segments(cut))
    assert expected - 1 <= recorded <= expected, (
        expected, recorded, [(s.run_id, s.seq, s.frames) for s in rig.segments()], rig.tap.runs_before,
        rig.tap.errors, rig.segmenter.stats)
    if audio:
        assert all(info.audio is not None for info in rig.tap.opened), [i.audio for i in rig.tap.opened]
    old, new = rig.connection_segments(cut), rig.connection_segments(len(rig.tap.opened) - 1)
    assert new[0].run_id > old[-1].run_id and new[0].seq == 0 and new[0].start_us >= old[-1].end_us
    check_recording(rig, audio=audio, rtp_missed=rtp_missed(ffmpeg_log))


def test_vlc_rebooting_mid_stream_resumes_as_a_new_run_with_nothing_lost_before_the_cut(vlc, make_rig, ffmpeg_log):
    server = vlc()
    rig = make_rig(server.url, client="auto", timeout_s=2)
    _reboot_and_check(rig, server, audio=True, ffmpeg_log=ffmpeg_log)
    assert rig.camera.client == "ffmpeg"


def test_a_gstreamer_camera_rebooting_mid_stream_resumes_with_the_native_client(interop_server, make_rig):
    server = interop_server({"/cam": LIVE})
    rig = make_rig(server.url("/cam"), client="auto", timeout_s=2)
    _reboot_and_check(rig, server, audio=False)
    assert rig.camera.client == "native"


# --- a lossy link ------------------------------------------------------------------------------------------

@pytest.fixture
def lossy_link():
    _require(netns_available, "a network namespace with netem or nftables")
    with LossyLink(loss_percent=2.0, tag="loss") as link:
        yield link


def test_rtsp_over_a_lossy_link_keeps_recording_decodable_video(lossy_link, interop_server, make_rig):
    server = interop_server({"/cam": LIVE}, host=lossy_link.inner_ip, command_prefix=lossy_link.command_prefix)
    rig = make_rig(server.url("/cam"), client="auto", timeout_s=5)
    record(rig, 3, timeout_s=30)
    assert rig.camera.client == "native", rig.camera.fallback_reason
    checks = check_recording(rig, audio=False, min_segments=3)
    assert rig.recorder.failures == 0, rig.tap.errors  # TCP carried the RTP through the loss
    assert rig.camera.statistics()["video_rtp_lost"] == 0
    assert sum(c.video_frames for c in checks) >= 3 * SEGMENT_S * 25 - 25
    assert lossy_link.dropped_packets() > 0, lossy_link.impairment  # the link really lost packets


def test_vlc_over_a_lossy_link_records_over_udp(lossy_link, vlc, make_rig, ffmpeg_log):
    server = vlc(host=lossy_link.inner_ip, command_prefix=lossy_link.command_prefix)
    rig = make_rig(server.url, client="auto", timeout_s=5)
    record(rig, 3, timeout_s=30)
    assert rig.camera.client == "ffmpeg"
    assert lossy_link.dropped_packets() > 0, lossy_link.impairment
    check_recording(rig, audio=True, min_segments=3, rtp_missed=rtp_missed(ffmpeg_log))
