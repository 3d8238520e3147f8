"""Web users, sessions, login lockout and the audit log, in one SQLite file beside the recordings.

Passwords are hashed with scrypt (memory-hard, in the standard library). There is no default
account: until the first admin is created (first visit to the web page, or `nvr user add`), the
only thing the web server allows is creating it. Sessions are random tokens stored hashed, so a
copied database does not hand out live sessions. Failed logins are counted per account: after
`LOCK_AFTER_FAILURES` in a row the account is locked for `LOCK_S` seconds, even for the right password.

RTSP viewers (appliance.rtsp_server) log in with HTTP Digest, which needs either the plain password or
HA1 = MD5(name:DIGEST_REALM:password). The store keeps HA1 beside the scrypt hash, made whenever a
password is set and, for accounts created before HA1 was kept, at their next successful web login
(the only other moment the plain password is in hand). HA1 is password-equivalent for RTSP in this
realm only (not for the web, which checks scrypt), which is why the file is readable by the service only.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from base.clock import Clocks
from base.passwords import hash_password, verify_password

log = logging.getLogger("nvr.users")

USERS_FILE = "users.sqlite3"
ROLES = ("viewer", "operator", "admin")  # each role may do everything the ones before it may
AUDIT_QUEUE_ENTRIES = 10_000  # audit entries waiting for `audit_soon`'s writer; beyond, they are counted, not kept
KNOWN_CLIENTS_PER_USER = 32  # addresses remembered per account (the most recent logins)
SESSION_S = 12 * 3600  # idle sessions end after this
MIN_PASSWORD_CHARS = 8
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
DIGEST_REALM = "nvr"  # HTTP Digest realm of the RTSP server; changing it invalidates every stored HA1


_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash TEXT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    locked_until_us INTEGER NOT NULL DEFAULT 0,
    created_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    name TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    seen_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at_us INTEGER NOT NULL,
    user TEXT,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    client TEXT
);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit (at_us);
CREATE TABLE IF NOT EXISTS known_clients (
    name TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    client TEXT NOT NULL,
    last_us INTEGER NOT NULL,
    PRIMARY KEY (name, client)
);
"""
# Added after the first release: ALTER TABLE for existing files (CREATE TABLE above has no such column).
_DIGEST_COLUMN = "ALTER TABLE users ADD COLUMN digest_ha1 TEXT"


def digest_ha1(name: str, password: str, realm: str = DIGEST_REALM) -> str:
    """RFC 7616 HA1 for MD5 Digest: hex MD5 of `name:realm:password` (what RTSP servers check responses with)."""
    return hashlib.md5(f"{name}:{realm}:{password}".encode()).hexdigest()



class LoginError(Exception):
    """Base of the login errors; `str()` is safe to show the person logging in."""


class BadCredentials(LoginError, PermissionError):
    """Unknown user or wrong password (never said which)."""


class AccountError(ValueError):
    """A user cannot be added or changed as asked (bad name, role, weak password, exists)."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str

    def may(self, role: str) -> bool:
        """True when this user's role is `role` or above it."""
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass(frozen=True, slots=True)
class Session:
    token: str  # the cookie value; only its hash is stored
    csrf: str
    user: User


_DUMMY_HASH = None


def _dummy_hash() -> str:
    """A hash to check unknown names against, so their answer takes as long as a known name's."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_hex(8))
    return _DUMMY_HASH


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserStore:
    """Users, sessions and audit entries in `<folder>/users.sqlite3`. Thread-safe (one connection, a lock)."""

    def __init__(self, folder: Path, *, clocks: Clocks):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / USERS_FILE
        self._clocks = clocks
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: commits are atomic and consistent, only the last ones may be lost with power;
        # without it every audit entry is an fsync, and a login flood's audit writes queued the ping.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        if "digest_ha1" not in {row[1] for row in self._db.execute("PRAGMA table_info(users)")}:
            self._db.execute(_DIGEST_COLUMN)
        self._audit_lock = threading.Lock()
        self._audit_ready = threading.Condition(self._audit_lock)
        self._audit_queue: list[tuple] = []
        self._audit_dropped = 0
        self._audit_writer: threading.Thread | None = None
        self.path.chmod(0o600)  # password hashes: readable by the service only

    def close(self) -> None:
        self._flush_audit()
        with self._lock:
            self._db.close()

    def _run(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # users

    def has_users(self) -> bool:
        return bool(self._run("SELECT 1 FROM users LIMIT 1"))

    def users(self) -> list[User]:
        return [User(n, r) for n, r in self._run("SELECT name, role FROM users ORDER BY name")]

    def add_user(self, name: str, password: str, role: str, *, replace: bool = False) -> User:
        """Create a user (or, with `replace`, set an existing one's password and role)."""
        check_new_user(name, password, role)
        now = self._clocks.utc_now_us()
        with self._lock:
            exists = bool(self._run("SELECT 1 FROM users WHERE name = ?", (name,)))
            if exists and not replace:
                raise AccountError(f"user {name!r} exists already")
            self._run("INSERT INTO users (name, role, password_hash, digest_ha1, created_us) VALUES (?, ?, ?, ?, ?)"
                      " ON CONFLICT (name) DO UPDATE SET role = excluded.role, password_hash = excluded.password_hash,"
                      " digest_ha1 = excluded.digest_ha1, failures = 0, locked_until_us = 0",
                      (name, role, hash_password(password), digest_ha1(name, password), now))
            if exists:
                self._run("DELETE FROM sessions WHERE name = ?", (name,))
        return User(name, role)

    def create_first_admin(self, name: str, password: str) -> User:
        """The first-run step: create an admin only while there are no users at all (atomically)."""
        with self._lock:
            if self.has_users():
                raise AccountError("the administrator is set already; log in instead")
            return self.add_user(name, password, "admin")

    def remove_user(self, name: str) -> None:
        with self._lock:
            user = self.user(name)
            if user is None:
                raise AccountError(f"no user {name!r}")
            admins = [u for u in self.users() if u.role == "admin"]
            if user.role == "admin" and len(admins) == 1:
                raise AccountError("cannot remove the last administrator")
            self._run("DELETE FROM users WHERE name = ?", (name,))

    def digest_credentials(self) -> list[tuple[User, str]]:
        """Every user that has an HA1 (for DIGEST_REALM), with it; users without one cannot use RTSP yet."""
        rows = self._run("SELECT name, role, digest_ha1 FROM users WHERE digest_ha1 IS NOT NULL ORDER BY name")
        return [(User(name, role), ha1) for name, role, ha1 in rows]

    def check_password(self, name: str, password: str) -> User:
        """The user if `password` is right, else BadCredentials (same work either way); opens no session.
        For protocols that send the password itself (ONVIF PasswordText)."""
        rows = self._run("SELECT role, password_hash FROM users WHERE name = ?", (name,))
        stored = rows[0][1] if rows else _dummy_hash()
        if not verify_password(password, stored) or not rows:
            raise BadCredentials("wrong user name or password")
        return User(name, rows[0][0])

    def user(self, name: str) -> User | None:
        rows = self._run("SELECT name, role FROM users WHERE name = ?", (name,))
        return User(*rows[0]) if rows else None

    # logging in

    def login(self, name: str, password: str, client: str | None = None) -> Session:
        """Check a password and open a session; raises BadCredentials for an unknown name or a wrong
        password alike, after the same scrypt work. `client`: the address, remembered on success."""
        now = self._clocks.utc_now_us()
        rows = self._run("SELECT role, password_hash, digest_ha1 FROM users WHERE name = ?", (name,))
        if not rows:
            verify_password(password, _dummy_hash())
            raise BadCredentials("wrong user name or password")
        role, stored, ha1 = rows[0]
        if not verify_password(password, stored):
            raise BadCredentials("wrong user name or password")
        if ha1 is None:  # an account from before HA1 was kept: this login is the moment to make it
            self._run("UPDATE users SET digest_ha1 = ? WHERE name = ? AND password_hash = ?",
                      (digest_ha1(name, password), name, stored))
        if client:
            self._remember_client(name, client, now)
        return self._open_session(User(name, role), now)

    def _remember_client(self, name: str, client: str, now: int) -> None:
        with self._lock:
            self._run("INSERT INTO known_clients (name, client, last_us) VALUES (?, ?, ?) ON CONFLICT (name, client)"
                      " DO UPDATE SET last_us = excluded.last_us", (name, client[:64], now))
            self._run("DELETE FROM known_clients WHERE name = ? AND client NOT IN (SELECT client FROM known_clients"
                      " WHERE name = ? ORDER BY last_us DESC LIMIT ?)", (name, name, KNOWN_CLIENTS_PER_USER))

    def known_client(self, name: str, client: str) -> bool:
        """True if `name` has logged in from address `client` (one of its latest KNOWN_CLIENTS_PER_USER)."""
        return bool(self._run("SELECT 1 FROM known_clients WHERE name = ? AND client = ?", (name, client[:64])))

    def _open_session(self, user: User, now: int) -> Session:
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        self._run("INSERT INTO sessions (token_hash, name, csrf, created_us, seen_us) VALUES (?, ?, ?, ?, ?)",
                  (_token_hash(token), user.name, csrf, now, now))
        return Session(token, csrf, user)

    def session(self, token: str) -> Session | None:
        """The live session for a cookie value, touched as used; None if unknown or idle too long."""
        if not token or len(token) > 128:
            return None
        now = self._clocks.utc_now_us()
        key = _token_hash(token)
        rows = self._run("SELECT s.csrf, u.name, u.role, s.seen_us FROM sessions s JOIN users u ON u.name = s.name"
                         " WHERE s.token_hash = ?", (key,))
        if not rows:
            return None
        csrf, name, role, seen_us = rows[0]
        if now - seen_us > SESSION_S * 1_000_000:
            self._run("DELETE FROM sessions WHERE token_hash = ?", (key,))
            return None
        if now - seen_us > 60_000_000:  # touch at most once a minute: most requests then only read
            self._run("UPDATE sessions SET seen_us = ? WHERE token_hash = ?", (now, key))
        return Session(token, csrf, User(name, role))

    def logout(self, token: str) -> None:
        self._run("DELETE FROM sessions WHERE token_hash = ?", (_token_hash(token),))

    # audit

    def audit(self, user: str | None, action: str, detail: dict | str = "", client: str | None = None) -> None:
        text = detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True)
        self._run("INSERT INTO audit (at_us, user, action, detail, client) VALUES (?, ?, ?, ?, ?)",
                  (self._clocks.utc_now_us(), user, action, text, client))

    def audit_soon(self, user: str | None, action: str, detail: dict | str = "", client: str | None = None) -> None:
        """`audit` without waiting: for callers on the event loop under a flood (throttled logins). The
        entry is queued and written within moments by a writer thread, many in one transaction. When
        more than AUDIT_QUEUE_ENTRIES wait, the excess is counted and written as one entry saying so."""
        text = detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True)
        with self._audit_lock:
            if len(self._audit_queue) >= AUDIT_QUEUE_ENTRIES:
                self._audit_dropped += 1
                return
            self._audit_queue.append((self._clocks.utc_now_us(), user, action, text, client))
            if self._audit_writer is None or not self._audit_writer.is_alive():
                self._audit_writer = threading.Thread(target=self._write_audit, name="audit", daemon=True)
                self._audit_writer.start()
            self._audit_ready.notify()

    def _write_audit(self) -> None:
        while True:
            with self._audit_lock:
                if not self._audit_queue and not self._audit_ready.wait(5.0) and not self._audit_queue:
                    self._audit_writer = None  # idle: the next entry starts a writer again
                    return
            self._flush_audit()

    def _flush_audit(self) -> None:
        with self._audit_lock:
            rows, self._audit_queue = self._audit_queue, []
            dropped, self._audit_dropped = self._audit_dropped, 0
        if dropped:
            rows.append((self._clocks.utc_now_us(), None, "audit_dropped",
                         json.dumps({"entries": dropped, "why": "more than AUDIT_QUEUE_ENTRIES waited"}), None))
        if not rows:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT INTO audit (at_us, user, action, detail, client) VALUES (?, ?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except sqlite3.ProgrammingError:  # closed meanwhile: the store is being shut down
                return
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK") if self._db.in_transaction else None
                log.error("%d audit entries could not be written: %s", len(rows), exc)

    def audit_entries(self, *, limit: int = 200, before_us: int | None = None) -> list[dict]:
        self._flush_audit()  # what was queued is part of the log
        rows = self._run("SELECT at_us, user, action, detail, client FROM audit WHERE at_us < ? ORDER BY at_us DESC, id DESC"
                         " LIMIT ?", (before_us if before_us is not None else 2**62, limit))
        return [{"at_us": a, "user": u, "action": x, "detail": d, "client": c} for a, u, x, d, c in rows]


def check_new_user(name: str, password: str, role: str) -> None:
    """Raise AccountError saying what is wrong with a new user's name, password or role."""
    if not NAME_PATTERN.match(name or ""):
        raise AccountError(f"user name {name!r}: use 1-64 letters, digits and . _ @ -")
    if role not in ROLES:
        raise AccountError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"the password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > 1024:
        raise AccountError("the password is longer than 1024 characters")
