"""The source seam: what the recorder reads encoded video from. The appliance wires real ones in."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from base.media import EncodedPacket, StreamInfo


class PacketSource(Protocol):
    """A connection to one encoded video stream.

    `open` connects (blocking, bounded by the source's own timeout) and returns the stream info;
    `packets` yields packets in decode order until the stream ends (returns) or fails (raises
    `SourceError` or a subclass such as `SourceStalled`); `close` releases everything and may be called
    from another thread to stop a blocked `packets`. A source can be opened again after `close`:
    every `open` starts a new connection, which the recorder records as a new run.

    Optional: an error with `refused = True` says the source answered and refused (wrong password, no
    such stream), so retrying soon will not help; and a `probe() -> bool` method, a cheap check (for a
    network camera, a TCP connect) that the recorder calls between attempts to notice the source is
    back (recorder.reconnect).
    """

    name: str

    def open(self) -> StreamInfo: ...

    def packets(self) -> Iterator[EncodedPacket]: ...

    def close(self) -> None: ...
