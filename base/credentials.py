"""Credentials in URLs: the one function that masks a password before a URL reaches a message or a log.

Drivers (camera URLs in errors) and the appliance (config errors, webhook URLs) both show URLs that
may carry `user:password@`; they all call `mask_credentials`, so one rule decides what is hidden.
"""
from __future__ import annotations

MASK = "***"


def mask_credentials(url: str) -> str:
    """`url` with the password of its `user:password@` replaced by `***`; a URL without a password
    comes back unchanged.

    A password may hold any character, '/', '@' and ':' included (cameras' web pages let users type
    them unescaped), so the user information runs from the scheme's `://` to the LAST '@': an '@' in
    the path then masks too much, which is the safe mistake. Linear in the URL's length.
    """
    scheme, separator, rest = url.partition("://")
    if not separator or not scheme or not scheme[0].isalpha() or not all(c.isalnum() or c in "+.-" for c in scheme):
        return url
    userinfo, at, host_and_path = rest.rpartition("@")
    if not at:
        return url
    user, colon, _password = userinfo.partition(":")
    if not colon or "/" in user or "@" in user:
        return url  # no password here (a ':' after a '/' belongs to the path)
    return f"{scheme}://{user}:{MASK}@{host_and_path}"
