"""Test instruments for recording from RTSP servers nobody here wrote: VLC's, streams FFmpeg packetized,
GStreamer's server with authentication, and a lossy link in a network namespace.

    VlcServer        Debian's `cvlc` serving a clip as `#rtp{sdp=rtsp://...}` (RTP over UDP only)
    FfmpegRtpSender  Debian's `ffmpeg` encoding or copying a stream to RTP over loopback UDP, with its SDP file
    InteropServer    GStreamer's RTSP server (interop_server.py): the test server's mounts, `relay:` mounts
                     that pass FFmpeg's RTP packets through unchanged, Basic or Digest authentication
    LossyLink        a network namespace joined to this one by a veth pair with `tc netem` on it

None of this imports pytest. Each `*_available()` says whether its part can run here, and if not why.
"""
from __future__ import annotations

import os
import re
import select
import shutil
import socket
import subprocess
import tempfile
import time
from functools import cache
from pathlib import Path

from support.rtsp import SYSTEM_FFMPEG, SYSTEM_PYTHON, TcpFreezeProxy, rtsp_available, stop_process

CVLC = "/usr/bin/cvlc"
INTEROP_SCRIPT = Path(__file__).with_name("interop_server.py")
VLC_USER = "nobody"  # VLC refuses to run as root
VLC_GROUP = "nogroup"
# RFC 2544's benchmarking range: never a real network's, so the test's veth pair cannot shadow a route.
NETNS_PREFIX = "198.18"


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_udp_ports(count: int) -> list[int]:
    """`count` pairs' first ports: even UDP ports whose successor (RTCP) is free too, on loopback."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1] & ~1
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b, \
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                b.bind(("127.0.0.1", port))
                c.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        if port not in ports:
            ports.append(port)
    return ports


def rtsp_answer(host: str, port: int, path: str, *, method: str = "DESCRIBE", timeout_s: float = 2.0) -> str:
    """One raw RTSP request's answer head (status line and headers), or "" when nothing answers."""
    request = (f"{method} rtsp://{host}:{port}{path} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n"
               "User-Agent: interop-probe\r\n\r\n").encode()
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return ""
    return data.split(b"\r\n\r\n", 1)[0].decode("latin-1")


def rtsp_describe(host: str, port: int, path: str, *, timeout_s: float = 2.0) -> tuple[str, str]:
    """A DESCRIBE's answer head and its body (the SDP), read up to Content-Length."""
    request = (f"DESCRIBE rtsp://{host}:{port}{path} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n").encode()
    data = b""
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(request)
        while len(data) < 65536:
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if length is None or len(body) >= int(length.group(1)):
                    break
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body.decode("latin-1")


def package_version(package: str) -> str:
    """The installed Debian package's version, or "?"."""
    done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    return done.stdout.strip() or "?"


def make_av_clip(path: str | os.PathLike, *, duration_s: float = 20, size: str = "320x240", fps: int = 25,
                 gop: int = 25) -> Path:
    """An MP4 clip with H.264 (no B-frames, a keyframe every `gop` frames) and AAC 48 kHz mono audio."""
    path = Path(path)
    cmd = [SYSTEM_FFMPEG, "-nostdin", "-v", "error", "-y",
           "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}",
           "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
           "-t", str(duration_s), "-c:v", "libx264", "-preset", "veryfast", "-g", str(gop), "-bf", "0",
           "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-ac", "1", str(path)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    path.chmod(0o644)
    return path


class SniffingProxy(TcpFreezeProxy):
    """A TcpFreezeProxy that keeps every byte the clients sent (`sent`), to see what went on the wire."""

    def __init__(self, target_host: str, target_port: int):
        self.sent = bytearray()
        super().__init__(target_host, target_port)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        if dst.getpeername()[:2] == self.target:  # client -> camera
            dst = _Recording(dst, self.sent)
        super()._pump(src, dst)


class _Recording:
    """A socket whose `sendall` also appends to `log`."""

    def __init__(self, sock: socket.socket, log: bytearray):
        self._sock, self._log = sock, log

    def sendall(self, data: bytes) -> None:
        self._log += data
        self._sock.sendall(data)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


# --- VLC --------------------------------------------------------------------------------------------

@cache
def vlc_available() -> tuple[bool, str]:
    if not os.access(CVLC, os.X_OK):
        return False, f"{CVLC} not found (Debian vlc-bin, vlc-plugin-base)"
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return False, "VLC refuses root and setpriv (util-linux) is missing to drop it"
    return True, "ok"


class VlcServer:
    """VLC's RTSP server (`cvlc`, stream output `#rtp{sdp=rtsp://HOST:PORT/PATH}`) playing `clip` in a
    loop: RTP over UDP only (SETUP with a TCP transport is answered 461). `stop(kill=True)` is a power
    cut; `restart()` keeps the port, as a rebooting camera does."""

    def __init__(self, clip: Path, *, host: str = "127.0.0.1", path: str = "/stream", command_prefix: tuple = (),
                 ready_timeout_s: float = 20.0):
        self.clip, self.host, self.path = Path(clip), host, path
        self.command_prefix = tuple(command_prefix)  # e.g. ("ip", "netns", "exec", NAME)
        self.ready_timeout_s = ready_timeout_s
        self.port = 0
        self.home = Path(tempfile.mkdtemp(prefix="interop-vlc-"))  # VLC's HOME, log and copy of the clip
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://{self.host}:{self.port}{self.path}"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self, *, port: int | None = None) -> VlcServer:
        self.port = port or self.port or free_tcp_port()
        self.home.mkdir(mode=0o777, exist_ok=True)
        self.home.chmod(0o777)
        # A copy VLC's unprivileged user can read wherever the clip lies (pytest's folders are 0700).
        served = self.home / self.clip.name
        if not served.exists():
            shutil.copyfile(self.clip, served)
            served.chmod(0o644)
        drop = []
        if os.geteuid() == 0:
            drop = ["setpriv", f"--reuid={VLC_USER}", f"--regid={VLC_GROUP}", "--clear-groups"]
        cmd = [*self.command_prefix, *drop, "env", f"HOME={self.home}", CVLC, "-I", "dummy", "--no-audio",
               "--no-video", "--loop", str(served),
               "--sout", f"#rtp{{sdp=rtsp://{self.host}:{self.port}{self.path}}}", "--sout-keep"]
        # --no-audio/--no-video: no local playback (no sound card, no display); the stream output keeps both.
        with open(self.log_path, "ab") as log:  # a file, not a pipe: VLC's chatter must never block it
            self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                raise RuntimeError(f"VLC exited at start: {self.log_tail()}")
            if " 200 " in rtsp_answer(self.host, self.port, self.path).split("\r\n", 1)[0]:
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"VLC did not serve {self.url} within {self.ready_timeout_s} s: {self.log_tail()}")

    @property
    def log_path(self) -> Path:
        return self.home / "vlc.log"

    def log_tail(self, max_chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-max_chars:]
        except OSError:
            return ""

    def stop(self, *, kill: bool = False) -> None:
        proc, self._proc = self._proc, None
        stop_process(proc, kill=kill)

    def restart(self) -> VlcServer:
        self.stop()
        return self.start(port=self.port)

    def __enter__(self) -> VlcServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


# --- FFmpeg as the camera's encoder and packetizer ----------------------------------------------------

class FfmpegRtpSender:
    """Debian's ffmpeg sending RTP over loopback UDP, writing the SDP that describes it (`sdp_path`).

    `copy(clip)`: the clip's H.264 and AAC as they are (FFmpeg puts the parameter sets in the SDP's
    sprop-parameter-sets and not in the stream). `encode(...)`: a live test pattern through libx264
    (no global header, so SPS/PPS go in-band before every keyframe and the SDP has no sprop), with
    `b_frames` B-frames.
    """

    def __init__(self, workdir: Path, name: str):
        self.sdp_path = Path(workdir) / f"{name}.sdp"
        self._proc: subprocess.Popen | None = None

    def copy(self, clip: Path) -> FfmpegRtpSender:
        video, audio = free_udp_ports(2)
        return self._start(["-re", "-stream_loop", "-1", "-i", str(clip),
                            "-map", "0:v", "-c:v", "copy", "-f", "rtp", f"rtp://127.0.0.1:{video}",
                            "-map", "0:a", "-c:a", "copy", "-f", "rtp", f"rtp://127.0.0.1:{audio}"])

    def encode(self, *, size: str = "320x240", fps: int = 25, gop: int = 25, b_frames: int = 0) -> FfmpegRtpSender:
        (video,) = free_udp_ports(1)
        return self._start(["-re", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}",
                            "-c:v", "libx264", "-preset", "ultrafast", "-g", str(gop), "-bf", str(b_frames),
                            *(["-tune", "zerolatency"] if b_frames == 0 else []),
                            "-pix_fmt", "yuv420p", "-threads", "1", "-f", "rtp", f"rtp://127.0.0.1:{video}"])

    def _start(self, args: list[str]) -> FfmpegRtpSender:
        self.sdp_path.unlink(missing_ok=True)
        cmd = [SYSTEM_FFMPEG, "-nostdin", "-v", "error", *args, "-sdp_file", str(self.sdp_path)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while not (self.sdp_path.exists() and "m=" in self.sdp_path.read_text()):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                err = self._proc.stderr.read()[-2000:] if self._proc.poll() is not None else "timeout"
                self.stop()
                raise RuntimeError(f"ffmpeg wrote no SDP: {err}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        stop_process(proc)

    def __enter__(self) -> FfmpegRtpSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- GStreamer's server with authentication and relays ------------------------------------------------

class InteropServer:
    """interop_server.py as a subprocess: `start(mounts, auth=("digest", user, password))`, `url(mount)`,
    `stop(kill=...)`, `restart()` (same port, same mounts)."""

    def __init__(self, *, host: str = "127.0.0.1", command_prefix: tuple = (), ready_timeout_s: float = 20.0):
        self.host = host
        self.command_prefix = tuple(command_prefix)
        self.ready_timeout_s = ready_timeout_s
        self.port = 0
        self.mounts: dict[str, str] = {}
        self.auth: tuple[str, str, str] | None = None
        self._proc: subprocess.Popen | None = None

    def start(self, mounts: dict[str, str] | None = None, *, auth: tuple[str, str, str] | None = None,
              port: int | None = None) -> InteropServer:
        self.mounts = dict(mounts if mounts is not None else self.mounts)
        self.auth = auth if auth is not None else self.auth
        cmd = [*self.command_prefix, SYSTEM_PYTHON, "-u", str(INTEROP_SCRIPT), "--address", self.host,
               "--port", str(port if port is not None else self.port)]
        for mount, spec in self.mounts.items():
            cmd += ["--mount", f"{mount}={spec}"]
        if self.auth:
            scheme, user, password = self.auth
            cmd += ["--auth", scheme, "--user", user, "--password", password]
        self._proc = proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([proc.stdout], [], [], self.ready_timeout_s)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"interop server did not start: {line.strip()!r} {proc.stderr.read().strip()!r}")
        self.port = int(line.split()[1])
        return self

    def url(self, mount: str, *, userinfo: str = "") -> str:
        at = f"{userinfo}@" if userinfo else ""
        return f"rtsp://{at}{self.host}:{self.port}{mount}"

    def stop(self, *, kill: bool = False) -> None:
        proc, self._proc = self._proc, None
        stop_process(proc, kill=kill)

    def restart(self) -> InteropServer:
        self.stop()
        return self.start(port=self.port)

    def __enter__(self) -> InteropServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def interop_server_available() -> tuple[bool, str]:
    return rtsp_available()


# --- a lossy link --------------------------------------------------------------------------------------

@cache
def netns_available() -> tuple[bool, str]:
    """Whether this process can make a network namespace with a veth pair and impair it (netem, or
    nftables' random drop where the kernel has no netem), and if not why."""
    if shutil.which("ip") is None:
        return False, "`ip` not found (Debian iproute2)"
    probe = LossyLink(tag="probe")
    try:
        probe.create()
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        detail = getattr(exc, "stderr", None) or str(exc)
        return False, f"cannot make an impaired network namespace here: {str(detail).strip()}"
    finally:
        probe.delete()
    return True, "ok"


class LossyLink:
    """A network namespace joined to this one by a veth pair, impaired both ways.

    With `tc netem` (kernel CONFIG_NET_SCH_NETEM): `loss_percent` loss, `delay_ms` ± `jitter_ms` delay and
    `reorder_percent` reordering on both ends. Kernels without netem (this VM's) get the loss alone,
    from nftables' `numgen random` rules inside the namespace (input and output); `impairment` says
    which was applied. The namespace side has `inner_ip`, this side `outer_ip` (a /30 of 198.18.0.0/15,
    RFC 2544's benchmarking range); `command_prefix` runs a program inside the namespace. `delete()`
    removes the namespace, and with it the pair.
    """

    def __init__(self, *, loss_percent: float = 2.0, delay_ms: int = 30, jitter_ms: int = 10,
                 reorder_percent: float = 5.0, tag: str = "link"):
        pid = os.getpid()
        self.name = f"nvr-{tag}-{pid}"
        self.outer_if, self.inner_if = f"nv{pid % 100000}{tag[:2]}o", f"nv{pid % 100000}{tag[:2]}i"
        octet = pid % 250
        base = (sum(map(ord, tag)) % 60) * 4
        self.outer_ip, self.inner_ip = f"{NETNS_PREFIX}.{octet}.{base + 1}", f"{NETNS_PREFIX}.{octet}.{base + 2}"
        self.loss_percent, self.delay_ms, self.jitter_ms = loss_percent, delay_ms, jitter_ms
        self.reorder_percent = reorder_percent
        self.command_prefix = ("ip", "netns", "exec", self.name)
        self.impairment = ""
        self._created = False

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, check=True, capture_output=True, text=True, timeout=10)

    def create(self) -> LossyLink:
        self._run("ip", "netns", "add", self.name)
        self._created = True
        self._run("ip", "link", "add", self.outer_if, "type", "veth", "peer", "name", self.inner_if,
                  "netns", self.name)
        self._run("ip", "addr", "add", f"{self.outer_ip}/30", "dev", self.outer_if)
        self._run("ip", "link", "set", self.outer_if, "up")
        inside = self.command_prefix
        self._run(*inside, "ip", "addr", "add", f"{self.inner_ip}/30", "dev", self.inner_if)
        self._run(*inside, "ip", "link", "set", self.inner_if, "up")
        self._run(*inside, "ip", "link", "set", "lo", "up")
        netem = ["netem", "loss", f"{self.loss_percent}%", "delay", f"{self.delay_ms}ms", f"{self.jitter_ms}ms",
                 "reorder", f"{self.reorder_percent}%", "50%"]
        try:
            self._run(*inside, "tc", "qdisc", "add", "dev", self.inner_if, "root", *netem)
            self._run("tc", "qdisc", "add", "dev", self.outer_if, "root", *netem)
            self.impairment = "tc " + " ".join(netem) + " (both ways)"
        except (OSError, subprocess.CalledProcessError) as exc:
            if "unknown" not in (getattr(exc, "stderr", "") or "") and not isinstance(exc, FileNotFoundError):
                raise
            self._nft_loss()
        return self

    def _nft_loss(self) -> None:
        """Random loss inside the namespace with nftables: the kernel has no netem."""
        if shutil.which("nft") is None:
            raise RuntimeError("the kernel has no netem and `nft` is not installed (Debian nftables)")
        per_mille = round(self.loss_percent * 10)
        rules = (f"table inet lossy {{\n"
                 f" chain out {{ type filter hook output priority 0; numgen random mod 1000 < {per_mille} counter drop; }}\n"
                 f" chain in {{ type filter hook input priority 0; numgen random mod 1000 < {per_mille} counter drop; }}\n"
                 f"}}\n")
        subprocess.run([*self.command_prefix, "nft", "-f", "-"], input=rules, check=True, capture_output=True,
                       text=True, timeout=10)
        self.impairment = f"nftables numgen random drop {self.loss_percent}% each way (no netem in this kernel)"

    def dropped_packets(self) -> int:
        """Packets the impairment dropped so far (netem's or nftables' counters, both ways)."""
        if self.impairment.startswith("tc"):
            out = subprocess.run([*self.command_prefix, "tc", "-s", "qdisc", "show", "dev", self.inner_if],
                                 capture_output=True, text=True, timeout=10).stdout
            out += subprocess.run(["tc", "-s", "qdisc", "show", "dev", self.outer_if],
                                  capture_output=True, text=True, timeout=10).stdout
            return sum(int(n) for n in re.findall(r"dropped (\d+)", out))
        out = subprocess.run([*self.command_prefix, "nft", "list", "table", "inet", "lossy"],
                             capture_output=True, text=True, timeout=10).stdout
        return sum(int(n) for n in re.findall(r"counter packets (\d+)", out))

    def delete(self) -> None:
        if self._created:
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10)
            subprocess.run(["ip", "link", "del", self.outer_if], capture_output=True, timeout=10)
            self._created = False

    def __enter__(self) -> LossyLink:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.delete()
