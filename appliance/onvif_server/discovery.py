"""WS-Discovery for the box (the 2005/04 dialect ONVIF uses): answer Probe with ProbeMatches, say Hello and Bye.

A probe is a UDP datagram to 239.255.255.250:3702 (or unicast); it is read with the bounded XML reader
(MAX_DATAGRAM_BYTES) and answered, unicast to its sender, when it asks for no type or for
NetworkVideoTransmitter / Device, and when every scope it names is a prefix of one of the box's. The
address handed out (XAddrs) is the box's address on the route back to the asker, unless the config names
one. Answers are capped at MAX_ANSWERS_PER_S: a probe with a forged sender must not turn the box into a
traffic amplifier. Hello goes out when the responder starts, Bye when it stops.
"""
from __future__ import annotations

import logging
import socket
import struct
import threading
import uuid
from xml.sax.saxutils import escape

from base.clock import Clocks

from appliance.onvif_server.device import DEVICE_PATH
from appliance.onvif_server.responses import scope_list
from appliance.onvif_server.xml_reader import XmlError, parse_xml

log = logging.getLogger("nvr.onvif_server.discovery")

MULTICAST_GROUP, DISCOVERY_PORT = "239.255.255.250", 3702
MAX_DATAGRAM_BYTES = 8 * 1024  # a probe is about 600 bytes; UDP datagrams larger are not read whole
MAX_ANSWERS_PER_S = 20
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
ACTION_PROBE = f"{WSD}/Probe"
TYPES = "dn:NetworkVideoTransmitter tds:Device"
WANTED_TYPES = frozenset({"NetworkVideoTransmitter", "Device"})
_NS = (f'xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="{WSA}" xmlns:wsd="{WSD}" '
       'xmlns:dn="http://www.onvif.org/ver10/network/wsdl" xmlns:tds="http://www.onvif.org/ver10/device/wsdl"')


def probe_wants_us(data: bytes, scopes: list[str]) -> str | None:
    """The probe's MessageID when `data` is a Probe this device matches, else None (XmlError if not XML)."""
    root = parse_xml(data)
    header, body = root.child("Header"), root.child("Body")
    probe = body.child("Probe", WSD) if body is not None else None
    if probe is None or header is None:
        return None
    types = (probe.find_text("Types") or "").split()
    if types and not any(t.rpartition(":")[2] in WANTED_TYPES for t in types):
        return None
    wanted_scopes = (probe.find_text("Scopes") or "").split()
    if not all(any(ours.startswith(scope) for ours in scopes) for scope in wanted_scopes):
        return None
    return header.find_text("MessageID") or ""


def _message(action: str, body: str, relates_to: str | None = None, to: str = "urn:schemas-xmlsoap-org:ws:2005:04:discovery") -> bytes:
    relates = f"<wsa:RelatesTo>{escape(relates_to)}</wsa:RelatesTo>" if relates_to is not None else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<env:Envelope {_NS}><env:Header>'
            f"<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>{relates}<wsa:To>{escape(to)}</wsa:To>"
            f"<wsa:Action>{WSD}/{action}</wsa:Action></env:Header><env:Body>{body}</env:Body></env:Envelope>").encode()


class DiscoveryResponder:
    """Answers probes on `port` (3702) for device `device_id`, advertising http://ADDRESS:http_port/onvif/device_service."""

    def __init__(self, device_id: uuid.UUID, name: str, *, http_port: int, clocks: Clocks, address: str | None = None,
                 port: int | None = None, bind: str = ""):
        self.device_id, self.scopes, self._clocks = device_id, scope_list(name), clocks
        self._http_port, self._address, self._port = http_port, address, port or DISCOVERY_PORT
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((bind, self._port))
        self._socket.settimeout(0.5)
        self._joined = self._join()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ws-discovery", daemon=True)
        self._window_start, self._window_answers = 0.0, 0
        self.probes = self.answered = self.refused = self.limited = 0

    def _join(self) -> bool:
        try:
            self._socket.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                                    struct.pack("4s4s", socket.inet_aton(MULTICAST_GROUP), socket.inet_aton("0.0.0.0")))
            return True
        except OSError as exc:  # no multicast route (an isolated test namespace): unicast probes still work
            log.warning("cannot join %s (%s): only unicast probes will be answered", MULTICAST_GROUP, exc)
            return False

    def start(self) -> None:
        self._thread.start()
        self._announce("Hello")

    def stop(self) -> None:
        self._announce("Bye")
        self._stop.set()
        self._thread.join(2)
        self._socket.close()

    def _address_towards(self, host: str) -> str:
        if self._address:
            return self._address
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((host, self._port))  # no packet: only asks the routing table for our side's address
            return probe.getsockname()[0]

    def _match(self, address: str) -> str:
        xaddr = f"http://{address}:{self._http_port}{DEVICE_PATH}"
        return (f"<wsa:EndpointReference><wsa:Address>urn:uuid:{self.device_id}</wsa:Address></wsa:EndpointReference>"
                f"<wsd:Types>{TYPES}</wsd:Types><wsd:Scopes>{escape(' '.join(self.scopes))}</wsd:Scopes>"
                f"<wsd:XAddrs>{escape(xaddr)}</wsd:XAddrs><wsd:MetadataVersion>1</wsd:MetadataVersion>")

    def probe_matches(self, message_id: str, address: str) -> bytes:
        return _message("ProbeMatches", f"<wsd:ProbeMatches><wsd:ProbeMatch>{self._match(address)}"
                        "</wsd:ProbeMatch></wsd:ProbeMatches>", relates_to=message_id,
                        to="http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous")

    def _announce(self, kind: str) -> None:
        if not self._joined:
            return
        try:
            address = self._address_towards(MULTICAST_GROUP)
            self._socket.sendto(_message(kind, f"<wsd:{kind}>{self._match(address)}</wsd:{kind}>"),
                                (MULTICAST_GROUP, self._port))
        except OSError as exc:
            log.warning("WS-Discovery %s could not be sent: %s", kind, exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, sender = self._socket.recvfrom(MAX_DATAGRAM_BYTES)
            except TimeoutError:
                continue
            except OSError:
                return
            self._answer(data, sender)

    def _answer(self, data: bytes, sender: tuple[str, int]) -> None:
        self.probes += 1
        try:
            message_id = probe_wants_us(data, self.scopes)
        except XmlError as exc:
            self.refused += 1
            log.debug("a datagram from %s is not a probe: %s", sender[0], exc)
            return
        if message_id is None:
            return
        if not self._within_rate():
            self.limited += 1
            return
        try:
            self._socket.sendto(self.probe_matches(message_id, self._address_towards(sender[0])), sender)
            self.answered += 1
        except OSError as exc:
            log.debug("cannot answer %s: %s", sender, exc)

    def _within_rate(self) -> bool:
        now = self._clocks.monotonic_us() / 1e6
        if now - self._window_start >= 1.0:
            self._window_start, self._window_answers = now, 0
        self._window_answers += 1
        return self._window_answers <= MAX_ANSWERS_PER_S

    def statistics(self) -> dict:
        return {"probes": self.probes, "answered": self.answered, "refused": self.refused, "rate_limited": self.limited,
                "multicast": self._joined}
