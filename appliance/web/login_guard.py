"""Login throttling that costs an attacker, not the box (design/web.md, "Logins under attack").

Every password check (scrypt, 16 MiB) runs on a pool of `HASH_SLOTS` threads of its own; at most
`MAX_QUEUED` more wait for it, and any login beyond that is refused at once with 429 and
`Retry-After`, so a flood of logins costs neither memory nor the web server's worker threads.

Failures are counted three ways, each with delays that double once its free attempts are used up:

- per (account, client address): `PAIR_FREE` attempts, then 1 s, 2 s, 4 s ... up to `MAX_DELAY_S`;
- per client address, whatever the account: `ADDRESS_FREE`, then the same growth, and at most
  `ADDRESS_MAX` failures per `WINDOW_S`;
- per account, from every address: after `ACCOUNT_FREE` the account's checks are spaced by a
  delay that grows to `ACCOUNT_MAX_DELAY_S` (30 s), but only for addresses the account has never
  logged in from. An address it has logged in from (`UserStore.known_client`) is exempt.

So wrong passwords from one address only slow that address; the account-wide brake slows a spray
from many addresses (a botnet) to one guess per 30 s, and never refuses the owner's usual address.
Nothing is keyed on whether the account exists: unknown names are counted and answered the same.
An IPv6 client is counted by its /64 network: one host can pick any address inside it.

Counting is atomic: `reserve` checks the throttles and counts the attempt as a failure in one step
under a lock (before the password is checked), and a correct password gives the count back. There
is no window between "may it try?" and "count it" for concurrent attempts to slip through.
"""
from __future__ import annotations

import asyncio
import ipaddress
import math
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from base.clock import Clocks

T = TypeVar("T")

HASH_SLOTS = 2  # scrypt checks at once: 2 x 16 MiB; a Pi 3 has 4 cores and 1 GB
MAX_QUEUED = 6  # checks waiting for a slot (about 1 s of work on a Pi 3); more answer 429 at once
WINDOW_S = 15 * 60  # failures older than this are forgotten
PAIR_FREE = 5
ADDRESS_FREE = 10
ADDRESS_MAX = 60
ACCOUNT_FREE = 20
FIRST_DELAY_S = 1.0
MAX_DELAY_S = 15 * 60.0
ACCOUNT_MAX_DELAY_S = 30.0
MAX_TRACKED = 10_000  # keys per table; beyond it the oldest are dropped (bounded memory under a spray)


class KnownClientNeeded(Exception):
    """`reserve` needs to know whether the account has logged in from this address (its account-wide
    brake is on): look it up (a database read, off the event loop) and reserve again with it."""


class Throttled(Exception):
    """A login refused before its password is checked; `retry_after_s` for the Retry-After header."""

    def __init__(self, reason: str, retry_after_s: int):
        super().__init__(f"too many login attempts ({reason}); wait {retry_after_s} s and try again")
        self.reason, self.retry_after_s = reason, retry_after_s


@dataclass
class _Count:
    failures: deque = field(default_factory=deque)  # monotonic times of failures inside the window
    next_allowed: float = 0.0


@dataclass(frozen=True)
class Ticket:
    """One reserved login attempt: what `reserve` counted, to give back if the password is right."""

    account: str
    address: str
    at: float


class LoginGuard:
    """The password-check pool and the failure counters. Thread-safe; one per web app."""

    def __init__(self, *, clocks: Clocks, hash_slots: int = HASH_SLOTS, max_queued: int = MAX_QUEUED):
        self._now = lambda: clocks.monotonic_us() / 1e6
        self._lock = threading.Lock()
        self._pairs: dict[tuple[str, str], _Count] = {}
        self._addresses: dict[str, _Count] = {}
        self._accounts: dict[str, _Count] = {}
        self._pool = ThreadPoolExecutor(max_workers=hash_slots, thread_name_prefix="login-hash")
        self._capacity = hash_slots + max_queued
        self._in_flight = 0
        self.checks_started = 0  # password checks run (for tests and the metrics page)

    # counting

    def reserve(self, account: str, address: str, *, known_client: bool | None = None) -> Ticket:
        """Count an attempt of `address` on `account` as a failure now, or raise Throttled if it must
        wait (or the check pool is full). `known_client`: the account has logged in from `address`;
        needed only while the account's brake is on, else KnownClientNeeded is raised asking for it.
        Throttled attempts touch no database, so a flood of them costs only this lock."""
        address = address_key(address)
        with self._lock:
            now = self._now()
            pair = self._count(self._pairs, (account, address), now)
            addr = self._count(self._addresses, address, now)
            acct = self._count(self._accounts, account, now)
            waits = [(pair.next_allowed - now, "wrong passwords for this account from this address"),
                     (addr.next_allowed - now, "wrong passwords from this address")]
            if len(addr.failures) >= ADDRESS_MAX:
                waits.append((addr.failures[0] + WINDOW_S - now, "wrong passwords from this address"))
            wait, reason = max(waits)
            if wait <= 0 and acct.next_allowed > now:
                if known_client is None:
                    raise KnownClientNeeded()
                if not known_client:
                    wait, reason = acct.next_allowed - now, "wrong passwords for this account"
            if wait > 0:
                raise Throttled(reason, max(1, math.ceil(wait)))
            if self._in_flight >= self._capacity:
                raise Throttled("the appliance is busy checking other logins", 1)
            _fail(pair, now, PAIR_FREE, MAX_DELAY_S)
            _fail(addr, now, ADDRESS_FREE, MAX_DELAY_S)
            _fail(acct, now, ACCOUNT_FREE, ACCOUNT_MAX_DELAY_S)
            self._in_flight += 1
            self.checks_started += 1
            return Ticket(account, address, now)

    def forgive(self, ticket: Ticket) -> None:  # ticket.address is already the address key
        """The password was right: the attempt is no failure; this address's failures on the account go."""
        with self._lock:
            self._pairs.pop((ticket.account, ticket.address), None)
            for table, key, free, cap in ((self._addresses, ticket.address, ADDRESS_FREE, MAX_DELAY_S),
                                          (self._accounts, ticket.account, ACCOUNT_FREE, ACCOUNT_MAX_DELAY_S)):
                count = table.get(key)
                if count is not None and ticket.at in count.failures:
                    count.failures.remove(ticket.at)
                    _reschedule(count, free, cap)

    def _count(self, table: dict, key, now: float) -> _Count:
        count = table.get(key)
        if count is None:
            if len(table) >= MAX_TRACKED:
                self._prune(table, now)
            count = table[key] = _Count()
        while count.failures and count.failures[0] < now - WINDOW_S:
            count.failures.popleft()
        return count

    @staticmethod
    def _prune(table: dict, now: float) -> None:
        """Make room: drop what has expired, then the oldest counters not making anyone wait, and only
        then (a table full of waiting counters) the oldest. A spray of new names or addresses thus
        cannot push out the counter that is braking an attack."""
        for key in [k for k, c in table.items() if c.next_allowed <= now and
                    (not c.failures or c.failures[-1] < now - WINDOW_S)]:
            del table[key]
        if len(table) >= MAX_TRACKED:  # a tenth at once, so a spray does not rescan the table every time
            idle = [k for k, c in table.items() if c.next_allowed <= now]
            for key in idle[:max(len(table) - MAX_TRACKED + 1, MAX_TRACKED // 10)]:
                del table[key]
        while len(table) >= MAX_TRACKED:
            del table[next(iter(table))]

    # the check pool

    def _submit(self, fn: Callable[..., T], *args) -> Future:
        future = self._pool.submit(fn, *args)
        future.add_done_callback(self._done)  # the slot frees when the work ends, even if the client left
        return future

    def _done(self, _: Future) -> None:
        with self._lock:
            self._in_flight -= 1

    async def check(self, ticket: Ticket, fn: Callable[..., T], *args) -> T:
        """Run password check `fn(*args)` on the pool for a reserved attempt; a result (no exception)
        forgives the attempt."""
        result = await asyncio.wrap_future(self._submit(fn, *args))
        self.forgive(ticket)
        return result

    def check_blocking(self, ticket: Ticket, fn: Callable[..., T], *args) -> T:
        """`check` for a caller on a worker thread."""
        result = self._submit(fn, *args).result()
        self.forgive(ticket)
        return result

    async def run(self, fn: Callable[..., T], *args) -> T:
        """Run other password hashing (first-run set-up) on the pool, within its bound; Throttled if full."""
        with self._lock:
            if self._in_flight >= self._capacity:
                raise Throttled("the appliance is busy checking other logins", 1)
            self._in_flight += 1
        return await asyncio.wrap_future(self._submit(fn, *args))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def address_key(address: str) -> str:
    """The key a client address is counted under: an IPv4 address itself, an IPv6 address's /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if ip.version == 4:
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.ip_network(f"{ip}/64", strict=False))


def _fail(count: _Count, now: float, free: int, cap_s: float) -> None:
    count.failures.append(now)
    _reschedule(count, free, cap_s)


def _reschedule(count: _Count, free: int, cap_s: float) -> None:
    """After `free` failures in the window, the next attempt waits 1 s, then 2 s, 4 s ... up to `cap_s`
    after the latest failure."""
    beyond = len(count.failures) - free
    if beyond < 0 or not count.failures:
        count.next_allowed = 0.0
        return
    count.next_allowed = count.failures[-1] + min(FIRST_DELAY_S * 2.0 ** min(beyond, 40), cap_s)
