"""The broker connection: paho-mqtt's own network thread behind a bounded outbox that never blocks a publisher.

`MqttClient.publish` only appends to the `Outbox` (a deque under a lock: constant time, never waits
for the network), so a dead broker costs the alarm path nothing. A sender thread hands the outbox to
paho in order, at most `WINDOW` messages unacknowledged (QoS 1); a message leaves our hands only when
the broker's PUBACK came. When the connection drops, paho keeps the unacknowledged ones and sends them
again first on the next connection; the rest wait in the outbox. A full outbox drops its OLDEST message
and counts it (`dropped`): after an outage the newest states matter most.

paho reconnects by itself (1 s doubling to `reconnect_max_s`) on its thread; its timing is the
library's own, not the appliance's clocks. Our sender thread waits on the injected clocks.

On every (re)connection, before the outbox, the sender publishes what `on_connected()` returns: the
retained `online` availability, discovery configs and current states. The last will is `offline`,
retained, sent by the broker when the connection dies without a DISCONNECT (power cut, kill -9).

Exceptions:

    MqttError (ConnectionError)    `check_connection` could not connect; its message says why and what to do
"""
from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from base.clock import Clocks
from base.credentials import mask_credentials

from appliance.config.mqtt import BrokerAddress, MqttTlsConfig, broker_address

log = logging.getLogger("nvr.mqtt")

WINDOW = 16  # messages handed to paho and not yet acknowledged (order is kept: paho resends them first)
IDLE_WAKE_S = 1.0  # the sender looks at the connection at least this often
OFFLINE = b"offline"
ONLINE = b"online"


class MqttError(ConnectionError):
    """The broker could not be reached or refused us; the message says why and what to check."""


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    retain: bool = False
    qos: int = 1


class Outbox:
    """First in, first out, at most `max_messages`; `put` never blocks: a full outbox drops its oldest.

    A retained message replaces the one of the same topic still waiting: retained topics carry states
    (an input, a channel's recording, the disk, the last snapshot), whose latest value is all a broker
    keeps for them anyway. Events (not retained) are all kept, in order. So a long outage queues one
    message per state and every event, not a state refresh every second: after ten minutes the box sends
    its events and the current states, not a flood that a subscriber's queue at the broker (mosquitto's
    max_queued_messages, 1000 by default) would cut short.
    """

    def __init__(self, max_messages: int):
        self.max_messages = max_messages
        self._items: deque[tuple[int, Message]] = deque()  # with replaced retained messages left in place
        self._latest: dict[str, int] = {}  # retained topic -> number of its waiting message
        self._number = self._live = 0
        self._lock = threading.Lock()
        self.dropped = 0
        self.superseded = 0

    def put(self, message: Message) -> bool:
        """Append; False if the oldest message had to be dropped to make room."""
        with self._lock:
            self._number += 1
            if message.retain:
                if message.topic in self._latest:
                    self.superseded += 1
                    self._live -= 1
                self._latest[message.topic] = self._number
            self._items.append((self._number, message))
            self._live += 1
            if len(self._items) > 2 * self.max_messages:
                self._items = deque(item for item in self._items if self._waiting(*item))  # memory stays bounded
            if self._live <= self.max_messages:
                return True
            self._pop_oldest()
            self.dropped += 1
            return False

    def take(self) -> Message | None:
        with self._lock:
            return self._pop_oldest() if self._live else None

    def __len__(self) -> int:
        return self._live

    def _waiting(self, number: int, message: Message) -> bool:
        return not message.retain or self._latest.get(message.topic) == number

    def _pop_oldest(self) -> Message:
        while True:
            number, message = self._items.popleft()
            if self._waiting(number, message):
                if message.retain:
                    del self._latest[message.topic]
                self._live -= 1
                return message


class _Paho(paho.Client):
    """paho's client, keeping the reason of the last failed connection attempt (paho only logs 'failed')."""

    last_connect_error: OSError | None = None

    def reconnect(self):
        try:
            return super().reconnect()
        except OSError as exc:
            self.last_connect_error = exc
            raise


def describe_connect_error(exc: BaseException, address: BrokerAddress) -> str:
    """What went wrong connecting to the broker, in words that say what to check."""
    where = f"{address.host}:{address.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"TLS: {where}'s certificate was not accepted ({exc.verify_message or exc.reason}); check "
                f"mqtt.tls.ca_file (or mqtt.tls.insecure for a certificate naming another host)")
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake with {where} failed ({exc.reason or exc}); is it a TLS listener, and mqtts:// the right scheme?"
    if isinstance(exc, ConnectionRefusedError):
        return f"{where} refused the connection: is the broker running and listening on that port?"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the broker's host name {address.host!r}: {exc.strerror}"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"no answer from {where} (timed out): wrong address, or a firewall?"
    if isinstance(exc, OSError):
        return f"cannot reach {where}: {exc.strerror or exc}"
    return f"{where}: {exc}"


def describe_refusal(reason: object) -> str:
    text = str(reason)
    if text in ("Bad user name or password", "Not authorized"):
        return f"the broker refused the login ({text}): check the user and password in mqtt.url"
    return f"the broker refused the connection: {text}"


def build_paho(*, url: str, client_id: str, tls: MqttTlsConfig, keepalive_s: int, reconnect_max_s: float,
               will_topic: str | None) -> tuple[_Paho, BrokerAddress]:
    address = broker_address(url)
    client = _Paho(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311)
    if address.username is not None:
        client.username_pw_set(address.username, address.password)
    if address.tls or tls.configured:
        client.tls_set(ca_certs=_text(tls.ca_file), certfile=_text(tls.cert_file), keyfile=_text(tls.key_file))
        client.tls_insecure_set(tls.insecure)
    if will_topic is not None:
        client.will_set(will_topic, OFFLINE, qos=1, retain=True)
    client.reconnect_delay_set(min_delay=1, max_delay=max(1, round(reconnect_max_s)))
    client.on_socket_open = _no_delay
    client.enable_logger(logging.getLogger("nvr.mqtt.paho"))
    return client, address


def _no_delay(client, userdata, sock) -> None:
    """Send each small packet at once: with Nagle's algorithm an alarm's PUBLISH could wait up to a
    delayed ACK (40 ms on Linux) behind the previous one. paho does not set it."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError) as exc:  # not a TCP socket (a proxy, a test double): Nagle stays on
        log.debug("MQTT: could not set TCP_NODELAY on %r: %s", sock, exc)


def _text(path) -> str | None:
    return None if path is None else str(path)


class MqttClient:
    """One connection to the broker, kept up for the appliance's lifetime. `publish` from any thread.

    `on_connected()` -> messages to publish first on every new connection (availability, discovery,
    current states); `subscriptions` are subscribed on every connection and their messages handed to
    `on_message(topic, payload)` on paho's thread (keep it quick).
    """

    def __init__(self, *, url: str, client_id: str, availability_topic: str, clocks: Clocks, tls: MqttTlsConfig,
                 keepalive_s: int = 30, reconnect_max_s: float = 60.0, outbox_max: int = 1000,
                 on_connected: Callable[[], Iterable[Message]] | None = None,
                 subscriptions: Iterable[str] = (), on_message: Callable[[str, bytes], None] | None = None):
        self.url_shown = mask_credentials(url)
        self.availability_topic = availability_topic
        self._clocks, self._keepalive_s = clocks, keepalive_s
        self._client, self._address = build_paho(url=url, client_id=client_id, tls=tls, keepalive_s=keepalive_s,
                                                 reconnect_max_s=reconnect_max_s, will_topic=availability_topic)
        self._client.on_connect = self._connected
        self._client.on_disconnect = self._disconnected
        self._client.on_publish = self._acked
        self._client.on_connect_fail = self._connect_failed
        self._client.on_message = self._message
        self._on_connected, self._on_message = on_connected, on_message
        self._subscriptions = list(subscriptions)
        self.outbox = Outbox(outbox_max)
        self._wake, self._stopping = threading.Event(), threading.Event()
        self._lock = threading.Lock()
        self._acked_mids: set[int] = set()
        self._inflight: deque[tuple[int, Message]] = deque()
        self._generation = 0  # connections made; the sender announces once per connection
        self._thread: threading.Thread | None = None
        self.connected = False
        self.last_error: str | None = None
        self.published = self.connects = self.disconnects = self.refusals = self.failed_attempts = 0
        self.received = 0

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting (in the background: an unreachable broker never holds up the caller)."""
        self._client.connect_async(self._address.host, self._address.port, keepalive=self._keepalive_s)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)
        self._thread.start()
        log.info("MQTT: connecting to %s", self.url_shown)

    def stop(self, *, drain_s: float = 2.0) -> None:
        """Send what is queued (up to `drain_s` while connected), publish `offline` and disconnect cleanly."""
        deadline_us = self._clocks.monotonic_us() + round(drain_s * 1e6)
        while self.connected and (len(self.outbox) or self._inflight) and self._clocks.monotonic_us() < deadline_us:
            self._wake.set()
            self._clocks.wait(self._stopping, 0.02)
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self.connected:
            info = self._client.publish(self.availability_topic, OFFLINE, qos=1, retain=True)
            self._wait_acked(info.mid, deadline_us=self._clocks.monotonic_us() + 1_000_000)
        self._client.disconnect()
        self._client.loop_stop()
        self.connected = False

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False, qos: int = 1) -> None:
        """Queue a message; returns at once whatever the broker is doing."""
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        self.outbox.put(Message(topic, data, retain, qos))
        self._wake.set()

    # --- paho's callbacks (its network thread) ---------------------------------------------------

    def _connected(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.refusals += 1
            self._set_error(describe_refusal(reason_code))
            return
        for topic in self._subscriptions:
            client.subscribe(topic, qos=1)
        with self._lock:
            self.connected, self._generation = True, self._generation + 1
            self.connects += 1
        if self.last_error is not None:
            log.warning("MQTT: connected to %s again", self.url_shown)
        else:
            log.info("MQTT: connected to %s", self.url_shown)
        self.last_error = None
        self._wake.set()

    def _disconnected(self, client, userdata, flags, reason_code, properties) -> None:
        was = self.connected
        self.connected = False
        if was:
            self.disconnects += 1
            if not self._stopping.is_set():
                self._set_error(f"connection to {self._address.host}:{self._address.port} lost ({reason_code}); "
                                f"reconnecting, messages wait in the outbox")

    def _connect_failed(self, client, userdata) -> None:
        self.failed_attempts += 1
        exc = getattr(client, "last_connect_error", None)
        self._set_error(describe_connect_error(exc, self._address) if exc is not None
                        else f"cannot connect to {self._address.host}:{self._address.port}")

    def _acked(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            self._acked_mids.add(mid)
        self._wake.set()

    def _message(self, client, userdata, message) -> None:
        self.received += 1
        if self._on_message is not None:
            self._on_message(message.topic, bytes(message.payload))

    def _set_error(self, text: str) -> None:
        if text != self.last_error:
            log.error("MQTT: %s", text)
        self.last_error = text

    # --- the sender thread -----------------------------------------------------------------------

    def _send_loop(self) -> None:
        announced = 0
        while not self._stopping.is_set():
            self._wake.clear()
            self._retire_acked()
            if self.connected:
                generation = self._generation
                if generation != announced:
                    announced = generation
                    self._announce()
                self._fill_window()
            self._clocks.wait(self._wake, IDLE_WAKE_S)

    def _announce(self) -> None:
        messages = [Message(self.availability_topic, ONLINE, retain=True)]
        if self._on_connected is not None:
            try:
                messages += list(self._on_connected())
            except Exception:  # a bug in what we announce must not stop the events
                log.exception("MQTT: building the announcement failed; sending events only")
        for message in messages:
            self._hand_over(message)

    def _fill_window(self) -> None:
        while len(self._inflight) < WINDOW and self.connected:
            message = self.outbox.take()
            if message is None:
                return
            self._hand_over(message)

    def _hand_over(self, message: Message) -> None:
        info = self._client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
        if message.qos == 0:
            self.published += 1
            return
        self._inflight.append((info.mid, message))

    def _retire_acked(self) -> None:
        with self._lock:
            while self._inflight and self._inflight[0][0] in self._acked_mids:
                self._acked_mids.discard(self._inflight.popleft()[0])
                self.published += 1
            # acks may come out of order: keep them until their message reaches the front
            if len(self._acked_mids) > 4 * WINDOW:  # stray acks (a paho resend's mid already retired)
                live = {mid for mid, _ in self._inflight}
                self._acked_mids &= live

    def _wait_acked(self, mid: int, *, deadline_us: int) -> bool:
        while self._clocks.monotonic_us() < deadline_us:
            with self._lock:
                if mid in self._acked_mids:
                    return True
            self._wake.clear()
            self._clocks.wait(self._wake, 0.05)
        return False

    def statistics(self) -> dict:
        return {"broker": self.url_shown, "connected": self.connected, "last_error": self.last_error,
                "outbox": len(self.outbox), "outbox_max": self.outbox.max_messages, "dropped": self.outbox.dropped,
                "superseded": self.outbox.superseded,
                "unacknowledged": len(self._inflight), "published": self.published, "connects": self.connects,
                "disconnects": self.disconnects, "refusals": self.refusals, "failed_attempts": self.failed_attempts,
                "received": self.received}


def check_connection(*, url: str, client_id: str, tls: MqttTlsConfig, clocks: Clocks, timeout_s: float = 10.0) -> str:
    """Connect once and disconnect; the broker's address on success, else MqttError saying why."""
    client, address = build_paho(url=url, client_id=client_id, tls=tls, keepalive_s=30, reconnect_max_s=1,
                                 will_topic=None)
    done, outcome = threading.Event(), {}

    def connected(c, userdata, flags, reason_code, properties):
        outcome["error"] = describe_refusal(reason_code) if reason_code.is_failure else None
        done.set()

    client.on_connect = connected
    client.connect_timeout = timeout_s
    try:
        client.connect(address.host, address.port, keepalive=30)
    except (OSError, ValueError) as exc:
        raise MqttError(describe_connect_error(exc, address)) from exc
    client.loop_start()
    try:
        if not clocks.wait(done, timeout_s):
            raise MqttError(f"{address.host}:{address.port} accepted the connection but did not answer "
                            f"the MQTT handshake within {timeout_s:g} s: is it an MQTT broker?")
        if outcome["error"] is not None:
            raise MqttError(outcome["error"])
    finally:
        client.disconnect()
        client.loop_stop()
    return f"{address.host}:{address.port}"
