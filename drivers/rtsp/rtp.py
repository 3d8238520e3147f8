"""RTP (RFC 3550) receiving, sans-IO: header parsing, sequence and timestamp tracking, RTCP receiver
reports, and depacketizers for H.264 (RFC 6184), AAC (RFC 3640 AAC-hbr) and G.711.

A track is fed one RTP packet at a time (`RtpTrack.receive(view)`) and appends finished frames
`(data, timestamp, keyframe)` to a list, `timestamp` being the RTP timestamp unwrapped to 64 bits.
Nothing here raises on bad input: a malformed packet is counted in `bad_packets` and dropped, and a
frame that lost a packet (a sequence gap) is dropped together with every video frame up to the next
keyframe, since those would not decode.

This runs for every RTP packet of every camera (hundreds a second each), so the H.264 path avoids
per-packet objects and copies: a frame's pieces are memoryviews into the received chunk, joined once
into the 4-byte length-prefixed form an MP4 sample takes, without scanning for start codes.
"""
from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("nvr.rtsp")

RTP_VERSION = 2
NAL_IDR, NAL_SEI, NAL_SPS, NAL_PPS, NAL_AUD, NAL_FILLER = 5, 6, 7, 8, 9, 12
NAL_STAP_A, NAL_FU_A = 24, 28
_DROPPED_NALS = frozenset({NAL_AUD, NAL_FILLER})  # nothing an MP4 sample needs
# One access unit: a 4K camera's keyframe is 1-3 MB in ~2000 FU-A packets; past these it is garbage
# (a camera that never ends its frame), dropped before it grows the process.
MAX_ACCESS_UNIT_BYTES = 8 * 1024 * 1024
MAX_ACCESS_UNIT_PARTS = 16384  # pieces of one access unit (payloads and length prefixes)
MAX_PARAMETER_SET_BYTES = 4096  # an SPS or PPS larger than this is garbage (real ones are < 100 B)
MAX_AU_HEADERS = 512  # AAC access units announced in one RTP packet (a 1500-byte packet holds < 200)
AAC_FIELD_BITS = 16  # the widest AU-header field RFC 3640 lets sizeLength/indexLength/indexDeltaLength be
_HEADER = struct.Struct("!BBHII")
Frame = tuple[bytes, int, bool]  # data, unwrapped RTP timestamp, keyframe


@dataclass(slots=True)
class TrackStats:
    """Counters of one RTP track (what RTCP receiver reports and `statistics()` are made of)."""

    packets: int = 0
    bytes: int = 0
    lost: int = 0  # packets missing from the sequence (RFC 3550 cumulative lost, never negative here)
    gaps: int = 0  # places where packets were missing
    duplicates: int = 0  # late or repeated packets, dropped
    bad_packets: int = 0  # not RTP, wrong payload type, malformed payload
    frames: int = 0
    dropped_frames: int = 0  # incomplete, or waiting for a keyframe after a loss


class Depacketizer(Protocol):
    """Turns RTP payloads of one codec into frames. `push` and `lost` are all a track calls."""

    stats: TrackStats

    def push(self, payload: memoryview, timestamp: int, marker: bool, out: list[Frame]) -> None: ...

    def lost(self) -> None:
        """Packets went missing before the next `push`: what is being assembled is incomplete."""


class RtpTrack:
    """One RTP stream: checks each packet's header, tracks sequence and timestamp, feeds the depacketizer."""

    def __init__(self, depacketizer: Depacketizer, *, payload_type: int, clock_rate: int):
        self.depacketizer = depacketizer
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.stats = depacketizer.stats
        self.ssrc: int | None = None
        self.base_seq: int | None = None
        self.cycles = 0  # sequence number wraps, times 65536
        self.max_seq = 0
        self._last_ts: int | None = None
        self._ts_ext = 0
        self._expected_prior = 0
        self._received_prior = 0

    @property
    def extended_max_seq(self) -> int:
        return self.cycles + self.max_seq

    def receive(self, packet: memoryview, out: list[Frame]) -> None:
        """Take one RTP packet; frames it completes are appended to `out`."""
        size = len(packet)
        if size < 12:
            self.stats.bad_packets += 1
            return
        first, second, seq, ts, ssrc = _HEADER.unpack_from(packet)
        if first >> 6 != RTP_VERSION or second & 0x7F != self.payload_type:
            self.stats.bad_packets += 1
            return
        start = 12 + 4 * (first & 0x0F)
        end = size
        if first & 0x10:  # header extension
            if start + 4 > size:
                self.stats.bad_packets += 1
                return
            start += 4 + 4 * int.from_bytes(packet[start + 2:start + 4], "big")
        if first & 0x20:  # padding, its length in the last byte
            end -= packet[size - 1]
        if start >= end:
            if start != end or end > size:
                self.stats.bad_packets += 1
            return  # a packet with no payload (keep-alive padding) is fine
        if ssrc == self.ssrc and seq == (self.max_seq + 1) & 0xFFFF:  # the usual case, inline
            self.max_seq = seq
            if seq == 0:
                self.cycles += 65536
        elif not self._in_sequence(seq, ssrc):
            return
        stats = self.stats
        stats.packets += 1
        stats.bytes += size
        ts_ext = self._ts_ext if ts == self._last_ts else self._unwrap(ts)  # most packets continue a frame
        self.depacketizer.push(packet[start:end], ts_ext, bool(second & 0x80), out)

    def _in_sequence(self, seq: int, ssrc: int) -> bool:
        if self.base_seq is None or ssrc != self.ssrc:
            if self.base_seq is not None:
                self.depacketizer.lost()  # the source restarted: what was being assembled is lost
            self.ssrc, self.base_seq, self.max_seq, self.cycles = ssrc, seq, seq, 0
            return True
        delta = (seq - self.max_seq) & 0xFFFF
        if delta == 1:
            self.max_seq = seq
            if seq == 0:
                self.cycles += 65536
            return True
        if delta == 0 or delta >= 0x8000:  # repeated, or older than the newest: too late to use
            self.stats.duplicates += 1
            return False
        if seq < self.max_seq:
            self.cycles += 65536
        self.max_seq = seq
        self.stats.lost += delta - 1
        self.stats.gaps += 1
        self.depacketizer.lost()
        return True

    def _unwrap(self, ts: int) -> int:
        last = self._last_ts
        if last is None:
            self._ts_ext = ts
        else:
            delta = (ts - last) & 0xFFFFFFFF
            self._ts_ext += delta - 0x100000000 if delta & 0x80000000 else delta
        self._last_ts = ts
        return self._ts_ext

    def unwrap_reference(self, ts: int) -> int:
        """An RTP timestamp given out of band (RTP-Info's rtptime) on the same unwrapped scale as the
        packets', assuming it lies within 2^31 of the newest one (or of 0 before any packet)."""
        if self._last_ts is None:  # before any packet: the packets will be unwrapped around it
            self._last_ts = self._ts_ext = ts
            return ts
        delta = (ts - self._last_ts) & 0xFFFFFFFF
        return self._ts_ext + (delta - 0x100000000 if delta & 0x80000000 else delta)

    def report_block(self, *, lsr: int, dlsr: int) -> bytes:
        """This track's RTCP reception report block (RFC 3550 6.4.1); jitter is not measured (0)."""
        expected = self.extended_max_seq - (self.base_seq or 0) + 1
        lost = min(self.stats.lost, 0x7FFFFF)
        expected_interval = expected - self._expected_prior
        received_interval = self.stats.packets - self._received_prior
        self._expected_prior, self._received_prior = expected, self.stats.packets
        lost_interval = expected_interval - received_interval
        fraction = (lost_interval << 8) // expected_interval if expected_interval > 0 and lost_interval > 0 else 0
        return struct.pack("!IB3sIIII", self.ssrc or 0, min(fraction, 255), lost.to_bytes(3, "big"),
                           self.extended_max_seq & 0xFFFFFFFF, 0, lsr & 0xFFFFFFFF, dlsr & 0xFFFFFFFF)


class H264Depacketizer(Depacketizer):
    """RFC 6184 non-interleaved mode: single NAL units, STAP-A, FU-A.

    Frames are access units in 4-byte length-prefixed form, access unit delimiters and filler left
    out; a frame ends at the marker bit or when the timestamp changes. Parameter sets stay in the
    frame (the recorder lifts them into avcC) and the newest are kept in `sps` / `pps`. A unit with
    parameter sets but no picture is carried into the next frame.
    """

    def __init__(self) -> None:
        self.stats = TrackStats()
        self.sps: bytes | None = None
        self.pps: bytes | None = None
        self._parts: list[bytes | memoryview] = []
        self._timestamp: int | None = None
        self._keyframe = False
        self._picture = False
        self._broken = False
        self._wait_keyframe = False
        self._fu_at: int | None = None  # index in _parts of the FU-A NAL's length, while one is open
        self._fu_kind = 0
        self._fu_size = 0
        self._size = 0  # bytes in _parts (bounded by MAX_ACCESS_UNIT_BYTES)
        self.oversized = 0  # access units dropped for exceeding the bounds
        self.units = 0  # access units finished (emitted or dropped): the connection watches it move

    def lost(self) -> None:
        if self._parts or self._fu_at is not None:
            self._broken = True
        self._wait_keyframe = True

    def push(self, payload: memoryview, timestamp: int, marker: bool, out: list[Frame]) -> None:
        if timestamp != self._timestamp:
            if self._parts:
                self._emit(out)
            elif self._broken:  # orphan pieces of the last frame (its start was lost or dropped): over now
                self._broken = False
                self._fu_at = None
            self._timestamp = timestamp
        kind = payload[0] & 0x1F
        if kind == NAL_FU_A and self._fu_at is not None and len(payload) > 2 and not payload[1] & 0xC0:
            self._parts.append(payload[2:])  # the middle of a fragmented NAL unit: most packets of a big frame
            self._fu_size += len(payload) - 2
            self._size += len(payload)
            if self._size > MAX_ACCESS_UNIT_BYTES or len(self._parts) > MAX_ACCESS_UNIT_PARTS:
                self._too_big()
            elif marker:
                self._emit(out)
            return
        if payload[0] & 0x80:  # forbidden_zero_bit
            self._bad()
        elif kind == NAL_FU_A:
            self._fu_a(payload)
        elif 1 <= kind <= 23:
            self._nal(payload, kind)
        elif kind == NAL_STAP_A:
            self._stap_a(payload)
        else:  # STAP-B, MTAP, FU-B (interleaved mode) or reserved
            self._bad()
        self._size += len(payload)
        if self._size > MAX_ACCESS_UNIT_BYTES or len(self._parts) > MAX_ACCESS_UNIT_PARTS:
            self._too_big()
        elif marker:
            self._emit(out)

    def _too_big(self) -> None:
        """The access unit passed MAX_ACCESS_UNIT_BYTES or MAX_ACCESS_UNIT_PARTS: dropped (its pieces
        freed now), and so is the rest of it, up to the next keyframe."""
        if not self.oversized:
            log.warning("an H.264 frame passed %d MiB or %d pieces: dropped (counted in oversized_frames from now on)",
                        MAX_ACCESS_UNIT_BYTES >> 20, MAX_ACCESS_UNIT_PARTS)
        self.oversized += 1
        self.stats.bad_packets += 1
        self._broken = True
        self._drop()

    def _nal(self, nal: memoryview, kind: int) -> None:
        if kind in _DROPPED_NALS:
            return
        if self._fu_at is not None:  # an FU-A that never ended
            self._broken = True
            self._fu_at = None
        if kind <= NAL_IDR:
            self._picture = True
            self._keyframe = self._keyframe or kind == NAL_IDR
        elif kind in (NAL_SPS, NAL_PPS):
            if len(nal) > MAX_PARAMETER_SET_BYTES:
                self._bad()
                return
            if kind == NAL_SPS:
                self.sps = bytes(nal)
            else:
                self.pps = bytes(nal)
        self._parts += (len(nal).to_bytes(4, "big"), nal)

    def _stap_a(self, payload: memoryview) -> None:
        pos, end = 1, len(payload)
        while pos + 2 < end:
            size = (payload[pos] << 8) | payload[pos + 1]
            pos += 2
            if size == 0 or pos + size > end:
                break
            nal = payload[pos:pos + size]
            pos += size
            if nal[0] & 0x80 or not 1 <= nal[0] & 0x1F <= 23:  # only single NAL unit types aggregate
                break
            self._nal(nal, nal[0] & 0x1F)
        if pos != end:
            self._bad()

    def _fu_a(self, payload: memoryview) -> None:
        header = payload[1] if len(payload) >= 3 else 0
        kind = header & 0x1F
        if kind == 0 or kind > 23:
            self._bad()
            return
        if header & 0x80:  # start: the NAL header is rebuilt from the FU indicator and header
            if self._fu_at is not None:
                self._broken = True
            self._fu_at, self._fu_kind, self._fu_size = len(self._parts), kind, len(payload) - 1
            self._parts += (b"", bytes(((payload[0] & 0xE0) | kind,)), payload[2:])
        elif self._fu_at is None:
            self._broken = True  # a middle or end whose start was lost
            return
        else:
            self._parts.append(payload[2:])
            self._fu_size += len(payload) - 2
        if header & 0x40:  # end
            self._end_fu()

    def _end_fu(self) -> None:
        at, kind = self._fu_at, self._fu_kind
        self._fu_at = None
        if kind in _DROPPED_NALS:
            del self._parts[at:]
            return
        self._parts[at] = self._fu_size.to_bytes(4, "big")
        if kind <= NAL_IDR:
            self._picture = True
            self._keyframe = self._keyframe or kind == NAL_IDR
        elif kind in (NAL_SPS, NAL_PPS):  # fragmented parameter sets: rare
            if self._fu_size > MAX_PARAMETER_SET_BYTES:
                self._bad()
                return
            nal = b"".join(self._parts[at + 1:])
            if kind == NAL_SPS:
                self.sps = nal
            else:
                self.pps = nal

    def _bad(self) -> None:
        self.stats.bad_packets += 1
        self._broken = True

    def _emit(self, out: list[Frame]) -> None:
        if self._fu_at is not None:  # the frame ended inside a fragmented NAL unit
            self._broken = True
            self._fu_at = None
        parts, keyframe = self._parts, self._keyframe
        if self._broken or not parts:
            self._drop()
            return
        if not self._picture:
            return  # parameter sets or SEI alone: carried into the next frame
        if self._wait_keyframe and not keyframe:
            self._drop()
            return
        self._wait_keyframe = False
        self._reset()
        self.stats.frames += 1
        out.append((b"".join(parts), self._timestamp, keyframe))

    def _drop(self) -> None:
        if self._picture:
            self.stats.dropped_frames += 1
        if self._broken:
            self._wait_keyframe = True
        self._reset()

    @property
    def assembling(self) -> bool:
        """Whether pieces of an unfinished access unit are held."""
        return bool(self._parts)

    def abandon(self) -> None:
        """Drop the access unit being assembled (its pieces pin the chunks they were read in): the
        connection calls this when one unit has spanned too much of the stream."""
        if self._parts:
            self._too_big()

    def _reset(self) -> None:
        self._parts = []
        self._size = 0
        self.units += 1
        self._keyframe = self._picture = self._broken = False
        self._fu_at = None


class AacDepacketizer(Depacketizer):
    """RFC 3640 mpeg4-generic AAC (AAC-hbr or AAC-lbr): AU headers, then the access units.

    Each access unit is one AAC frame of `frame_samples` samples; the n-th in a packet gets the
    packet's timestamp plus n frames. An access unit split over packets (RFC 3640 3.2.3) is
    reassembled; a loss drops the one in progress.
    """

    def __init__(self, *, size_length: int = 13, index_length: int = 3, index_delta_length: int = 3,
                 frame_samples: int = 1024):
        if not 1 <= size_length <= AAC_FIELD_BITS:
            raise ValueError(f"unsupported AAC sizeLength {size_length} (1 to {AAC_FIELD_BITS})")
        for name, value in (("indexLength", index_length), ("indexDeltaLength", index_delta_length)):
            if not 0 <= value <= AAC_FIELD_BITS:
                raise ValueError(f"unsupported AAC {name} {value} (0 to {AAC_FIELD_BITS})")
        if not 0 < frame_samples <= 1 << 16:
            raise ValueError(f"unsupported AAC constantDuration {frame_samples}")
        self.stats = TrackStats()
        self.size_length, self.index_length, self.index_delta_length = size_length, index_length, index_delta_length
        self.frame_samples = frame_samples
        self._partial: list[bytes | memoryview] = []
        self._partial_size = 0
        self._partial_want = 0

    def lost(self) -> None:
        if self._partial:
            self.stats.dropped_frames += 1
        self._partial, self._partial_size = [], 0

    def push(self, payload: memoryview, timestamp: int, marker: bool, out: list[Frame]) -> None:
        sizes = self._au_sizes(payload)
        if sizes is None:
            self.stats.bad_packets += 1
            self.lost()
            return
        pos = 2 + (self._headers_bits(payload) + 7) // 8
        if self._partial or (len(sizes) == 1 and pos + sizes[0] > len(payload)):
            self._fragment(payload[pos:], sizes, timestamp, out)
            return
        for number, size in enumerate(sizes):
            if pos + size > len(payload):
                self.stats.bad_packets += 1
                return
            out.append((bytes(payload[pos:pos + size]), timestamp + number * self.frame_samples, True))
            self.stats.frames += 1
            pos += size

    def _fragment(self, data: memoryview, sizes: list[int], timestamp: int, out: list[Frame]) -> None:
        if len(sizes) != 1 or (self._partial and sizes[0] != self._partial_want):
            self.stats.bad_packets += 1
            self.lost()
            return
        self._partial_want = sizes[0]
        self._partial.append(data)
        self._partial_size += len(data)
        if self._partial_size >= self._partial_want:
            frame = b"".join(self._partial)[:self._partial_want]
            self._partial, self._partial_size = [], 0
            out.append((frame, timestamp, True))
            self.stats.frames += 1

    @staticmethod
    def _headers_bits(payload: memoryview) -> int:
        return (payload[0] << 8) | payload[1]

    def _au_sizes(self, payload: memoryview) -> list[int] | None:
        """The sizes of the access units the AU headers announce, or None if they are malformed."""
        if len(payload) < 2:
            return None
        bits = self._headers_bits(payload)
        header_bytes = (bits + 7) // 8
        if bits == 0 or 2 + header_bytes > len(payload):
            return None
        value = int.from_bytes(payload[2:2 + header_bytes], "big") >> (header_bytes * 8 - bits)
        sizes, used = [], 0
        index_bits = self.index_length
        while used < bits:  # each AU header takes at least one bit (sizeLength >= 1): ends
            width = self.size_length + index_bits
            if used + width > bits or len(sizes) >= MAX_AU_HEADERS:
                return None
            sizes.append((value >> (bits - used - self.size_length)) & ((1 << self.size_length) - 1))
            used += width
            index_bits = self.index_delta_length
        return sizes or None


class G711Depacketizer(Depacketizer):
    """PCMU / PCMA (RFC 3551): every payload is a frame of 8-bit samples, as it is."""

    def __init__(self) -> None:
        self.stats = TrackStats()

    def lost(self) -> None:
        pass

    def push(self, payload: memoryview, timestamp: int, marker: bool, out: list[Frame]) -> None:
        out.append((bytes(payload), timestamp, True))
        self.stats.frames += 1


def receiver_report(reporter_ssrc: int, blocks: list[bytes], *, cname: str) -> bytes:
    """A compound RTCP packet: a receiver report with `blocks`, then an SDES with our CNAME (RFC 3550 6.1)."""
    rr = struct.pack("!BBHI", 0x80 | len(blocks), 201, len(blocks) * 6 + 1, reporter_ssrc) + b"".join(blocks)
    name = cname.encode()[:255]
    item = bytes((1, len(name))) + name + b"\x00"
    item += b"\x00" * (-(4 + len(item)) % 4)
    sdes = struct.pack("!BBHI", 0x81, 202, (4 + len(item)) // 4, reporter_ssrc) + item
    return rr + sdes


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    ntp_middle: int  # the middle 32 bits of the NTP timestamp: what a later report's LSR echoes
    rtp_timestamp: int


def parse_rtcp(data: memoryview | bytes) -> tuple[list[SenderReport], bool]:
    """The sender reports in a compound RTCP packet, and whether it holds a BYE. Malformed tails are
    ignored (RTCP is advisory)."""
    reports, bye, pos, size = [], False, 0, len(data)
    while pos + 4 <= size:
        first, kind = data[pos], data[pos + 1]
        length = (int.from_bytes(data[pos + 2:pos + 4], "big") + 1) * 4
        if first >> 6 != RTP_VERSION or pos + length > size:
            break
        if kind == 200 and length >= 28:
            ssrc, ntp_hi, ntp_lo, rtp_ts = struct.unpack_from("!IIII", data, pos + 4)
            reports.append(SenderReport(ssrc, ((ntp_hi & 0xFFFF) << 16) | (ntp_lo >> 16), rtp_ts))
        elif kind == 203:
            bye = True
        pos += length
    return reports, bye
