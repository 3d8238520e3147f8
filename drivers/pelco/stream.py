"""Finding Pelco-D/P frames in a byte stream: resynchronise on garbage and count what was thrown away.

An RS-485 line carries noise (a dome powering up, a second controller, a loose A/B wire), so a reader
never trusts byte boundaries: it looks for the sync byte, checks the length, ETX and checksum, and on
any mismatch drops one byte and looks again. Nothing here does I/O; callers `feed` bytes as they arrive
and call `idle` when the line has been quiet for a few character times (that ends a burst: a
truncated frame is discarded as garbage rather than glued to the next one).
"""
from __future__ import annotations

from collections import deque
from typing import Literal

from drivers.pelco.protocol import (D_ACK_BYTES, D_FRAME_BYTES, D_SYNC, P_ETX, P_FRAME_BYTES, P_STX, Frame,
                           PelcoError, ProtocolName, checksum_d, checksum_p, decode)

Role = Literal["dome", "host"]
_WAIT = None


class FrameDecoder:
    """Incremental frame finder for one protocol.

    `role="dome"` reads what a controller sends (7-byte D / 8-byte P frames); `role="host"` reads what
    domes send, which for Pelco-D adds the 4-byte general response. Counters (`statistics()`):
    `frames` decoded, `garbage_bytes` skipped, `checksum_errors` (complete candidates whose checksum
    failed), `rejected_frames` (checksum right but content invalid or unsupported).
    """

    def __init__(self, protocol: ProtocolName, *, role: Role = "dome", keep_errors: int = 20):
        if protocol not in ("pelco-d", "pelco-p"):
            raise PelcoError(f"protocol must be pelco-d or pelco-p, got {protocol!r}")
        self.protocol, self.role = protocol, role
        self._buffer = bytearray()
        self._sync = D_SYNC if protocol == "pelco-d" else P_STX
        self.frames = self.garbage_bytes = self.checksum_errors = self.rejected_frames = 0
        self.recent_errors: deque[str] = deque(maxlen=keep_errors)

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return every frame now complete, in order."""
        self._buffer += data
        return self._drain(final=False)

    def idle(self) -> list[Frame]:
        """The line went quiet: settle what is pending (a Pelco-D ack) and discard any partial frame."""
        return self._drain(final=True)

    @property
    def pending_bytes(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buffer)

    def statistics(self) -> dict:
        return {"frames": self.frames, "garbage_bytes": self.garbage_bytes, "checksum_errors": self.checksum_errors,
                "rejected_frames": self.rejected_frames, "pending_bytes": len(self._buffer)}

    def _drain(self, *, final: bool) -> list[Frame]:
        frames: list[Frame] = []
        while self._buffer:
            self._skip_to_sync()
            if not self._buffer:
                break
            length = self._candidate_length(final)
            if length is _WAIT:
                if final:
                    self._discard(len(self._buffer))
                break
            if length == 0:  # a sync byte that starts no valid frame
                self._discard(1)
                continue
            frame = self._take(length)
            if frame is not None:
                frames.append(frame)
        return frames

    def _skip_to_sync(self) -> None:
        start = self._buffer.find(self._sync)
        self._discard(len(self._buffer) if start < 0 else start)

    def _discard(self, count: int) -> None:
        self.garbage_bytes += count
        del self._buffer[:count]

    def _candidate_length(self, final: bool) -> int | None:
        """Length of the frame at the buffer's start, 0 if there is none, None to wait for more bytes."""
        if self.protocol == "pelco-p":
            return self._p_length()
        return self._d_length(final)

    def _p_length(self) -> int | None:
        buf = self._buffer
        if len(buf) < P_FRAME_BYTES:
            return _WAIT
        if buf[6] != P_ETX:
            return 0
        if checksum_p(buf) != buf[7]:
            self._checksum_error(bytes(buf[:P_FRAME_BYTES]))
            return 0
        return P_FRAME_BYTES

    def _d_length(self, final: bool) -> int | None:
        buf = self._buffer
        ack = self.role == "host" and len(buf) >= D_ACK_BYTES and (buf[1] + buf[2]) & 0xFF == buf[3]
        if len(buf) >= D_FRAME_BYTES:
            whole = checksum_d(buf) == buf[6]
            if ack and (buf[4] == D_SYNC or not whole):  # an ack followed by the next frame's sync
                return D_ACK_BYTES
            if whole:
                return D_FRAME_BYTES
            self._checksum_error(bytes(buf[:D_FRAME_BYTES]))
            return 0
        if ack and (final or (len(buf) > D_ACK_BYTES and buf[4] == D_SYNC)):
            return D_ACK_BYTES
        return _WAIT

    def _checksum_error(self, candidate: bytes) -> None:
        self.checksum_errors += 1
        self.recent_errors.append(f"bad checksum: {candidate.hex(' ')}")

    def _take(self, length: int) -> Frame | None:
        raw = bytes(self._buffer[:length])
        del self._buffer[:length]
        try:
            frame = decode(self.protocol, raw)
        except PelcoError as exc:  # any invalid content: counted and dropped, never raised to the reader
            self.rejected_frames += 1
            self.recent_errors.append(f"rejected {raw.hex(' ')}: {exc}")
            return None
        self.frames += 1
        return frame
