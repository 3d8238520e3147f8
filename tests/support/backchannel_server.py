"""A GStreamer ONVIF RTSP server with an audio back channel, for talk tests; run by the system python3.

    /usr/bin/python3 tests/support/backchannel_server.py --port 0 --mount /talk --codec pcmu --record /tmp/heard.raw \
        [--latency-ms 20]

The mount serves a live test pattern (H.264) and, to a client whose DESCRIBE says
`Require: www.onvif.org/ver20/backchannel`, also a `sendonly` audio media (G.711 µ-law or A-law, 8 kHz):
the camera's speaker. `--latency-ms` sets the media's RTP jitter buffer (GstRTSPMediaFactory's `latency`,
GStreamer's default 200 ms): the first packet of a session waits that long before it is decoded, which a
latency measurement of the box must not count as the box's (a real camera's playout buffer differs).
What a client sends there is depayloaded, decoded and appended to `--record` as raw
signed 16-bit little-endian mono samples at 8000 Hz, unbuffered and appended (every session pipeline opens
the file anew), so a test can read what the camera heard.

Prints `READY <port>` once it listens and exits on SIGTERM or SIGINT. It only imports gi and its sibling rtsp_server (no project code).
"""
from __future__ import annotations

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer  # noqa: E402
from rtsp_server import run_until_signalled  # noqa: E402 (its sibling: this folder is on the path of a script)

# The tee lets the video return OK while no client takes it: a client that SETUPs only the back channel
# leaves the video unlinked, and a not-linked flow error there stopped the whole media, back channel
# included, in about one session in ten (the sound never arrived).
VIDEO = ("( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=10/1 ! "
         "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 bitrate=200 threads=1 ! "
         "tee allow-not-linked=true ! rtph264pay name=pay0 pt=96 config-interval=-1 )")
CODECS = {"pcmu": (0, "PCMU", "rtppcmudepay ! mulawdec"), "pcma": (8, "PCMA", "rtppcmadepay ! alawdec")}
# The back channel's element must be named depay_backchannel: the ONVIF media finds its caps (the SDP) by it.
BACKCHANNEL = ('( capsfilter caps="application/x-rtp,media=audio,payload={pt},clock-rate=8000,encoding-name={name}" '
               'name=depay_backchannel ! {decode} ! audio/x-raw,format=S16LE,rate=8000,channels=1 ! '
               'filesink location="{record}" append=true buffer-mode=unbuffered async=false sync=false )')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--mount", default="/talk")
    parser.add_argument("--codec", choices=sorted(CODECS), default="pcmu")
    parser.add_argument("--record", required=True, help="file the back channel's sound is appended to")
    parser.add_argument("--latency-ms", type=int, default=None,
                        help="the media's RTP jitter buffer in ms (default: GStreamer's, 200)")
    args = parser.parse_args(argv)
    Gst.init(None)
    pt, name, decode = CODECS[args.codec]
    factory = GstRtspServer.RTSPOnvifMediaFactory()
    factory.set_launch(VIDEO)
    factory.set_backchannel_launch(BACKCHANNEL.format(pt=pt, name=name, decode=decode, record=args.record))
    factory.set_shared(False)
    if args.latency_ms is not None:
        factory.set_latency(args.latency_ms)
    factory.set_media_gtype(GstRtspServer.RTSPOnvifMedia)
    server = GstRtspServer.RTSPOnvifServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    server.get_mount_points().add_factory(args.mount, factory)
    return run_until_signalled(server, args)

if __name__ == "__main__":
    sys.exit(main())
