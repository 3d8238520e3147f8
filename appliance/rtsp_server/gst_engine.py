"""The RTSP engine process: GStreamer's RTSP server fed encoded video over stdin (see wire.py).

Run by appliance.rtsp_server.service as `/usr/bin/python3 gst_engine.py --listen HOST:PORT`: the system
Python has GStreamer's bindings (python3-gi, gir1.2-gst-rtsp-server-1.0), the appliance's virtualenv has
not. It imports only GStreamer and its sibling `wire`, never the project.

Each viewer of a mount (`/ch1/main`) gets a pipeline of its own, `appsrc ! rtph264pay` (and
`appsrc ! rtpmp4gpay` for the AAC sound when the stream has it, as INFO says): a shared one
stalled every viewer of a stream behind one that stopped reading (TCP back-pressure reaches the shared
payloader), while a viewer's own appsrc just drops its oldest buffers (leaky, APPSRC_MAX_BYTES). Each
starts at a keyframe. The first viewer of a mount makes the engine print `WANT <mount>` (the appliance
starts sending that stream's packets); after the last leaves it prints `DROP <mount>`.
Nothing is decoded or encoded: the access units the recorder has are payloaded as they are.
Buffers keep the source's spacing, placed on the pipeline's running time by an offset taken at the first
packet (and taken again after a jump), plus the composition offset so B-frames keep their order.
Viewers authenticate with HTTP Digest against the HA1 list the appliance sends (USERS); there is no
anonymous access, and an address that gives MAX_FAILURES_PER_WINDOW wrong answers is refused for a while.
A malformed frame on stdin ends the process with `ERROR` (the appliance starts it again).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable

try:
    import gi
    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtsp", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtsp, GstRtspServer
except (ImportError, ValueError) as exc:  # the appliance's virtualenv importing this module: main() says so
    GI_MISSING = f"GStreamer's Python bindings are missing ({exc}): install python3-gi and gir1.2-gst-rtsp-server-1.0"
else:
    GI_MISSING = None

if __package__:  # imported as appliance.rtsp_server.gst_engine (the wheel's import check)
    from appliance.rtsp_server import wire
else:  # run as a script by the system python, where the appliance is not installed: the sibling file
    import wire

ROLE = "viewer"  # every web role may watch live, so every user gets this one RTSP role
APPSRC = "appsrc is-live=true format=time do-timestamp=false block=false max-bytes={max_bytes} leaky-type=downstream"
VIDEO_BRANCH = (APPSRC + " name=src caps=video/x-h264,stream-format=byte-stream,alignment=au ! "
                "rtph264pay name=pay0 pt=96 config-interval=-1 aggregate-mode=zero-latency")
AUDIO_BRANCH = (APPSRC + ' name=asrc caps="audio/mpeg,mpegversion=(int)4,stream-format=(string)raw,'
                'codec_data=(buffer){asc},rate=(int){rate},channels=(int){channels}" ! rtpmp4gpay name=pay1 pt=97')
APPSRC_MAX_BYTES = 4 * 1024 * 1024  # queued for one viewer before its oldest are dropped (a stalled viewer)
READ_BYTES = 256 * 1024
MAX_FAILURES_PER_WINDOW = 10  # wrong Digest answers from one address before it is refused for a while
FAILURE_WINDOW_S = 60.0
MAX_TRACKED_ADDRESSES = 4096
REBASE_NS = 1_000_000_000  # source time and arrival time further apart than this: start the offset again
# appsrc: gstreamer1.0-plugins-base; the payloader, RTP sessions and UDP: gstreamer1.0-plugins-good.
# No parser: the appliance sends whole access units with SPS/PPS before every keyframe, which is what
# rtph264pay wants, and so the image needs no gstreamer1.0-plugins-bad.
ELEMENTS = ("appsrc", "rtph264pay", "rtpmp4gpay", "rtpbin", "udpsink", "udpsrc")


def say(line: str) -> None:
    print(line[:wire.MAX_LINE_CHARS], flush=True)


def launch(aac: dict | None) -> str:
    """A viewer's pipeline: the video, and the AAC sound track when the stream has one."""
    video = VIDEO_BRANCH.format(max_bytes=APPSRC_MAX_BYTES)
    if not aac:
        return f"( {video} )"
    asc = bytes.fromhex(aac["asc"]).hex()  # only hex digits reach the launch line
    return f"( {video} {AUDIO_BRANCH.format(max_bytes=APPSRC_MAX_BYTES, asc=asc, rate=int(aac['rate']), channels=int(aac['channels']))} )"


class FailureCounter:
    """Wrong Digest answers per client address in the last FAILURE_WINDOW_S; an address with
    MAX_FAILURES_PER_WINDOW of them is refused, right password or not, until the oldest ages out.
    Digest costs the box one MD5, so without this an attacker could guess at network speed.
    Holds at most MAX_TRACKED_ADDRESSES (the quietest go first). `monotonic_s` gives seconds on a clock
    that never goes backwards."""

    def __init__(self, *, monotonic_s: Callable[[], float]):
        self._clock = monotonic_s
        self._lock = threading.Lock()
        self._failures: dict[str, collections.deque] = {}

    def _recent(self, address: str, now: float) -> collections.deque:
        failures = self._failures.get(address)
        while failures and failures[0] < now - FAILURE_WINDOW_S:
            failures.popleft()
        return failures if failures is not None else collections.deque()

    def blocked(self, address: str) -> bool:
        with self._lock:
            return len(self._recent(address, self._clock())) >= MAX_FAILURES_PER_WINDOW

    def failed(self, address: str) -> None:
        with self._lock:
            now = self._clock()
            if address not in self._failures and len(self._failures) >= MAX_TRACKED_ADDRESSES:
                quietest = min(self._failures, key=lambda a: self._failures[a][-1] if self._failures[a] else 0)
                del self._failures[quietest]
            failures = self._failures.setdefault(address, collections.deque())
            self._recent(address, now)
            failures.append(now)


class ThrottledAuth(GstRtspServer.RTSPAuth if GI_MISSING is None else object):
    """GStreamer's Digest check, refusing addresses that failed it too often (FailureCounter)."""

    def __init__(self, failures: FailureCounter):
        super().__init__()
        self._failures_of = failures

    def do_authenticate(self, ctx) -> bool:
        address = ctx.conn.get_ip() if ctx.conn is not None else "?"
        if self._failures_of.blocked(address):
            return True  # no token set: the request is answered 401 like any wrong password
        result = GstRtspServer.RTSPAuth.do_authenticate(self, ctx)
        answered = ctx.request is not None and \
            ctx.request.get_header(GstRtsp.RTSPHeaderField.AUTHORIZATION, 0)[1] is not None
        if answered and ctx.token is None:
            self._failures_of.failed(address)
        return result


class _Viewer:
    """One viewer's pipeline input: its appsrc, whether it still waits for a keyframe, its timing."""

    def __init__(self, source: Gst.Element, audio: Gst.Element | None):
        self.source, self.audio = source, audio
        self.waiting_keyframe = True  # a viewer starts at a keyframe, so its first picture decodes
        self._offset_ns: int | None = None
        self._last_ns = self._last_audio_ns = -1

    def push_audio(self, pts_ns: int, data: bytes) -> None:
        """One AAC frame, placed by the offset the video set (the two share their source's clock)."""
        if self.audio is None or self.waiting_keyframe or self._offset_ns is None:
            return
        stamped = pts_ns + self._offset_ns
        if stamped <= self._last_audio_ns:
            return  # from before the last one: a receiver wants rising timestamps
        self._last_audio_ns = stamped
        buffer = Gst.Buffer.new_wrapped(data)
        buffer.pts = buffer.dts = stamped
        self.audio.emit("push-buffer", buffer)

    def push(self, dts_ns: int, cto_ns: int, keyframe: bool, data: bytes) -> None:
        if self.waiting_keyframe and not keyframe:
            return
        clock = self.source.get_clock()
        if clock is None:
            return  # the pipeline is not running yet
        self.waiting_keyframe = False
        stamped = self._stamp(dts_ns, clock.get_time() - self.source.get_base_time())
        buffer = Gst.Buffer.new_wrapped(data)
        buffer.dts, buffer.pts = stamped, stamped + max(0, cto_ns)
        if not keyframe:
            buffer.set_flags(Gst.BufferFlags.DELTA_UNIT)
        self.source.emit("push-buffer", buffer)

    def _stamp(self, dts_ns: int, now_ns: int) -> int:
        """The running time for a packet stamped `dts_ns` by its source, arriving at running time `now_ns`.

        The source's spacing is kept (a burst after a stall plays at the right pace) on an offset set by
        the first packet, set again when the source's time and ours part by more than REBASE_NS (a new
        run, a jump); and timestamps always rise, which RTP receivers need."""
        if self._offset_ns is None or abs(dts_ns + self._offset_ns - now_ns) > REBASE_NS:
            self._offset_ns = now_ns - dts_ns
        self._last_ns = max(dts_ns + self._offset_ns, self._last_ns + 1_000_000)
        return self._last_ns


class Engine:
    """The RTSP server, its mounts, and the viewers (pipelines) of each mount."""

    def __init__(self, host: str, port: int, *, monotonic_s: Callable[[], float]):
        self.server = GstRtspServer.RTSPServer()
        self.server.set_address(host)
        self.server.set_service(str(port))
        self.server.set_backlog(64)
        self._lock = threading.Lock()
        self._mounts: list[str] = []
        self._viewers: dict[str, list[_Viewer]] = {}  # by mount path: one pipeline per viewer
        self._factories: dict[str, GstRtspServer.RTSPMediaFactory] = {}
        self.failures = FailureCounter(monotonic_s=monotonic_s)  # kept across user list updates
        self.workdir = tempfile.mkdtemp(prefix="nvr-rtsp-")  # private (0700): the HA1 list passes through it
        self.server.set_auth(self._auth("nvr", []))

    def _auth(self, realm: str, users: list[list[str]]) -> GstRtspServer.RTSPAuth:
        auth = ThrottledAuth(self.failures)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        auth.set_realm(realm)
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, ROLE)
        path = os.path.join(self.workdir, "htdigest")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.writelines(f"{name}:{realm}:{ha1}\n" for name, ha1 in users)
        if users and not auth.parse_htdigest(path, token):
            say("ERROR the user list could not be loaded")
        os.unlink(path)
        return auth

    def set_users(self, body: dict) -> None:
        users = [u for u in body.get("users", []) if isinstance(u, list) and len(u) == 2]
        self.server.set_auth(self._auth(str(body.get("realm", "nvr")), users))
        say(f"USERS {len(users)}")

    def set_mounts(self, mounts: list[str]) -> None:
        """Serve `mounts` (by wire index; "" marks an index no longer used): add new paths, remove gone ones."""
        points = self.server.get_mount_points()
        with self._lock:
            for path in set(self._mounts) - set(mounts) - {""}:
                points.remove_factory(path)
                self._factories.pop(path, None)
            for path in mounts:
                if path and path not in self._mounts:
                    self._factories[path] = self._factory(path)
                    points.add_factory(path, self._factories[path])
            self._mounts = list(mounts)

    def _factory(self, path: str) -> GstRtspServer.RTSPMediaFactory:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch(None))
        factory.set_shared(False)  # a pipeline per viewer: one that stops reading stalls only its own
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)
        factory.add_role_from_structure(Gst.Structure.from_string(
            f"{ROLE}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true")[0])
        factory.connect("media-configure", self._configured, path)
        return factory

    def _configured(self, _factory, media: GstRtspServer.RTSPMedia, path: str) -> None:
        element = media.get_element()
        viewer = _Viewer(element.get_by_name("src"), element.get_by_name("asrc"))
        with self._lock:
            viewers = self._viewers.setdefault(path, [])
            viewers.append(viewer)
            first = len(viewers) == 1
        media.connect("unprepared", self._unprepared, path, viewer)
        if first:
            say(f"WANT {path}")

    def _unprepared(self, _media, path: str, viewer: _Viewer) -> None:
        with self._lock:
            viewers = self._viewers.get(path, [])
            if viewer in viewers:
                viewers.remove(viewer)
            last = not viewers
            if last:
                self._viewers.pop(path, None)
        if last:
            say(f"DROP {path}")

    def push(self, body: bytes, *, audio: bool = False) -> None:
        mount, dts_ns, cto_ns, keyframe, data = wire.parse_video(body)
        with self._lock:
            path = self._mounts[mount] if mount < len(self._mounts) else None
            viewers = list(self._viewers.get(path, ()))
        for viewer in viewers:
            if audio:
                viewer.push_audio(dts_ns, data)
            else:
                viewer.push(dts_ns, cto_ns, keyframe, data)

    def set_info(self, body: dict) -> None:
        """Whether new viewers of a mount get a sound track (the ones watching keep what they have)."""
        mount, aac = body.get("mount"), body.get("aac")
        with self._lock:
            path = self._mounts[mount] if isinstance(mount, int) and 0 <= mount < len(self._mounts) else ""
            factory = self._factories.get(path)
        if factory is not None:
            factory.set_launch(launch(aac if isinstance(aac, dict) else None))

    def read_commands(self, stream, loop: GLib.MainLoop) -> None:
        """Read stdin until it closes (the appliance went away): then stop."""
        reader = wire.FrameReader()
        try:
            while chunk := stream.read1(READ_BYTES):
                for kind, body in reader.feed(chunk):
                    self._command(kind, body)
        except (wire.WireError, ValueError) as exc:
            say(f"ERROR {exc}")
        GLib.idle_add(loop.quit)

    def _command(self, kind: bytes, body: bytes) -> None:
        if kind == wire.VIDEO:
            self.push(body)
        elif kind == wire.AUDIO:
            self.push(body, audio=True)
        elif kind == wire.INFO:
            self.set_info(json.loads(body))
        elif kind == wire.USERS:  # applied here and now (the server and its mount points lock), then told
            self.set_users(json.loads(body))
        elif kind == wire.MOUNTS:
            mounts = json.loads(body).get("mounts", [])
            if len(mounts) > wire.MAX_MOUNTS or not all(isinstance(m, str) and (m == "" or m.startswith("/"))
                                                        for m in mounts):
                raise wire.WireError(f"bad mount list ({len(mounts)} entries)")
            self.set_mounts(mounts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="0.0.0.0:8554", help="HOST:PORT; port 0 picks a free one")
    args = parser.parse_args(argv)
    if GI_MISSING:
        say(f"ERROR {GI_MISSING}")
        return 1
    host, _, port = args.listen.rpartition(":")
    Gst.init(None)
    missing = [name for name in ELEMENTS if Gst.ElementFactory.find(name) is None]
    if missing:
        say(f"ERROR GStreamer elements missing: {' '.join(missing)} (install gstreamer1.0-plugins-base and -good)")
        return 1
    # The engine runs under the system Python without the project, so not on base.clock's Clocks: its
    # clock is GLib's monotonic one (CLOCK_MONOTONIC, in microseconds), the one its main loop runs on.
    engine = Engine(host.strip("[]"), int(port), monotonic_s=lambda: GLib.get_monotonic_time() / 1e6)
    loop = GLib.MainLoop()
    if engine.server.attach(None) == 0:
        say(f"ERROR cannot listen on {args.listen}: is the port taken?")
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    threading.Thread(target=engine.read_commands, args=(sys.stdin.buffer, loop), name="commands", daemon=True).start()
    say(f"READY {engine.server.get_bound_port()}")
    try:
        loop.run()
    finally:
        shutil.rmtree(engine.workdir, ignore_errors=True)
    # Leave without interpreter finalisation: the command thread may be inside GStreamer, and tearing
    # Python down under it crashed the process at exit ("Fatal Python error ... <no Python frame>").
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
