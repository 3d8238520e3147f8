"""The installed version of the appliance, as `nvr --version`, the web page and the image report it."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def appliance_version() -> str:
    try:
        return version("nvr-appliance")
    except PackageNotFoundError:
        return "unknown (not installed as a package)"
