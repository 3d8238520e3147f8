"""A bounded XML reader for requests from the LAN (SOAP envelopes, WS-Discovery probes), and what a request says.

Hostile input is the normal case here, so the reader is expat with everything dangerous refused rather
than limited: any DOCTYPE (and so any entity declaration or external reference) is an error, as are
documents over MAX_REQUEST_BYTES, deeper than MAX_DEPTH, with more than MAX_ELEMENTS elements or
MAX_ATTRIBUTES on one element, or more than MAX_TEXT_CHARS of text in one element. Expat is linear in its
input; the limits bound the tree built from it. Names are kept as (namespace, local name).

Errors: XmlError (ValueError): the request is refused; the message says which limit or rule it broke.
"""
from __future__ import annotations

import xml.parsers.expat
from dataclasses import dataclass, field

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


class XmlError(ValueError):
    """The document is not XML, or breaks one of the reader's limits or rules."""


@dataclass
class Element:
    """One element: `ns` and `name` (local), attributes by local name, its text, its children in order."""

    ns: str
    name: str
    attrs: dict[str, str] = field(default_factory=dict)
    text: str = ""
    children: list[Element] = field(default_factory=list)

    def child(self, name: str, ns: str | None = None) -> Element | None:
        """The first child called `name` (in namespace `ns`, or any when None)."""
        return next((c for c in self.children if c.name == name and (ns is None or c.ns == ns)), None)

    def find_text(self, *path: str) -> str | None:
        """The stripped text at a path of local names below this element, None if a step is missing."""
        node: Element | None = self
        for name in path:
            node = node.child(name) if node is not None else None
        return node.text.strip() if node is not None else None


def _split(name: str) -> tuple[str, str]:
    ns, _, local = name.rpartition(" ")
    return ns, local


class _Builder:
    def __init__(self):
        self.root: Element | None = None
        self.stack: list[Element] = []
        self.count = 0

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self.count += 1
        if self.count > MAX_ELEMENTS:
            raise XmlError(f"more than {MAX_ELEMENTS} elements")
        if len(self.stack) >= MAX_DEPTH:
            raise XmlError(f"nested deeper than {MAX_DEPTH} elements")
        if len(attrs) > MAX_ATTRIBUTES:
            raise XmlError(f"an element with more than {MAX_ATTRIBUTES} attributes")
        element = Element(*_split(name), {_split(k)[1]: v for k, v in attrs.items()})
        if self.stack:
            self.stack[-1].children.append(element)
        else:
            self.root = element
        self.stack.append(element)

    def end(self, _name: str) -> None:
        self.stack.pop()

    def text(self, data: str) -> None:
        if self.stack:
            top = self.stack[-1]
            if len(top.text) + len(data) > MAX_TEXT_CHARS:
                raise XmlError(f"more than {MAX_TEXT_CHARS} characters of text in <{top.name}>")
            top.text += data


def _refuse_doctype(*_args) -> None:
    raise XmlError("a DOCTYPE is not accepted (no DTDs, no entities)")


def parse_xml(data: bytes) -> Element:
    """The element tree of `data`; XmlError if it is not well-formed XML or breaks a limit."""
    if len(data) > MAX_REQUEST_BYTES:
        raise XmlError(f"{len(data)} bytes is over the {MAX_REQUEST_BYTES}-byte limit")
    builder = _Builder()
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_doctype
    parser.ExternalEntityRefHandler = _refuse_doctype
    parser.StartElementHandler, parser.EndElementHandler = builder.start, builder.end
    parser.CharacterDataHandler = builder.text
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as exc:
        raise XmlError(f"not well-formed XML: {exc}") from exc
    except (LookupError, ValueError) as exc:  # an XML declaration naming an encoding expat or Python lacks (fuzzing)
        raise XmlError(f"unreadable text encoding: {exc}") from exc
    if builder.root is None:
        raise XmlError("no element")
    return builder.root


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
