"""The reconnect policy on simulated time: back within 3 s of a camera answering again, whatever its
history; long waits only for a camera that answers and refuses (issue 12, build point 4)."""
from __future__ import annotations

import random

import pytest

from base.clock import SimulatedClocks
from recorder.reconnect import ReconnectPolicy, Step

RESUME_LIMIT_S = 3.0


class World:
    """A camera on simulated time: `up` windows, and an open attempt that takes `open_s`."""

    def __init__(self, clocks: SimulatedClocks, windows: list[tuple[float, float]], *, open_s: float = 0.3,
                 refuses: bool = False):
        self.clocks, self.windows, self.open_s, self.refuses = clocks, windows, open_s, refuses
        self.origin_s = self.now()
        self.attempts: list[float] = []
        self.connected_at: list[float] = []

    def now(self) -> float:
        return self.clocks.monotonic_us() / 1e6

    def t(self) -> float:
        return self.now() - self.origin_s

    def up(self, at: float | None = None) -> bool:
        at = self.t() if at is None else at
        return any(start <= at < end for start, end in self.windows)

    def run(self, policy: ReconnectPolicy, until_s: float) -> None:
        """The recorder's loop: attempt; a connection lasts while the camera is up; then the policy."""
        while self.t() < until_s:
            policy.attempting()
            started = self.now()
            self.attempts.append(self.t())
            self.clocks.advance(self.open_s)
            refused = False
            if self.up() and self.up(self.t() - self.open_s):
                if self.refuses:
                    refused = True
                else:
                    self.connected_at.append(self.t())
                    while self.up() and self.t() < until_s:  # recording until the camera drops
                        self.clocks.advance(0.05)
            now = self.now()
            policy.failed(now, refused=refused, lasted_s=now - started)
            while self.t() < until_s:
                step = policy.next(self.now())
                if step.step is Step.ATTEMPT:
                    break
                if step.step is Step.PROBE:
                    self.clocks.advance(0.002)  # a TCP connect on the LAN
                    policy.probed(self.now(), self.up())
                else:
                    self.clocks.advance(max(step.wait_s, 1e-6))  # the clock counts whole microseconds


def flapping_windows(seed: int, count: int = 20) -> list[tuple[float, float]]:
    """Up 4-8 s, down 0.5-4 s, `count` times (a PoE switch or Wi-Fi link that keeps dropping)."""
    rng, at, windows = random.Random(seed), 0.0, []
    for _ in range(count):
        up_s = rng.uniform(4, 8)
        windows.append((at, at + up_s))
        at += up_s + rng.uniform(0.5, 4)
    return windows


@pytest.mark.parametrize("seed", range(5))
def test_a_flapping_camera_is_recorded_again_within_3_s_of_every_return(seed):
    clocks = SimulatedClocks()
    windows = flapping_windows(seed)
    world = World(clocks, windows)
    world.run(ReconnectPolicy(), until_s=windows[-1][1])
    for start, end in windows:
        resumed = [c for c in world.connected_at if start <= c < end]
        assert resumed and resumed[0] - start <= RESUME_LIMIT_S, (start, resumed)


def test_a_camera_down_for_minutes_is_back_within_3_s_of_answering():
    clocks = SimulatedClocks()
    world = World(clocks, [(0, 5), (600, 700)])
    policy = ReconnectPolicy()
    world.run(policy, until_s=650)
    assert [c for c in world.connected_at if c >= 600][0] - 600 <= RESUME_LIMIT_S
    attempts_while_down = [a for a in world.attempts if 5 <= a < 600]
    assert len(attempts_while_down) <= 600 / 2 + 1  # at most one full attempt per retry_max_s (2 s)


def test_a_camera_that_refuses_is_not_hammered_but_is_retried_at_once_after_an_outage():
    clocks = SimulatedClocks()
    world = World(clocks, [(-1, 300), (310, 400)], refuses=True)
    policy = ReconnectPolicy(refused_max_s=30)
    world.run(policy, until_s=300)
    gaps = [b - a for a, b in zip(world.attempts, world.attempts[1:])]
    assert gaps[:5] == pytest.approx([1.3, 2.3, 4.3, 8.3, 16.3])  # 1, 2, 4, 8, 16 s plus each 0.3 s attempt
    assert max(gaps) == pytest.approx(30.3) and len(world.attempts) <= 15
    assert policy.refused
    # down for 10 s, then back: the probe sees it come back and the next attempt is at once
    world.run(policy, until_s=320)
    assert [a for a in world.attempts if a >= 310][0] - 310 <= RESUME_LIMIT_S


def test_the_probe_only_ever_shortens_a_wait():
    policy = ReconnectPolicy(min_s=1.0, retry_max_s=2.0)
    assert policy.next(0.0) == policy.next(0.0) and policy.next(0.0).step is Step.ATTEMPT
    policy.attempting()
    assert policy.failed(10.0, refused=False) == 1.0
    assert policy.next(10.0).step is Step.PROBE
    policy.probed(10.0, answered=True)  # answering all along: no reason to hurry
    assert policy.next(10.1).step is Step.WAIT and policy.next(11.0).step is Step.ATTEMPT
    policy.attempting()
    assert policy.failed(12.0, refused=False) == 2.0
    policy.probed(12.0, answered=False)
    policy.probed(12.5, answered=True)  # silent, then answering: back
    assert policy.next(12.5).step is Step.ATTEMPT and policy.early_attempts == 1
    policy.attempting()
    assert policy.failed(20.0, refused=False, lasted_s=5.0) == 1.0  # a connection that lasted starts over
    assert policy.next(20.5, can_probe=False) == policy.next(20.5, can_probe=False)
    assert policy.next(20.5, can_probe=False).wait_s == pytest.approx(0.5)
