"""A bounded XML reader for documents from the LAN (SOAP requests, WS-Discovery datagrams): one tree of
`Element`s, with every dangerous construct refused rather than limited.

Expat is linear in its input; the limits (an `XmlLimits`, each reader names its own) bound the tree built
from it: the document's bytes, element depth, element count, attributes per element and characters of
text per element. Any DOCTYPE (and so any entity declaration or external reference) is an error. Names
are kept as (namespace, local name).

Errors: XmlError (ValueError): the document is refused; the message says which limit or rule it broke.
"""
from __future__ import annotations

import xml.parsers.expat
from dataclasses import dataclass, field


class XmlError(ValueError):
    """The document is not XML, or breaks one of the reader's limits or rules."""


@dataclass(frozen=True, slots=True)
class XmlLimits:
    """What one document may hold. `encoding`: read the bytes as this whatever the XML declaration says
    (SOAP over UDP is UTF-8), or None to follow the declaration."""

    max_bytes: int
    max_depth: int
    max_elements: int
    max_attributes: int
    max_text_chars: int
    encoding: str | None = None


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

    def iter(self):
        """This element and every element below it, in document order (iteratively: no recursion limit)."""
        stack = [self]
        while stack:
            element = stack.pop()
            yield element
            stack.extend(reversed(element.children))


def _split(name: str) -> tuple[str, str]:
    ns, _, local = name.rpartition(" ")
    return ns, local


class _Builder:
    def __init__(self, limits: XmlLimits):
        self.limits = limits
        self.root: Element | None = None
        self.stack: list[Element] = []
        self.count = 0

    def start(self, name: str, attrs: dict[str, str]) -> None:
        limits = self.limits
        self.count += 1
        if self.count > limits.max_elements:
            raise XmlError(f"more than {limits.max_elements} elements")
        if len(self.stack) >= limits.max_depth:
            raise XmlError(f"elements nested deeper than {limits.max_depth}")
        if len(attrs) > limits.max_attributes:
            raise XmlError(f"an element with more than {limits.max_attributes} attributes")
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
            if len(top.text) + len(data) > self.limits.max_text_chars:
                raise XmlError(f"more than {self.limits.max_text_chars} characters of text in <{top.name}>")
            top.text += data


def _refuse_doctype(*_args) -> None:
    raise XmlError("a DOCTYPE or DTD is not accepted (no entities are ever expanded)")


def parse_xml(data: bytes, limits: XmlLimits) -> Element:
    """The element tree of `data`; XmlError if it is not well-formed XML or breaks one of `limits`."""
    if len(data) > limits.max_bytes:
        raise XmlError(f"{len(data)} bytes is over the {limits.max_bytes}-byte limit")
    builder = _Builder(limits)
    parser = xml.parsers.expat.ParserCreate(encoding=limits.encoding, namespace_separator=" ")
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_doctype
    parser.ExternalEntityRefHandler = _refuse_doctype
    parser.StartElementHandler, parser.EndElementHandler = builder.start, builder.end
    parser.CharacterDataHandler = builder.text
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as exc:
        raise XmlError(f"not well-formed XML: {exc}") from exc
    except (LookupError, ValueError) as exc:  # an encoding expat or Python lacks (fuzzing); XmlError is re-raised
        if isinstance(exc, XmlError):
            raise
        raise XmlError(f"unreadable text encoding: {exc}") from exc
    if builder.root is None:
        raise XmlError("no element")
    return builder.root
