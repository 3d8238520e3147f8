"""Secrets the box must be able to read back (integration accounts' passwords), sealed with a key kept apart.

    key = SecretKey.load_or_create(folder)   # <folder>/integration-secrets.key, 32 random bytes, mode 0600
    sealed = key.seal("hass", password)        # text for the database: "v1." + base64(nonce | ciphertext | tag)
    key.open("hass", sealed) == password       # SecretError if the text was changed, moved to another
                                               # account, or sealed with another key

Why: a protocol such as ONVIF's WS-UsernameToken PasswordDigest proves knowledge of the plain password, so
the verifier needs it; keeping it sealed means a copy of users.sqlite3 alone (a backup, a disk taken out)
does not reveal it, only together with the key file.

The construction uses the standard library only (no AES there, and the appliance has no crypto package): a
pseudorandom function in counter mode for secrecy and encrypt-then-MAC for integrity, both HMAC-SHA256 with
separate keys derived from the file's key, a fresh 16-byte random nonce per sealing, the account name bound
into the tag. Both are textbook constructions with HMAC-SHA256 as the PRF.

Errors: SecretError (ValueError) for a sealed text that does not open; SecretKeyError (OSError) for a
key file that cannot be read or has the wrong content (its message says what to do).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger("nvr.users")

KEY_FILE = "integration-secrets.key"
KEY_BYTES = 32
NONCE_BYTES = 16
TAG_BYTES = 32
MAX_SECRET_BYTES = 4096  # a password is at most 1024 characters (4 bytes each in UTF-8)
_VERSION = "v1."
_BLOCK_BYTES = 32  # one HMAC-SHA256 output


class SecretError(ValueError):
    """A sealed secret does not open: changed, moved to another account, or sealed with another key."""


class SecretKeyError(OSError):
    """The key file cannot be read or does not hold a key."""


def _keystream(key: bytes, nonce: bytes, length: int) -> bytes:
    blocks = (hmac.new(key, nonce + i.to_bytes(4, "big"), hashlib.sha256).digest()
              for i in range((length + _BLOCK_BYTES - 1) // _BLOCK_BYTES))
    return b"".join(blocks)[:length]


class SecretKey:
    """The key that seals integration secrets; made once per data folder, never logged or shown."""

    def __init__(self, key: bytes):
        if len(key) != KEY_BYTES:
            raise SecretKeyError(f"a sealing key has {KEY_BYTES} bytes, got {len(key)}")
        self._enc = hmac.new(key, b"nvr secret box: encryption", hashlib.sha256).digest()
        self._mac = hmac.new(key, b"nvr secret box: authentication", hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "SecretKey(<hidden>)"

    @classmethod
    def load(cls, folder: Path) -> SecretKey | None:
        """The key in `folder`, None when there is no key file. A file readable by others is made 0600
        (and that is logged); one that does not hold a key raises SecretKeyError."""
        path = folder / KEY_FILE
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SecretKeyError(f"{path}: cannot be read ({exc.strerror}); the service needs to read it") from exc
        with os.fdopen(fd, "rb") as file:
            if stat.S_IMODE(os.fstat(file.fileno()).st_mode) & 0o077:
                log.warning("%s was readable by other users; made it 0600", path)
                os.fchmod(file.fileno(), 0o600)
            text = file.read(200).strip()
        try:
            return cls(bytes.fromhex(text.decode("ascii")))
        except (ValueError, UnicodeDecodeError, SecretKeyError):
            raise SecretKeyError(f"{path} does not hold a key ({2 * KEY_BYTES} hex digits); restore it from a "
                                 "backup, or remove it and set every integration account's password again") from None

    @classmethod
    def load_or_create(cls, folder: Path) -> SecretKey:
        """The key in `folder`, made (0600, written and synced, then linked into place so no reader ever sees
        half a key) when there is none."""
        found = cls.load(folder)
        if found is not None:
            return found
        key, path = secrets.token_bytes(KEY_BYTES), folder / KEY_FILE
        draft = folder / f".{KEY_FILE}.{secrets.token_hex(8)}"
        with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), "w") as file:
            file.write(key.hex() + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(draft, path)  # whole or not at all, and never over a key another process made meanwhile
        except FileExistsError:
            return cls.load(folder)
        finally:
            draft.unlink()
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        log.info("made the key for integration secrets: %s", path)
        return cls(key)

    def _tag(self, account: str, nonce: bytes, ciphertext: bytes) -> bytes:
        return hmac.new(self._mac, _VERSION.encode() + account.encode() + b"\0" + nonce + ciphertext,
                        hashlib.sha256).digest()

    def seal(self, account: str, secret: str) -> str:
        """`secret` sealed for `account`, as ASCII text."""
        data = secret.encode()
        if len(data) > MAX_SECRET_BYTES:
            raise SecretError(f"a secret is at most {MAX_SECRET_BYTES} bytes")
        nonce = secrets.token_bytes(NONCE_BYTES)
        ciphertext = bytes(a ^ b for a, b in zip(data, _keystream(self._enc, nonce, len(data))))
        return _VERSION + base64.b64encode(nonce + ciphertext + self._tag(account, nonce, ciphertext)).decode()

    def open(self, account: str, sealed: str) -> str:
        """The secret `seal(account, ...)` made; SecretError if `sealed` is not that."""
        if not sealed.startswith(_VERSION) or len(sealed) > 2 * MAX_SECRET_BYTES:
            raise SecretError("not a sealed secret of this version")
        try:
            raw = base64.b64decode(sealed[len(_VERSION):], validate=True)
        except ValueError:
            raise SecretError("not a sealed secret (bad base64)") from None
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise SecretError("a sealed secret too short to be one")
        nonce, ciphertext, tag = raw[:NONCE_BYTES], raw[NONCE_BYTES:-TAG_BYTES], raw[-TAG_BYTES:]
        if not hmac.compare_digest(tag, self._tag(account, nonce, ciphertext)):
            raise SecretError("the sealed secret does not open with this key for this account")
        plain = bytes(a ^ b for a, b in zip(ciphertext, _keystream(self._enc, nonce, len(ciphertext))))
        try:
            return plain.decode()
        except UnicodeDecodeError:
            raise SecretError("the sealed secret is not text") from None
