"""Finding ONVIF cameras on the LAN: a WS-Discovery Probe for NetworkVideoTransmitters over UDP
multicast (239.255.255.250:3702), and a bounded parser for the ProbeMatches that come back.

Every datagram is hostile: `parse_probe_matches` reads at most MAX_DATAGRAM_BYTES with base.xml_tree's
bounded reader as UTF-8 whatever the XML declaration says (no DTD, so no entity of any kind is expanded),
at most MAX_DEPTH elements deep, keeping at most MAX_MATCHES matches, MAX_URIS addresses and scopes per match and MAX_TEXT_CHARS per value; it is linear in its
input. A datagram that breaks a rule raises ProbeMatchError, which `discover` logs and skips: one bad
or spoofed answer costs only itself. Devices are deduplicated by their endpoint address.
"""
from __future__ import annotations

import logging
import select
import socket
import uuid
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from base.clock import Clocks
from base.xml_tree import Element, XmlError, XmlLimits, parse_xml

log = logging.getLogger("nvr.onvif.discovery")

MULTICAST_ADDRESS = ("239.255.255.250", 3702)
MAX_DATAGRAM_BYTES = 16 * 1024  # a real camera's ProbeMatches is 1 to 4 kB
MAX_DEPTH = 32  # element nesting in one datagram
MAX_MATCHES = 16  # ProbeMatch elements kept from one datagram
MAX_URIS = 64  # XAddrs, Scopes or Types entries kept per match
MAX_TEXT_CHARS = 8 * 1024  # characters of one element's text
MAX_DEVICES = 256  # devices one discovery run lists
DISCOVERY_TIMEOUT_S = 3.0

WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
MATCH_ELEMENTS = frozenset({(WSD, "ProbeMatch"), (WSD, "Hello")})  # a Hello describes a device the same way
FIELDS = {(WSD, "XAddrs"): "xaddrs", (WSD, "Scopes"): "scopes", (WSD, "Types"): "types", (WSA, "Address"): "endpoint"}
# The tree's element count and attributes are bounded by the datagram's size: these never refuse a datagram
# the other limits let through (an element takes at least 4 bytes, an attribute at least 4).
LIMITS = XmlLimits(max_bytes=MAX_DATAGRAM_BYTES, max_depth=MAX_DEPTH, max_elements=MAX_DATAGRAM_BYTES // 4,
                   max_attributes=MAX_DATAGRAM_BYTES // 4, max_text_chars=MAX_TEXT_CHARS, encoding="utf-8")
PROBE = f"""<?xml version="1.0" encoding="UTF-8"?>
<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope" xmlns:w="{WSA}" xmlns:d="{WSD}"
 xmlns:dn="http://www.onvif.org/ver10/network/wsdl"><e:Header><w:MessageID>{{message_id}}</w:MessageID>
<w:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</w:To><w:Action>{WSD}/Probe</w:Action></e:Header>
<e:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></e:Body></e:Envelope>"""


class ProbeMatchError(XmlError):
    """A datagram that is not a ProbeMatches this parser accepts (too big, too deep, not XML, a DTD)."""


@dataclass(frozen=True, slots=True)
class DiscoveredDevice:
    """One ONVIF device as its ProbeMatch describes it. `xaddrs` are its device service URLs;
    `name`, `hardware` and `location` come from its onvif:// scopes ("" where it gives none)."""

    endpoint: str
    xaddrs: tuple[str, ...]
    scopes: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    from_address: str = ""
    name: str = field(init=False, default="")
    hardware: str = field(init=False, default="")
    location: str = field(init=False, default="")

    def __post_init__(self) -> None:
        for key in ("name", "hardware", "location"):
            object.__setattr__(self, key, scope_value(self.scopes, key))

    @property
    def url(self) -> str:
        """The device service URL to connect to: the first http(s) XAddr, preferring IPv4."""
        usable = [x for x in self.xaddrs if x.lower().startswith(("http://", "https://"))]
        ipv4 = [x for x in usable if "[" not in x]
        return (ipv4 or usable or [""])[0]

    def as_dict(self) -> dict[str, object]:
        return {"endpoint": self.endpoint, "url": self.url, "xaddrs": list(self.xaddrs), "name": self.name,
                "hardware": self.hardware, "location": self.location, "scopes": list(self.scopes),
                "types": list(self.types), "from": self.from_address}


def scope_value(scopes: tuple[str, ...], key: str) -> str:
    """The value of ONVIF scope ``onvif://www.onvif.org/KEY/VALUE`` (percent-decoded; the first such scope)."""
    prefix = f"onvif://www.onvif.org/{key}/"
    for scope in scopes:
        if scope.lower().startswith(prefix.lower()):
            return unquote(scope[len(prefix):]).strip()[:MAX_TEXT_CHARS]
    return ""


def parse_probe_matches(data: bytes, *, from_address: str = "") -> list[DiscoveredDevice]:
    """The devices a WS-Discovery ProbeMatches datagram lists (a Hello's devices too: same fields).

    Raises ProbeMatchError for a datagram over MAX_DATAGRAM_BYTES, nested over MAX_DEPTH, with a DTD,
    with a value over MAX_TEXT_CHARS, or that is not well-formed XML. Matches without an endpoint
    address or without an http(s) XAddr are left out."""
    if len(data) > MAX_DATAGRAM_BYTES:
        raise ProbeMatchError(f"a {len(data)}-byte datagram, over the {MAX_DATAGRAM_BYTES} bytes accepted")
    try:
        root = parse_xml(data, LIMITS)
    except XmlError as exc:
        raise ProbeMatchError(str(exc)) from exc
    matches = [_match_fields(element) for element in root.iter() if (element.ns, element.name) in MATCH_ELEMENTS]
    return [device for match in matches[:MAX_MATCHES] if (device := _device(match, from_address)) is not None]


def _match_fields(match: Element) -> dict[str, str]:
    """A match's fields: the first of each anywhere below it, in document order."""
    found: dict[str, str] = {}
    for element in match.iter():
        key = FIELDS.get((element.ns, element.name))
        if key is not None:
            found.setdefault(key, element.text)
    return found


def _device(match: dict[str, str], from_address: str) -> DiscoveredDevice | None:
    endpoint = match.get("endpoint", "").strip()
    xaddrs = tuple(x for x in match.get("xaddrs", "").split()[:MAX_URIS] if _is_http_url(x))
    if not endpoint or not xaddrs:
        return None
    return DiscoveredDevice(endpoint=endpoint, xaddrs=xaddrs, scopes=tuple(match.get("scopes", "").split()[:MAX_URIS]),
                            types=tuple(match.get("types", "").split()[:MAX_URIS]), from_address=from_address)


def _is_http_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
        return parts.scheme.lower() in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        return False


def probe_message(message_id: str) -> bytes:
    return PROBE.format(message_id=message_id).encode()


def discover(*, clocks: Clocks, timeout_s: float = DISCOVERY_TIMEOUT_S, interface_ip: str | None = None,
             target: tuple[str, int] = MULTICAST_ADDRESS) -> list[DiscoveredDevice]:
    """Send a Probe for NetworkVideoTransmitters and collect the ProbeMatches for `timeout_s` seconds of
    `clocks`' monotonic time (from `interface_ip`'s interface where given; otherwise the route to the
    multicast group decides).
    Devices come in the order they answered, one per endpoint address, at most MAX_DEVICES; a
    datagram the parser refuses is logged and skipped."""
    message_id = f"urn:uuid:{uuid.uuid4()}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP) as sock:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)  # the LAN only, as WS-Discovery says
        if interface_ip:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface_ip))
        sock.bind((interface_ip or "", 0))
        sock.sendto(probe_message(message_id), target)
        return _collect(sock, deadline_us=clocks.monotonic_us() + round(timeout_s * 1e6), clocks=clocks)


def _collect(sock: socket.socket, *, deadline_us: int, clocks: Clocks) -> list[DiscoveredDevice]:
    found: dict[str, DiscoveredDevice] = {}
    while len(found) < MAX_DEVICES and (left_s := (deadline_us - clocks.monotonic_us()) / 1e6) > 0:
        readable, _, _ = select.select([sock], [], [], left_s)
        if not readable:
            break
        data, (host, _port) = sock.recvfrom(MAX_DATAGRAM_BYTES + 1)
        try:
            devices = parse_probe_matches(data, from_address=host)
        except ProbeMatchError as exc:
            log.warning("discovery: skipped an answer from %s: %s", host, exc)
            continue
        for device in devices:
            found.setdefault(device.endpoint, device)
    return list(found.values())[:MAX_DEVICES]
