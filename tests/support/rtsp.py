"""Test instruments for network cameras: a GStreamer RTSP server subprocess, a test clip, a freezable TCP proxy.

None of this imports pytest, so benchmarks can use it too. The server runs under the system python3
(`rtsp_server.py` needs python3-gi, which the virtualenv does not have).
"""
from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import threading
from functools import cache
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
SYSTEM_FFMPEG = "/usr/bin/ffmpeg"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
_PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
    "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
    "missing = [e for e in ('x264enc', 'h264parse', 'rtph264pay', 'videotestsrc', 'multifilesrc') "
    "if Gst.ElementFactory.find(e) is None]; "
    "print(' '.join(missing))"
)


AUDIO_ELEMENTS = ("audiotestsrc", "voaacenc", "aacparse", "rtpmp4gpay", "mulawenc", "rtppcmupay", "alawenc",
                  "rtppcmapay", "qtdemux")


@cache
def rtsp_audio_available() -> tuple[bool, str]:
    """Whether the RTSP test server can serve audio mounts (AAC, G.711, clips), and if not, why."""
    ok, reason = rtsp_available()
    if not ok:
        return ok, reason
    probe = ("import gi; gi.require_version('Gst', '1.0'); from gi.repository import Gst; Gst.init(None); "
             f"print(' '.join(e for e in {AUDIO_ELEMENTS!r} if Gst.ElementFactory.find(e) is None))")
    done = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=30)
    missing = done.stdout.strip()
    if done.returncode != 0 or missing:
        why = missing or done.stderr.strip()
        return False, f"GStreamer audio elements missing: {why} (gstreamer1.0-plugins-bad/good)"
    return True, "ok"


@cache
def rtsp_available() -> tuple[bool, str]:
    """Whether the RTSP test server can run here, and if not, why (for pytest.skip)."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return False, f"{SYSTEM_PYTHON} not found"
    try:
        done = subprocess.run([SYSTEM_PYTHON, "-c", _PROBE], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return False, "probing GStreamer timed out"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return False, f"{SYSTEM_PYTHON} cannot load GstRtspServer (python3-gi, gir1.2-gst-rtsp-server-1.0): {last}"
    if done.stdout.strip():
        return False, f"GStreamer elements missing: {done.stdout.strip()} (gstreamer1.0-plugins-*)"
    return True, "ok"


def make_clip(path: str | os.PathLike, *, duration_s: float = 3, size: str = "1920x1080",
              fps: int = 25, bitrate: str = "4M", gop: int = 50) -> Path:
    """Encode a test clip (H.264 Annex B, no B-frames) with Debian's ffmpeg; returns its path.

    No B-frames because the server's file mount derives PTS from DTS.
    """
    path = Path(path)
    cmd = [
        SYSTEM_FFMPEG, "-nostdin", "-v", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}", "-t", str(duration_s),
        "-c:v", "libx264", "-preset", "veryfast", "-b:v", bitrate, "-g", str(gop), "-bf", "0",
        "-pix_fmt", "yuv420p", str(path),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return path


class RtspServer:
    """The test RTSP server as a subprocess: `start(...)`, `url(mount)`, `stop()`, `restart()`.

    Mounts are `{"/cam1": "live:640x360@25", "/clip": "file:/tmp/clip.h264"}`. A restart keeps the
    port, so a camera URL stays valid across it (as a rebooting camera's does).
    """

    def __init__(self, *, host: str = "127.0.0.1", ready_timeout_s: float = 20.0):
        self.host = host
        self.port = 0
        self.mounts: dict[str, str] = {}
        self.ready_timeout_s = ready_timeout_s
        self._proc: subprocess.Popen[str] | None = None

    def start(self, mounts: dict[str, str] | None = None, *, port: int | None = None) -> RtspServer:
        if self._proc is not None:
            raise RuntimeError("RTSP server already running")
        self.mounts = dict(mounts if mounts is not None else self.mounts)
        cmd = [SYSTEM_PYTHON, "-u", str(SERVER_SCRIPT), "--address", self.host,
               "--port", str(self.port if port is None else port)]
        for mount, spec in self.mounts.items():
            cmd += ["--mount", f"{mount}={spec}"]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.port = self._wait_ready()
        return self

    def _wait_ready(self) -> int:
        proc = self._proc
        ready, _, _ = select.select([proc.stdout], [], [], self.ready_timeout_s)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            self.stop()
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"RTSP server did not start: {line.strip()!r} {err.strip()!r}")
        return int(line.split()[1])

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def url(self, mount: str, *, userinfo: str = "") -> str:
        """The rtsp:// URL of `mount`, optionally with `user:password` in it."""
        at = f"{userinfo}@" if userinfo else ""
        return f"rtsp://{at}{self.host}:{self.port}{mount}"

    def stop(self, timeout_s: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        stop_process(proc, timeout_s=timeout_s)

    def restart(self) -> RtspServer:
        """Stop and start again on the same port with the same mounts."""
        port = self.port
        self.stop()
        return self.start(port=port)

    def __enter__(self) -> RtspServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TcpFreezeProxy:
    """A TCP proxy on 127.0.0.1 in front of `target`, to make a camera stall or drop on command.

    `freeze()` stops forwarding in both directions while keeping every connection open (a hung
    camera, a dead switch port); `thaw()` resumes; `cut()` closes every connection; `close()` also
    stops listening. Connect to `port` (or `url(...)`).
    """

    def __init__(self, target_host: str, target_port: int, *, listen_port: int = 0):
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", listen_port))
        self.port = self._listener.getsockname()[1]
        self._running = threading.Event()
        self._running.set()
        self._closed = False
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self.connections = 0
        threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True).start()

    def url(self, mount: str, *, userinfo: str = "") -> str:
        at = f"{userinfo}@" if userinfo else ""
        return f"rtsp://{at}127.0.0.1:{self.port}{mount}"

    def freeze(self) -> None:
        self._running.clear()

    def thaw(self) -> None:
        self._running.set()

    def cut(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, set()
        for sock in socks:
            _close_quietly(sock)

    def close(self) -> None:
        self._closed = True
        _close_quietly(self._listener)
        self.cut()
        self._running.set()

    def __enter__(self) -> TcpFreezeProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close_quietly(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._socks |= {client, upstream}
                self.connections += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                self._running.wait()
                if self._closed:
                    break
                ready, _, _ = select.select([src], [], [], 0.1)
                if not ready or not self._running.is_set():
                    continue
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except (OSError, ValueError):
            pass
        finally:
            with self._lock:
                self._socks -= {src, dst}
            for sock in (src, dst):
                _close_quietly(sock)


def _close_quietly(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def stop_process(proc: subprocess.Popen | None, *, kill: bool = False, timeout_s: float = 5.0) -> None:
    """End `proc` (SIGTERM, or SIGKILL with `kill`; SIGKILL after `timeout_s`) and close its pipes."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()
