"""Asking an ONVIF service on loopback with onvif-zeep-async, the library Home Assistant's ONVIF integration
uses: the client side of the box's ONVIF server tests."""
from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def ask_onvif(port: int, steps: Callable[[object], Awaitable[T]], user: str, password: str, *, digest: bool) -> T:
    """Run `steps(camera)` with an ONVIFCamera of 127.0.0.1:`port` whose service addresses are read first, as
    the library's users make it, and close it after. `digest`: WS-UsernameToken PasswordDigest (the
    library's default, what Home Assistant sends) or PasswordText."""
    import onvif  # only the tests that have it (pytest.importorskip) get here

    async def run() -> T:
        wsdl = os.path.join(os.path.dirname(onvif.__file__), "wsdl")
        camera = onvif.ONVIFCamera("127.0.0.1", port, user, password, wsdl, encrypt=digest)
        try:
            await camera.update_xaddrs()
            return await steps(camera)
        finally:
            await camera.close()
    return asyncio.run(run())
