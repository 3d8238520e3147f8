"""A camera's own ONVIF events: the topic table, the notification parser, and the PullPoint subscriber.

`parse_notification(element)` turns one `wsnt:NotificationMessage` into a `CameraEvent` (kind, source
token, active) or None for a topic outside `TOPICS`; `parse_pull_messages(data)` does the same for every
message of a raw PullMessagesResponse (the fuzz target). Topics are matched without their namespace
prefixes (`tns1:`, `tnsaxis:`, whatever the camera declares), case-insensitively, since vendors differ.

Messages are hostile input: at most `MAX_MESSAGES_PER_PULL` messages per response, `MAX_ITEMS` simple
items per message and `MAX_TEXT_CHARS` characters per topic, name or value are looked at; the rest is
counted and dropped. A malformed message is skipped, never raised.

`PullPointSubscriber` keeps one subscription on one connected `onvif.ONVIFCamera`:
CreatePullPointSubscription, PullMessages with a timeout (a long poll: events come within a round trip),
Renew before the termination time, and a new subscription after any failure (a camera that reboots
forgets its subscriptions) with an exponential backoff from `BACKOFF_FIRST_S` to `BACKOFF_MAX_S`.

Exceptions::

    PullPointError (RuntimeError)   a response without what the standard requires (no address...)
    onvif.exceptions.ONVIFError, zeep Fault, aiohttp.ClientError, TimeoutError  from the camera
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from base.clock import Clocks

log = logging.getLogger("nvr.onvif.events")

MAX_MESSAGES_PER_PULL = 256  # NotificationMessages looked at in one response; MessageLimit asks for fewer
MAX_ITEMS = 32  # SimpleItems looked at in a message's Source or Data
MAX_TEXT_CHARS = 256  # a topic, item name or value longer than this is not one of ours
MAX_RESPONSE_BYTES = 1 << 20  # raw responses handed to parse_pull_messages
MAX_UNKNOWN_TOPICS = 64  # distinct unknown topics remembered (each logged once)
MESSAGE_LIMIT = 64  # MessageLimit of each PullMessages
PULL_TIMEOUT_S = 5.0  # the camera holds a PullMessages this long when it has nothing
TERMINATION_S = 60.0  # InitialTerminationTime and each Renew
RENEW_FRACTION = 0.6  # renew when this much of the subscription's time has passed
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0
CALL_MARGIN_S = 10.0  # a call to the camera may take this much longer than its own timeout

MOTION, LINE_CROSSING, INTRUSION, TAMPER, DIGITAL_INPUT = "motion", "line_crossing", "intrusion", "tamper", \
    "digital_input"
KINDS = (MOTION, LINE_CROSSING, INTRUSION, TAMPER, DIGITAL_INPUT)

_TRUE = frozenset({"true", "1", "active", "on", "yes"})
_FALSE = frozenset({"false", "0", "inactive", "off", "no"})
_VIDEO_SOURCE_ITEMS = ("VideoSourceConfigurationToken", "VideoSourceToken", "Source", "window", "channel")
_INPUT_SOURCE_ITEMS = ("InputToken", "port", "Index", "Token")


@dataclass(frozen=True, slots=True)
class Topic:
    """How one topic maps: its kind, the data items that carry its state (first found wins; any boolean
    item when none is), the source items naming what fired, and `pulse` for an instant (a line crossed)
    that has no end message."""

    kind: str
    state_items: tuple[str, ...] = ()
    source_items: tuple[str, ...] = _VIDEO_SOURCE_ITEMS
    pulse: bool = False


_VIDEO_TAMPER = Topic(TAMPER, ("State",))
# Topic path without namespace prefixes, case-folded -> meaning. Sources: the ONVIF Core and Analytics
# specifications (CellMotionDetector, FieldDetector, LineDetector, TamperDetector, GlobalSceneChange,
# ImageTooBlurry/Dark/Bright, DigitalInput) and the vendor topics listed by Home Assistant's ONVIF
# parsers and the cameras' own documentation (Hikvision, Dahua, Axis, Reolink, TP-Link Tapo).
TOPICS: dict[str, Topic] = {
    "ruleengine/cellmotiondetector/motion": Topic(MOTION, ("IsMotion",)),
    "videosource/motionalarm": Topic(MOTION, ("State",)),
    "ruleengine/motionregiondetector/motion": Topic(MOTION, ("State", "IsMotion")),
    "videoanalytics/motiondetection": Topic(MOTION, ("motion",)),  # Axis (tnsaxis:MotionDetection)
    "ruleengine/myruledetector/motion": Topic(MOTION, ("State",)),  # Reolink
    "ruleengine/linedetector/crossed": Topic(LINE_CROSSING, ("State",), pulse=True),  # Data: ObjectId only
    "ruleengine/cellmotiondetector/linecross": Topic(LINE_CROSSING, ("IsLineCross",)),  # Tapo
    "ruleengine/crosslinedetector/crossed": Topic(LINE_CROSSING, ("State",), pulse=True),  # Dahua firmwares
    "ruleengine/fielddetector/objectsinside": Topic(INTRUSION, ("IsInside",)),
    "ruleengine/cellmotiondetector/intrusion": Topic(INTRUSION, ("IsIntrusion",)),  # Tapo
    "ruleengine/crossregiondetector/intrusion": Topic(INTRUSION, ("State",)),  # Dahua firmwares
    "ruleengine/tamperdetector/tamper": Topic(TAMPER, ("IsTamper",)),
    "ruleengine/cellmotiondetector/tamper": Topic(TAMPER, ("IsTamper",)),  # Tapo
    "videosource/tampering": Topic(TAMPER, ("tampering", "State")),  # Axis (tnsaxis:Tampering)
    "videosource/globalscenechange/analyticsservice": _VIDEO_TAMPER,
    "videosource/globalscenechange/imagingservice": _VIDEO_TAMPER,
    "videosource/globalscenechange/recordingservice": _VIDEO_TAMPER,
    "videosource/imagetooblurry/analyticsservice": _VIDEO_TAMPER,
    "videosource/imagetooblurry/imagingservice": _VIDEO_TAMPER,
    "videosource/imagetooblurry/recordingservice": _VIDEO_TAMPER,
    "videosource/imagetoodark/analyticsservice": _VIDEO_TAMPER,
    "videosource/imagetoodark/imagingservice": _VIDEO_TAMPER,
    "videosource/imagetoodark/recordingservice": _VIDEO_TAMPER,
    "videosource/imagetoobright/analyticsservice": _VIDEO_TAMPER,
    "videosource/imagetoobright/imagingservice": _VIDEO_TAMPER,
    "videosource/imagetoobright/recordingservice": _VIDEO_TAMPER,
    "device/trigger/digitalinput": Topic(DIGITAL_INPUT, ("LogicalState", "State"), _INPUT_SOURCE_ITEMS),
    "device/io/port": Topic(DIGITAL_INPUT, ("state",), _INPUT_SOURCE_ITEMS),  # Axis (tnsaxis:IO/Port)
    "device/io/virtualinput": Topic(DIGITAL_INPUT, ("active", "State"), _INPUT_SOURCE_ITEMS),  # Axis
}


class PullPointError(RuntimeError):
    """The camera's answer lacks what the standard requires (a subscription address, ...)."""


@dataclass(frozen=True, slots=True)
class CameraEvent:
    """One state change a camera reported: `kind` (motion, line_crossing, intrusion, tamper,
    digital_input), `source` the token naming what fired (video source and rule, or the input's token),
    `active`, the normalized `topic`, `pulse` for an instant without an end, `initial` for a state the
    camera sends when the subscription starts (PropertyOperation Initialized)."""

    kind: str
    source: str
    active: bool
    topic: str
    pulse: bool = False
    initial: bool = False


def normalize_topic(text: str) -> str:
    """'tns1:RuleEngine/CellMotionDetector/Motion' -> 'ruleengine/cellmotiondetector/motion'."""
    parts = text.strip().split("/")
    return "/".join(part.rsplit(":", 1)[-1] for part in parts).casefold()


def _local(element) -> str:
    tag = element.tag
    if not isinstance(tag, str):  # a comment or processing instruction
        return ""
    return tag.rsplit("}", 1)[-1]


def _child(element, name: str):
    for child in element:
        if _local(child) == name:
            return child
    return None


def _short(value: str | None) -> str | None:
    if value is None or len(value) > MAX_TEXT_CHARS:
        return None
    return value.strip()


def _simple_items(section) -> dict[str, str]:
    """The first MAX_ITEMS SimpleItems of a Source or Data element as name -> value."""
    items: dict[str, str] = {}
    if section is None:
        return items
    for count, child in enumerate(section):
        if count >= MAX_ITEMS:
            break
        if _local(child) != "SimpleItem":
            continue
        name, value = _short(child.get("Name")), _short(child.get("Value"))
        if name and value is not None:
            items.setdefault(name, value)
    return items


def _state(topic: Topic, data: dict[str, str]) -> bool | None:
    for name in topic.state_items:
        value = data.get(name)
        if value is not None:
            lowered = value.casefold()
            return True if lowered in _TRUE else False if lowered in _FALSE else None
    if topic.pulse:  # an instant (its Data carries an object id, not a state): it happened
        return True
    for value in data.values():  # a vendor that names its state item otherwise
        lowered = value.casefold()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
    return None


def _source(topic: Topic, source: dict[str, str]) -> str:
    token = next((source[name] for name in topic.source_items if source.get(name)), "")
    rule = source.get("Rule", "")
    return f"{token}/{rule}" if rule and topic.kind != DIGITAL_INPUT else token


def topic_of(notification) -> str | None:
    """The topic text of a wsnt:NotificationMessage element, or None when it has none we can use."""
    element = _child(notification, "Topic")
    if element is None:
        return None
    return _short(element.text)


def parse_notification(notification) -> CameraEvent | None:
    """One `wsnt:NotificationMessage` element -> a CameraEvent, or None when its topic is not in TOPICS or
    it carries no state we understand. Never raises on content (the element is already parsed XML)."""
    text = topic_of(notification)
    if text is None:
        return None
    name = normalize_topic(text)
    topic = TOPICS.get(name)
    if topic is None:
        return None
    wrapper = _child(notification, "Message")
    message = _child(wrapper, "Message") if wrapper is not None else None
    if message is None:
        return None
    active = _state(topic, _simple_items(_child(message, "Data")))
    if active is None:
        return None
    operation = (message.get("PropertyOperation") or "")[:16]
    return CameraEvent(topic.kind, _source(topic, _simple_items(_child(message, "Source"))), active, name,
                       pulse=topic.pulse, initial=operation == "Initialized")


def notification_elements(envelope) -> Iterator:
    """The first MAX_MESSAGES_PER_PULL NotificationMessage elements of a PullMessagesResponse envelope."""
    body = _child(envelope, "Body")
    response = _child(body, "PullMessagesResponse") if body is not None else None
    if response is None:
        return
    count = 0
    for child in response:
        if _local(child) == "NotificationMessage":
            yield child
            count += 1
            if count >= MAX_MESSAGES_PER_PULL:
                return


def _parser():
    """lxml and a parser of our own (lxml parsers are not to be shared between threads)."""
    from lxml import etree  # loaded only where a camera's events are read (a box without ONVIF never does)

    return etree, etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_comments=True,
                                  remove_pis=True, load_dtd=False)


@dataclass
class ParseResult:
    """What one response held: the events we understood and the topics we did not."""

    events: list[CameraEvent] = field(default_factory=list)
    unknown_topics: list[str] = field(default_factory=list)
    skipped: int = 0  # messages with a known topic but no state we understand


def parse_envelope(envelope) -> ParseResult:
    result = ParseResult()
    for notification in notification_elements(envelope):
        event = parse_notification(notification)
        if event is not None:
            result.events.append(event)
            continue
        text = topic_of(notification)
        if text is not None and normalize_topic(text) not in TOPICS:
            result.unknown_topics.append(text)
        else:
            result.skipped += 1
    return result


def parse_pull_messages(data: bytes) -> ParseResult:
    """A raw PullMessagesResponse (at most MAX_RESPONSE_BYTES) -> ParseResult; ValueError if it is not
    XML we accept (a DTD, entities and oversized trees are refused by the parser)."""
    if len(data) > MAX_RESPONSE_BYTES:
        raise ValueError(f"a PullMessages response of {len(data)} bytes is over {MAX_RESPONSE_BYTES}")
    etree, parser = _parser()
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not a well-formed PullMessages response: {exc}") from exc
    if root is None or b"<!DOCTYPE" in data[:4096].upper():
        raise ValueError("a PullMessages response must not carry a DOCTYPE")
    return parse_envelope(root)


# --- the subscriber ------------------------------------------------------------------------------


class _CaptureEnvelope:
    """A zeep plugin keeping the last PullMessages response envelope (lxml), so that we parse the
    notifications ourselves, bounded, instead of walking zeep's objects for an `xsd:any`."""

    def __init__(self):
        self.envelope = None

    def ingress(self, envelope, http_headers, operation):
        if getattr(operation, "name", "") == "PullMessages":
            self.envelope = envelope
        return envelope, http_headers

    def egress(self, envelope, http_headers, operation, binding_options):
        return envelope, http_headers


@dataclass
class SubscriberStats:
    subscriptions: int = 0
    pulls: int = 0
    renewals: int = 0
    messages: int = 0
    events: int = 0
    unknown: int = 0
    skipped: int = 0
    failures: int = 0
    last_error: str | None = None
    subscribed: bool = False
    last_event_monotonic_s: float | None = None
    unknown_topics: list[str] = field(default_factory=list)


class PullPointSubscriber:
    """Keeps a PullPoint subscription on `camera` (an `onvif.ONVIFCamera` after `update_xaddrs()`) and
    calls `on_events(events)` with the CameraEvents of each PullMessages answer, in order, on the loop's
    thread (keep it quick: hand over). `camera` may instead be a function returning an awaitable of
    the camera; it is then called before every subscription, so a connection made again elsewhere (after a
    reboot) is the one used.

    `on_state(subscribed, error)` tells when the subscription is up or lost (for an alarm on the
    health page). `clocks` times the renewals and stamps the last event (monotonic); `sleep` is injected
    so tests of the backoff need not wait.
    """

    def __init__(self, camera, *, name: str, clocks: Clocks, on_events: Callable[[list[CameraEvent]], None],
                 on_state: Callable[[bool, str | None], None] | None = None,
                 pull_timeout_s: float = PULL_TIMEOUT_S, termination_s: float = TERMINATION_S,
                 backoff_first_s: float = BACKOFF_FIRST_S, backoff_max_s: float = BACKOFF_MAX_S,
                 sleep: Callable[[float], object] = asyncio.sleep):
        self._camera_source, self.name, self._on_events, self._on_state = camera, name, on_events, on_state
        self._clocks = clocks
        self._pull_timeout_s, self._termination_s = pull_timeout_s, termination_s
        self._backoff_first_s, self._backoff_max_s, self._sleep = backoff_first_s, backoff_max_s, sleep
        self._capture = _CaptureEnvelope()
        self._pullpoint = None
        self._subscription = None
        self._renew_at = 0.0
        self.stats = SubscriberStats()

    async def run(self) -> None:
        """Subscribe, pull and renew until cancelled; every failure starts a new subscription after a
        growing pause (reset once a subscription works again)."""
        backoff_s = self._backoff_first_s
        try:
            while True:
                try:
                    await self._subscribe()
                    backoff_s = self._backoff_first_s
                    self._state(True, None)
                    await self._pull_forever()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a camera gone, rebooted, answering garbage: its own share only
                    self.stats.failures += 1
                    self.stats.last_error = f"{type(exc).__name__}: {exc}"[:300]
                    log.warning("%s: event subscription failed (%s); subscribing again in %.0f s", self.name,
                                self.stats.last_error, backoff_s)
                    self._state(False, self.stats.last_error)
                    await self._unsubscribe()  # cameras keep few subscriptions: free ours before the next
                await self._sleep(backoff_s)
                backoff_s = min(self._backoff_max_s, backoff_s * 2)
        finally:
            await self._unsubscribe()

    def _monotonic_s(self) -> float:
        return self._clocks.monotonic_us() / 1e6

    def _state(self, subscribed: bool, error: str | None) -> None:
        if subscribed == self.stats.subscribed and subscribed:
            return
        self.stats.subscribed = subscribed
        if self._on_state is not None:
            self._on_state(subscribed, error)

    async def _call(self, awaitable, timeout_s: float = 0.0):
        result = await asyncio.wait_for(awaitable, timeout_s or CALL_MARGIN_S)
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # Python 3.11's wait_for drops a cancellation that lands as the camera answers: without
            # this the subscriber would pull on after stop() (seen as a hang in the tests).
            raise asyncio.CancelledError("cancelled while the camera answered")
        return result

    async def _subscribe(self) -> None:
        camera = self._camera_source
        if not hasattr(camera, "create_events_service"):  # a function giving the connected camera
            camera = await self._call(camera(), CALL_MARGIN_S * 2)
        events = await self._call(camera.create_events_service())
        result = await self._call(events.CreatePullPointSubscription(
            {"InitialTerminationTime": _duration(self._termination_s)}))
        address = _address(result)
        camera.xaddrs["http://www.onvif.org/ver10/events/wsdl/PullPointSubscription"] = \
            camera.rewrite_url(address)
        self._subscription = await self._call(camera.create_subscription_service("PullPointSubscription"))
        self._pullpoint = await self._call(camera.create_pullpoint_service())
        plugins = self._pullpoint.zeep_client.plugins
        if self._capture not in plugins:
            plugins.append(self._capture)
        self._schedule_renew(result)
        self.stats.subscriptions += 1
        log.info("%s: subscribed to the camera's events at %s", self.name, address)

    def _schedule_renew(self, result) -> None:
        current, termination = getattr(result, "CurrentTime", None), getattr(result, "TerminationTime", None)
        lasting_s = self._termination_s
        if isinstance(current, dt.datetime) and isinstance(termination, dt.datetime):
            try:
                lasting_s = (termination - current).total_seconds()
            except TypeError:  # one naive, one aware: use what we asked for
                lasting_s = self._termination_s
        lasting_s = min(max(lasting_s, 2.0), self._termination_s * 10)
        self._renew_at = self._monotonic_s() + lasting_s * RENEW_FRACTION

    async def _pull_forever(self) -> None:
        while True:
            if self._monotonic_s() >= self._renew_at:
                result = await self._call(self._subscription.Renew(
                    {"TerminationTime": _duration(self._termination_s)}))
                self._schedule_renew(result)
                self.stats.renewals += 1
            pull_s = max(0.1, min(self._pull_timeout_s, self._renew_at - self._monotonic_s()))
            self._capture.envelope = None
            await self._call(self._pullpoint.PullMessages(
                {"Timeout": dt.timedelta(seconds=pull_s), "MessageLimit": MESSAGE_LIMIT}),
                pull_s + CALL_MARGIN_S)
            self.stats.pulls += 1
            envelope, self._capture.envelope = self._capture.envelope, None
            if envelope is not None:
                self._deliver(parse_envelope(envelope))

    def _deliver(self, result: ParseResult) -> None:
        stats = self.stats
        stats.messages += len(result.events) + len(result.unknown_topics) + result.skipped
        stats.skipped += result.skipped
        for text in result.unknown_topics:
            stats.unknown += 1
            if text not in stats.unknown_topics and len(stats.unknown_topics) < MAX_UNKNOWN_TOPICS:
                stats.unknown_topics.append(text)
                log.info("%s: camera event topic %r is not one the appliance maps (counted, ignored)",
                         self.name, text)
        if not result.events:
            return
        stats.events += len(result.events)
        stats.last_event_monotonic_s = self._monotonic_s()
        try:
            self._on_events(result.events)
        except Exception:  # the listener's bug must not end the subscription
            log.exception("%s: the event listener failed on %d event(s)", self.name, len(result.events))

    async def _unsubscribe(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is None:
            return
        try:
            await asyncio.wait_for(subscription.Unsubscribe(), 2.0)
        except Exception as exc:  # best effort: the subscription expires on the camera anyway (a
            # cancellation is not caught: it must end the subscriber)
            log.debug("%s: Unsubscribe failed: %r", self.name, exc)

    def statistics(self) -> dict:
        s = self.stats
        return {"subscribed": s.subscribed, "subscriptions": s.subscriptions, "pulls": s.pulls,
                "renewals": s.renewals, "messages": s.messages, "events": s.events, "unknown": s.unknown,
                "skipped": s.skipped, "failures": s.failures, "last_error": s.last_error,
                "unknown_topics": list(s.unknown_topics)}


def _duration(seconds: float) -> str:
    return f"PT{max(1, round(seconds))}S"


def _address(result) -> str:
    try:
        address = result.SubscriptionReference.Address._value_1
    except AttributeError:
        address = None
    if not isinstance(address, str) or not address.startswith(("http://", "https://")) \
            or len(address) > 1024:
        raise PullPointError(f"the camera's CreatePullPointSubscription answer has no usable address "
                             f"({address!r}); its event service may be off")
    return address
