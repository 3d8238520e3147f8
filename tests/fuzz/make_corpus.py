"""Regenerate the seed corpus in tests/fuzz/corpus/TARGET/ from real captures (run from the tree's root):

    PYTHONPATH=$PWD .venv/bin/python tests/fuzz/make_corpus.py

Where each target's seeds come from:
- rtsp_stream, sdp, rtp_h264, rtp_aac, rtp_g711 (1): a raw TCP client of this script talks RTSP to GStreamer's
  RTSP server (tests/support/rtsp_server.py under /usr/bin/python3: x264 or x265 video, voaacenc AAC or
  G.711 audio) and records every byte the server sends: the responses (OPTIONS, DESCRIBE, SETUP, PLAY,
  a 404 and a 454), the SDP bodies (H.264 + AAC, H.264 + PCMU, H.265) and the interleaved RTP and RTCP
  packets after PLAY. Digest and Basic 401 challenges are not served by that server; two are written
  here in the form of RFC 2617's example (marked "written" below) so the auth code has a start.
- the same targets (2): FFmpeg pushing a stream (`-f rtsp`: ANNOUNCE, RECORD, RTP over TCP from its
  H.264, AAC-hbr and G.711 packetizers) to a listening FFmpeg (`-rtsp_flags listen`), both directions
  recorded by a proxy between them: FFmpeg's SDP, its RTP, its requests and the listener's responses.
- h264_sps, h264_nal: libx264 through PyAV (baseline, main and high profiles, sizes that need cropping,
  with and without VUI timing), plus the SPS and PPS the GStreamer and FFmpeg streams carried (FFmpeg's
  from an RGB test source: High 4:4:4).
- adts: FFmpeg's AAC encoder through PyAV writing ADTS, split into frames; `esds` payloads and
  AudioSpecificConfigs as the recorder writes them.
- pelco_reply: frames and Pelco-D general responses as domes send them (drivers.pelco.protocol.encode, the same
  bytes the dome simulator sends), alone and with line noise between them.
- smartctl_json: the real smartctl reports of tests/hal/data/smartctl (its README says where each comes
  from: real disks' reports from a public project's test data and smartctl 7.3 run on this VM's
  devices), whole and cut at seeded random offsets as a broken pipe would cut them.
- onvif_notification: PullMessages answers built from the message shapes of tests/support/onvif_events.py
  (Hikvision, Dahua, Reolink, Axis, the standard digital input; its docstring cites the public captures).
- onvif_probe_match: ipycam 1.3.0's ProbeMatches and Hello (its own renderer), and ProbeMatches written
  in the ONVIF Core specification's shape with a camera's scopes (see `onvif_seeds`).
- fmp4_recovery: a segment written by the recorder (recorder.fmp4: x264 video and FFmpeg AAC from
  PyAV) whole, and cut at seeded random offsets as a crash would cut it.

Multi-packet inputs use the targets' record framing (2-byte length, then the bytes: targets.records).
Output is deterministic except for the captured streams (timestamps, SSRCs); re-running replaces the
seeds. The whole corpus stays well under 1 MB.
"""
from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import random
import re
import shutil
import socket
import sys
import time
from fractions import Fraction
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
ROOT = FUZZ_DIR.parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

CAPTURE_S = 2.0  # of RTP after PLAY, per stream
MAX_CAPTURE_BYTES = 48 * 1024


def _targets():
    spec = importlib.util.spec_from_file_location("nvr_fuzz_targets", FUZZ_DIR / "targets.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


T = _targets()


class Corpus:
    """Writes seeds named by their content's hash (so equal seeds collapse), counting what was written."""

    def __init__(self, root: Path):
        self.root = root
        self.count: dict[str, int] = {}
        self._seen: set[tuple[str, str]] = set()

    def reset(self) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)

    def add(self, target: str, data: bytes, label: str) -> None:
        if not data:
            return
        data = data[:T.TARGETS[target].max_len]
        digest = hashlib.sha1(data).hexdigest()[:12]
        if (target, digest) in self._seen:
            return  # the same bytes from another capture (both FFmpeg runs send the same video)
        self._seen.add((target, digest))
        folder = self.root / target
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{label}-{digest}").write_bytes(data)
        self.count[target] = self.count.get(target, 0) + 1


# --- RTSP captures from GStreamer's server ---------------------------------------------------------------

class RawRtspClient:
    """Just enough of an RTSP client to make a server talk, keeping every byte it sends."""

    def __init__(self, host: str, port: int):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.received = bytearray()
        self.cseq = 0
        self.responses: list[bytes] = []

    def request(self, method: str, url: str, headers: dict[str, str] | None = None) -> tuple[bytes, dict[str, str], bytes]:
        self.cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self.cseq}", "User-Agent: nvr-corpus"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        start = len(self.received)
        while True:
            data = bytes(self.received[start:])
            head_end = data.find(b"\r\n\r\n")
            if head_end >= 0:
                head = data[:head_end].decode("latin-1")
                fields = {k.strip().lower(): v.strip() for k, _, v in
                          (line.partition(":") for line in head.split("\r\n")[1:])}
                length = int(fields.get("content-length", "0"))
                if len(data) >= head_end + 4 + length:
                    message = data[:head_end + 4 + length]
                    self.responses.append(message)
                    return message, fields, data[head_end + 4:head_end + 4 + length]
            self._recv()

    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.received += chunk

    def read_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(self.received) < MAX_CAPTURE_BYTES * 4:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                self._recv()
            except TimeoutError:
                break

    def close(self) -> None:
        self.sock.close()


def interleaved_packets(stream: bytes) -> dict[int, list[bytes]]:
    """The `$` frames of a captured stream by channel (RTSP messages between them are stepped over)."""
    out: dict[int, list[bytes]] = {}
    pos = 0
    while pos + 4 <= len(stream):
        if stream[pos] == 0x24:
            size = int.from_bytes(stream[pos + 2:pos + 4], "big")
            if pos + 4 + size > len(stream):
                break
            out.setdefault(stream[pos + 1], []).append(stream[pos + 4:pos + 4 + size])
            pos += 4 + size
            continue
        head_end = stream.find(b"\r\n\r\n", pos)
        if head_end < 0:
            break
        match = re.search(rb"(?i)content-length:\s*(\d+)", stream[pos:head_end])
        pos = head_end + 4 + (int(match.group(1)) if match else 0)
    return out


def capture(url_base: str, mount: str, tracks: int) -> tuple[RawRtspClient, bytes]:
    client = RawRtspClient(*url_base.split("//")[1].split(":"))
    url = url_base + mount
    client.request("OPTIONS", url)
    _, fields, body = client.request("DESCRIBE", url, {"Accept": "application/sdp"})
    base = fields.get("content-base", url + "/").rstrip("/")
    controls = re.findall(r"a=control:(\S+)", body.decode())
    media_controls = [c for c in controls if c != "*"][:tracks]
    session = None
    for number, control in enumerate(media_controls):
        target = control if control.startswith("rtsp://") else f"{base}/{control}"
        headers = {"Transport": f"RTP/AVP/TCP;unicast;interleaved={2 * number}-{2 * number + 1}"}
        if session:
            headers["Session"] = session
        _, fields, _ = client.request("SETUP", target, headers)
        session = fields["session"].split(";")[0]
    client.request("PLAY", base, {"Session": session, "Range": "npt=0.000-"})
    client.read_for(CAPTURE_S)
    client.request("GET_PARAMETER", base, {"Session": session})
    client.request("TEARDOWN", base, {"Session": session})
    client.close()
    return client, body


def rtsp_seeds(corpus: Corpus) -> list[bytes]:
    """Capture the GStreamer server's streams; returns the SPS/PPS it sent (for the H.264 seeds)."""
    from support.rtsp import RtspServer

    mounts = {"/avc_aac": "live:160x120@10,bitrate=120,gop=10,audio=aac",
              "/avc_pcmu": "live:160x120@10,bitrate=120,gop=10,audio=pcmu",
              "/hevc": "live:160x120@10,bitrate=120,gop=10,codec=h265"}
    parameter_sets: list[bytes] = []
    with RtspServer() as server:
        server.start(mounts)
        url_base = f"rtsp://{server.host}:{server.port}"
        errors = RawRtspClient(server.host, server.port)
        errors.request("DESCRIBE", url_base + "/no-such-stream")
        errors.request("PLAY", url_base + "/avc_aac", {"Session": "12345678"})
        errors.close()
        for response in errors.responses:
            corpus.add("rtsp_stream", response, "gst-error")
        for mount, tracks in (("/avc_aac", 2), ("/avc_pcmu", 2), ("/hevc", 1)):
            client, sdp_body = capture(url_base, mount, tracks)
            name = mount.strip("/")
            stream = bytes(client.received)
            corpus.add("sdp", sdp_body, f"gst-{name}")
            for number, response in enumerate(client.responses):
                corpus.add("rtsp_stream", response, f"gst-{name}-response{number}")
            corpus.add("rtsp_stream", stream[:T.TARGETS["rtsp_stream"].max_len], f"gst-{name}-session-start")
            tail = stream[-8192:]
            corpus.add("rtsp_stream", tail[tail.find(b"$"):], f"gst-{name}-session-end")
            channels = interleaved_packets(stream)
            fmtp = {m.group(1): m.group(2) for m in re.finditer(rb"a=fmtp:(\d+) ([^\r\n]*)", sdp_body)}
            if name.startswith("avc"):
                video = channels.get(0, [])
                _split_into_seeds(corpus, "rtp_h264", [], video, f"gst-{name}")
                sprop = re.search(rb"sprop-parameter-sets=([^;\r\n]*)", sdp_body)
                if sprop:
                    parameter_sets += [base64.b64decode(item) for item in sprop.group(1).split(b",") if item]
            audio = channels.get(2, [])
            if name == "avc_aac":
                line = fmtp.get(b"97", b"")
                _split_into_seeds(corpus, "rtp_aac", [line], audio, f"gst-{name}")
            if name == "avc_pcmu":
                rtcp = channels.get(1, []) + channels.get(3, [])
                _split_into_seeds(corpus, "rtp_g711", rtcp[:4], audio, f"gst-{name}")
    for label, text in WRITTEN_CHALLENGES.items():
        corpus.add("rtsp_stream", text.encode(), f"written-{label}")
    return parameter_sets


WRITTEN_CHALLENGES = {  # RFC 2617's example challenge, as cameras send it (no capture: the test server has no auth)
    "digest-401": ('RTSP/1.0 401 Unauthorized\r\nCSeq: 2\r\nWWW-Authenticate: Digest realm="testrealm@host.com", '
                   'qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
                   'opaque="5ccc069c403ebaf9f0171e9517f40e41"\r\n\r\n'),
    "basic-401": 'RTSP/1.0 401 Unauthorized\r\nCSeq: 2\r\nWWW-Authenticate: Basic realm="IP Camera"\r\n\r\n',
    "digest-stale": ('RTSP/1.0 401 Unauthorized\r\nCSeq: 9\r\nSession: 4F2A;timeout=60\r\nWWW-Authenticate: Digest '
                     'realm="cam", nonce="0011", stale=TRUE, algorithm=MD5\r\nWWW-Authenticate: Basic realm="cam"\r\n\r\n'),
}


def _split_into_seeds(corpus: Corpus, target: str, prefix: list[bytes], packets: list[bytes], label: str) -> None:
    """A few seeds of consecutive packets (record-framed, after `prefix`), each within the target's max_len."""
    limit = T.TARGETS[target].max_len
    starts = [0, len(packets) // 3, 2 * len(packets) // 3]
    for number, start in enumerate(starts):
        chosen, size = list(prefix), sum(2 + len(p) for p in prefix)
        for packet in packets[start:]:
            if size + 2 + len(packet) > limit:
                break
            chosen.append(packet)
            size += 2 + len(packet)
        if len(chosen) > len(prefix):
            corpus.add(target, T.frame_records(chosen), f"{label}-part{number}")


# --- RTSP captures between two FFmpegs: one pushing (ANNOUNCE + RECORD), one listening --------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _record_proxy(listen: socket.socket, target_port: int, to_server: bytearray, to_client: bytearray) -> None:
    """Accept one connection, connect it to `target_port`, and copy both ways, keeping every byte."""
    import select

    client, _ = listen.accept()
    server = socket.create_connection(("127.0.0.1", target_port), timeout=10)
    ends = {client: (server, to_server), server: (client, to_client)}
    while True:
        ready, _, _ = select.select(list(ends), [], [], 15)
        if not ready:
            break
        for sock in ready:
            data = sock.recv(65536)
            if not data:
                client.close(), server.close()
                return
            other, kept = ends[sock]
            kept += data
            other.sendall(data)


def ffmpeg_seeds(corpus: Corpus) -> list[bytes]:
    """FFmpeg's own RTSP: requests, SDP (ANNOUNCE) and RTP (its H.264, AAC and G.711 packetizers) from a
    pushing FFmpeg, responses from a listening one, recorded by a proxy between them (RTP over TCP)."""
    import subprocess
    import threading

    parameter_sets: list[bytes] = []
    for label, audio in (("aac", ["-c:a", "aac", "-b:a", "32k"]), ("pcmu", ["-c:a", "pcm_mulaw", "-ar", "8000"])):
        server_port = _free_port()
        listener = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_flags", "listen",
                                     "-listen_timeout", "20", "-i", f"rtsp://127.0.0.1:{server_port}/live",
                                     "-c", "copy", "-f", "null", "-"], stderr=subprocess.DEVNULL)
        listen = socket.socket()
        listen.bind(("127.0.0.1", 0))
        listen.listen(1)
        to_server, to_client = bytearray(), bytearray()
        time.sleep(0.5)  # the listener binds its port
        proxy = threading.Thread(target=_record_proxy, args=(listen, server_port, to_server, to_client), daemon=True)
        proxy.start()
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi", "-i",
                        "testsrc=size=160x120:rate=10", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000",
                        "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-b:v", "100k", *audio,
                        "-f", "rtsp", "-rtsp_transport", "tcp", f"rtsp://127.0.0.1:{listen.getsockname()[1]}/live"],
                       check=True, timeout=60)
        proxy.join(20)
        listener.wait(20)
        listen.close()
        pushed, answered = bytes(to_server), bytes(to_client)
        announce = re.search(rb"ANNOUNCE [^\r]*\r\n(.*?)\r\n\r\n", pushed, re.S)
        length = re.search(rb"(?i)content-length:\s*(\d+)", announce.group(1)) if announce else None
        if announce is None or length is None:
            raise RuntimeError(f"no ANNOUNCE from the pushing FFmpeg ({len(pushed)} bytes captured)")
        sdp_body = pushed[announce.end():announce.end() + int(length.group(1))]
        corpus.add("sdp", sdp_body, f"ffmpeg-{label}")
        sprop = re.search(rb"sprop-parameter-sets=([^;\r\n]*)", sdp_body)
        if sprop:
            parameter_sets += [base64.b64decode(item) for item in sprop.group(1).split(b",") if item]
        corpus.add("rtsp_stream", answered, f"ffmpeg-listener-{label}-responses")
        corpus.add("rtsp_stream", pushed[:T.TARGETS["rtsp_stream"].max_len], f"ffmpeg-pusher-{label}-requests-and-rtp")
        channels = interleaved_packets(pushed[pushed.find(b"$"):])
        _split_into_seeds(corpus, "rtp_h264", [], channels.get(0, []), f"ffmpeg-{label}")
        if label == "aac":
            fmtp = re.search(rb"a=fmtp:97 ([^\r\n]*)", sdp_body)
            _split_into_seeds(corpus, "rtp_aac", [fmtp.group(1) if fmtp else b""], channels.get(2, []), "ffmpeg-aac")
        else:
            _split_into_seeds(corpus, "rtp_g711", [], channels.get(2, []), "ffmpeg-pcmu")
    return parameter_sets


# --- H.264 from libx264, AAC from FFmpeg (PyAV) ---------------------------------------------------------

def encode_h264(width: int, height: int, frames: int, options: dict[str, str], *, profile: str | None = None):
    import av
    import numpy as np

    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.time_base = Fraction(1, 10)
    codec.framerate = Fraction(10, 1)
    codec.options = {"preset": "ultrafast", "tune": "zerolatency", **options}
    if profile:
        codec.profile = profile
    packets = []
    ys, xs = np.mgrid[0:height * 3 // 2, 0:width]
    for number in range(frames):  # a gradient with a moving square: cheap to code, like a quiet camera
        image = ((xs + ys + 3 * number) % 256).astype(np.uint8)
        image[height // 4:height // 2, (4 * number) % width:(4 * number) % width + 8] = 235
        frame = av.VideoFrame.from_ndarray(image, format="yuv420p")
        frame.pts = number
        packets += [bytes(p) for p in codec.encode(frame)]
    packets += [bytes(p) for p in codec.encode(None)]
    return packets


def h264_seeds(corpus: Corpus, captured: list[bytes]) -> list[bytes]:
    """SPS/PPS and access units from libx264; returns the access units of one small stream."""
    from base.h264 import split_annexb

    variants = [((160, 120), {"x264-params": "keyint=10"}, "baseline"),
                ((100, 60), {"x264-params": "keyint=10"}, "main"),  # cropped: 112x64 coded
                ((66, 34), {"x264-params": "keyint=10:vui=0"}, "high"),
                ((320, 180), {"x264-params": "keyint=10:colorprim=bt709:transfer=bt709:colormatrix=bt709"}, "high"),
                ((48, 32), {"x264-params": "keyint=10:interlaced=1"}, "high")]
    stream = []
    for (width, height), options, profile in variants:
        packets = encode_h264(width, height, 4, options, profile=profile)
        nals = split_annexb(packets[0])
        for nal in nals:
            if nal[0] & 0x1F == 7:
                corpus.add("h264_sps", nal, f"x264-{profile}-{width}x{height}-sps")
        corpus.add("h264_nal", b"\x01" + packets[0][:4000], f"x264-{profile}-{width}x{height}-annexb-idr")
        corpus.add("h264_nal", b"\x01" + packets[1][:4000], f"x264-{profile}-{width}x{height}-annexb-p")
        length_prefixed = b"".join(len(n).to_bytes(4, "big") + n for n in nals)
        corpus.add("h264_nal", b"\x04" + length_prefixed[:4000], f"x264-{profile}-{width}x{height}-avcc-idr")
        if not stream:
            stream = packets
    for nal in captured:
        corpus.add("h264_sps" if nal[0] & 0x1F == 7 else "h264_nal", nal if nal[0] & 0x1F == 7 else b"\x00" + nal,
                   "sprop")
    return stream


def aac_adts_frames() -> tuple[list[bytes], bytes]:
    """ADTS frames from FFmpeg's AAC encoder (1 s of a 440 Hz tone, 16 kHz mono), and the raw stream."""
    import av
    import numpy as np

    out = io.BytesIO()
    with av.open(out, "w", format="adts") as container:
        stream = container.add_stream("aac", rate=16000, layout="mono")
        stream.bit_rate = 32000
        samples = (np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000) * 8000).astype(np.int16)
        for start in range(0, 16000, 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, start:start + 1024], format="s16", layout="mono")
            frame.sample_rate = 16000
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    data = out.getvalue()
    frames, pos = [], 0
    while pos + 7 <= len(data):
        length = ((data[pos + 3] & 3) << 11) | (data[pos + 4] << 3) | (data[pos + 5] >> 5)
        if length < 7:
            break
        frames.append(data[pos:pos + length])
        pos += length
    return frames, data


def adts_seeds(corpus: Corpus) -> list[bytes]:
    from recorder.aac import audio_specific_config, esds_payload

    frames, _ = aac_adts_frames()
    for number in (0, 1, len(frames) // 2, len(frames) - 1):
        corpus.add("adts", frames[number], f"ffmpeg-aac-adts-frame{number}")
    for rate, channels in ((16000, 1), (48000, 2), (8000, 1)):
        asc = audio_specific_config(rate, channels)
        corpus.add("adts", asc, f"asc-{rate}-{channels}ch")
        corpus.add("adts", esds_payload(asc, avg_bitrate=64000, track_id=2), f"recorder-esds-{rate}-{channels}ch")
    return frames


# --- Pelco -----------------------------------------------------------------------------------------------

def pelco_seeds(corpus: Corpus) -> None:
    from drivers.pelco.protocol import Ack, Aux, Move, PositionReport, Preset, Query, SetPosition, encode

    replies = [PositionReport("pan", 12345), PositionReport("tilt", 35000), PositionReport("zoom", 65535)]
    commands = [Move(pan=1, pan_speed=0x20), Move(tilt=-1, zoom=1, tilt_speed=0x3F), Move(turbo=True, pan=-1),
                Preset("go", 3), Aux(True, 1), SetPosition("pan", 9000), Query("tilt")]
    for protocol, flag in (("pelco-d", 1), ("pelco-p", 0)):
        frames = [encode(protocol, 1, m) for m in replies + commands]
        if protocol == "pelco-d":
            frames += [encode(protocol, 1, Ack(0)), encode(protocol, 7, Ack(0x12))]
        for mode in (0, 2, 4 * 2, 4 * 3 + 2):  # whole, idle after each chunk, chunks of 7, of 64 with idle
            first = bytes((flag | mode,))
            corpus.add("pelco_reply", first + b"".join(frames), f"{protocol}-replies-mode{mode}")
        noisy = b"\x00\x13" + b"\xaa".join(frames[:4]) + b"\xff\xff"
        corpus.add("pelco_reply", bytes((flag,)) + noisy, f"{protocol}-replies-with-noise")


# --- fMP4 segments written by the recorder --------------------------------------------------------------

def fmp4_seeds(corpus: Corpus, adts_frames: list[bytes]) -> None:
    from recorder.aac import split_adts
    from recorder.fmp4 import AUDIO_TRACK_ID, AudioTrack, Sample, TrackRun, VideoTrack, init_segment, media_fragment
    from base.h264 import avcc_record, parse_sps, to_mp4_sample

    packets = encode_h264(64, 48, 10, {"x264-params": "keyint=5"}, profile="baseline")
    units = [to_mp4_sample(p) for p in packets]
    sps, pps = units[0].sps, units[0].pps
    info = parse_sps(sps)
    track = VideoTrack(info.width, info.height, avcc_record(sps, pps))
    raw_audio = [split_adts(f)[0] for f in adts_frames[:16]]
    asc = split_adts(adts_frames[0])[1]
    for with_audio in (False, True):
        audio = AudioTrack(16000, 1, asc, 32000) if with_audio else None
        parts = [init_segment(track, audio)]
        for number, start in enumerate(range(0, len(units), 5)):  # a fragment a second, each from a keyframe
            samples = [Sample(u.sample, 18000, u.idr) for u in units[start:start + 5]]
            run = None
            if with_audio:
                run = TrackRun(AUDIO_TRACK_ID, number * 16000, [Sample(a, 1024, True) for a in raw_audio[number * 8:number * 8 + 8]])
            parts.append(media_fragment(number + 1, start * 18000, samples, run))
        whole = b"".join(parts)
        label = "recorder-video-audio" if with_audio else "recorder-video"
        corpus.add("fmp4_recovery", whole, f"{label}-whole")
        rng = random.Random(12 + with_audio)
        for _ in range(4):
            cut = rng.randrange(len(parts[0]) - 40, len(whole))
            corpus.add("fmp4_recovery", whole[:cut], f"{label}-cut-at-{cut}")


def smartctl_seeds(corpus: Corpus) -> None:
    rng = random.Random(17)
    for path in sorted((ROOT / "tests" / "hal" / "data" / "smartctl").glob("*.json")):
        data = path.read_bytes()
        corpus.add("smartctl_json", data, path.stem)
        for cut in sorted(rng.sample(range(1, len(data)), 2)):
            corpus.add("smartctl_json", data[:cut], f"{path.stem}-cut{cut}")


def mqtt_seeds(corpus: Corpus) -> None:
    """Every command form the box takes, and near misses, as Home Assistant and mosquitto_pub send them."""
    seeds = [("output/siren/set", b"ON"), ("output/siren/set", b"off"), ("alarm_input/door/armed/set", b"OFF"),
             ("channel/2/ptz_preset/set", b"3"), ("channel/1/record/set", b"PRESS"), ("channel/1/record/set", b"45"),
             ("channel/1/record/set", b'{"duration_s": 12.5}'), ("channel/0/record/set", b""),
             ("output/../set", b"ON"), ("channel/1/ptz_preset/set", b"256")]
    for number, (topic, payload) in enumerate(seeds):
        corpus.add("mqtt_command", T.frame_records([topic.encode(), payload]), f"command-{number}")


def onvif_event_seeds(corpus: Corpus) -> None:
    """PullMessages answers in the shapes real cameras send (tests/support/onvif_events.py says where each
    comes from): one vendor message per seed, a mixed answer, an empty one and near misses."""
    spec = importlib.util.spec_from_file_location("onvif_events", FUZZ_DIR.parent / "support" / "onvif_events.py")
    cams = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = cams  # its dataclasses look their module up
    spec.loader.exec_module(cams)
    messages = {"hikvision-motion": cams.hikvision_motion(True), "hikvision-line": cams.hikvision_line_crossed(),
                "hikvision-field": cams.hikvision_field(True), "hikvision-tamper": cams.hikvision_tamper(False),
                "dahua-motion": cams.dahua_motion_alarm(True), "dahua-scene": cams.dahua_scene_change(True),
                "reolink-motion": cams.reolink_motion(False), "digital-input": cams.digital_input("AlarmIn_0", True),
                "axis-port": cams.axis_port("1", True), "unknown": cams.unknown_topic()}
    for label, message in messages.items():
        corpus.add("onvif_notification", cams.pull_messages_response([message]), f"pull-{label}")
    corpus.add("onvif_notification", cams.pull_messages_response(list(messages.values()) * 2), "pull-mixed")
    corpus.add("onvif_notification", cams.pull_messages_response([]), "pull-empty")
    corpus.add("onvif_notification", cams.pull_messages_response([cams.hikvision_motion(True)])[:300], "pull-cut")


def talk_seeds(corpus: Corpus) -> None:
    """Push-to-talk messages as the page's worklet cuts them (20 ms of a 1 kHz tone at 8 kHz, rising
    sequence numbers, a wrap), and the near misses a broken page would send (version, flags, odd length)."""
    import numpy as np

    from appliance.talk.frames import MAX_FRAME_SAMPLES, build_talk_frame

    t = np.arange(800) / 8000
    tone = (np.sin(2 * np.pi * 1000 * t) * 12000).astype(np.int16)
    frames = [build_talk_frame(sequence, tone[at:at + 160]) for sequence, at in zip(range(65533, 65538), range(0, 800, 160))]
    corpus.add("talk_frames", T.frame_records(frames), "tone-100ms")
    corpus.add("talk_frames", T.frame_records([build_talk_frame(7, np.zeros(MAX_FRAME_SAMPLES, np.int16))]), "largest")
    misses = [b"\x02" + frames[0][1:], frames[0][:1] + b"\x01" + frames[0][2:], frames[0][:-1], frames[0][:4]]
    corpus.add("talk_frames", T.frame_records(misses + frames[:2]), "near-misses")


PROBE_MATCHES_WRITTEN = """<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope"
 xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:wsdd="http://schemas.xmlsoap.org/ws/2005/04/discovery"
 xmlns:dn="http://www.onvif.org/ver10/network/wsdl" xmlns:tds="http://www.onvif.org/ver10/device/wsdl">
<SOAP-ENV:Header><wsa:MessageID>uuid:2e1f5a50-0000-4000-8000-a41437000001</wsa:MessageID>
<wsa:RelatesTo>uuid:9a1c0d3e-0000-4000-8000-000000000001</wsa:RelatesTo>
<wsa:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To>
<wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action></SOAP-ENV:Header>
<SOAP-ENV:Body><wsdd:ProbeMatches>{matches}</wsdd:ProbeMatches></SOAP-ENV:Body></SOAP-ENV:Envelope>"""
PROBE_MATCH_WRITTEN = """<wsdd:ProbeMatch><wsa:EndpointReference><wsa:Address>urn:uuid:{uuid}</wsa:Address>
</wsa:EndpointReference><wsdd:Types>dn:NetworkVideoTransmitter tds:Device</wsdd:Types>
<wsdd:Scopes>onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/Profile/Streaming
onvif://www.onvif.org/hardware/{hardware} onvif://www.onvif.org/name/{name}
onvif://www.onvif.org/location/city/hangzhou</wsdd:Scopes>
<wsdd:XAddrs>http://{ip}/onvif/device_service http://[fe80::a614:37ff:fe00:1]/onvif/device_service</wsdd:XAddrs>
<wsdd:MetadataVersion>10</wsdd:MetadataVersion></wsdd:ProbeMatch>"""


def onvif_seeds(corpus: Corpus) -> None:
    """ProbeMatches as ipycam 1.3.0 (an ONVIF device implementation nobody here wrote) sends them, its
    Hello, and written ones in the shape the ONVIF Core specification (WS-Discovery section) gives, with
    the scopes a camera lists (one match, two matches, percent-encoded names, an IPv6 XAddr)."""
    from ipycam.config import CameraConfig
    from ipycam.discovery import WSDiscoveryServer
    from ipycam.onvif import ONVIFService

    service = ONVIFService(CameraConfig(local_ip="192.168.1.64", name="Front", username="", password=""))
    corpus.add("onvif_probe_match", service.create_probe_match("uuid:9a1c0d3e").encode(), "ipycam-probematch")
    announcer = WSDiscoveryServer.__new__(WSDiscoveryServer)
    announcer.onvif = service
    corpus.add("onvif_probe_match", announcer._build_announcement("Hello").encode(), "ipycam-hello")
    one = PROBE_MATCH_WRITTEN.format(uuid="4a6e0f6e-1dd2-11b2-a105-a41437000001", hardware="DS-2CD2143G0-I",
                                     name="HIKVISION%20DS-2CD2143G0-I", ip="192.168.1.64")
    two = PROBE_MATCH_WRITTEN.format(uuid="00075f00-0000-4000-8000-00075f000002", hardware="M3045-V", name="AXIS",
                                     ip="192.168.1.65:8080")
    corpus.add("onvif_probe_match", PROBE_MATCHES_WRITTEN.format(matches=one).encode(), "written-one")
    corpus.add("onvif_probe_match", PROBE_MATCHES_WRITTEN.format(matches=one + two).encode(), "written-two")


ONVIF_REQUESTS = Path(__file__).resolve().parents[1] / "support" / "onvif_requests"


def onvif_request_seeds(corpus: Corpus) -> None:
    """The requests real clients sent the box (onvif-zeep-async, WSDiscovery: tests/support/onvif_requests),
    a Digest header, and the classic hostile documents (entity expansion, external entity, deep nesting)."""
    for path in sorted(ONVIF_REQUESTS.glob("*.xml")):
        corpus.add("onvif_request", path.read_bytes(), path.stem)
    corpus.add("onvif_request", b'Digest username="viewer", realm="nvr", nonce="1:ab", uri="/onvif/device_service", '
               b'response="0123456789abcdef0123456789abcdef", qop=auth, nc=00000001, cnonce="x"', "digest-header")
    corpus.add("onvif_request", b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><l>&b;</l>',
               "entity-expansion")
    corpus.add("onvif_request", b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>', "external-entity")
    corpus.add("onvif_request", b"<a>" * 40 + b"</a>" * 40, "deep")


def main() -> int:
    corpus = Corpus(FUZZ_DIR / "corpus")
    corpus.reset()
    captured = rtsp_seeds(corpus) + ffmpeg_seeds(corpus)
    h264_seeds(corpus, captured)
    frames = adts_seeds(corpus)
    pelco_seeds(corpus)
    fmp4_seeds(corpus, frames)
    smartctl_seeds(corpus)
    mqtt_seeds(corpus)
    talk_seeds(corpus)
    onvif_seeds(corpus)
    onvif_request_seeds(corpus)
    onvif_event_seeds(corpus)
    total = sum(p.stat().st_size for p in corpus.root.rglob("*") if p.is_file())
    for target in T.TARGETS:
        print(f"{target:15} {corpus.count.get(target, 0):3} seeds")
    print(f"total {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
