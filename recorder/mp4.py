"""ISO base media (MP4) boxes: building them as bytes and walking them in a buffer or a file."""
from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO


class Mp4Error(ValueError):
    """Bytes that are not a well-formed box structure."""


def box(kind: bytes, *payload: bytes) -> bytes:
    """A box with a 32-bit size (every box we write is far under 4 GiB, except export's mdat)."""
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *payload)


@dataclass(frozen=True, slots=True)
class BoxHeader:
    """Where a box sits: `start` of its header, `body` where its payload starts, `end` one past it."""

    kind: bytes
    start: int
    body: int
    end: int


def iter_boxes(buf: bytes | memoryview, start: int = 0, end: int | None = None) -> Iterator[BoxHeader]:
    """Boxes laid end to end in `buf[start:end]`; raises Mp4Error on a box that overruns the range."""
    end = len(buf) if end is None else end
    pos = start
    while pos + 8 <= end:
        header = _parse_header(bytes(buf[pos : pos + 16]), pos)
        if header.end > end:
            raise Mp4Error(f"box {header.kind!r} at {pos} ends at {header.end}, past {end}")
        yield header
        pos = header.end
    if pos != end:
        raise Mp4Error(f"{end - pos} stray bytes at {pos}")


def _parse_header(head: bytes, pos: int) -> BoxHeader:
    size, kind = struct.unpack_from(">I4s", head)
    body = pos + 8
    if size == 1:
        if len(head) < 16:
            raise Mp4Error(f"truncated 64-bit box size at {pos}")
        size = struct.unpack_from(">Q", head, 8)[0]
        body = pos + 16
    if size < body - pos:
        raise Mp4Error(f"box {kind!r} at {pos} has impossible size {size}")
    return BoxHeader(kind, pos, body, pos + size)


def find_box(buf: bytes | memoryview, path: list[bytes], start: int = 0, end: int | None = None) -> BoxHeader | None:
    """The first box along `path` (e.g. [b"moov", b"trak", b"mdia"]) or None.

    Container boxes whose payload does not start with child boxes (stsd, avc1) are walked by the
    caller, who knows their fixed fields.
    """
    found = None
    for kind in path:
        found = next((b for b in iter_boxes(buf, start, end) if b.kind == kind), None)
        if found is None:
            return None
        start, end = found.body, found.end
    return found


def scan_file(f: BinaryIO, size: int) -> Iterator[BoxHeader]:
    """Top-level boxes of a file, read header by header; stops quietly at a truncated box.

    A box that runs past `size` is where a crash cut the file: it is not yielded, and callers treat
    the start of that box as the end of the usable file.
    """
    pos = 0
    while pos + 8 <= size:
        f.seek(pos)
        try:
            header = _parse_header(f.read(16), pos)
        except (Mp4Error, struct.error):
            return
        if header.end > size or header.end <= pos:
            return
        yield header
        pos = header.end
