"""The `rtsp_server:` and `onvif_server:` sections: the box itself as a network camera (issue 16, point 5).

`rtsp_server` serves every channel's streams live at rtsp://BOX:PORT/chN/main (and /chN/sub) to the web
users, with HTTP Digest; `onvif_server` answers ONVIF device and media requests (Profile S subset) and
WS-Discovery probes so a VMS or Home Assistant finds those streams. Both are off by default: they open
ports on the LAN. See design/rtsp-server.md.
"""
from __future__ import annotations

from pydantic import Field

from appliance.config.listen import ListenService


class RtspServerConfig(ListenService):
    """The box as an RTSP source: each channel's streams, live, remuxed (never re-encoded), for web users."""

    enabled: bool = Field(False, description=(
        "Serve rtsp://BOX:PORT/chN/main (and /chN/sub where the channel has a sub stream) to the web users "
        "(HTTP Digest; a user made before this existed must log in to the web once, or have the password set "
        "again, before RTSP accepts it)."))
    listen: str = Field("0.0.0.0:8554", description="host:port to serve RTSP on; 0.0.0.0 for all interfaces.")


class OnvifServerConfig(ListenService):
    """The box as an ONVIF device (Profile S subset): device information, profiles, stream and snapshot URIs."""

    enabled: bool = Field(False, description=(
        "Answer ONVIF device and media requests at http://BOX:PORT/onvif/device_service (needs rtsp_server, "
        "whose URIs it hands out). Web users log in with WS-UsernameToken PasswordText or HTTP Digest; clients "
        "that send PasswordDigest (Home Assistant) need an integration account: nvr onvif-user add NAME --role viewer."))
    listen: str = Field("0.0.0.0:8000", description="host:port of the ONVIF HTTP service.")
    discovery: bool = Field(True, description=(
        "Answer WS-Discovery probes (UDP 3702, multicast 239.255.255.250) and announce the box with Hello."))
    address: str | None = Field(None, max_length=253, description=(
        "Host name or address put into the URLs handed to clients; null: the address the request came in on."))
    name: str = Field("nvr", min_length=1, max_length=64, description=(
        "The device name clients show (ONVIF scope onvif://www.onvif.org/name/...)."))


def box_source_errors(config) -> list[tuple[tuple, object, str]]:
    """What is inconsistent between rtsp_server, onvif_server and web in a validated root config, as
    (loc, value, message): the ONVIF service without the RTSP server whose URIs it hands out, and two
    services on one port."""
    errors = []
    rtsp, onvif = config.rtsp_server, config.onvif_server
    if onvif.enabled and not rtsp.enabled:
        errors.append((("onvif_server", "enabled"), True, (
            "needs rtsp_server.enabled: the ONVIF service hands out the RTSP server's stream URIs")))
    used = {config.web.port: "web.listen"}
    for name, section in (("rtsp_server", rtsp), ("onvif_server", onvif)):
        if not section.enabled:
            continue
        if section.port in used:
            errors.append(((name, "listen"), section.listen, f"port {section.port} is taken by {used[section.port]}"))
        used.setdefault(section.port, f"{name}.listen")
    return errors
