"""PasswordDigest tokens, sans-IO: the digest as the UsernameToken Profile defines it, the Created window
with its clock skew, nonces remembered while a replay could be accepted, and the memory's bound."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest

from base.clock import SimulatedClocks
from appliance.onvif_server.username_token import (CLOCK_SKEW_S, MAX_TOKEN_AGE_S, DigestTokenChecker, NonceMemory,
                                                   password_digest)
from appliance.onvif_server.xml_reader import PASSWORD_DIGEST, PASSWORD_TEXT, UsernameToken
from appliance.web.users import BadCredentials, User

NOW = dt.datetime(2026, 12, 7, 12, 0, 0, tzinfo=dt.timezone.utc)
HASS = User("hass", "viewer")


def token(password: str = "hass-pass-123", *, nonce: bytes = b"0123456789abcdef", created: str = "2026-12-07T12:00:00Z",
          name: str = "hass") -> UsernameToken:
    return UsernameToken(name, password_digest(password, nonce, created), PASSWORD_DIGEST,
                         base64.b64encode(nonce).decode(), created)


def checker(clocks: SimulatedClocks | None = None) -> DigestTokenChecker:
    return DigestTokenChecker(lambda name: (HASS, "hass-pass-123") if name == "hass" else None, now=lambda: NOW,
                              clocks=clocks or SimulatedClocks())


def test_the_digest_is_base64_of_sha1_of_nonce_created_and_password():
    expected = base64.b64encode(hashlib.sha1(b"N" * 16 + b"2026-12-07T12:00:00Z" + b"secret").digest()).decode()
    assert password_digest("secret", b"N" * 16, "2026-12-07T12:00:00Z") == expected


def test_a_right_token_is_accepted_once():
    check = checker()
    assert check.check(token()) == HASS
    with pytest.raises(BadCredentials, match="used before"):
        check.check(token())


def at(offset_s: int) -> str:
    return (NOW + dt.timedelta(seconds=offset_s)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("created, ok", [
    (at(-MAX_TOKEN_AGE_S), True),
    (at(-MAX_TOKEN_AGE_S - CLOCK_SKEW_S), True),  # the skew counts both ways
    (at(-MAX_TOKEN_AGE_S - CLOCK_SKEW_S - 1), False),
    (at(CLOCK_SKEW_S), True),
    (at(CLOCK_SKEW_S + 1), False),
    ("2026-12-07T13:00:00+01:00", True),  # the same instant in another zone
    ("2026-12-07T12:00:00", True),  # no zone: UTC, as the profile requires
])
def test_created_is_accepted_within_the_age_and_skew_window_only(created, ok):
    if ok:
        assert checker().check(token(created=created)) == HASS
    else:
        with pytest.raises(BadCredentials, match="GetSystemDateAndTime"):
            checker().check(token(created=created))


@pytest.mark.parametrize("bad", [
    token("wrong-pass-123"), token(name="nobody"),
    UsernameToken("hass", "hass-pass-123", PASSWORD_TEXT, None, None),
    UsernameToken("hass", token().password, PASSWORD_DIGEST, None, "2026-12-07T12:00:00Z"),
    UsernameToken("hass", token().password, PASSWORD_DIGEST, "not base64!", "2026-12-07T12:00:00Z"),
    UsernameToken("hass", token().password, PASSWORD_DIGEST, base64.b64encode(b"abc").decode(), "2026-12-07T12:00:00Z"),
    UsernameToken("hass", token().password, PASSWORD_DIGEST, token().nonce, "yesterday"),
    UsernameToken("hass", token().password, PASSWORD_DIGEST, token().nonce, None),
    token(created="0001-01-01T00:00:00+01:00"), token(created="9999-12-31T23:59:59-01:00"),  # overflowed once
    token(created="0001-01-01T00:00:00Z"),
])
def test_wrong_or_malformed_tokens_are_refused_with_a_reason(bad):
    with pytest.raises(BadCredentials):
        checker().check(bad)


def test_a_stale_token_with_the_right_password_does_not_use_up_its_nonce():
    check = checker()
    with pytest.raises(BadCredentials):
        check.check(token(created="2026-12-07T10:00:00Z"))
    assert len(check.nonces) == 0


def test_a_nonce_is_remembered_as_long_as_a_token_carrying_it_could_be_accepted():
    clocks = SimulatedClocks()
    memory = NonceMemory(keep_s=MAX_TOKEN_AGE_S + 2 * CLOCK_SKEW_S, max_entries=10, clocks=clocks)
    assert memory.first_use("hass", b"n1")
    clocks.advance(MAX_TOKEN_AGE_S + 2 * CLOCK_SKEW_S - 1)
    assert not memory.first_use("hass", b"n1")
    assert memory.first_use("vms", b"n1")  # per account
    clocks.advance(1)
    assert memory.first_use("hass", b"n1") and len(memory) == 2


def test_a_full_nonce_memory_refuses_rather_than_forgets():
    clocks = SimulatedClocks()
    memory = NonceMemory(keep_s=60, max_entries=3, clocks=clocks)
    for i in range(3):
        assert memory.first_use("hass", bytes([i]))
    with pytest.raises(BadCredentials, match="too many logins"):
        memory.first_use("hass", b"new")
    assert not memory.first_use("hass", bytes([0]))  # still remembered
    clocks.advance(60)
    assert memory.first_use("hass", b"new")
