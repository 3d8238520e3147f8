"""A GStreamer RTSP server for tests, run as a subprocess by the system python3 (which has python3-gi).

    /usr/bin/python3 tests/support/rtsp_server.py --port 0 \
        --mount /cam1=live:640x360@25,bitrate=800,gop=25 --mount /clip=file:/tmp/clip.h264

Mount specs:
    live:WxH@FPS[,bitrate=KBPS][,gop=N][,codec=h264|h265][,audio=aac|pcmu|pcma][,tone=1]
                                          videotestsrc (live) encoded by x264 (or x265), one pipeline
                                          per client; with `audio`, an audiotestsrc beeping for 50 ms
                                          at every whole second of the stream, as AAC (voaacenc,
                                          48 kHz mono) or G.711 (8 kHz mono) on a second RTP stream;
                                          with `tone=1` a steady 440 Hz sine instead (gap tests)
    file:PATH                             a pre-encoded H.264 clip (Annex B `.h264`, or MP4, which is
                                          converted to Annex B at startup without re-encoding), looped
                                          forever, paced in real time, one pipeline shared by all clients
    avfile:PATH                           an MP4/MOV clip with H.264 video and AAC or G.711 audio, played
                                          once from its start for each client, in real time (A/V sync
                                          tests: the clip's own timestamps line the tracks up)

Prints `READY <port>` on stdout once it listens, and exits cleanly on SIGTERM or SIGINT.
It only imports gi, so it must not import anything from the project.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sys
import tempfile

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

LIVE_SPEC = re.compile(r"^live:(\d+)x(\d+)@(\d+)((?:,\w+=\w+)*)$")
PAYLOAD = "h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 config-interval=-1"
ENCODERS = {
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate={bitrate} threads=1 ! "
    + PAYLOAD,
    "h265": "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate={bitrate} ! "
    "h265parse config-interval=-1 ! rtph265pay name=pay0 pt=96 config-interval=-1",
}
# wave=ticks: a sine beep (tick-interval 1 s, 50 ms long by sine-periods-per-tick at 1 kHz) at every
# whole second of running time, the time the video frames are stamped with too.
AUDIO_SOURCE = ("audiotestsrc is-live=true {{wave}} volume=0.5 "
                "samplesperbuffer={spb} ! audioconvert ! audioresample ! audio/x-raw,rate={rate},channels=1")
BEEPS = "wave=ticks freq=1000 sine-periods-per-tick=50"
TONE = "wave=sine freq=440"  # `tone=1`: steady, so any gap in the recorded sound shows
AUDIO_ENCODERS = {
    "aac": AUDIO_SOURCE.format(spb=1024, rate=48000) + " ! voaacenc bitrate=64000 ! aacparse ! "
    "rtpmp4gpay name=pay1 pt=97",
    "pcmu": AUDIO_SOURCE.format(spb=160, rate=8000) + " ! mulawenc ! rtppcmupay name=pay1 pt=0",
    "pcma": AUDIO_SOURCE.format(spb=160, rate=8000) + " ! alawenc ! rtppcmapay name=pay1 pt=8",
}


def live_launch(spec: str) -> str:
    """The launch line of a `live:` mount: a live test pattern encoded per client."""
    match = LIVE_SPEC.match(spec)
    if match is None:
        raise ValueError(f"bad live spec {spec!r}; want live:WxH@FPS[,bitrate=KBPS][,gop=N][,codec=h264|h265]"
                         "[,audio=aac|pcmu|pcma]")
    width, height, fps, extra = match.groups()
    opts = dict(item.split("=") for item in extra.split(",") if item)
    unknown = set(opts) - {"bitrate", "gop", "codec", "audio", "tone"}
    if unknown:
        raise ValueError(f"unknown live options {sorted(unknown)!r} in {spec!r}")
    encoder = ENCODERS.get(opts.get("codec", "h264"))
    if encoder is None:
        raise ValueError(f"unknown codec {opts['codec']!r} in {spec!r}; want one of {sorted(ENCODERS)}")
    encode = encoder.format(gop=int(opts.get("gop", fps)), bitrate=int(opts.get("bitrate", 1000)))
    audio = ""
    if "audio" in opts:
        if opts["audio"] not in AUDIO_ENCODERS:
            raise ValueError(f"unknown audio {opts['audio']!r} in {spec!r}; want one of {sorted(AUDIO_ENCODERS)}")
        audio = " " + AUDIO_ENCODERS[opts["audio"]].format(wave=TONE if opts.get("tone") == "1" else BEEPS)
    return (
        f"( videotestsrc is-live=true pattern=ball ! "
        f"video/x-raw,width={width},height={height},framerate={fps}/1,format=I420 ! {encode}{audio} )"
    )


def is_mp4(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(12)
    return head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide")


def mp4_to_annexb(path: str, workdir: str) -> str:
    """Remux an MP4's H.264 track to an Annex B elementary stream (no re-encode); returns its path."""
    out = os.path.join(workdir, os.path.basename(path) + ".h264")
    pipeline = Gst.parse_launch(
        f'filesrc location="{path}" ! qtdemux ! h264parse config-interval=-1 ! '
        f'video/x-h264,stream-format=byte-stream,alignment=au ! filesink location="{out}"'
    )
    pipeline.set_state(Gst.State.PLAYING)
    msg = pipeline.get_bus().timed_pop_filtered(
        60 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR
    )
    pipeline.set_state(Gst.State.NULL)
    if msg is None or msg.type != Gst.MessageType.EOS:
        raise RuntimeError(f"cannot remux {path!r} to Annex B: {msg.parse_error() if msg else 'timeout'}")
    return out


def file_launch(path: str, workdir: str) -> str:
    """The launch line of a `file:` mount: the clip's bytes read again and again by multifilesrc.

    h264parse sees one endless byte stream and gives every access unit the next timestamp (from the
    caps' frame rate), so timestamps keep rising across loops; the RTSP sinks pace it in real time.
    """
    if not os.path.isfile(path):
        raise ValueError(f"no such clip {path!r}")
    if is_mp4(path):
        path = mp4_to_annexb(path, workdir)
    fps = probe_fps(path)
    caps = f"video/x-h264,stream-format=byte-stream,framerate={fps}"
    return f'( multifilesrc location="{path}" loop=true caps="{caps}" ! h264parse name=clipparse ! {PAYLOAD} )'


AV_AUDIO_PAY = {
    "aac": "aacparse ! rtpmp4gpay name=pay1 pt=97",
    "pcmu": "rtppcmupay name=pay1 pt=0",
    "pcma": "rtppcmapay name=pay1 pt=8",
}


def avfile_launch(spec: str) -> str:
    """The launch line of an `avfile:` mount: `PATH` or `PATH,audio=aac|pcmu|pcma` (default aac)."""
    path, _, option = spec.partition(",audio=")
    if not os.path.isfile(path):
        raise ValueError(f"no such clip {path!r}")
    audio = AV_AUDIO_PAY.get(option or "aac")
    if audio is None:
        raise ValueError(f"unknown audio {option!r} in {spec!r}; want one of {sorted(AV_AUDIO_PAY)}")
    return (f'( filesrc location="{path}" ! qtdemux name=d '
            f"d.video_0 ! queue ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 config-interval=-1 "
            f"d.audio_0 ! queue ! {audio} )")


def stamp_pts(_pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
    """h264parse interpolates only DTS on an untimed byte stream; without B-frames PTS = DTS."""
    buf = info.get_buffer()
    if buf is not None and buf.pts == Gst.CLOCK_TIME_NONE:
        buf.pts = buf.dts
    return Gst.PadProbeReturn.OK


def on_media_configure(_factory, media: GstRtspServer.RTSPMedia) -> None:
    parse = media.get_element().get_by_name("clipparse")
    parse.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, stamp_pts)


def probe_fps(path: str) -> str:
    """The clip's frame rate as 'N/D' from its SPS timing info, or 25/1 when it has none."""
    pipeline = Gst.parse_launch(
        f'filesrc location="{path}" ! h264parse name=p ! fakesink name=sink'
    )
    pipeline.set_state(Gst.State.PAUSED)
    pipeline.get_state(10 * Gst.SECOND)
    caps = pipeline.get_by_name("sink").get_static_pad("sink").get_current_caps()
    pipeline.set_state(Gst.State.NULL)
    if caps is not None:
        ok, num, den = caps.get_structure(0).get_fraction("framerate")
        if ok and num > 0:
            return f"{num}/{den}"
    return "25/1"


def add_mount(server: GstRtspServer.RTSPServer, mount: str, workdir: str) -> None:
    path, sep, spec = mount.partition("=")
    if not sep or not path.startswith("/"):
        raise ValueError(f"bad mount {mount!r}; want /name=SPEC")
    factory = GstRtspServer.RTSPMediaFactory()
    if spec.startswith("live:"):
        factory.set_launch(live_launch(spec))
    elif spec.startswith("avfile:"):
        factory.set_launch(avfile_launch(spec[len("avfile:"):]))
    elif spec.startswith("file:"):
        factory.set_launch(file_launch(spec[len("file:"):], workdir))
        factory.set_shared(True)
        factory.connect("media-configure", on_media_configure)
    else:
        raise ValueError(f"bad mount spec {spec!r}; want live:... or file:...")
    server.get_mount_points().add_factory(path, factory)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port, 0 picks a free one")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--mount", action="append", default=[], help="/name=SPEC, repeatable")
    args = parser.parse_args(argv)
    if not args.mount:
        parser.error("at least one --mount is needed")

    Gst.init(None)
    workdir = tempfile.mkdtemp(prefix="rtsp-server-")
    try:
        return serve(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def serve(args: argparse.Namespace, workdir: str) -> int:
    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    server.set_backlog(128)
    try:
        for mount in args.mount:
            add_mount(server, mount, workdir)
    except (ValueError, RuntimeError) as exc:
        print(f"ERROR {exc}", file=sys.stderr, flush=True)
        return 2

    return run_until_signalled(server, args)


def run_until_signalled(server, args: argparse.Namespace) -> int:
    """Listen, print `READY <port>` for the test that started us, and serve until SIGTERM or SIGINT."""
    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print(f"ERROR cannot listen on {args.address}:{args.port}", file=sys.stderr, flush=True)
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
