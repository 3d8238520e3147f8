"""When to open a lost stream again: soon whenever the camera may be back, slowly only when it refuses.

A pure policy (no threads, no clock of its own: every call takes `now_s`), so it is tested on
simulated time; `recorder.stream_recorder` drives it with the monotonic clock and the source's probe.

    a camera that answers and refuses (wrong password, no such stream: the source's error has
    `refused` set)   waits min_s, doubling up to refused_max_s: it is not hammered, and retrying
                     sooner would not help
    any other failure (refused connection, no answer, dropped, stalled, garbage)
                     waits min_s, doubling up to retry_max_s (a few seconds): recording resumes
                     within about that of the camera working again, whatever happened before
    and in either case, between attempts, a cheap probe (a TCP connect) every probe_down_s while the
    camera does not answer, every probe_up_s while it does: the first probe that finds it answering
    after one that did not makes the next attempt due at once.

A connection that lasted `stable_s` starts the doubling over.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

RETRY_MIN_S = 1.0
RETRY_MAX_S = 2.0  # the longest wait after a failure that is not a refusal
REFUSED_MAX_S = 30.0  # the longest wait after a refusal (401, 403, 404); config's reconnect_max_s
PROBE_DOWN_S = 0.5  # probe this often while the camera does not answer...
PROBE_UP_S = 2.0  # ... and this often while it answers (only a down-then-up change matters)
PROBE_TIMEOUT_S = 0.5  # a probe (TCP connect) that takes longer counts as no answer


class Step(Enum):
    ATTEMPT = "attempt"  # open the source now
    PROBE = "probe"  # probe the camera now, then ask again
    WAIT = "wait"  # wait `wait_s` (or until stopped), then ask again


@dataclass(frozen=True, slots=True)
class Next:
    step: Step
    wait_s: float = 0.0


class ReconnectPolicy:
    """The waits between attempts to open one stream (see the module docstring)."""

    def __init__(self, *, min_s: float = RETRY_MIN_S, retry_max_s: float = RETRY_MAX_S,
                 refused_max_s: float = REFUSED_MAX_S, probe_down_s: float = PROBE_DOWN_S,
                 probe_up_s: float = PROBE_UP_S, stable_s: float | None = None):
        if not 0 < min_s <= retry_max_s or refused_max_s < min_s:
            raise ValueError(f"need 0 < min_s <= retry_max_s and min_s <= refused_max_s, not {min_s!r}, "
                             f"{retry_max_s!r}, {refused_max_s!r}")
        self.min_s, self.retry_max_s, self.refused_max_s = min_s, retry_max_s, refused_max_s
        self.probe_down_s, self.probe_up_s = probe_down_s, probe_up_s
        self.stable_s = retry_max_s if stable_s is None else stable_s
        self._delay_s = 0.0  # the last wait given (0: none yet, or reset)
        self._attempt_at: float | None = None  # None: attempt at once
        self._probe_at = 0.0
        self._answered: bool | None = None  # the last probe's result since the failure (None: no probe yet)
        self.refused = False  # the last failure was a refusal
        self.early_attempts = 0  # attempts made at once because a probe saw the camera come back

    def failed(self, now_s: float, *, refused: bool, lasted_s: float = 0.0) -> float:
        """An attempt (or the connection it made, after `lasted_s`) failed; returns the wait before the
        next attempt (probes may cut it short)."""
        if lasted_s >= self.stable_s or refused != self.refused:
            self._delay_s = 0.0
        cap = self.refused_max_s if refused else self.retry_max_s
        self._delay_s = min(max(self._delay_s * 2, self.min_s), cap)
        self.refused = refused
        self._attempt_at = now_s + self._delay_s
        self._probe_at = now_s  # at once: a camera that went down with the connection is seen down
        self._answered = None
        return self._delay_s

    def next(self, now_s: float, *, can_probe: bool = True) -> Next:
        """What to do now: attempt, probe, or wait how long."""
        if self._attempt_at is None or now_s >= self._attempt_at:
            return Next(Step.ATTEMPT)
        if can_probe and now_s >= self._probe_at:
            return Next(Step.PROBE)
        until = self._attempt_at if not can_probe else min(self._attempt_at, self._probe_at)
        return Next(Step.WAIT, until - now_s)

    def probed(self, now_s: float, answered: bool) -> None:
        """The probe's result: the camera answering after a probe that found it silent (or after a
        failure without an answer) makes the next attempt due now."""
        came_back = answered and self._answered is False
        self._answered = answered
        self._probe_at = now_s + (self.probe_up_s if answered else self.probe_down_s)
        if came_back and self._attempt_at is not None and self._attempt_at > now_s:
            self._attempt_at = now_s
            self.early_attempts += 1

    def attempting(self) -> None:
        """An attempt starts now: nothing is due until it ends (`failed`)."""
        self._attempt_at = None
