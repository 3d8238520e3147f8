"""The login throttle's rules, with a clock that only moves when the test says so."""
from __future__ import annotations

import pytest

from base.clock import SimulatedClocks

from appliance.web.login_guard import (ACCOUNT_FREE, ACCOUNT_MAX_DELAY_S, ADDRESS_FREE, MAX_DELAY_S, MAX_TRACKED,
                                   PAIR_FREE, WINDOW_S, KnownClientNeeded, LoginGuard, Throttled)


@pytest.fixture
def clock():
    return SimulatedClocks()


@pytest.fixture
def guard(clock):
    g = LoginGuard(clocks=clock, max_queued=10_000)
    yield g
    g.close()


def fail(guard, account, address, known=None):
    """Reserve an attempt and let its password be wrong (the ticket is not forgiven)."""
    ticket = guard.reserve(account, address, known_client=known)
    guard._done(None)  # the check ended without being run on the pool
    return ticket


def test_after_the_free_attempts_the_waits_double(guard, clock):
    for _ in range(PAIR_FREE):
        fail(guard, "admin", "10.0.0.1")
    waits = []
    for _ in range(4):
        with pytest.raises(Throttled) as caught:
            guard.reserve("admin", "10.0.0.1")
        waits.append(caught.value.retry_after_s)
        clock.advance(caught.value.retry_after_s)
        fail(guard, "admin", "10.0.0.1")
    assert waits == [1, 2, 4, 8]


def test_waits_stop_growing_at_the_cap_and_failures_are_forgotten_after_the_window(guard, clock):
    for _ in range(PAIR_FREE + 30):
        try:
            fail(guard, "admin", "10.0.0.1")
        except Throttled as exc:
            assert exc.retry_after_s <= MAX_DELAY_S
            clock.advance(exc.retry_after_s)
    clock.advance(WINDOW_S + MAX_DELAY_S)
    fail(guard, "admin", "10.0.0.1")  # a fresh start


def test_a_right_password_gives_the_attempt_back_and_clears_the_address_on_that_account(guard):
    for _ in range(PAIR_FREE - 1):
        fail(guard, "admin", "10.0.0.1")
    guard.forgive(fail(guard, "admin", "10.0.0.1"))
    for _ in range(PAIR_FREE):
        fail(guard, "admin", "10.0.0.1")


def test_an_address_trying_many_accounts_is_throttled_as_an_address(guard):
    for i in range(ADDRESS_FREE):
        fail(guard, f"user{i}", "10.0.0.1")
    with pytest.raises(Throttled, match="from this address"):
        guard.reserve("someone-else", "10.0.0.1")
    fail(guard, "someone-else", "10.0.0.2")


def test_the_account_brake_slows_new_addresses_only_and_asks_whether_an_address_is_known(guard, clock):
    for i in range(ACCOUNT_FREE):
        fail(guard, "admin", f"10.1.0.{i}")
    with pytest.raises(KnownClientNeeded):
        guard.reserve("admin", "192.168.1.5")
    guard.forgive(guard.reserve("admin", "192.168.1.5", known_client=True))
    with pytest.raises(Throttled) as caught:
        guard.reserve("admin", "10.2.0.1", known_client=False)
    assert 1 <= caught.value.retry_after_s <= ACCOUNT_MAX_DELAY_S
    clock.advance(caught.value.retry_after_s)
    fail(guard, "admin", "10.2.0.1", known=False)


def test_a_full_pool_refuses_at_once(clock):
    guard = LoginGuard(clocks=clock, hash_slots=1, max_queued=1)
    guard.reserve("a", "10.0.0.1")
    guard.reserve("b", "10.0.0.2")
    with pytest.raises(Throttled, match="busy") as caught:
        guard.reserve("c", "10.0.0.3")
    assert caught.value.retry_after_s == 1
    guard.close()


def test_a_spray_of_addresses_keeps_the_tables_bounded(guard):
    for i in range(MAX_TRACKED + 500):
        fail(guard, f"u{i}", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    assert len(guard._addresses) <= MAX_TRACKED and len(guard._accounts) <= MAX_TRACKED


def test_ipv6_clients_are_counted_by_their_64_network(guard):
    for i in range(PAIR_FREE):
        fail(guard, "admin", f"2001:db8:1:2::{i + 1:x}")
    with pytest.raises(Throttled):
        guard.reserve("admin", "2001:db8:1:2:ffff::9")
    fail(guard, "admin", "2001:db8:1:3::1")


def test_a_spray_of_new_names_cannot_push_out_a_braking_counter(guard):
    for _ in range(PAIR_FREE):
        fail(guard, "admin", "10.9.9.9")
    for i in range(MAX_TRACKED + 10):
        fail(guard, f"spray{i}", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    with pytest.raises(Throttled):
        guard.reserve("admin", "10.9.9.9")
