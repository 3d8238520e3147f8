"""RTSP Digest credentials of the web users: HA1 kept at every password set, made at login for older accounts."""
from __future__ import annotations

import hashlib
import sqlite3

from appliance.web.users import DIGEST_REALM, UserStore, digest_ha1
from base.clock import SimulatedClocks


def store(tmp_path) -> UserStore:
    return UserStore(tmp_path, clocks=SimulatedClocks(utc_start_us=1_700_000_000_000_000))


def test_ha1_is_md5_of_name_realm_password_as_rfc_7616_defines_it():
    assert digest_ha1("viewer", "pass-word-1") == hashlib.md5(f"viewer:{DIGEST_REALM}:pass-word-1".encode()).hexdigest()


def test_setting_a_password_keeps_its_ha1_and_replacing_it_changes_the_ha1(tmp_path):
    users = store(tmp_path)
    users.add_user("cam", "first-pass-1", "viewer")
    users.add_user("cam", "second-pass-2", "operator", replace=True)

    [(user, ha1)] = users.digest_credentials()

    assert (user.name, user.role, ha1) == ("cam", "operator", digest_ha1("cam", "second-pass-2"))


def test_an_account_from_before_ha1_gets_one_at_its_next_web_login_and_not_before(tmp_path):
    users = store(tmp_path)
    users.add_user("old", "old-pass-11", "viewer")
    users._run("UPDATE users SET digest_ha1 = NULL")
    assert users.digest_credentials() == []

    users.login("old", "old-pass-11")

    assert [ha1 for _, ha1 in users.digest_credentials()] == [digest_ha1("old", "old-pass-11")]


def test_a_users_file_without_the_ha1_column_is_upgraded_in_place(tmp_path):
    db = sqlite3.connect(tmp_path / "users.sqlite3")
    db.execute("CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL,"
               " failures INTEGER NOT NULL DEFAULT 0, locked_until_us INTEGER NOT NULL DEFAULT 0, created_us INTEGER NOT NULL)")
    db.execute("INSERT INTO users VALUES ('kept', 'admin', 'scrypt$x', 0, 0, 1)")
    db.commit()
    db.close()

    users = store(tmp_path)

    assert [u.name for u in users.users()] == ["kept"] and users.digest_credentials() == []
