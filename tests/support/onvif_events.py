"""A SOAP responder on loopback standing in for an ONVIF camera's event and PTZ services.

`OnvifResponder` answers what the appliance asks of a camera for events and PTZ: GetSystemDateAndTime,
GetServices, GetDeviceInformation (the device service), GetProfiles (media), GetConfigurationOptions, GetPresets,
GotoPreset, SetPreset, RemovePreset, ContinuousMove, Stop, RelativeMove, GotoHomePosition (PTZ),
CreatePullPointSubscription, PullMessages (a long poll answered as soon as `emit()` queues a
notification), Renew and Unsubscribe (events). Every request is kept (`requests`, with its raw bytes) so
that tests check what was sent, and `wait_for(action)` waits on one instead of sleeping.

The answers replay the shapes real cameras send. Where they come from:
- notification messages (topics, Source/Data SimpleItem names and values, PropertyOperation, UtcTime):
  the captures in Home Assistant's ONVIF tests (home-assistant/core, tests/components/onvif/
  test_parsers.py: Hikvision LineDetector/Crossed with ObjectId, Tapo CellMotionDetector/LineCross,
  TPSmartEvent, ...) and the topics its parsers list (homeassistant/components/onvif/parsers.py:
  VideoSource/MotionAlarm with State, FieldDetector/ObjectsInside with IsInside, TamperDetector/Tamper,
  GlobalSceneChange, ImageTooBlurry...); Axis's tnsaxis:IO/Port with `port`/`state` and the standard
  tns1:Device/Trigger/DigitalInput with InputToken/LogicalState from the ONVIF Core specification's
  examples; Dahua's VideoSource/MotionAlarm with Source "000"-style tokens as its firmware sends them;
- envelopes and PTZ answers: the ONVIF WSDLs shipped with onvif-zeep-async (events.wsdl, ptz.wsdl,
  media.wsdl) for element names, and the answer templates of the `ipycam` virtual camera for PTZ.
No code is taken from these projects; only the message shapes.
"""
from __future__ import annotations

import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape, quoteattr

from lxml import etree

MAX_BODY_BYTES = 1 << 20
PTZ_NS = "http://www.onvif.org/ver20/ptz/wsdl"  # the namespace of a PTZ request's elements
SOAP_ENV_NS = "http://www.w3.org/2003/05/soap-envelope"
MAX_HOLD_S = 10.0  # longest a PullMessages is held open

NS = ('xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:tt="http://www.onvif.org/ver10/schema" '
      'xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" '
      'xmlns:tptz="http://www.onvif.org/ver20/ptz/wsdl" xmlns:tev="http://www.onvif.org/ver10/events/wsdl" '
      'xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" xmlns:wsa="http://www.w3.org/2005/08/addressing" '
      'xmlns:tns1="http://www.onvif.org/ver10/topics" '
      'xmlns:tnsaxis="http://www.axis.com/2009/event/topics"')


def simple_items(items: dict[str, str]) -> str:
    return "".join(f"<tt:SimpleItem Name={quoteattr(k)} Value={quoteattr(v)}/>" for k, v in items.items())


def notification(topic: str, source: dict[str, str], data: dict[str, str], *, operation: str = "Changed",
                 utc: str = "2026-12-07T18:00:00Z") -> str:
    """One wsnt:NotificationMessage as cameras send it."""
    return (f'<wsnt:NotificationMessage><wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/'
            f'ConcreteSet">{escape(topic)}</wsnt:Topic><wsnt:Message><tt:Message UtcTime="{utc}" '
            f'PropertyOperation="{operation}"><tt:Source>{simple_items(source)}</tt:Source><tt:Key/>'
            f'<tt:Data>{simple_items(data)}</tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>')


_HIK_RULE = {"VideoSourceConfigurationToken": "VideoSourceToken",
             "VideoAnalyticsConfigurationToken": "VideoAnalyticsToken"}


def hikvision_motion(active: bool, operation: str = "Changed") -> str:
    return notification("tns1:RuleEngine/CellMotionDetector/Motion", {**_HIK_RULE, "Rule": "MyMotionDetectorRule"},
                        {"IsMotion": "true" if active else "false"}, operation=operation)


def hikvision_line_crossed() -> str:
    return notification("tns1:RuleEngine/LineDetector/Crossed", {**_HIK_RULE, "Rule": "MyLineDetectorRule"},
                        {"ObjectId": "0"}, operation="Initialized")


def hikvision_field(active: bool) -> str:
    return notification("tns1:RuleEngine/FieldDetector/ObjectsInside", {**_HIK_RULE, "Rule": "MyFieldDetectorRule"},
                        {"IsInside": "true" if active else "false"})


def hikvision_tamper(active: bool) -> str:
    return notification("tns1:RuleEngine/TamperDetector/Tamper", {**_HIK_RULE, "Rule": "MyTamperDetectorRule"},
                        {"IsTamper": "true" if active else "false"})


def dahua_motion_alarm(active: bool) -> str:
    return notification("tns1:VideoSource/MotionAlarm", {"Source": "000"}, {"State": "true" if active else "false"})


def dahua_scene_change(active: bool) -> str:
    return notification("tns1:VideoSource/GlobalSceneChange/AnalyticsService", {"Source": "000"},
                        {"State": "true" if active else "false"})


def reolink_motion(active: bool) -> str:
    return notification("tns1:RuleEngine/CellMotionDetector/Motion",
                        {"VideoSourceConfigurationToken": "000", "VideoAnalyticsConfigurationToken": "000",
                         "Rule": "MyMotionDetectorRule"}, {"IsMotion": "true" if active else "false"})


def digital_input(token: str, active: bool) -> str:
    return notification("tns1:Device/Trigger/DigitalInput", {"InputToken": token},
                        {"LogicalState": "true" if active else "false"})


def axis_port(port: str, active: bool) -> str:
    return notification("tns1:Device/tnsaxis:IO/Port", {"port": port}, {"state": "1" if active else "0"})


def unknown_topic() -> str:
    return notification("tns1:Monitoring/ProcessorUsage", {"Token": "Processor"}, {"Value": "12.5"})


def envelope(body: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope {NS}><s:Body>{body}</s:Body></s:Envelope>'.encode()


def pull_messages_response(messages: list[str], now: str = "2026-12-07T18:00:00Z",
                           until: str = "2026-12-07T18:01:00Z") -> bytes:
    return envelope(f"<tev:PullMessagesResponse><tev:CurrentTime>{now}</tev:CurrentTime>"
                    f"<tev:TerminationTime>{until}</tev:TerminationTime>{''.join(messages)}"
                    f"</tev:PullMessagesResponse>")


@dataclass
class Request:
    path: str
    action: str
    body: bytes
    at_s: float  # time.monotonic() when it arrived

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def soap_body(self) -> etree._Element:
        """The request's operation: the first element inside its SOAP Body (e.g. tptz:GotoPreset)."""
        return etree.fromstring(self.body).find(f"{{{SOAP_ENV_NS}}}Body")[0]


@dataclass
class _State:
    presets: dict[str, str] = field(default_factory=lambda: {"1": "Door", "2": "Gate"})
    queue: list[tuple[str, float]] = field(default_factory=list)
    subscriptions: int = 0
    broken: bool = False  # answer every events call with HTTP 500 (a camera rebooting)
    emitted_s: list[float] = field(default_factory=list)


class OnvifResponder:
    """The responder; `start()` binds 127.0.0.1 on a free port, `url` is its device service address.

    `relative_move`: whether the PTZ configuration options offer relative moves.
    """

    def __init__(self, *, relative_move: bool = True, termination_s: int = 60):
        self.relative_move, self.termination_s = relative_move, termination_s
        self.requests: list[Request] = []
        self.state = _State()
        self._cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._closing = False

    # --- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> OnvifResponder:
        responder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                # Headers and body go out in two writes: without this, Nagle's algorithm and the
                # client's delayed ACK hold the body 40 ms, a delay of this test rig, not of cameras.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self):
                length = min(int(self.headers.get("Content-Length", "0") or 0), MAX_BODY_BYTES)
                body = self.rfile.read(length)
                status, answer = responder._answer(self.path, body)
                self.send_response(status)
                self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                try:
                    self.wfile.write(answer)
                except OSError:  # the client gave up on a long poll (its task was cancelled)
                    self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="onvif-responder", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> OnvifResponder:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/onvif/device_service"

    # --- what tests drive ----------------------------------------------------------------------------

    def emit(self, *messages: str) -> float:
        """Queue notifications for the next PullMessages; returns time.monotonic() when they were queued."""
        now = time.monotonic()
        with self._cond:
            self.state.queue.extend((message, now) for message in messages)
            self.state.emitted_s.append(now)
            self._cond.notify_all()
        return now

    def set_broken(self, broken: bool) -> None:
        """Make the event service fail (HTTP 500) or work again, as a camera that reboots."""
        with self._cond:
            self.state.broken = broken
            self._cond.notify_all()

    def wait_for(self, action: str, *, count: int = 1, timeout_s: float = 10.0) -> list[Request]:
        """Wait until `count` requests of `action` arrived; return them. AssertionError on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                found = [r for r in self.requests if r.action == action]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [r.action for r in self.requests]
                    raise AssertionError(f"{count} {action} request(s) did not arrive within {timeout_s} s; "
                                         f"arrived: {seen[-20:]}")
                self._cond.wait(left)

    def actions(self) -> list[str]:
        with self._cond:
            return [r.action for r in self.requests]

    # --- answering -----------------------------------------------------------------------------------

    def _answer(self, path: str, body: bytes) -> tuple[int, bytes]:
        try:
            root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
            soap_body = next(c for c in root if etree.QName(c).localname == "Body")
            request = next(iter(soap_body))
            action = etree.QName(request).localname
        except Exception:
            return 400, envelope("<s:Fault><s:Reason><s:Text>bad request</s:Text></s:Reason></s:Fault>")
        with self._cond:
            self.requests.append(Request(path, action, body, time.monotonic()))
            self._cond.notify_all()
            broken = self.state.broken and path.startswith(("/onvif/event", "/onvif/subscription"))
        if broken:
            return 500, envelope("<s:Fault><s:Code><s:Value>s:Receiver</s:Value></s:Code><s:Reason>"
                                 "<s:Text xml:lang=\"en\">rebooting</s:Text></s:Reason></s:Fault>")
        handler = getattr(self, f"_do_{action}", None)
        if handler is None:
            return 500, envelope(f'<s:Fault><s:Code><s:Value>s:Sender</s:Value></s:Code><s:Reason>'
                                 f'<s:Text xml:lang="en">ActionNotSupported {escape(action)}</s:Text></s:Reason>'
                                 f'</s:Fault>')
        return 200, envelope(handler(request))

    @staticmethod
    def _text(request, name: str) -> str | None:
        for element in request.iter():
            if isinstance(element.tag, str) and etree.QName(element).localname == name:
                return element.text
        return None

    # device

    def _service(self, namespace: str, path: str) -> str:
        return (f"<tds:Service><tds:Namespace>{namespace}</tds:Namespace><tds:XAddr>{self.base}{path}</tds:XAddr>"
                f"<tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>")

    def _do_GetServices(self, _request) -> str:
        return ("<tds:GetServicesResponse>"
                + self._service("http://www.onvif.org/ver10/device/wsdl", "/onvif/device_service")
                + self._service("http://www.onvif.org/ver10/media/wsdl", "/onvif/media_service")
                + self._service("http://www.onvif.org/ver20/ptz/wsdl", "/onvif/ptz_service")
                + self._service("http://www.onvif.org/ver10/events/wsdl", "/onvif/event_service")
                + "</tds:GetServicesResponse>")

    def _do_GetSystemDateAndTime(self, _request) -> str:
        now = time.gmtime()
        return (f"<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType>"
                f"<tt:DaylightSavings>false</tt:DaylightSavings><tt:UTCDateTime><tt:Time><tt:Hour>{now.tm_hour}"
                f"</tt:Hour><tt:Minute>{now.tm_min}</tt:Minute><tt:Second>{now.tm_sec}</tt:Second></tt:Time>"
                f"<tt:Date><tt:Year>{now.tm_year}</tt:Year><tt:Month>{now.tm_mon}</tt:Month><tt:Day>{now.tm_mday}"
                f"</tt:Day></tt:Date></tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>")

    def _do_GetDeviceInformation(self, _request) -> str:
        return ("<tds:GetDeviceInformationResponse><tds:Manufacturer>HIKVISION</tds:Manufacturer>"
                "<tds:Model>DS-2DE2A404IW-DE3</tds:Model><tds:FirmwareVersion>V5.7.3</tds:FirmwareVersion>"
                "<tds:SerialNumber>DS-2DE2A404IW-DE320230101AAWRJ00000000</tds:SerialNumber>"
                "<tds:HardwareId>88</tds:HardwareId></tds:GetDeviceInformationResponse>")

    # media

    def _do_GetProfiles(self, _request) -> str:
        ptz = ('<tt:PTZConfiguration token="PTZToken"><tt:Name>PTZ</tt:Name><tt:UseCount>2</tt:UseCount>'
               '<tt:NodeToken>PTZNodeToken</tt:NodeToken>'
               '<tt:DefaultContinuousPanTiltVelocitySpace>http://www.onvif.org/ver10/tptz/PanTiltSpaces/'
               'VelocityGenericSpace</tt:DefaultContinuousPanTiltVelocitySpace>'
               '<tt:DefaultPTZTimeout>PT300S</tt:DefaultPTZTimeout></tt:PTZConfiguration>')
        profile = ('<trt:Profiles token="{token}" fixed="true"><tt:Name>{name}</tt:Name>{ptz}</trt:Profiles>')
        return ("<trt:GetProfilesResponse>" + profile.format(token="Profile_1", name="mainStream", ptz=ptz)
                + profile.format(token="Profile_2", name="subStream", ptz=ptz) + "</trt:GetProfilesResponse>")

    # PTZ

    def _space(self, kind: str, uri: str, axes: str = "xy") -> str:
        ranges = "".join(f"<tt:{a.upper()}Range><tt:Min>-1</tt:Min><tt:Max>1</tt:Max></tt:{a.upper()}Range>"
                         for a in axes)
        return f"<tt:{kind}><tt:URI>{uri}</tt:URI>{ranges}</tt:{kind}>"

    def _do_GetConfigurationOptions(self, _request) -> str:
        spaces = (self._space("AbsolutePanTiltPositionSpace", "http://www.onvif.org/ver10/tptz/PanTiltSpaces/"
                              "PositionGenericSpace")
                  + (self._space("RelativePanTiltTranslationSpace", "http://www.onvif.org/ver10/tptz/"
                                 "PanTiltSpaces/TranslationGenericSpace") if self.relative_move else "")
                  + self._space("ContinuousPanTiltVelocitySpace", "http://www.onvif.org/ver10/tptz/PanTiltSpaces/"
                                "VelocityGenericSpace")
                  + self._space("ContinuousZoomVelocitySpace", "http://www.onvif.org/ver10/tptz/ZoomSpaces/"
                                "VelocityGenericSpace", "x"))
        return (f"<tptz:GetConfigurationOptionsResponse><tptz:PTZConfigurationOptions><tt:Spaces>{spaces}"
                f"</tt:Spaces><tt:PTZTimeout><tt:Min>PT1S</tt:Min><tt:Max>PT600S</tt:Max></tt:PTZTimeout>"
                f"</tptz:PTZConfigurationOptions></tptz:GetConfigurationOptionsResponse>")

    def _do_GetPresets(self, _request) -> str:
        with self._cond:
            presets = dict(self.state.presets)
        listed = "".join(f"<tptz:Preset token={quoteattr(token)}><tt:Name>{escape(name)}</tt:Name></tptz:Preset>"
                         for token, name in presets.items())
        return f"<tptz:GetPresetsResponse>{listed}</tptz:GetPresetsResponse>"

    def _do_SetPreset(self, request) -> str:
        token = self._text(request, "PresetToken") or str(100 + len(self.state.presets))
        name = self._text(request, "PresetName") or token
        with self._cond:
            self.state.presets[token] = name
        return f"<tptz:SetPresetResponse><tptz:PresetToken>{escape(token)}</tptz:PresetToken></tptz:SetPresetResponse>"

    def _do_RemovePreset(self, request) -> str:
        with self._cond:
            self.state.presets.pop(self._text(request, "PresetToken") or "", None)
        return "<tptz:RemovePresetResponse/>"

    def _do_GotoPreset(self, _request) -> str:
        return "<tptz:GotoPresetResponse/>"

    def _do_ContinuousMove(self, _request) -> str:
        return "<tptz:ContinuousMoveResponse/>"

    def _do_Stop(self, _request) -> str:
        return "<tptz:StopResponse/>"

    def _do_RelativeMove(self, _request) -> str:
        return "<tptz:RelativeMoveResponse/>"

    def _do_GotoHomePosition(self, _request) -> str:
        return "<tptz:GotoHomePositionResponse/>"

    # events

    def _times(self) -> tuple[str, str]:
        now = time.time()
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        return time.strftime(fmt, time.gmtime(now)), time.strftime(fmt, time.gmtime(now + self.termination_s))

    def _do_CreatePullPointSubscription(self, _request) -> str:
        with self._cond:
            self.state.subscriptions += 1
            number = self.state.subscriptions
        now, until = self._times()
        return (f"<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference><wsa:Address>{self.base}"
                f"/onvif/subscription/{number}</wsa:Address></tev:SubscriptionReference>"
                f"<wsnt:CurrentTime>{now}</wsnt:CurrentTime><wsnt:TerminationTime>{until}</wsnt:TerminationTime>"
                f"</tev:CreatePullPointSubscriptionResponse>")

    def _do_PullMessages(self, request) -> str:
        timeout_s = _duration_s(self._text(request, "Timeout") or "PT1S")
        deadline = time.monotonic() + min(timeout_s, MAX_HOLD_S)
        with self._cond:
            while not self.state.queue and not self._closing and not self.state.broken:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            messages = [message for message, _ in self.state.queue]
            self.state.queue.clear()
        now, until = self._times()
        return (f"<tev:PullMessagesResponse><tev:CurrentTime>{now}</tev:CurrentTime><tev:TerminationTime>{until}"
                f"</tev:TerminationTime>{''.join(messages)}</tev:PullMessagesResponse>")

    def _do_Renew(self, _request) -> str:
        now, until = self._times()
        return (f"<wsnt:RenewResponse><wsnt:TerminationTime>{until}</wsnt:TerminationTime><wsnt:CurrentTime>{now}"
                f"</wsnt:CurrentTime></wsnt:RenewResponse>")

    def _do_Unsubscribe(self, _request) -> str:
        return "<wsnt:UnsubscribeResponse/>"


_DURATION = re.compile(r"PT(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?")


def _duration_s(text: str) -> float:
    match = _DURATION.fullmatch(text.strip())
    if not match:
        return 1.0
    return int(match.group(1) or 0) * 60 + float(match.group(2) or 0)
