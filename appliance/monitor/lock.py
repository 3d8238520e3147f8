"""The local lock: the monitor shows live only until an operator enters the PIN (scrypt-hashed in the config)."""
from __future__ import annotations

from base.clock import Clocks

from base.passwords import SCRYPT_N, hash_password, verify_password

MAX_ATTEMPTS = 5
LOCKOUT_S = 60.0


def hash_pin(pin: str, *, n: int = SCRYPT_N) -> str:
    """The scrypt string for `pin` (same format as web users' passwords); what `monitor.pin_hash` holds."""
    if not pin.isdigit() or not 4 <= len(pin) <= 12:
        raise ValueError("a PIN is 4 to 12 digits (a remote control has nothing else)")
    return hash_password(pin, n=n)


def verify_pin(pin: str, pin_hash: str) -> bool:
    """Whether `pin` matches `pin_hash` (constant-time compare); False for a malformed hash."""
    return verify_password(pin, pin_hash)


class PinLock:
    """Locked until `try_unlock` gets the PIN; locks again after `unlock_timeout_s` without `touch`.

    With no PIN configured it never unlocks: playback and PTZ stay off the local screen. After
    MAX_ATTEMPTS wrong PINs in a row it refuses every PIN for LOCKOUT_S, which makes guessing a
    4-digit PIN at the keyboard take days.
    """

    def __init__(self, *, pin_hash: str | None, clocks: Clocks, unlock_timeout_s: float):
        self._hash, self._clocks, self._timeout_us = pin_hash, clocks, int(unlock_timeout_s * 1e6)
        self._unlocked_until_us = 0
        self._failures = 0
        self._refuse_until_us = 0

    @property
    def configured(self) -> bool:
        return self._hash is not None

    @property
    def unlocked(self) -> bool:
        return self._clocks.monotonic_us() < self._unlocked_until_us

    def try_unlock(self, pin: str) -> str:
        """'unlocked', 'wrong', 'refused' (locked out after too many tries) or 'no-pin' (none configured)."""
        now = self._clocks.monotonic_us()
        if self._hash is None:
            return "no-pin"
        if now < self._refuse_until_us:
            return "refused"
        if not verify_pin(pin, self._hash):
            self._failures += 1
            if self._failures >= MAX_ATTEMPTS:
                self._failures, self._refuse_until_us = 0, now + int(LOCKOUT_S * 1e6)
            return "wrong"
        self._failures = 0
        self._unlocked_until_us = now + self._timeout_us
        return "unlocked"

    def touch(self) -> None:
        """An operator did something: keep an unlocked monitor unlocked for another timeout."""
        if self.unlocked:
            self._unlocked_until_us = self._clocks.monotonic_us() + self._timeout_us

    def lock(self) -> None:
        self._unlocked_until_us = 0
