"""HTTP Digest (RFC 7616, MD5, qop=auth) checked against stored HA1s, for the ONVIF service and its snapshots.

Sans-IO: `DigestChecker.challenge()` makes a WWW-Authenticate value; `check(header, method, uri, ha1_of)`
verifies an Authorization value. Nonces are an expiry time signed with a per-process secret, so the server
keeps no state and a nonce from another box or older than NONCE_S is refused. The header parser is
bounded (MAX_HEADER_CHARS) and linear.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable

from base.clock import Clocks

NONCE_S = 300
MAX_HEADER_CHARS = 2048
_PARAM = re.compile(r'\s*([A-Za-z]+)\s*=\s*(?:"([^"\\]*)"|([^\s,]*))\s*(?:,|$)')


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def parse_digest_header(header: str) -> dict[str, str] | None:
    """The parameters of an `Authorization: Digest ...` value, None when it is not one (or too long)."""
    if len(header) > MAX_HEADER_CHARS or not header[:7].lower() == "digest ":
        return None
    params, pos, rest = {}, 0, header[7:]
    while pos < len(rest):
        match = _PARAM.match(rest, pos)
        if match is None or match.end() == pos:
            return None
        params[match.group(1).lower()] = match.group(2) if match.group(2) is not None else match.group(3)
        pos = match.end()
    return params


class DigestChecker:
    """Challenges and checks for one realm, with nonces signed by a secret of this process; a nonce's
    expiry is in wall-clock seconds of `clocks`."""

    def __init__(self, realm: str, *, clocks: Clocks):
        self.realm, self._clocks = realm, clocks
        self._secret = secrets.token_bytes(32)

    def _now_s(self) -> float:
        return self._clocks.utc_now_us() / 1e6

    def _nonce(self, expires: int) -> str:
        return f"{expires}:" + hmac.new(self._secret, str(expires).encode(), "sha256").hexdigest()[:32]

    def challenge(self) -> str:
        nonce = self._nonce(int(self._now_s()) + NONCE_S)
        return f'Digest realm="{self.realm}", qop="auth", algorithm=MD5, nonce="{nonce}"'

    def check(self, header: str, method: str, uri: str, ha1_of: Callable[[str], str | None]) -> str | None:
        """The user name if `header` is a valid Digest answer to one of our nonces for `method` on `uri`
        (the request's path), else None."""
        p = parse_digest_header(header)
        if p is None or not all(k in p for k in ("username", "realm", "nonce", "uri", "response")) or p["uri"] != uri:
            return None
        expires, _, _ = p["nonce"].partition(":")
        if p["realm"] != self.realm or not expires.isdigit() or int(expires) < self._now_s() \
                or not hmac.compare_digest(p["nonce"], self._nonce(int(expires))):
            return None
        ha1 = ha1_of(p["username"])
        if ha1 is None:
            return None
        ha2 = _md5(f"{method}:{p['uri']}")
        if p.get("qop") == "auth":
            expected = _md5(f"{ha1}:{p['nonce']}:{p.get('nc', '')}:{p.get('cnonce', '')}:auth:{ha2}")
        else:
            expected = _md5(f"{ha1}:{p['nonce']}:{ha2}")
        return p["username"] if hmac.compare_digest(expected, p["response"].lower()) else None
