"""Fuzz targets: one function per byte parser that a camera or a wire reaches, each taking `bytes`.

Each target drives its parser through the API the product uses and asserts the parser's contract:
only the documented error types escape, the output is bounded by the input, and where a format can
be written too, what is parsed back is what was written. A target returns normally for any input the
contract allows and raises (an AssertionError, or the escaped exception) for one it does not: that
input is a finding. The same functions run under atheris (`./dev fuzz TARGET`, tests/fuzz/run.py),
in CI (tests/fuzz/test_fuzz_targets.py replays the corpus and runs a fixed number of fuzzed inputs)
and in bench/fuzz.py.

Inputs that carry several packets frame them as records: a 2-byte big-endian length, then that many
bytes (`records`). The seed corpus (tests/fuzz/make_corpus.py) is written in the same framing.

This folder is no package on purpose: consumers load it by path (`load_targets`), so it can move.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
CORPUS_DIR = FUZZ_DIR / "corpus"
CRASHERS_DIR = FUZZ_DIR / "crashers"
BASE_URL = "rtsp://10.0.0.5:554/ch1"
CHUNK_SIZES = (1, 2, 7, 64, 500, 1400, 4096, 65536)  # how a TCP connection might cut the bytes
MAX_READS = 512  # reads an input is cut into, at most


def records(data: bytes) -> list[bytes]:
    """`data` as 2-byte-length-prefixed records; a last record cut short is kept as it is."""
    out, pos = [], 0
    while pos + 2 <= len(data):
        size = int.from_bytes(data[pos:pos + 2], "big")
        out.append(data[pos + 2:pos + 2 + size])
        pos += 2 + size
    return out


def frame_records(items: list[bytes]) -> bytes:
    """The inverse of `records` (for corpus writers and tests)."""
    return b"".join(len(item).to_bytes(2, "big") + item for item in items)


# --- RTSP ------------------------------------------------------------------------------------------

def rtsp_stream(data: bytes) -> None:
    """What a camera sends on the RTSP connection: responses, requests, `$` interleaved packets.

    `RtspStreamParser.feed` never raises, skips garbage, buffers at most one header block plus body
    (or one interleaved frame), and hands out no more bytes than came in. Every message is then put
    through what the client does with a response: the session, transport, RTP-Info and auth headers.
    """
    from drivers.rtsp.protocol import (MAX_BODY_BYTES, MAX_HEADER_BYTES, ChallengeError, Authenticator,
                                    RtspProtocolError, RtspStreamParser, parse_interleaved, parse_rtp_info,
                                    parse_session)

    if not data:
        return
    # At most MAX_READS reads per input: feed() rejoins what it buffers on every read, so thousands of
    # 1-byte reads would spend the fuzzing time copying (bench/fuzz ran at 150 inputs/s) rather than parsing.
    step = max(CHUNK_SIZES[data[0] % len(CHUNK_SIZES)], len(data) // MAX_READS)
    parser = RtspStreamParser()
    delivered = [0]

    def handler(view: memoryview) -> None:
        delivered[0] += len(view)
        bytes(view)  # the view must be readable while the handler runs

    parser.handlers = {0: handler, 1: handler, 2: handler, 3: handler}
    messages = []
    for pos in range(0, len(data), step):
        messages += parser.feed(data[pos:pos + step])
        assert parser.buffered <= max(MAX_HEADER_BYTES + 4 + MAX_BODY_BYTES, 4 + 0xFFFF), parser.buffered
    assert delivered[0] + sum(len(m.body) for m in messages) <= len(data)
    assert parser.skipped_bytes <= len(data)
    for message in messages:
        assert message.status or message.method
        message.cseq  # noqa: B018  (a property that parses)
        try:
            session = parse_session(message.header("session"))
            assert session is None or (session.session_id and session.timeout_s > 0)
            channels = parse_interleaved(message.header("transport"))
            assert channels is None or all(0 <= c <= 255 for c in channels)
            parse_rtp_info(message.header("rtp-info"))
            auth = Authenticator("admin", "secret")
            if auth.challenge(message):
                value = auth.authorization("DESCRIBE", BASE_URL)
                assert value is not None and value.split(" ", 1)[0] in ("Basic", "Digest")
        except (RtspProtocolError, ChallengeError):
            pass


# --- SDP and the native client's choice of tracks ---------------------------------------------------

def sdp(data: bytes) -> None:
    """A DESCRIBE answer's body, as the native client reads it.

    `parse_sdp` raises only SdpError. What the client then does with the description (pick the video
    track, notice H.265 and hand the camera to FFmpeg, build the audio depacketizer from fmtp, decode
    the parameter sets of `sprop-parameter-sets`) raises only the client's CameraError family or
    H264Error, which the client turns into CameraError: anything else would escape `open()` and stop
    `client: auto` from falling back.
    """
    from drivers.rtsp import native as rtsp_native
    from drivers.rtsp.ffmpeg import CameraError
    from drivers.rtsp.sdp import SdpError, h264_parameter_sets, hex_config, parse_sdp
    from base.h264 import H264Error, avcc_record, parse_sps

    try:
        description = parse_sdp(data, base_url=BASE_URL)
    except SdpError:
        return
    assert description.media, "parse_sdp returned no media instead of raising SdpError"
    for media in description.media:
        assert media.clock_rate > 0 and media.channels > 0
        hex_config(media.fmtp)
        sets = h264_parameter_sets(media.fmtp)
        for nal in sets:
            try:
                parse_sps(nal)
                avcc_record(nal, b"\x68")
            except H264Error:
                pass
    first = description.first("video")
    native = first is not None and first.encoding == "H264" and first.protocol.upper().startswith("RTP/AVP") and \
        first.fmtp.get("packetization-mode", "0").strip() in ("0", "1")
    try:
        video = rtsp_native._video(description, "fuzz")
    except rtsp_native.NativeUnsupported:
        assert first is not None and not native, "a stream the native client can read was handed to FFmpeg"
    except CameraError:
        assert first is None
    else:
        assert native, f"{video.encoding} stayed with the native client: only H.264 may (H.265 passes to FFmpeg)"
        rtsp_native._video_track(video)
    audio, _info = rtsp_native._audio(description)
    if audio is not None:
        try:
            rtsp_native._audio_track(audio)
        except CameraError:
            pass  # a bad fmtp is the camera's fault, reported as such; anything else would be a crash


# --- RTP depacketizers ---------------------------------------------------------------------------------

def _run_track(track, packets: list[bytes]) -> list:
    out: list = []
    for packet in packets:
        track.receive(memoryview(packet), out)
    return out


def rtp_h264(data: bytes) -> None:
    """RTP packets (records) of an H.264 stream (RFC 6184) through `RtpTrack` + `H264Depacketizer`.

    Never raises; every frame is a well-formed run of 4-byte length-prefixed NAL units of types 1-23
    without access unit delimiters or filler; the frames hold no more than the payloads' bytes plus
    the 4-byte length and rebuilt 1-byte header each NAL unit gains.
    """
    from drivers.rtsp.rtp import H264Depacketizer, RtpTrack
    from base.h264 import split_length_prefixed

    packets = records(data)
    track = RtpTrack(H264Depacketizer(), payload_type=96, clock_rate=90000)
    frames = _run_track(track, packets)
    payload_bytes = sum(len(p) for p in packets)
    total = 0
    for frame, _timestamp, _keyframe in frames:
        nals = split_length_prefixed(frame)
        assert nals
        for nal in nals:
            assert 1 <= nal[0] & 0x1F <= 23 and nal[0] & 0x1F not in (9, 12), nal[:1].hex()
        total += len(frame)
    assert total <= 5 * payload_bytes, (total, payload_bytes)
    assert track.stats.frames == len(frames)


def rtp_aac(data: bytes) -> None:
    """An mpeg4-generic (RFC 3640) audio stream: the first record is the SDP fmtp line a camera gives,
    the rest are RTP packets. The depacketizer is built as the native client builds it; for a bad fmtp
    it raises ValueError (the client tries it while choosing the audio track, and records without
    audio then) or CameraError, nothing else; once built it never raises on packets and never gives
    out more bytes than came in.
    """
    from drivers.rtsp import native as rtsp_native
    from drivers.rtsp.ffmpeg import CameraError
    from drivers.rtsp.rtp import RtpTrack
    from drivers.rtsp.sdp import MediaDescription, parse_fmtp

    items = records(data)
    if not items:
        return
    fmtp = parse_fmtp(items[0].decode("utf-8", errors="replace"))
    media = MediaDescription("audio", "RTP/AVP", 97, "MPEG4-GENERIC", 16000, 1, fmtp, BASE_URL)
    try:
        track = rtsp_native._audio_track(media)
    except (CameraError, ValueError):
        return
    assert isinstance(track, RtpTrack)
    frames = _run_track(track, items[1:])
    assert sum(len(f[0]) for f in frames) <= sum(len(p) for p in items[1:])
    assert track.stats.frames == len(frames)


def rtp_g711(data: bytes) -> None:
    """G.711 RTP packets, then each record read as a compound RTCP packet too (what arrives on the
    odd channel): the depacketizer passes payloads through unchanged, `parse_rtcp` never raises."""
    from drivers.rtsp.rtp import G711Depacketizer, RtpTrack, parse_rtcp

    packets = records(data)
    track = RtpTrack(G711Depacketizer(), payload_type=0, clock_rate=8000)
    frames = _run_track(track, packets)
    assert sum(len(f[0]) for f in frames) <= sum(len(p) for p in packets)
    for packet in packets:
        reports, _bye = parse_rtcp(packet)
        assert len(reports) <= len(packet) // 28


# --- H.264 parameter sets and NAL framing -------------------------------------------------------------

def h264_sps(data: bytes) -> None:
    """An SPS NAL unit (from `sprop-parameter-sets` or in-band) as the client and recorder read it:
    `parse_sps` raises only H264Error and gives a positive picture size; the avcC record built from
    it parses back to the same SPS and PPS."""
    from base.h264 import H264Error, avcc_record, parse_sps
    from base.h264 import parse_avcc_record

    try:
        info = parse_sps(data)
    except H264Error:
        info = None
    if info is not None:
        assert 0 <= info.profile_idc <= 255 and 0 <= info.level_idc <= 255
        assert info.fps is None or info.fps > 0
    try:
        record = avcc_record(data, b"\x68\xce\x38\x80")
    except H264Error:
        return
    sps_list, pps_list, length_size = parse_avcc_record(record)
    assert sps_list == [data] and pps_list == [b"\x68\xce\x38\x80"] and length_size == 4


def h264_nal(data: bytes) -> None:
    """An access unit as a source hands it to the recorder (Annex B or length-prefixed, the framing
    chosen by the first byte), and codec extradata: only H264Error escapes, and a converted sample is
    length-prefixed NAL units holding no parameter sets or delimiters."""
    from base.h264 import ANNEX_B, H264Error, parameter_sets, split_length_prefixed, to_mp4_sample

    if not data:
        return
    framing = (None, ANNEX_B, 1, 2, 4)[data[0] % 5]
    body = data[1:]
    try:
        unit = to_mp4_sample(body, framing)
    except H264Error:
        unit = None
    if unit is not None and unit.sample:
        for nal in split_length_prefixed(unit.sample):
            assert nal[0] & 0x1F not in (7, 8, 9)
        assert len(unit.sample) <= 4 * len(body) + 4
    try:
        parameter_sets(body)
    except H264Error:
        pass


# --- AAC: ADTS, AudioSpecificConfig, esds ---------------------------------------------------------------

def adts(data: bytes) -> None:
    """An ADTS frame (what FFmpeg's AAC encoder and some cameras give), an AudioSpecificConfig and an
    esds payload: only AacError escapes; a split frame's config parses back to the header's fields."""
    from recorder.aac import SAMPLE_RATES, AacError, asc_from_esds, esds_payload, parse_audio_specific_config, split_adts

    try:
        split = split_adts(data)
    except AacError:
        split = None
    if split is not None:
        raw, asc = split
        assert len(raw) < len(data)
        config = parse_audio_specific_config(asc)
        assert config.sample_rate == SAMPLE_RATES[(data[2] >> 2) & 0xF]
        assert config.object_type == (data[2] >> 6) + 1
        assert asc_from_esds(esds_payload(asc)) == asc
    try:
        parse_audio_specific_config(data)
    except AacError:
        pass
    try:
        asc = asc_from_esds(data)
    except AacError:
        return
    assert len(asc) <= len(data)


# --- Pelco -------------------------------------------------------------------------------------------------

def pelco_reply(data: bytes) -> None:
    """What a dome (or noise on the RS-485 line) sends back, through the host's `FrameDecoder`.

    The first byte picks the protocol and how the bytes arrive (chunk size, a quiet gap after each
    chunk or not). Never raises; every byte is either in a decoded frame, counted as garbage or
    still pending; every decoded frame's message encodes to a frame that decodes to the same message
    (not always to the same bytes: any pan speed above the maximum reads as turbo, which is written
    as the protocol's one turbo value).
    """
    from drivers.pelco.protocol import decode, encode
    from drivers.pelco.stream import FrameDecoder

    if not data:
        return
    protocol = "pelco-d" if data[0] & 1 else "pelco-p"
    idle_after_chunk = bool(data[0] & 2)
    step = CHUNK_SIZES[(data[0] >> 2) % len(CHUNK_SIZES)]
    body = data[1:]
    decoder = FrameDecoder(protocol, role="host")
    frames = []
    for pos in range(0, len(body), step):
        frames += decoder.feed(body[pos:pos + step])
        if idle_after_chunk:
            frames += decoder.idle()
    frames += decoder.idle()
    assert decoder.pending_bytes == 0
    rejected_bytes = len(body) - sum(len(f.raw) for f in frames) - decoder.garbage_bytes
    assert 4 * decoder.rejected_frames <= rejected_bytes <= 8 * decoder.rejected_frames, rejected_bytes
    for frame in frames:
        again = decode(frame.protocol, encode(frame.protocol, frame.address, frame.message))
        assert (again.address, again.message) == (frame.address, frame.message), frame


# --- the recorder's fMP4 segments, as the recovery pass reads a crash-cut file ------------------------

_SCRATCH: list[Path] = []


def _scratch_file() -> Path:
    """One file in RAM (or /tmp) reused for every input: the reader takes a path."""
    if not _SCRATCH:
        folder = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else Path(tempfile.gettempdir())
        _SCRATCH.append(folder / f"nvr-fuzz-{os.getpid()}.mp4")
    return _SCRATCH[0]


def fmp4_recovery(data: bytes) -> None:
    """A segment file as the start-up recovery pass finds it after a crash: `read_segment` raises only
    Mp4Error (or OSError), and what it keeps lies inside the file: the usable part ends at or before
    the file's end, and every sample lies inside the usable part."""
    from recorder.fmp4 import read_segment
    from recorder.mp4 import Mp4Error

    path = _scratch_file()
    path.write_bytes(data)
    try:
        contents = read_segment(path)
    except (Mp4Error, OSError):
        return
    assert contents.file_bytes == len(data)
    assert 0 < contents.usable_bytes <= contents.file_bytes
    for sample in contents.samples + contents.audio_samples:
        assert 0 <= sample.offset and sample.offset + sample.size <= contents.usable_bytes, sample
    assert contents.fragments <= len(data) // 16


def smartctl_json(data: bytes) -> None:
    """What `smartctl --json -a` printed (a disk's firmware, a USB bridge and the executable on the PATH
    all reach it): `parse_smartctl_json` raises only SmartParseError, and what it keeps is bounded: each
    text within its limit, the messages counted, a temperature only inside the physical range, every
    count non-negative."""
    from hal.smart import MAX_MESSAGES, MAX_TEXT_CHARS, TEMPERATURE_RANGE_C, SmartParseError, parse_smartctl_json

    try:
        report = parse_smartctl_json(data, device="/dev/fuzz")
    except SmartParseError:
        return
    texts = [report.device, report.device_type, report.protocol, report.model, report.serial, report.firmware]
    assert all(t is None or len(t) <= MAX_TEXT_CHARS for t in texts[1:]), texts
    assert len(report.messages) <= MAX_MESSAGES + 1 and all(len(m) <= MAX_TEXT_CHARS + 40 for m in report.messages)
    assert report.temperature_c is None or TEMPERATURE_RANGE_C[0] <= report.temperature_c <= TEMPERATURE_RANGE_C[1]
    counts = (report.capacity_bytes, report.power_on_hours, report.reallocated_sectors, report.pending_sectors,
              report.uncorrectable_sectors)
    assert all(c is None or (isinstance(c, int) and c >= 0) for c in counts), counts
    assert 0 <= report.exit_status <= 255 and report.health in ("failing", "passed", "standby", "unknown")
    report.as_dict()


# --- MQTT commands from the home's message bus ------------------------------------------------------------

MQTT_PREFIX = "nvr/box"


def mqtt_command(data: bytes) -> None:
    """A message on a command topic, as the broker hands it over: record 1 is the topic (after the
    prefix, bytes as UTF-8 with errors replaced, as paho decodes topics), record 2 the payload.
    `parse_command` raises only CommandError, and a command it returns is within its documented ranges."""
    from appliance.mqtt.commands import (MAX_CHANNEL, MAX_PRESET, MAX_RECORD_S, CommandError, parse_command)

    parts = records(data)
    topic = MQTT_PREFIX + "/" + (parts[0] if parts else b"").decode("utf-8", "replace")
    payload = parts[1] if len(parts) > 1 else b""
    try:
        command = parse_command(MQTT_PREFIX, topic, payload)
    except CommandError:
        return
    if command.kind in ("output", "arm"):
        assert isinstance(command.value, bool) and isinstance(command.target, str) and 1 <= len(command.target) <= 32
        assert command.target in topic
    elif command.kind == "ptz_preset":
        assert 1 <= command.target <= MAX_CHANNEL and 1 <= command.value <= MAX_PRESET
    else:
        assert command.kind == "record" and 1 <= command.target <= MAX_CHANNEL, command
        assert command.value is None or 1 <= command.value <= MAX_RECORD_S, command


def onvif_notification(data: bytes) -> None:
    """A camera's answer to PullMessages, as the event subscriber reads it (drivers.onvif.events).

    `parse_pull_messages` raises only ValueError (not XML, a DTD, over MAX_RESPONSE_BYTES); what it
    returns is bounded by the input and the named limits: no more events than NotificationMessage
    elements the bytes can hold nor than MAX_MESSAGES_PER_PULL, each of a known kind with a source
    no longer than a token and a rule. The same answer then goes through the appliance's coalescing of
    one pull (appliance.alarms.camera_events), which hands over at most two changes per source.
    """
    from drivers.onvif.events import KINDS, MAX_MESSAGES_PER_PULL, MAX_TEXT_CHARS, parse_pull_messages

    try:
        result = parse_pull_messages(data)
    except ValueError:
        return
    assert len(result.events) + len(result.unknown_topics) + result.skipped <= MAX_MESSAGES_PER_PULL
    assert len(result.events) <= data.count(b"NotificationMessage")
    for event in result.events:
        assert event.kind in KINDS and isinstance(event.active, bool), event
        assert len(event.source) <= 2 * MAX_TEXT_CHARS + 1, event
    for topic in result.unknown_topics:
        assert len(topic) <= MAX_TEXT_CHARS
    _coalesce(result.events)


def _coalesce(events: list) -> None:
    from appliance.alarms.camera_events import CameraEvents
    from base.clock import SimulatedClocks

    class _Cameras:
        def channels(self) -> list[int]:
            return [1]

    changes: list[tuple] = []
    sink = CameraEvents(_Cameras(), on_change=lambda *change: changes.append(change), clocks=SimulatedClocks())
    sink._active[1] = {}
    sink._events(1, events)
    sources = {(event.kind, event.source) for event in events}
    assert len(changes) <= 2 * len(sources), (len(changes), len(sources))
    held = {}
    for kind, key, source, active, _detail in changes:
        assert held.get(source, False) != active, "a change that changes nothing was handed over"
        held[source] = active


# --- talk -------------------------------------------------------------------------------------------------

def talk_frames(data: bytes) -> None:
    """What a browser sends on the push-to-talk socket: binary messages as records, 20 ms apart.

    `parse_talk_frame` raises only TalkFrameError; a frame it returns is written back byte for byte by
    `build_talk_frame` and holds 1..MAX_FRAME_SAMPLES samples; the talker's budget admits or drops every
    frame (counted) and never admits more sound than its burst plus the elapsed time allows."""
    from appliance.talk.frames import (BURST_S, MAX_FRAME_SAMPLES, RATE_MARGIN, SAMPLE_RATE, TalkBudget,
                                       TalkFrameError, build_talk_frame, parse_talk_frame)

    budget = TalkBudget(now_s=0.0)
    parsed = admitted_samples = 0
    messages = records(data)
    for number, message in enumerate(messages):
        try:
            frame = parse_talk_frame(message)
        except TalkFrameError:
            continue
        parsed += 1
        assert 1 <= len(frame.samples) <= MAX_FRAME_SAMPLES and 0 <= frame.sequence <= 0xFFFF
        assert build_talk_frame(frame.sequence, frame.samples) == message
        if budget.admit(frame, now_s=number * 0.02):
            admitted_samples += len(frame.samples)
    assert budget.frames + budget.dropped_frames == parsed
    elapsed_s = max(0, len(messages) - 1) * 0.02
    assert admitted_samples <= (BURST_S + elapsed_s * RATE_MARGIN) * SAMPLE_RATE + 1


# --- ONVIF --------------------------------------------------------------------------------------------

def onvif_probe_match(data: bytes) -> None:
    """A WS-Discovery answer datagram (ProbeMatches or Hello), as `discover` reads one from the LAN.

    `parse_probe_matches` raises only ProbeMatchError; it keeps at most MAX_MATCHES devices, each with a
    non-empty endpoint, at most MAX_URIS XAddrs (all http(s) URLs, `url` among them), scopes and types;
    and every character it keeps came from the datagram (no entity expansion: the output is no larger
    than the input)."""
    from drivers.onvif.discovery import MAX_MATCHES, MAX_URIS, ProbeMatchError, parse_probe_matches

    try:
        devices = parse_probe_matches(data, from_address="10.0.0.9")
    except ProbeMatchError:
        return
    assert len(devices) <= MAX_MATCHES
    kept_chars = 0
    for device in devices:
        assert device.endpoint and device.xaddrs and device.url in device.xaddrs
        assert all(x.lower().startswith(("http://", "https://")) for x in device.xaddrs)
        assert max(len(device.xaddrs), len(device.scopes), len(device.types)) <= MAX_URIS
        kept_chars += len(device.endpoint) + sum(map(len, device.xaddrs + device.scopes + device.types))
        assert len(device.name) + len(device.hardware) + len(device.location) <= sum(map(len, device.scopes))
        device.as_dict()
    assert kept_chars <= len(data), (kept_chars, len(data))


def onvif_request(data: bytes) -> None:
    """A request to the ONVIF service or a WS-Discovery datagram, as it comes off the LAN.

    `parse_soap` and `probe_wants_us` raise only XmlError and refuse what is over their limits; a tree
    they build never holds more elements, depth or text than the limits allow. The same bytes as an
    HTTP Digest Authorization header parse to None or to parameters that came from the header. A
    UsernameToken in it is checked as the service checks PasswordDigest: only BadCredentials escapes."""
    from appliance.onvif_server.discovery import probe_wants_us
    from appliance.onvif_server.username_token import DigestTokenChecker
    from appliance.web.users import BadCredentials, User
    from appliance.onvif_server.http_digest import MAX_HEADER_CHARS, parse_digest_header
    from appliance.onvif_server.xml_reader import (MAX_DEPTH, MAX_ELEMENTS, MAX_TEXT_CHARS, XmlError, parse_soap,
                                                   parse_xml)
    from base.clock import SimulatedClocks

    try:
        root = parse_xml(data)
    except XmlError:
        root = None
    if root is not None:
        count, stack = 0, [(root, 1)]
        while stack:
            element, depth = stack.pop()
            count += 1
            assert depth <= MAX_DEPTH and len(element.text) <= MAX_TEXT_CHARS
            stack += [(child, depth + 1) for child in element.children]
        assert count <= MAX_ELEMENTS
    for parse in (parse_soap, lambda b: probe_wants_us(b, ["onvif://www.onvif.org/name/nvr"])):
        try:
            parse(data)
        except XmlError:
            pass
    try:
        token = parse_soap(data).token
    except XmlError:
        token = None
    if token is not None:
        checker = DigestTokenChecker(lambda name: (User(name, "viewer"), "fuzz-pass-1"), clocks=SimulatedClocks())
        try:
            checker.check(token)
        except BadCredentials:
            pass
    header = data[:MAX_HEADER_CHARS + 1].decode("latin-1")
    params = parse_digest_header(header)
    assert params is None or all(value in header for value in params.values())


# --- the registry -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    modules: tuple[str, ...]  # the project modules it exercises: what coverage is measured over
    max_len: int  # the largest input worth trying (libFuzzer's -max_len)


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("rtsp_stream", rtsp_stream, ("drivers.rtsp.protocol",), 8192),
    Target("sdp", sdp, ("drivers.rtsp.sdp", "drivers.rtsp.native", "base.h264"), 8192),
    Target("rtp_h264", rtp_h264, ("drivers.rtsp.rtp",), 8192),
    Target("rtp_aac", rtp_aac, ("drivers.rtsp.rtp", "drivers.rtsp.sdp"), 4096),
    Target("rtp_g711", rtp_g711, ("drivers.rtsp.rtp",), 4096),
    Target("h264_sps", h264_sps, ("base.h264", "base.h264"), 1024),
    Target("h264_nal", h264_nal, ("base.h264",), 4096),
    Target("adts", adts, ("recorder.aac",), 1024),
    Target("pelco_reply", pelco_reply, ("drivers.pelco.protocol", "drivers.pelco.stream"), 512),
    Target("fmp4_recovery", fmp4_recovery, ("recorder.fmp4", "recorder.mp4", "recorder.aac"), 16384),
    Target("smartctl_json", smartctl_json, ("hal.smart",), 32768),
    Target("mqtt_command", mqtt_command, ("appliance.mqtt.commands",), 1024),
    Target("onvif_notification", onvif_notification, ("drivers.onvif.events", "appliance.alarms.camera_events"),
           16384),
    Target("talk_frames", talk_frames, ("appliance.talk.frames",), 8192),
    Target("onvif_probe_match", onvif_probe_match, ("drivers.onvif.discovery", "base.xml_tree"), 16384),


    Target("onvif_request", onvif_request, ("base.xml_tree", "appliance.onvif_server.xml_reader", "appliance.onvif_server.discovery",
                                            "appliance.onvif_server.http_digest",
                                            "appliance.onvif_server.username_token"), 16384),
)}


def corpus_files(name: str) -> list[Path]:
    """The committed seed inputs of a target, then its recorded crashers."""
    return sorted((CORPUS_DIR / name).glob("*")) + sorted((CRASHERS_DIR / name).glob("*"))
