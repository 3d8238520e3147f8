"""The talk frames a browser sends over its WebSocket, parsed as hostile input, and the budget that bounds
how much sound one talker may send.

A frame is one binary WebSocket message:

    offset  size  field
    0       1     version, FRAME_VERSION (1)
    1       1     flags, 0 (reserved: a frame with any set is refused, so they can mean something later)
    2       2     sequence number, little-endian, +1 per frame (wraps): gaps are counted as lost sound
    4       2n    n samples, signed 16-bit little-endian, mono, 8000 Hz (the page resamples), 1 <= n <= MAX

`TalkBudget` lets a talker send sound at most a little faster than real time (a token bucket of samples
and one of messages, with a burst allowance for the sound buffered while the session opened); what is
over budget is dropped and counted, never queued.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_VERSION = 1
HEADER_BYTES = 4
SAMPLE_RATE = 8000
MAX_FRAME_SAMPLES = 800  # 100 ms: the page sends 20-ms frames; larger ones are a broken or hostile page
MAX_FRAME_BYTES = HEADER_BYTES + 2 * MAX_FRAME_SAMPLES
RATE_MARGIN = 1.25  # sound accepted per second of wall time, in seconds of sound (clocks drift, jitter)
BURST_S = 1.5  # sound accepted at once beyond the rate: what the page buffered while the session opened
MAX_MESSAGES_PER_S = 100  # 20-ms frames are 50 a second
MESSAGE_BURST = 100


class TalkFrameError(ValueError):
    """A message that is no talk frame; the message says which rule it broke."""


@dataclass(frozen=True, slots=True)
class TalkFrame:
    sequence: int
    samples: np.ndarray  # int16, mono, SAMPLE_RATE


def parse_talk_frame(data: bytes) -> TalkFrame:
    """One binary message as a TalkFrame; TalkFrameError for anything else. Reads at most MAX_FRAME_BYTES."""
    size = len(data)
    if size > MAX_FRAME_BYTES:
        raise TalkFrameError(f"a talk frame of {size} bytes (at most {MAX_FRAME_BYTES}: "
                             f"{MAX_FRAME_SAMPLES} samples)")
    if size < HEADER_BYTES + 2:
        raise TalkFrameError(f"a talk frame of {size} bytes has no sound (header {HEADER_BYTES} bytes, then samples)")
    if data[0] != FRAME_VERSION:
        raise TalkFrameError(f"talk frame version {data[0]} (this box speaks {FRAME_VERSION}); reload the page")
    if data[1] != 0:
        raise TalkFrameError(f"talk frame flags {data[1]:#04x} are reserved and must be 0")
    if (size - HEADER_BYTES) % 2:
        raise TalkFrameError(f"a talk frame's sound of {size - HEADER_BYTES} bytes is not whole 16-bit samples")
    sequence = data[2] | (data[3] << 8)
    samples = np.frombuffer(data, dtype="<i2", offset=HEADER_BYTES).astype(np.int16)
    return TalkFrame(sequence, samples)


def build_talk_frame(sequence: int, samples: np.ndarray) -> bytes:
    """The frame a page sends (for tests and tools)."""
    return bytes((FRAME_VERSION, 0, sequence & 0xFF, (sequence >> 8) & 0xFF)) + \
        np.asarray(samples, dtype="<i2").tobytes()


class TalkBudget:
    """How much a talker may still send: `admit(samples, now_s)` says whether a frame fits (and takes it
    from the budget), counting what was dropped and the frames lost in the sequence. Its promise, which
    `statistics()` lets a caller check: `admitted_s <= BURST_S + span_s * RATE_MARGIN`."""

    def __init__(self, now_s: float):
        self._samples = BURST_S * SAMPLE_RATE
        self._messages = float(MESSAGE_BURST)
        self._at_s = self._start_s = now_s
        self._next_sequence: int | None = None
        self.frames = self.dropped_frames = self.lost_frames = self.admitted_samples = 0

    def statistics(self) -> dict:
        """What was let through and over how long, by the clock `admit` was given."""
        return {"frames": self.frames, "over_budget_frames": self.dropped_frames, "lost_frames": self.lost_frames,
                "admitted_s": self.admitted_samples / SAMPLE_RATE, "span_s": self._at_s - self._start_s}

    def admit(self, frame: TalkFrame, now_s: float) -> bool:
        elapsed = max(0.0, now_s - self._at_s)
        self._at_s = max(self._at_s, now_s)
        self._samples = min(BURST_S * SAMPLE_RATE, self._samples + elapsed * SAMPLE_RATE * RATE_MARGIN)
        self._messages = min(float(MESSAGE_BURST), self._messages + elapsed * MAX_MESSAGES_PER_S)
        self._sequence(frame.sequence)
        if self._messages < 1 or self._samples < len(frame.samples):
            self.dropped_frames += 1
            return False
        self._messages -= 1
        self._samples -= len(frame.samples)
        self.frames += 1
        self.admitted_samples += len(frame.samples)
        return True

    def _sequence(self, sequence: int) -> None:
        if self._next_sequence is not None:
            gap = (sequence - self._next_sequence) & 0xFFFF
            if gap >= 0x8000:
                return  # behind: a late or repeated frame, neither a loss nor where the sequence is now
            self.lost_frames += gap  # ahead: the frames between went missing
        self._next_sequence = (sequence + 1) & 0xFFFF
