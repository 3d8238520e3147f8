"""scrypt password hashes in one string format: web users' passwords and the local monitor's PIN."""
from __future__ import annotations

import hashlib
import hmac
import secrets

# scrypt cost: 16 MiB and 50-100 ms per check here, an estimated 0.25-0.5 s on a Pi 3 (design/web.md);
# stored with each hash so it can rise later.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def hash_password(password: str, *, n: int = SCRYPT_N) -> str:
    """'scrypt$n$r$p$salt$hash' (hex) for `password`: web users' passwords and the monitor's PIN.
    `n` lower than the default only for tests (the cost is part of the string, so checks still work)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 << 20, dklen=32)
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=64 << 20, dklen=len(digest) // 2)
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(got.hex(), digest)
