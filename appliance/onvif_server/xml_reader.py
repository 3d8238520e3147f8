"""A bounded XML reader for requests from the LAN (SOAP envelopes, WS-Discovery probes), and what a request says.

Hostile input is the normal case here: the document is read by base.xml_tree's bounded reader (expat,
any DOCTYPE refused) with this module's limits: at most MAX_REQUEST_BYTES, MAX_DEPTH deep, MAX_ELEMENTS
elements, MAX_ATTRIBUTES on one element, MAX_TEXT_CHARS of text in one element.

Errors: XmlError (ValueError): the request is refused; the message says which limit or rule it broke.
"""
from __future__ import annotations

from dataclasses import dataclass

from base.xml_tree import Element, XmlError, XmlLimits
from base.xml_tree import parse_xml as _parse_tree

MAX_REQUEST_BYTES = 64 * 1024  # a SOAP request of the operations served is under 4 KiB
MAX_DEPTH = 24
MAX_ELEMENTS = 1000
MAX_ATTRIBUTES = 32
MAX_TEXT_CHARS = 8 * 1024

SOAP_ENVELOPES = ("http://www.w3.org/2003/05/soap-envelope", "http://schemas.xmlsoap.org/soap/envelope/")
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PASSWORD_TEXT = "#PasswordText"
PASSWORD_DIGEST = "#PasswordDigest"


LIMITS = XmlLimits(max_bytes=MAX_REQUEST_BYTES, max_depth=MAX_DEPTH, max_elements=MAX_ELEMENTS,
                   max_attributes=MAX_ATTRIBUTES, max_text_chars=MAX_TEXT_CHARS)


def parse_xml(data: bytes) -> Element:
    """The element tree of a request; XmlError if it is not well-formed XML or breaks a limit."""
    return _parse_tree(data, LIMITS)


@dataclass(frozen=True)
class UsernameToken:
    """A WS-Security UsernameToken: the password as sent (text, or a digest with its nonce and time)."""

    username: str
    password: str
    password_type: str  # PASSWORD_TEXT or PASSWORD_DIGEST
    nonce: str | None
    created: str | None


@dataclass(frozen=True)
class SoapRequest:
    """What a SOAP request asks: the operation (the Body's first element) and who says they ask it."""

    operation: Element
    token: UsernameToken | None
    message_id: str | None = None


def parse_soap(data: bytes) -> SoapRequest:
    """The operation and credentials of a SOAP 1.1 or 1.2 envelope; XmlError when it is not one."""
    root = parse_xml(data)
    if root.name != "Envelope" or root.ns not in SOAP_ENVELOPES:
        raise XmlError(f"expected a SOAP Envelope, got <{root.name}> in {root.ns!r}")
    body = root.child("Body", root.ns)
    if body is None or not body.children:
        raise XmlError("the SOAP envelope has no Body or an empty one")
    header = root.child("Header", root.ns)
    token = _username_token(header.child("Security", WSSE)) if header is not None and header.child("Security", WSSE) else None
    message_id = header.find_text("MessageID") if header is not None else None
    return SoapRequest(body.children[0], token, message_id)


def _username_token(security: Element) -> UsernameToken | None:
    token = security.child("UsernameToken", WSSE)
    if token is None:
        return None
    password = token.child("Password", WSSE)
    if token.find_text("Username") is None or password is None:
        raise XmlError("a UsernameToken needs a Username and a Password")
    kind = PASSWORD_DIGEST if password.attrs.get("Type", "").endswith(PASSWORD_DIGEST) else PASSWORD_TEXT
    created = token.child("Created", WSU)
    return UsernameToken(token.find_text("Username"), password.text.strip(), kind, token.find_text("Nonce"),
                         created.text.strip() if created is not None else None)
