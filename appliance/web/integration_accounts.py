"""Integration accounts: logins for Home Assistant, a VMS or an NVR that pull the box's channels over
ONVIF and RTSP, kept apart from the web users because their passwords are kept recoverable.

What commercial NVRs call "ONVIF users": ONVIF's WS-UsernameToken PasswordDigest proves knowledge of the
plain password, so the box must be able to read it back; web users' passwords are kept only as scrypt
hashes (and a Digest HA1), so they cannot log in that way. An administrator makes an integration account
(`nvr onvif-user add NAME --role viewer|operator`, the password on standard input) for each client that
needs it; there are none until then. Each password is sealed (appliance.web.secret_box) with a key in a
separate 0600 file beside users.sqlite3; it is never logged, never returned by an API, and used only to
check a login: PasswordDigest or PasswordText over ONVIF, HTTP Digest over ONVIF and RTSP (HA1 is made
from it when asked). Names are shared with the web users: one name is either a web user or an
integration account. Roles: `viewer` or `operator` (never admin: these accounts cannot manage the box).

Errors: AccountError (ValueError) for an add or remove that cannot be done as asked; a lost or wrong key
makes the accounts unusable (logged once, `nvr onvif-user list` says so) until their passwords are set again.
"""
from __future__ import annotations

import hmac
import logging
import threading

from appliance.web.secret_box import SecretError, SecretKey, SecretKeyError
from appliance.web.users import AccountError, BadCredentials, User, UserStore, check_new_user, digest_ha1

log = logging.getLogger("nvr.users")

INTEGRATION_ROLES = ("viewer", "operator")


class IntegrationAccounts:
    """The integration accounts in the `integration_accounts` table of a UserStore's file. Thread-safe."""

    def __init__(self, store: UserStore):
        self._store = store
        self._folder = store.path.parent
        self._key: SecretKey | None = None
        self._key_lock = threading.Lock()
        self._warned = False

    def _open_key(self, *, create: bool) -> SecretKey | None:
        with self._key_lock:
            if self._key is None:
                self._key = SecretKey.load_or_create(self._folder) if create else SecretKey.load(self._folder)
            return self._key

    def add(self, name: str, password: str, role: str) -> bool:
        """Create the account or set its password and role; True if it existed. AccountError if the name
        or password is not acceptable, the role is not viewer or operator, or a web user has the name."""
        check_new_user(name, password, role)
        if role not in INTEGRATION_ROLES:
            raise AccountError(f"role {role!r}: an integration account is {' or '.join(INTEGRATION_ROLES)}")
        try:
            sealed = self._open_key(create=True).seal(name, password)
        except SecretKeyError as exc:
            raise AccountError(str(exc)) from None
        with self._store.lock:  # the name check and the insert in one step against UserStore.add_user
            if self._store.user(name) is not None:
                raise AccountError(f"{name!r} is a web user; give the integration account another name")
            existed = self.user(name) is not None
            self._store.execute("INSERT INTO integration_accounts (name, role, sealed_password, created_us)"
                                " VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET role = excluded.role,"
                                " sealed_password = excluded.sealed_password",
                                (name, role, sealed, self._store.now_us()))
        return existed

    def remove(self, name: str) -> None:
        if self.user(name) is None:
            raise AccountError(f"no integration account {name!r}")
        self._store.execute("DELETE FROM integration_accounts WHERE name = ?", (name,))

    def accounts(self) -> list[User]:
        return [User(n, r) for n, r in self._store.execute("SELECT name, role FROM integration_accounts ORDER BY name")]

    def user(self, name: str) -> User | None:
        rows = self._store.execute("SELECT name, role FROM integration_accounts WHERE name = ?", (name,))
        return User(*rows[0]) if rows else None

    def unusable(self) -> list[str]:
        """Names whose password does not open with the key in hand (a lost or replaced key file)."""
        rows = self._store.execute("SELECT name, sealed_password FROM integration_accounts ORDER BY name")
        return [name for name, sealed in rows if self._open(name, sealed) is None]

    def _open(self, name: str, sealed: str) -> str | None:
        try:
            key = self._open_key(create=False)
            if key is None:
                raise SecretKeyError("the key file is missing")
            return key.open(name, sealed)
        except (SecretError, SecretKeyError) as exc:
            if not self._warned:  # once: a lost key would otherwise fill the log on every login
                self._warned = True
                log.error("integration account %r cannot be used: %s; set its password again "
                          "(nvr onvif-user add)", name, exc)
            return None

    def password_of(self, name: str) -> tuple[User, str] | None:
        """The account and its password, for checking a login only; None if there is no such usable account."""
        rows = self._store.execute("SELECT role, sealed_password FROM integration_accounts WHERE name = ?", (name,))
        if not rows:
            return None
        password = self._open(name, rows[0][1])
        return (User(name, rows[0][0]), password) if password is not None else None

    def check_password(self, name: str, password: str) -> User:
        """The account if `password` is its password, else BadCredentials (ONVIF PasswordText, HTTP Basic)."""
        found = self.password_of(name)
        if found is None or not hmac.compare_digest(found[1].encode(), password.encode()):
            raise BadCredentials("wrong user name or password")
        return found[0]

    def digest_credentials(self) -> list[tuple[User, str]]:
        """Every usable account with its HA1 for the Digest realm (RTSP and ONVIF HTTP Digest)."""
        rows = self._store.execute("SELECT name, role, sealed_password FROM integration_accounts ORDER BY name")
        opened = ((User(name, role), self._open(name, sealed)) for name, role, sealed in rows)
        return [(user, digest_ha1(user.name, password)) for user, password in opened if password is not None]
