"""Byte builders for RTP tests: RTP packets, H.264 payloads (single NAL, STAP-A, FU-A), AAC AU headers.

Written from the RFCs, not from the code under test, so the tests check the one against the other.
"""
from __future__ import annotations

import struct

# A real 160x120 25 fps baseline SPS and its PPS (x264).
SPS = bytes.fromhex("6742c00bd902847e5c0440000003004000000c83c50a92")
PPS = bytes.fromhex("68cb83cb20")
IDR = b"\x65\x88\x84" + bytes(range(200))
P_SLICE = b"\x41\x9a\x22" + bytes(range(100, 180))
AUD = b"\x09\xf0"


def rtp(seq: int, ts: int, payload: bytes, *, marker: bool = False, pt: int = 96, ssrc: int = 0x1234,
        csrcs: int = 0, extension: bytes | None = None, padding: int = 0) -> bytes:
    """One RTP packet (RFC 3550 5.1)."""
    first = 0x80 | csrcs | (0x10 if extension is not None else 0) | (0x20 if padding else 0)
    header = struct.pack("!BBHII", first, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    header += b"\x00\x00\x00\x01" * csrcs
    if extension is not None:
        header += b"\xbe\xde" + struct.pack("!H", len(extension) // 4) + extension
    pad = (b"\x00" * (padding - 1) + bytes((padding,))) if padding else b""
    return header + payload + pad


def stap_a(*nals: bytes) -> bytes:
    return bytes((0x18 | (nals[0][0] & 0x60),)) + b"".join(struct.pack("!H", len(n)) + n for n in nals)


def fu_a(nal: bytes, pieces: int) -> list[bytes]:
    """`nal` split into `pieces` FU-A payloads (RFC 6184 5.8)."""
    body = nal[1:]
    step = -(-len(body) // pieces)
    chunks = [body[i:i + step] for i in range(0, len(body), step)]
    out = []
    for number, chunk in enumerate(chunks):
        header = nal[0] & 0x1F
        if number == 0:
            header |= 0x80
        if number == len(chunks) - 1:
            header |= 0x40
        out.append(bytes(((nal[0] & 0xE0) | 28, header)) + chunk)
    return out


def length_prefixed(*nals: bytes) -> bytes:
    return b"".join(len(n).to_bytes(4, "big") + n for n in nals)


def aac_payload(*frames: bytes) -> bytes:
    """RFC 3640 AAC-hbr: AU-headers-length in bits, then 13-bit size + 3-bit index per AU, then the AUs."""
    headers = b"".join(struct.pack("!H", len(f) << 3) for f in frames)
    return struct.pack("!H", 16 * len(frames)) + headers + b"".join(frames)


def interleaved(channel: int, packet: bytes) -> bytes:
    return b"$" + bytes((channel,)) + struct.pack("!H", len(packet)) + packet
