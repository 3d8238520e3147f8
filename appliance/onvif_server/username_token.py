"""WS-Security UsernameToken PasswordDigest checks: the digest, the token's age and its nonce's first use.

    checker = DigestTokenChecker(password_of=accounts.password_of, clocks=clocks, now=clock)
    user = checker.check(token)    # BadCredentials saying why, when refused

PasswordDigest = Base64(SHA-1(nonce + created + password)) (OASIS UsernameToken Profile 1.0, 3.1). The
profile's advice against replays is followed: a token is accepted only while its Created is at most
MAX_TOKEN_AGE_S old and not ahead of the box's clock by more than CLOCK_SKEW_S (older by the same skew
is also allowed), and each nonce is accepted once per account while a token carrying it could still
be accepted (MAX_TOKEN_AGE_S + 2 * CLOCK_SKEW_S, on the monotonic clock). Only nonces of tokens that
proved the password are remembered, so guessing cannot fill the memory; at most MAX_REMEMBERED_NONCES
are kept, and when that many proven logins came within the window, more are refused until the oldest
expire (failing closed rather than forgetting a nonce that could be replayed). Clients with a clock
of their own ask GetSystemDateAndTime first and shift Created by the difference (onvif-zeep-async and
Home Assistant do), so a box whose clock is off still lets them in.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import threading
from collections import OrderedDict
from collections.abc import Callable

from base.clock import Clocks

from appliance.onvif_server.xml_reader import PASSWORD_DIGEST, UsernameToken
from appliance.web.users import BadCredentials, User

MAX_TOKEN_AGE_S = 300  # the UsernameToken Profile's suggested freshness limit (5 minutes)
CLOCK_SKEW_S = 60  # a client's clock ahead of (or behind) the box's by up to this is still believed
MAX_REMEMBERED_NONCES = 50_000  # proven logins within one window; about 5 MB at most
MIN_NONCE_BYTES, MAX_NONCE_BYTES = 8, 64  # the profile asks for 16; shorter ones are too easy to repeat
MAX_CREATED_CHARS = 40
# One answer for an unknown name, a web user (whose password the box cannot read back) and a wrong
# password alike, so the answer does not tell which names exist.
WRONG_CREDENTIALS = ("wrong user name or password; PasswordDigest is accepted for integration accounts only "
                     "(nvr onvif-user add): web users send PasswordText or use HTTP Digest")


def password_digest(password: str, nonce: bytes, created: str) -> str:
    """Base64(SHA-1(nonce + created + password)), as the client computes it."""
    return base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest()).decode()


def parse_created(text: str | None) -> dt.datetime:
    """A token's wsu:Created as an aware UTC time (no zone given: UTC, as the profile requires it to be);
    BadCredentials when missing or not an ISO 8601 time."""
    if not text or len(text) > MAX_CREATED_CHARS:
        raise BadCredentials("a PasswordDigest token needs a wsu:Created time (UTC, ISO 8601)")
    try:
        created = dt.datetime.fromisoformat(text)
        return created.replace(tzinfo=dt.timezone.utc) if created.tzinfo is None else created.astimezone(dt.timezone.utc)
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 moved across a zone offset
        raise BadCredentials(f"the token's Created {text!r} is not an ISO 8601 time within years 1-9999") from None


def parse_nonce(text: str | None) -> bytes:
    if not text or len(text) > 2 * MAX_NONCE_BYTES:
        raise BadCredentials("a PasswordDigest token needs a Base64 wsse:Nonce")
    try:
        nonce = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadCredentials("the token's Nonce is not Base64") from None
    if not MIN_NONCE_BYTES <= len(nonce) <= MAX_NONCE_BYTES:
        raise BadCredentials(f"the token's Nonce has {len(nonce)} bytes; send {MIN_NONCE_BYTES} to {MAX_NONCE_BYTES}")
    return nonce


class NonceMemory:
    """Nonces seen in the last `keep_s` seconds (on the monotonic clock of `clocks`), at most
    `max_entries`. Thread-safe."""

    def __init__(self, *, keep_s: float, max_entries: int, clocks: Clocks):
        self._keep_s, self._max, self._clocks = keep_s, max_entries, clocks
        self._seen: OrderedDict[tuple[str, bytes], float] = OrderedDict()  # in order of expiry (all keep_s)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def first_use(self, account: str, nonce: bytes) -> bool:
        """Remember (account, nonce); False if it was seen within keep_s. BadCredentials when full."""
        now = self._clocks.monotonic_us() / 1e6
        with self._lock:
            while self._seen and next(iter(self._seen.values())) <= now:
                self._seen.popitem(last=False)
            if (account, nonce) in self._seen:
                return False
            if len(self._seen) >= self._max:
                raise BadCredentials("too many logins in the last minutes; try again in a minute")
            self._seen[(account, nonce)] = now + self._keep_s
            return True


class DigestTokenChecker:
    """Checks PasswordDigest tokens against the passwords `password_of(name)` gives ((User, password) or None)."""

    def __init__(self, password_of: Callable[[str], tuple[User, str] | None], *,
                 clocks: Clocks, now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)):
        self._password_of, self._now = password_of, now
        self.nonces = NonceMemory(keep_s=MAX_TOKEN_AGE_S + 2 * CLOCK_SKEW_S, max_entries=MAX_REMEMBERED_NONCES,
                                  clocks=clocks)

    def check(self, token: UsernameToken) -> User:
        """The account the token proves, else BadCredentials: a wrong password or an unknown name (said
        alike), and, once the password is proven, a Created outside the window or a nonce used before."""
        if token.password_type != PASSWORD_DIGEST:
            raise BadCredentials("not a PasswordDigest token")
        nonce, created = parse_nonce(token.nonce), parse_created(token.created)
        found = self._password_of(token.username)
        if found is None or not hmac.compare_digest(password_digest(found[1], nonce, token.created or "").encode(),
                                                    token.password.encode()):
            raise BadCredentials(WRONG_CREDENTIALS)
        age_s = (self._now() - created).total_seconds()
        if not -CLOCK_SKEW_S <= age_s <= MAX_TOKEN_AGE_S + CLOCK_SKEW_S:
            raise BadCredentials(f"the token's Created {token.created} is {'ahead of' if age_s < 0 else 'older than'} "
                                 f"the box's clock by {abs(age_s):.0f} s (allowed: {CLOCK_SKEW_S} s ahead, "
                                 f"{MAX_TOKEN_AGE_S + CLOCK_SKEW_S} s old); ask GetSystemDateAndTime and correct "
                                 "for the difference, or set the clocks right")
        if not self.nonces.first_use(found[0].name, nonce):
            raise BadCredentials("this token's Nonce was used before: a replayed request is refused; send a new nonce")
        return found[0]
