"""GStreamer's RTSP server for the interoperability tests: the test server's mounts (rtsp_server.py),
plus authentication and mounts that pass RTP packetized by another program through untouched.

    /usr/bin/python3 tests/support/interop_server.py --port 0 --auth digest --user admin --password pw \
        --mount /cam=live:320x240@25 --mount /ff=relay:/tmp/ffmpeg.sdp --mount /inband=relay:/tmp/ffmpeg.sdp,sprop=no

Mount specs: those of rtsp_server.py, and
    relay:SDP_PATH[,sprop=no]     the RTP streams an SDP file describes (FFmpeg's `-sdp_file`), received on
                                  the loopback UDP ports it names and served to every client as they came:
                                  the payloads are the sender's byte for byte (its H.264 FU-A/STAP-A
                                  packetization, its AAC AU headers); the server only adds the RTSP dialogue.
                                  The SDP's format parameters become the served SDP's (`sprop=no` leaves
                                  out `sprop-parameter-sets`: a camera that sends SPS/PPS only in-band).
--auth basic|digest               every mount needs --user/--password by that scheme (GstRTSPAuth)

Prints `READY <port>` on stdout once it listens; exits on SIGTERM or SIGINT. Imports only gi and
rtsp_server.py (which lies beside it), never the project.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtsp, GstRtspServer  # noqa: E402

import rtsp_server  # noqa: E402  (same folder: the test server's mount specs)

VIEWER_ROLE = "viewer"


def parse_sdp_media(text: str) -> list[dict[str, str]]:
    """The m= sections of a (trusted, locally written) SDP as caps fields for `application/x-rtp`."""
    sections: list[dict[str, str]] = []
    for line in text.splitlines():
        key, _, value = line.strip().partition("=")
        if key == "m":
            kind, port, _proto, payload = value.split()[:4]
            sections.append({"media": kind, "port": port, "payload": payload})
        elif sections and key == "a" and value.startswith("rtpmap:"):
            encoding = value.split(None, 1)[1].split("/")
            sections[-1]["encoding-name"] = encoding[0].upper()
            sections[-1]["clock-rate"] = encoding[1]
            if len(encoding) > 2:
                sections[-1]["encoding-params"] = encoding[2]
        elif sections and key == "a" and value.startswith("fmtp:"):
            for item in value.split(None, 1)[1].split(";"):
                name, _, param = item.strip().partition("=")
                if name:
                    sections[-1][name.lower()] = param
    return sections


def relay_caps(section: dict[str, str]) -> Gst.Caps:
    """`application/x-rtp` caps of one m= section (built field by field: values hold `,` and `=`)."""
    structure = Gst.Structure.new_empty("application/x-rtp")
    for name, value in section.items():
        if name in ("payload", "clock-rate"):
            structure.set_value(name, int(value))
        elif name != "port":
            structure.set_value(name, value)
    caps = Gst.Caps.new_empty()
    caps.append_structure(structure)
    return caps


def relay_factory(spec: str) -> GstRtspServer.RTSPMediaFactory:
    """The factory of a `relay:` mount: one udpsrc per m= section, named payN so that the server takes
    it as the stream's payloader and forwards its packets unchanged."""
    path, *options = spec.split(",")
    keep_sprop = "sprop=no" not in options
    with open(path) as f:
        sections = parse_sdp_media(f.read())
    if not sections:
        raise ValueError(f"no m= section in {path!r}")
    if not keep_sprop:
        for section in sections:
            section.pop("sprop-parameter-sets", None)
    sources = " ".join(f"udpsrc name=pay{n} address=127.0.0.1 port={s['port']}" for n, s in enumerate(sections))

    def configure(_factory, media: GstRtspServer.RTSPMedia) -> None:
        for number, section in enumerate(sections):
            media.get_element().get_by_name(f"pay{number}").set_property("caps", relay_caps(section))

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f"( {sources} )")
    factory.set_shared(True)  # one set of UDP ports, however many clients
    factory.connect("media-configure", configure)
    return factory


def add_mount(server: GstRtspServer.RTSPServer, mount: str, workdir: str) -> GstRtspServer.RTSPMediaFactory:
    path, _, spec = mount.partition("=")
    if spec.startswith("relay:"):
        server.get_mount_points().add_factory(path, relay_factory(spec[len("relay:"):]))
    else:
        rtsp_server.add_mount(server, mount, workdir)
    return server.get_mount_points().match(path)[0]


def require_auth(server: GstRtspServer.RTSPServer, factories: list, scheme: str, user: str, password: str) -> None:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, VIEWER_ROLE)
    if scheme == "digest":
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        auth.add_digest(user, password, token)
    else:
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    for factory in factories:
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_role(VIEWER_ROLE)
        permissions.add_permission_for_role(VIEWER_ROLE, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
        permissions.add_permission_for_role(VIEWER_ROLE, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
        factory.set_permissions(permissions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--mount", action="append", default=[], help="/name=SPEC, repeatable")
    parser.add_argument("--auth", choices=("basic", "digest"))
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    args = parser.parse_args(argv)
    if not args.mount:
        parser.error("at least one --mount is needed")
    Gst.init(None)
    workdir = tempfile.mkdtemp(prefix="interop-server-")
    try:
        server = GstRtspServer.RTSPServer()
        server.set_address(args.address)
        server.set_service(str(args.port))
        try:
            factories = [add_mount(server, mount, workdir) for mount in args.mount]
        except (ValueError, RuntimeError, OSError) as exc:
            print(f"ERROR {exc}", file=sys.stderr, flush=True)
            return 2
        if args.auth:
            require_auth(server, factories, args.auth, args.user, args.password)
        return rtsp_server.run_until_signalled(server, args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
