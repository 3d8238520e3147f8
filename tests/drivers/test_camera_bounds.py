"""What one camera may cost, piece by piece (issue 12): every parser bounded and linear, the loop's
watchdog, and credentials that never leave for another host or fall back to Basic."""
from __future__ import annotations

import socket
import threading
import time

import pytest
from support.fake_rtsp import FakeCamera, Script
from support.native_connection import playing_h264_connection
from support.rtp_bytes import IDR, PPS, SPS, fu_a, interleaved, rtp, stap_a

from drivers.rtsp.rtp import (MAX_ACCESS_UNIT_BYTES, MAX_AU_HEADERS, AacDepacketizer, H264Depacketizer)
from drivers.rtsp.ffmpeg import CameraError, CameraRefused
from drivers.rtsp.connection import MAX_ACCESS_UNIT_SPAN_BYTES
from drivers.rtsp.loop import ABORT_CALL_S, RtspLoop
from drivers.rtsp.native import NativeRtspCamera
from drivers.rtsp.protocol import (MAX_HEADER_BYTES, Authenticator, RtspMessage, RtspStreamParser, parse_challenge,
                                parse_interleaved, parse_session)
from base.clock import RealClocks
from base.h264 import H264Error, parse_sps


def cpu_s(call) -> float:
    started = time.process_time()
    call()
    return time.process_time() - started


# --- linear parsers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("garbage", [b"RTSP/\r\n", b"RTSP/", b"RTSP/1.0 200 OK\r\n", b"$", b"OPTIONS x RTSP/"])
def test_resync_over_garbage_is_linear(garbage):
    """Row 4: the same garbage twice as long costs about twice as much, and little (C-speed scans)."""
    def feed(total: int) -> float:
        parser = RtspStreamParser()
        chunk = garbage * (65536 // len(garbage))
        return cpu_s(lambda: [parser.feed(chunk) for _ in range(total // len(chunk))])

    small, large = feed(2 << 20), feed(8 << 20)
    assert large < 0.5, large  # 8 MiB; it was 379 ms per 64 KiB
    assert large < 4 * small * 2 + 0.02  # linear (with slack for a noisy machine)


def test_messages_around_garbage_are_still_found():
    parser = RtspStreamParser()
    out = []
    for piece in [b"junk RTSP/\r\nRT", b"SP/1.0 200 OK\r\nCSeq: 2\r\n\r\n", b"xxRTSP/1.0 4",
                  b"01 Unauthorized\r\nCSeq: 3\r\n\r\n", b"RTSP/1.0 200 OK\r\n" + b"X-A: b\r\n" * 3000 + b"\r\n",
                  b"RTSP/1.0 200 OK\r\nCSeq: 4\r\nContent-Length: 99999999999999999999\r\n\r\n",
                  b"RTSP/1.0 200 OK\r\nCSeq: 5\r\nContent-Length: 2\r\n\r\nok"]:
        out += parser.feed(piece)
    assert [(m.status, m.cseq) for m in out] == [(200, 2), (401, 3), (200, 5)]
    assert out[-1].body == b"ok"


def test_a_huge_challenge_costs_microseconds_not_seconds():
    """Row 2: the 60 kB Digest header took 25 s of a regex holding the GIL."""
    for text in ["Digest " + "a" * 60_000, "Digest " + "," * 60_000 + "=", "Digest " + "a=," * 20_000,
                 'Digest x="' + "\\" * 60_000, "Digest " + "a " * 30_000]:
        assert cpu_s(lambda: parse_challenge(text)) < 0.05
    assert parse_challenge('Digest realm="cam", nonce="n0", qop="auth,auth-int", opaque="a\\"b", stale=TRUE') == (
        "digest", {"realm": "cam", "nonce": "n0", "qop": "auth,auth-int", "opaque": 'a"b', "stale": "TRUE"})
    head = b"RTSP/1.0 401 Unauthorized\r\nCSeq: 9\r\nWWW-Authenticate: Digest " + b"a" * 60_000 + b"\r\n\r\n"
    parser = RtspStreamParser()
    assert cpu_s(lambda: parser.feed(head)) < 0.05 and len(head) > MAX_HEADER_BYTES  # skipped as garbage


def test_numbers_of_thousands_of_digits_are_no_numbers():
    """Row 6: int() of 5000 digits raised ValueError out of open()."""
    assert parse_session("F00D;timeout=" + "9" * 5000).timeout_s == 60.0
    assert parse_session("F00D; Timeout = 20").timeout_s == 20.0
    assert parse_interleaved("RTP/AVP/TCP;interleaved=" + "1" * 5000) is None
    assert parse_interleaved("RTP/AVP/TCP;unicast;interleaved=2-3") == (2, 3)
    assert RtspMessage(headers=[("cseq", "7" * 5000)]).cseq is None


def poc_cycle_sps(cycle: int, pad_bytes: int) -> bytes:
    bits = "01000010" + "00000000" + "00011110" + "1" + "1" + "010" + "0" + "1" + "1"
    code = bin(cycle + 1)[2:]
    bits += "0" * (len(code) - 1) + code + "1" * cycle + "1" + "1" + "1" + "1" + "1" + "1"
    bits += "0" * (-len(bits) % 8)
    return b"\x67" + int(bits, 2).to_bytes(len(bits) // 8, "big") + bytes(pad_bytes)


def test_the_sps_bit_reader_is_linear_and_its_loops_bounded():
    """Row 5: a 128 kB crafted SPS cost 9.3 s; a cycle count is at most 255; the size at most 4 kB."""
    with pytest.raises(H264Error, match="over 4096"):
        parse_sps(poc_cycle_sps(255, 128 * 1024))
    with pytest.raises(H264Error, match="cycle of 300"):
        parse_sps(poc_cycle_sps(300, 0))
    def parse_quietly(sps: bytes) -> None:
        try:
            parse_sps(sps)
        except H264Error:
            pass
    assert cpu_s(lambda: parse_quietly(poc_cycle_sps(255, 3500))) < 0.02  # the most work a 4 kB SPS can ask
    assert (parse_sps(SPS).width, parse_sps(SPS).height) == (160, 120)


# --- bounded depacketizers -------------------------------------------------------------------------

def test_aac_fields_outside_rfc_3640_are_refused_and_au_headers_are_counted():
    """Row 1: indexdeltalength=-13 made each AU header 0 bits wide: the loop never ended."""
    for fields in ({"index_delta_length": -13}, {"size_length": 0}, {"index_length": 17}):
        with pytest.raises(ValueError):
            AacDepacketizer(**fields)
    depacketizer = AacDepacketizer(size_length=1, index_length=0, index_delta_length=0)
    out: list = []
    payload = memoryview(b"\xff\xff" + b"\xff" * 8192)  # 65535 one-bit AU headers announced
    assert cpu_s(lambda: depacketizer.push(payload, 0, True, out)) < 0.05
    assert out == [] and depacketizer.stats.bad_packets == 1 and MAX_AU_HEADERS < 65535


def test_an_access_unit_that_never_ends_is_dropped_at_its_bound():
    """Row 3: FU-A middles at one timestamp without end grew the frame to hundreds of MB."""
    depacketizer = H264Depacketizer()
    out: list = []
    depacketizer.push(memoryview(bytes((0x7C, 0x85)) + bytes(1400)), 0, False, out)
    middle = memoryview(bytes((0x7C, 0x05)) + bytes(1400))
    for _ in range(MAX_ACCESS_UNIT_BYTES // 1400 + 10):
        depacketizer.push(middle, 0, False, out)
    assert depacketizer.oversized == 1 and not depacketizer.assembling and out == []
    payloads = [stap_a(SPS, PPS), *fu_a(IDR, 3)]  # the next keyframe records again
    for number, payload in enumerate(payloads):
        depacketizer.push(memoryview(payload), 3600, number == len(payloads) - 1, out)
    assert len(out) == 1 and out[0][2]


def test_a_frame_spanning_too_much_of_the_stream_frees_the_chunks_it_pins():
    """Small FU-A middles between big packets on another channel: each piece pins its 64 KiB chunk."""
    left, right = socket.socketpair()
    with left, right:
        connection = playing_h264_connection(left)
        connection.feed(interleaved(0, rtp(1, 0, bytes((0x7C, 0x85)) + bytes(10))))
        filler = interleaved(4, bytes(65000))  # a channel nobody set up
        for seq in range(2, MAX_ACCESS_UNIT_SPAN_BYTES // 65000 + 5):
            connection.feed(interleaved(0, rtp(seq, 0, bytes((0x7C, 0x05, 0)))) + filler)
        assert connection.channels[0].track.depacketizer.oversized == 1


def test_the_mailbox_keeps_its_bound_while_waiting_for_the_parameter_sets():
    """Frames before the first SPS piled up in the mailbox for as long as `timeout_s`."""
    def play(send, stopped):
        seq = 1
        while not stopped():
            send(b"".join(interleaved(0, rtp(seq + i, seq * 3600, p, marker=i == 2))
                          for i, p in enumerate(fu_a(b"\x41" + bytes(3000), 3))))
            seq += 3
    camera = FakeCamera(Script(sprop=False, after_play=play))
    peak = []
    try:
        cam = NativeRtspCamera(camera.url(), name="cam", clocks=RealClocks(), timeout_s=1.5, batch_s=0.05)
        with pytest.raises(CameraError, match="parameter sets"):
            import drivers.rtsp.native as native
            original = native._Negotiation._read_into

            def watched(self, connection):
                original(self, connection)
                peak.append(len(connection.mailbox.items))
            native._Negotiation._read_into = watched
            try:
                cam.open()
            finally:
                native._Negotiation._read_into = original
    finally:
        camera.stop()
    assert peak and max(peak) <= 256 + 64  # the bound, plus what one read can add


# --- the loop's watchdog -----------------------------------------------------------------------------

class Spinning:
    """A connection whose handling never returns (an infinite loop in Python code)."""

    where = "rtsp://spinning-camera/s"

    def __init__(self) -> None:
        self.sock, self.peer = socket.socketpair()
        self.sock.setblocking(False)
        self.removed: list = []

    def on_readable(self, now_s: float) -> bool:
        self.sock.recv(4096)
        while True:
            pass

    def on_tick(self, now_s: float) -> bool:
        return True

    def on_removed(self, error=None) -> None:
        self.removed.append(error)
        self.sock.close()


class Counting:
    where = "rtsp://good-camera/s"

    def __init__(self) -> None:
        self.sock, self.peer = socket.socketpair()
        self.sock.setblocking(False)
        self.reads = 0

    def on_readable(self, now_s: float) -> bool:
        self.reads += len(self.sock.recv(4096))
        return True

    def on_tick(self, now_s: float) -> bool:
        return True

    def on_removed(self, error=None) -> None:
        self.sock.close()


def test_the_watchdog_names_the_camera_that_holds_the_loop_and_drops_only_it():
    loop = RtspLoop(clocks=RealClocks(), name="rtsp-loop-watchdog-test")
    good, bad = Counting(), Spinning()
    loop.add(good)
    loop.add(bad)
    stop = threading.Event()

    def good_camera():
        while not stop.wait(0.05):
            good.peer.send(b"x" * 100)
    threading.Thread(target=good_camera, daemon=True).start()
    try:
        bad.peer.send(b"go")
        deadline = time.monotonic() + ABORT_CALL_S + 3
        while not bad.removed:
            assert time.monotonic() < deadline, loop.statistics()
            time.sleep(0.05)
        stats = loop.statistics()
        assert stats["aborted_calls"] == 1 and stats["slow_calls"] >= 1
        assert stats["slowest_camera"] == "rtsp://spinning-camera/s" and stats["slowest_call_s"] >= ABORT_CALL_S
        assert "held the shared RTSP loop" in str(bad.removed[0])
        reads = good.reads
        deadline = time.monotonic() + 2
        while good.reads <= reads:  # the good connection is served again
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        stop.set()
        loop.remove(good)


def test_a_connection_over_its_cpu_share_is_rested():
    loop = RtspLoop(clocks=RealClocks(), name="rtsp-loop-share-test")

    class Costly(Counting):
        where = "rtsp://costly-camera/s"

        def on_readable(self, now_s: float) -> bool:
            self.reads += len(self.sock.recv(4096))
            ends = time.monotonic() + 0.2  # 200 ms of Python work per read
            while time.monotonic() < ends:
                pass
            return True

    costly = Costly()
    loop.add(costly)
    try:
        for _ in range(30):
            costly.peer.send(b"x")
            time.sleep(0.05)
        assert loop.statistics()["throttled"] >= 1
    finally:
        loop.remove(costly)


# --- credentials -----------------------------------------------------------------------------------

def test_a_redirect_to_another_host_gets_no_credentials():
    """Anyone on the LAN can answer DESCRIBE with a 302: the camera's password must not follow it."""
    with socket.create_server(("127.0.0.2", 0)) as thief:
        thief.settimeout(5)
        location = f"rtsp://127.0.0.2:{thief.getsockname()[1]}/stolen"
        camera = FakeCamera(Script(redirect_from="/cam", redirect_location=location))
        got: list[bytes] = []

        def accept():
            conn, _ = thief.accept()
            conn.settimeout(2)
            try:
                while data := conn.recv(4096):
                    got.append(data)
                    for head in data.split(b"\r\n\r\n")[:-1]:
                        cseq = next(line.split(b":")[1].strip() for line in head.split(b"\r\n")
                                    if line.lower().startswith(b"cseq"))
                        conn.sendall(b"RTSP/1.0 401 Unauthorized\r\nCSeq: " + cseq +
                                     b"\r\nWWW-Authenticate: Basic realm=\"x\"\r\n\r\n")
            except OSError:
                pass
            conn.close()
        listener = threading.Thread(target=accept, daemon=True)
        listener.start()
        try:
            cam = NativeRtspCamera(camera.url("/cam", userinfo="admin:s3cret"), name="cam", clocks=RealClocks(),
                                   timeout_s=2)
            with pytest.raises(CameraRefused, match="401"):
                cam.open()
        finally:
            camera.stop()
        listener.join(3)
    sent = b"".join(got)
    assert sent.startswith(b"OPTIONS rtsp://127.0.0.2") and b"admin" not in sent and b"Authorization" not in sent


def test_same_host_redirect_keeps_the_credentials():
    camera = FakeCamera(Script(user="admin", password="pw", redirect_from="/cam", redirect_to="/real"))
    cam = NativeRtspCamera(camera.url("/cam", userinfo="admin:pw"), name="cam", clocks=RealClocks(), timeout_s=3)
    try:
        cam.open()
    finally:
        cam.close()
        camera.stop()
    assert all("admin" not in uri and "pw" not in uri for _, uri, _ in camera.requests)
    assert "PLAY" in camera.methods()


def test_no_downgrade_from_digest_to_basic():
    auth = Authenticator("admin", "pw")
    digest = RtspMessage(status=401, headers=[("www-authenticate", 'Digest realm="cam", nonce="n1"')])
    basic = RtspMessage(status=401, headers=[("www-authenticate", 'Basic realm="cam"')])
    assert auth.challenge(digest)
    assert not auth.challenge(basic)  # a mid-session 401 offering Basic only
    assert auth.authorization("GET_PARAMETER", "rtsp://cam/s").startswith("Digest ")
    fresh = Authenticator("admin", "pw")
    assert fresh.challenge(basic) and fresh.authorization("OPTIONS", "rtsp://cam/s").startswith("Basic ")


def test_wrong_password_and_missing_stream_are_refusals():
    camera = FakeCamera(Script(user="admin", password="right"))
    try:
        with pytest.raises(CameraRefused) as caught:
            NativeRtspCamera(camera.url(userinfo="admin:wrong"), name="cam", clocks=RealClocks(), timeout_s=2).open()
    finally:
        camera.stop()
    assert caught.value.refused


def test_an_unforeseen_parser_failure_in_open_is_native_unsupported_so_auto_falls_back(monkeypatch):
    """Row 6's lesson in general: whatever a parser raises while opening, `open()` raises the client's
    own NativeUnsupported, and `client: auto` reads the camera with FFmpeg's client instead."""
    import drivers.rtsp.native as native
    from drivers.rtsp.auto import AutoRtspCamera
    from drivers.rtsp.native import NativeUnsupported

    def broken(value):
        raise OverflowError("a parser nobody foresaw")
    monkeypatch.setattr(native, "parse_rtp_info", broken)
    camera = FakeCamera(Script())
    try:
        with pytest.raises(NativeUnsupported, match="OverflowError"):
            NativeRtspCamera(camera.url(), name="cam", clocks=RealClocks(), timeout_s=3).open()
        auto = AutoRtspCamera(camera.url(), name="cam", clocks=RealClocks(), timeout_s=5)
        try:
            info = auto.open()
            assert auto.client == "ffmpeg" and info.width == 160
            assert next(p for p in auto.packets() if p.track == "video")
        finally:
            auto.close()
    finally:
        camera.stop()


@pytest.mark.rtsp
def test_ffmpegs_client_reports_a_missing_stream_as_a_refusal_too(rtsp_server):
    from drivers.rtsp.ffmpeg import RtspCamera

    with pytest.raises(CameraRefused, match="404") as caught:
        RtspCamera(rtsp_server.url("/nope"), name="cam", clocks=RealClocks(), timeout_s=3).open()
    assert caught.value.refused
