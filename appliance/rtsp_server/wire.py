"""The pipe between the appliance and its RTSP engine process: length-prefixed frames, sans-IO.

The engine (gst_engine.py) runs under the system Python, which has GStreamer's bindings; the appliance
runs in its virtualenv, which has not. This module is imported by both, so it uses the standard library
only. Every frame is `kind (1 byte) | length (u32 big-endian) | body`:

    appliance -> engine:  USERS  body = JSON {"realm": str, "users": [[name, ha1], ...]}
                          MOUNTS body = JSON {"mounts": ["/ch1/main", ...]}
                          VIDEO  body = mount index (u16) | dts_ns (i64) | cto_ns (i64) | flags (u8) | Annex B AU
                          AUDIO  body = the same header (pts_ns in dts_ns, cto_ns 0) | one raw AAC frame, on
                                 the clock the mount's video timestamps are on
                          INFO   body = JSON {"mount": index, "aac": null | {"asc": hex AudioSpecificConfig,
                                 "rate": Hz, "channels": n}}: whether new viewers get a sound track
    engine -> appliance:  lines of text on stdout: "READY <port>", "USERS <count>" (a user list is in force,
                          and the mounts sent before it), "WANT <mount>", "DROP <mount>", "ERROR <why>"
"""
from __future__ import annotations

import struct

USERS, MOUNTS, VIDEO, AUDIO, INFO = b"U", b"M", b"V", b"A", b"I"
KINDS = frozenset({USERS, MOUNTS, VIDEO, AUDIO, INFO})
HEADER = struct.Struct(">cI")
VIDEO_HEADER = struct.Struct(">Hqqb")
FLAG_KEYFRAME = 1
MAX_FRAME_BYTES = 8 * 1024 * 1024  # one access unit of a 4K camera stays well under this
MAX_MOUNTS = 4096  # 256 channels x main/sub, with room for indexes retired by config changes
MAX_LINE_CHARS = 512  # one status line of the engine


class WireError(ValueError):
    """A frame that breaks the format: the pipe is out of step and must be closed."""


def frame(kind: bytes, body: bytes) -> bytes:
    """One frame of `kind` around `body`."""
    if kind not in KINDS or len(body) > MAX_FRAME_BYTES:
        raise WireError(f"cannot frame kind {kind!r} with {len(body)} bytes (max {MAX_FRAME_BYTES})")
    return HEADER.pack(kind, len(body)) + body


def video_frame(mount: int, dts_ns: int, cto_ns: int, keyframe: bool, data: bytes) -> bytes:
    """A VIDEO frame: one access unit for mount number `mount` (its place in the last MOUNTS list)."""
    return frame(VIDEO, VIDEO_HEADER.pack(mount, dts_ns, cto_ns, FLAG_KEYFRAME if keyframe else 0) + data)


def audio_frame(mount: int, pts_ns: int, data: bytes) -> bytes:
    """An AUDIO frame: one raw AAC frame for mount number `mount`."""
    return frame(AUDIO, VIDEO_HEADER.pack(mount, pts_ns, 0, FLAG_KEYFRAME) + data)


def parse_video(body: bytes) -> tuple[int, int, int, bool, bytes]:
    """(mount, dts_ns, cto_ns, keyframe, data) of a VIDEO (or AUDIO) frame's body."""
    if len(body) < VIDEO_HEADER.size:
        raise WireError(f"VIDEO frame of {len(body)} bytes is shorter than its header")
    mount, dts_ns, cto_ns, flags = VIDEO_HEADER.unpack_from(body)
    return mount, dts_ns, cto_ns, bool(flags & FLAG_KEYFRAME), body[VIDEO_HEADER.size:]


class FrameReader:
    """Splits a byte stream into (kind, body) frames; `feed` returns the complete ones, keeps the rest.

    Linear in its input; holds at most one partial frame (MAX_FRAME_BYTES plus a header)."""

    def __init__(self):
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self._buffer += data
        frames, pos = [], 0
        while len(self._buffer) - pos >= HEADER.size:
            kind, length = HEADER.unpack_from(self._buffer, pos)
            if kind not in KINDS or length > MAX_FRAME_BYTES:
                raise WireError(f"bad frame header (kind {kind!r}, {length} bytes): the pipe is out of step")
            end = pos + HEADER.size + length
            if end > len(self._buffer):
                break
            frames.append((kind, bytes(self._buffer[pos + HEADER.size:end])))
            pos = end
        del self._buffer[:pos]
        return frames
