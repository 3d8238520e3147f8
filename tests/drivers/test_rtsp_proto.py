"""RTSP on the wire, sans-IO: message and interleaved framing, headers, Basic and Digest authentication."""
from __future__ import annotations

import random

import pytest
from support.rtp_bytes import interleaved

from drivers.rtsp.protocol import (Authenticator, RtspStreamParser, build_request, parse_challenge, parse_head,
                                parse_interleaved, parse_rtp_info, parse_session, split_credentials)


def collecting_parser(*channels: int) -> tuple[RtspStreamParser, dict[int, list[bytes]]]:
    parser = RtspStreamParser()
    got: dict[int, list[bytes]] = {c: [] for c in channels}
    for channel in channels:
        parser.handlers[channel] = lambda view, c=channel: got[c].append(bytes(view))
    return parser, got


def test_responses_and_interleaved_packets_are_split_whatever_the_chunking():
    stream = (b"RTSP/1.0 200 OK\r\nCSeq: 4\r\nContent-Length: 5\r\n\r\nhello"
              + b"SET_PARAMETER rtsp://cam/s RTSP/1.0\r\nCSeq: 2\r\n\r\n"
              + interleaved(0, b"rtp-1") + interleaved(1, b"rtcp") + interleaved(0, b"rtp-2" * 100)
              + b"RTSP/1.0 200 OK\r\nCSeq: 5\r\n\r\n" + interleaved(0, b"rtp-3"))
    for size in (1, 2, 3, 7, 64, len(stream)):
        parser, got = collecting_parser(0, 1)
        messages = []
        for start in range(0, len(stream), size):
            messages += parser.feed(stream[start:start + size])
        assert [(m.status, m.method, m.cseq, m.body) for m in messages] == [
            (200, "", 4, b"hello"), (0, "SET_PARAMETER", 2, b""), (200, "", 5, b"")], size
        assert got == {0: [b"rtp-1", b"rtp-2" * 100, b"rtp-3"], 1: [b"rtcp"]}, size
        assert parser.buffered == 0 and parser.resyncs == 0


def test_requests_from_the_server_are_parsed():
    parser, _ = collecting_parser()
    (message,) = parser.feed(b"GET_PARAMETER rtsp://cam/s RTSP/1.0\r\nCSeq: 9\r\nSession: 1\r\n\r\n")
    assert (message.method, message.uri, message.cseq, message.header("SESSION")) == ("GET_PARAMETER", "rtsp://cam/s",
                                                                                      9, "1")


def test_garbage_between_frames_is_skipped_and_counted():
    parser, got = collecting_parser(0)
    messages = parser.feed(b"\x00\x01junk" + interleaved(0, b"a") + b"HTTP/1.1 400\r\n\r\n" + interleaved(0, b"b")
                           + b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n")
    assert got[0] == [b"a", b"b"] and [m.status for m in messages] == [200]
    assert parser.resyncs == 2 and parser.skipped_bytes == 6 + 16
    assert parser.unhandled == 0


def test_packets_on_unknown_channels_are_counted():
    parser, got = collecting_parser(0)
    parser.feed(interleaved(5, b"x") + interleaved(0, b"y"))
    assert got[0] == [b"y"] and parser.unhandled == 1


def test_random_bytes_never_crash_the_parser():
    rng = random.Random(3)
    pieces = [b"$", b"\x00", b"\x00\x10", b"RTSP/1.0 200 OK\r\n", b"CSeq: 1\r\n", b"\r\n", b"Content-Length: 3\r\n",
              b"Content-Length: x\r\n", b"OPTIONS * RTSP/1.0\r\n", interleaved(0, b"abc")]
    parser, _ = collecting_parser(0, 1)
    for _ in range(5000):
        chunk = b"".join(rng.choice(pieces) if rng.random() < 0.8 else bytes([rng.getrandbits(8)])
                         for _ in range(rng.randrange(1, 8)))
        for message in parser.feed(chunk):
            assert message.status or message.method
    assert parser.buffered < 70_000


def test_requests_are_built_with_cseq_and_headers():
    assert build_request("SETUP", "rtsp://cam/s/track1", 3, {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}) == (
        b"SETUP rtsp://cam/s/track1 RTSP/1.0\r\nCSeq: 3\r\nUser-Agent: nvr\r\n"
        b"Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n")


@pytest.mark.parametrize("value, expected", [
    ("12345678;timeout=30", ("12345678", 30.0)),
    ("ABC", ("ABC", 60.0)),
    ("x ; Timeout = 5", ("x", 5.0)),
])
def test_session_header(value, expected):
    session = parse_session(value)
    assert (session.session_id, session.timeout_s) == expected


def test_transport_and_rtp_info_headers():
    assert parse_interleaved("RTP/AVP/TCP;unicast;interleaved=2-3;ssrc=1234") == (2, 3)
    assert parse_interleaved("RTP/AVP/TCP;interleaved=4") == (4, 5)
    assert parse_interleaved("RTP/AVP;unicast;client_port=5000-5001") is None
    assert parse_rtp_info("url=rtsp://cam/s/track1;seq=100;rtptime=5000, url=rtsp://cam/s/track2;seq=7;rtptime=99") == [
        {"url": "rtsp://cam/s/track1", "seq": "100", "rtptime": "5000"},
        {"url": "rtsp://cam/s/track2", "seq": "7", "rtptime": "99"}]


def test_credentials_are_taken_out_of_the_url_and_decoded():
    assert split_credentials("rtsp://admin:p%40ss:w@10.0.0.5:554/s?x=1") == ("rtsp://10.0.0.5:554/s?x=1", "admin",
                                                                           "p@ss:w")
    assert split_credentials("rtsp://10.0.0.5/s") == ("rtsp://10.0.0.5/s", None, None)


def challenge(*values: str):
    return parse_head(("RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\n"
                       + "".join(f"WWW-Authenticate: {v}\r\n" for v in values)).encode())


def test_digest_response_matches_rfc_2617s_example():
    auth = Authenticator("Mufasa", "Circle Of Life")
    auth._cnonce = "0a4f113b"
    assert auth.challenge(challenge('Digest realm="testrealm@host.com", qop="auth,auth-int", '
                                    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
                                    'opaque="5ccc069c403ebaf9f0171e9517f40e41"'))
    header = auth.authorization("GET", "/dir/index.html")
    assert 'response="6629fae49393a05397450978507c4ef1"' in header
    assert "nc=00000001" in header and 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in header
    assert "nc=00000002" in auth.authorization("GET", "/dir/index.html")  # the nonce count goes up


def test_digest_without_qop_and_preferred_over_basic():
    auth = Authenticator("admin", "12345")
    assert auth.challenge(challenge('Basic realm="cam"', 'Digest realm="IP Camera", nonce="abc"'))
    # MD5(MD5("admin:IP Camera:12345"):abc:MD5("DESCRIBE:rtsp://cam/s")), computed apart
    assert auth.authorization("DESCRIBE", "rtsp://cam/s") == (
        'Digest username="admin", realm="IP Camera", nonce="abc", uri="rtsp://cam/s", '
        'response="7388121020f785fd6fd43fee013821a3"')


def test_refused_credentials_are_not_retried_but_a_stale_nonce_is():
    auth = Authenticator("admin", "wrong")
    assert auth.challenge(challenge('Digest realm="cam", nonce="1"'))
    assert not auth.challenge(challenge('Digest realm="cam", nonce="2"'))  # a new nonce, not stale: refused
    assert auth.challenge(challenge('Digest realm="cam", nonce="3", stale=true'))
    assert 'nonce="3"' in auth.authorization("OPTIONS", "rtsp://cam/s")


def test_basic_and_no_credentials():
    auth = Authenticator("user", "pa:ss")
    assert auth.challenge(challenge('Basic realm="cam"'))
    assert auth.authorization("DESCRIBE", "rtsp://cam/s") == "Basic dXNlcjpwYTpzcw=="
    assert not auth.challenge(challenge('Basic realm="cam"'))  # refused once: no loop
    assert not Authenticator(None, None).challenge(challenge('Basic realm="cam"'))


def test_challenge_parameters_with_commas_and_escapes():
    assert parse_challenge('Digest realm="a, b", nonce=xyz, qop="auth"') == ("digest", {"realm": "a, b", "nonce": "xyz",
                                                                                        "qop": "auth"})
