"""RTP (RFC 3550) sending, sans-IO: G.711 sound cut into packets of a fixed duration, with the header a
receiver expects (random SSRC and initial sequence number and timestamp, marker on a talk spurt's first
packet), framed for an RTSP connection's interleaved channel (`$`, channel, 16-bit length).
"""
from __future__ import annotations

import os
import struct

RTP_VERSION = 2
PACKET_DURATION_S = 0.020  # 20 ms: G.711's customary packet (RFC 3551 4.5.14), 160 bytes at 8 kHz
MAX_INTERLEAVED_BYTES = 65535  # what the `$` frame's 16-bit length holds
_HEADER = struct.Struct("!BBHII")


def interleaved(channel: int, packet: bytes) -> bytes:
    """`packet` framed for interleaved channel `channel` of an RTSP connection (RFC 2326 10.12)."""
    if not 0 <= channel <= 255 or len(packet) > MAX_INTERLEAVED_BYTES:
        raise ValueError(f"cannot frame {len(packet)} bytes for interleaved channel {channel}")
    return b"$" + bytes((channel,)) + len(packet).to_bytes(2, "big") + packet


class G711Packetizer:
    """Cuts G.711 bytes (one byte per sample) into RTP packets of PACKET_DURATION_S.

    `push(codes)` returns the packets that are now whole; a remainder waits for the next push.
    `spurt()` marks the next packet as the start of a talk spurt (RFC 3551 4.1: marker bit), which
    receivers use to resize their jitter buffer after a silence.
    """

    def __init__(self, *, payload_type: int, clock_rate: int = 8000, ssrc: int | None = None):
        if not 0 <= payload_type <= 127:
            raise ValueError(f"RTP payload type {payload_type} is not within 0-127")
        self.payload_type = payload_type
        self.packet_samples = round(PACKET_DURATION_S * clock_rate)
        self.ssrc = int.from_bytes(os.urandom(4), "big") if ssrc is None else ssrc
        self.sequence = int.from_bytes(os.urandom(2), "big")
        self.timestamp = int.from_bytes(os.urandom(4), "big")
        self.packets = self.octets = 0  # what an RTCP sender report would count
        self._pending = b""
        self._marker = True

    def spurt(self) -> None:
        self._marker = True

    def skip(self, samples: int) -> None:
        """`samples` of silence were not sent: the next packet's timestamp moves on by them and it starts a
        talk spurt (RFC 3551 4.1). A remainder waiting for a whole packet goes out with it, that late."""
        if samples < 0:
            raise ValueError(f"cannot skip {samples} samples")
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
        self._marker = True

    def push(self, codes: bytes) -> list[bytes]:
        data = self._pending + codes
        size = self.packet_samples
        whole = len(data) - len(data) % size
        out = [self._packet(data[at:at + size]) for at in range(0, whole, size)]
        self._pending = data[whole:]
        return out

    def _packet(self, payload: bytes) -> bytes:
        second = self.payload_type | (0x80 if self._marker else 0)
        self._marker = False
        header = _HEADER.pack(RTP_VERSION << 6, second, self.sequence, self.timestamp, self.ssrc)
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + len(payload)) & 0xFFFFFFFF
        self.packets += 1
        self.octets += len(payload)
        return header + payload
