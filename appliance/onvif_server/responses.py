"""The SOAP 1.2 answers of the ONVIF device and media services, as text (every value escaped).

Element order and required children follow ONVIF's schemas (onvif.xsd, devicemgmt.wsdl, media.wsdl), which
client libraries such as zeep check answers against.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

SOAP = "http://www.w3.org/2003/05/soap-envelope"
TDS = "http://www.onvif.org/ver10/device/wsdl"
TRT = "http://www.onvif.org/ver10/media/wsdl"
TT = "http://www.onvif.org/ver10/schema"
TER = "http://www.onvif.org/ver10/error"
NAMESPACES = f'xmlns:env="{SOAP}" xmlns:tds="{TDS}" xmlns:trt="{TRT}" xmlns:tt="{TT}" xmlns:ter="{TER}"'


@dataclass(frozen=True)
class StreamProfile:
    """One channel stream as an ONVIF media profile."""

    token: str  # ch1_main
    name: str
    channel: int
    stream: str
    width: int
    height: int
    fps: float


@dataclass(frozen=True)
class DeviceInfo:
    manufacturer: str
    model: str
    firmware: str
    serial: str
    hardware: str


def envelope(body: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<env:Envelope {NAMESPACES}><env:Body>{body}'
            "</env:Body></env:Envelope>").encode()


def fault(subcode: str, reason: str, *, sender: bool = True) -> bytes:
    """A SOAP fault: `subcode` an ONVIF error name (ter:NotAuthorized, ter:ActionNotSupported...)."""
    code = "env:Sender" if sender else "env:Receiver"
    return envelope(f"<env:Fault><env:Code><env:Value>{code}</env:Value><env:Subcode><env:Value>{escape(subcode)}"
                    f'</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="en">{escape(reason)}'
                    "</env:Text></env:Reason></env:Fault>")


def system_date_and_time(now: dt.datetime) -> bytes:
    t = now.astimezone(dt.timezone.utc)
    return envelope(
        "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType>"
        "<tt:DaylightSavings>false</tt:DaylightSavings><tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone>"
        f"<tt:UTCDateTime><tt:Time><tt:Hour>{t.hour}</tt:Hour><tt:Minute>{t.minute}</tt:Minute><tt:Second>{t.second}"
        f"</tt:Second></tt:Time><tt:Date><tt:Year>{t.year}</tt:Year><tt:Month>{t.month}</tt:Month><tt:Day>{t.day}"
        "</tt:Day></tt:Date></tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>")


def device_information(info: DeviceInfo) -> bytes:
    return envelope(
        f"<tds:GetDeviceInformationResponse><tds:Manufacturer>{escape(info.manufacturer)}</tds:Manufacturer>"
        f"<tds:Model>{escape(info.model)}</tds:Model><tds:FirmwareVersion>{escape(info.firmware)}</tds:FirmwareVersion>"
        f"<tds:SerialNumber>{escape(info.serial)}</tds:SerialNumber><tds:HardwareId>{escape(info.hardware)}"
        "</tds:HardwareId></tds:GetDeviceInformationResponse>")


def capabilities(service_url: str) -> bytes:
    url = escape(service_url)
    return envelope(
        f"<tds:GetCapabilitiesResponse><tds:Capabilities><tt:Device><tt:XAddr>{url}</tt:XAddr></tt:Device>"
        f"<tt:Media><tt:XAddr>{url}</tt:XAddr><tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast>"
        "<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities>"
        "</tt:Media></tds:Capabilities></tds:GetCapabilitiesResponse>")


def services(service_url: str) -> bytes:
    url = escape(service_url)
    entries = "".join(
        f"<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{url}</tds:XAddr>"
        f"<tds:Version><tt:Major>{major}</tt:Major><tt:Minor>{minor}</tt:Minor></tds:Version></tds:Service>"
        for ns, major, minor in ((TDS, 2, 5), (TRT, 2, 5)))
    return envelope(f"<tds:GetServicesResponse>{entries}</tds:GetServicesResponse>")


def scopes(name: str) -> bytes:
    items = "".join(f"<tds:Scopes><tt:ScopeDef>Fixed</tt:ScopeDef><tt:ScopeItem>{escape(s)}</tt:ScopeItem></tds:Scopes>"
                    for s in scope_list(name))
    return envelope(f"<tds:GetScopesResponse>{items}</tds:GetScopesResponse>")


def scope_list(name: str) -> list[str]:
    from urllib.parse import quote
    return ["onvif://www.onvif.org/Profile/Streaming", "onvif://www.onvif.org/type/video_encoder",
            "onvif://www.onvif.org/type/NetworkVideoTransmitter", f"onvif://www.onvif.org/name/{quote(name)}",
            "onvif://www.onvif.org/hardware/nvr"]


def _profile(p: StreamProfile) -> str:
    fps = max(1, round(p.fps))
    return (
        f'<tt:Name>{escape(p.name)}</tt:Name>'
        f'<tt:VideoSourceConfiguration token={quoteattr(f"vsc{p.channel}")}><tt:Name>{escape(f"Channel {p.channel}")}'
        f"</tt:Name><tt:UseCount>2</tt:UseCount><tt:SourceToken>{escape(f'src{p.channel}')}</tt:SourceToken>"
        f'<tt:Bounds x="0" y="0" width="{p.width}" height="{p.height}"/></tt:VideoSourceConfiguration>'
        f"<tt:VideoEncoderConfiguration token={quoteattr(f'vec_{p.token}')}><tt:Name>{escape(p.token)}</tt:Name>"
        "<tt:UseCount>1</tt:UseCount><tt:Encoding>H264</tt:Encoding>"
        f"<tt:Resolution><tt:Width>{p.width}</tt:Width><tt:Height>{p.height}</tt:Height></tt:Resolution>"
        f"<tt:Quality>5</tt:Quality><tt:RateControl><tt:FrameRateLimit>{fps}</tt:FrameRateLimit>"
        "<tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>0</tt:BitrateLimit></tt:RateControl>"
        "<tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address>"
        "<tt:Port>0</tt:Port><tt:TTL>1</tt:TTL><tt:AutoStart>false</tt:AutoStart></tt:Multicast>"
        "<tt:SessionTimeout>PT60S</tt:SessionTimeout></tt:VideoEncoderConfiguration>")


def profiles(items: list[StreamProfile]) -> bytes:
    body = "".join(f'<trt:Profiles token={quoteattr(p.token)} fixed="true">{_profile(p)}</trt:Profiles>' for p in items)
    return envelope(f"<trt:GetProfilesResponse>{body}</trt:GetProfilesResponse>")


def profile(item: StreamProfile) -> bytes:
    return envelope(f'<trt:GetProfileResponse><trt:Profile token={quoteattr(item.token)} fixed="true">'
                    f"{_profile(item)}</trt:Profile></trt:GetProfileResponse>")


def media_uri(operation: str, uri: str) -> bytes:
    """GetStreamUriResponse or GetSnapshotUriResponse handing out `uri`."""
    return envelope(f"<trt:{operation}Response><trt:MediaUri><tt:Uri>{escape(uri)}</tt:Uri>"
                    "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false"
                    "</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri>"
                    f"</trt:{operation}Response>")


def video_sources(items: list[StreamProfile]) -> bytes:
    """One video source per channel, sized as its main stream."""
    body = "".join(f"<trt:VideoSources token={quoteattr(f'src{p.channel}')}><tt:Framerate>{p.fps:g}</tt:Framerate>"
                   f"<tt:Resolution><tt:Width>{p.width}</tt:Width><tt:Height>{p.height}</tt:Height></tt:Resolution>"
                   "</trt:VideoSources>" for p in items if p.stream == "main")
    return envelope(f"<trt:GetVideoSourcesResponse>{body}</trt:GetVideoSourcesResponse>")
