"""The ONVIF driver's errors (the tree is drawn in drivers.onvif)."""
from __future__ import annotations


class OnvifError(Exception):
    """Something went wrong talking to an ONVIF camera; the message says what to do."""


class CameraUnreachable(OnvifError, ConnectionError):
    """The camera's ONVIF service did not answer (no route, refused connection, timeout)."""


class WrongCredentials(OnvifError, PermissionError):
    """The camera answered and refused the user name and password: retrying soon will not help."""

    refused = True


class NotOnvif(OnvifError, ValueError):
    """Something answered at the address, but not as an ONVIF device service does."""

    refused = True


class ResponseTooLarge(NotOnvif):
    """An answer was larger than the driver accepts from a camera."""
