"""The native RTSP client's `Connection` already past PLAY, over a socket the test holds: a test feeds it
what a camera would send (`connection.feed(bytes)`) and reads what it made of them from its mailbox."""
from __future__ import annotations

import socket

from base.clock import RealClocks
from drivers.rtsp.connection import Channel, Connection
from drivers.rtsp.mailbox import Mailbox
from drivers.rtsp.native import STAT_KEYS
from drivers.rtsp.protocol import Authenticator, RtspStreamParser
from drivers.rtsp.rtp import H264Depacketizer, RtpTrack

URL = "rtsp://cam/s"


def playing_h264_connection(sock: socket.socket, *, mailbox_bound: int = 1000) -> Connection:
    """A Connection on `sock` playing one H.264 video track (payload type 96 on interleaved channels 0 and 1),
    with a fresh mailbox of `mailbox_bound` items (`.mailbox`), its statistics at zero (`.stats`), no
    credentials, and the next request numbered 5 (as after OPTIONS, DESCRIBE, SETUP, PLAY)."""
    video = Channel(RtpTrack(H264Depacketizer(), payload_type=96, clock_rate=90000), "video", 0, 1)
    return Connection(sock=sock, parser=RtspStreamParser(), channels=[video],
                      mailbox=Mailbox(batch_s=0, bound=mailbox_bound, clocks=RealClocks()), clocks=RealClocks(),
                      auth=Authenticator(None, None), control_url=URL, session_id="1", keepalive_method="OPTIONS",
                      keepalive_s=30, next_cseq=5, where=URL, stats=dict.fromkeys(STAT_KEYS, 0))
