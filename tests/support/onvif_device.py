"""An ONVIF camera nobody here wrote, for tests: the `ipycam` package's ONVIF device service and
WS-Discovery responder, run as a subprocess (in a network namespace where the test makes one).

    python -m tests.support.onvif_device --ip 10.77.0.2 --onvif-port 8080 --rtsp-port 8554 \
        --user admin --password secret [--clock-offset-s 7200] [--name Yard] [--auth ws|text|http-digest]

Only ipycam's ONVIF parts run (ipycam.onvif.ONVIFService, ipycam.discovery.WSDiscoveryServer,
ipycam.http.IPCameraHTTPHandler), with one change: GetSystemDateAndTime is answered without
credentials, as ONVIF requires (see `_answer_clock_before_auth`). Its streaming needs go2rtc, which is not here, so the stream URIs
it gives (rtsp://IP:RTSP_PORT/video_main and /video_sub) are served by the test's GStreamer RTSP
server (tests/support/rtsp_server.py) at the same address. `--clock-offset-s` runs the camera's clock
that far ahead of the host's (GetSystemDateAndTime and the WS-Security Created check both use it),
as a camera without NTP does. `--auth` picks what the camera accepts, as real cameras differ: `ws`
(ipycam's own check: a WS-UsernameToken with PasswordDigest or PasswordText), `text` (PasswordText
only, as some older firmwares), `http-digest` (HTTP Digest, RFC 7616 MD5 with qop=auth, on every ONVIF
request, the WS-UsernameToken ignored: written here, as ipycam has no HTTP Digest). Prints `READY` once it answers; exits on SIGTERM.

`OnvifDevice` below starts it; `NetNamespacePair` makes the two namespaces and the veth between them.
"""
from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def ipycam_available() -> tuple[bool, str]:
    try:
        import ipycam  # noqa: F401
    except ImportError as exc:
        return False, (f"ipycam is not installed in this venv ({exc}): pip install --no-deps ipycam (its numpy and cv2 "
                       "needs are met by the appliance's own; its opencv-python would clash with opencv-python-headless)")
    return True, ""


def netns_available() -> tuple[bool, str]:
    """Whether this process may create network namespaces (root and iproute2)."""
    if shutil.which("ip") is None:
        return False, "no `ip` command (iproute2) to make network namespaces"
    if os.geteuid() != 0:
        return False, "making network namespaces needs root"
    probe = subprocess.run(["ip", "netns", "add", f"nvrprobe{os.getpid()}"], capture_output=True, text=True)
    if probe.returncode != 0:
        return False, f"`ip netns add` fails here: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", f"nvrprobe{os.getpid()}"], capture_output=True)
    return True, ""


class NetNamespacePair:
    """Two network namespaces joined by a veth pair: `camera` (CAMERA_IP) and `client` (CLIENT_IP),
    with multicast routed over the veth, so WS-Discovery never touches the host's network.

    With `host_link`, a second veth joins the camera namespace to this one (HOST_LINK_IP here,
    HOST_LINK_PEER_IP there) with a route to CAMERA_IP through it, so a process here (an appliance
    under test) reaches the camera's ONVIF and RTSP ports by unicast; multicast stays between the two
    namespaces (only they route 224.0.0.0/4 to their veth)."""

    CAMERA_IP, CLIENT_IP, PREFIX = "10.77.0.2", "10.77.0.1", 24
    HOST_LINK_IP, HOST_LINK_PEER_IP = "10.78.0.1", "10.78.0.2"

    def __init__(self, tag: str, *, host_link: bool = False):
        self.camera, self.client = f"nvrcam{tag}", f"nvrcli{tag}"
        self.host_link, self.host_if = host_link, f"nvh{tag}"[:15]

    def __enter__(self) -> NetNamespacePair:
        steps = [["ip", "netns", "add", self.camera], ["ip", "netns", "add", self.client],
                 ["ip", "link", "add", "vcam0", "netns", self.camera, "type", "veth", "peer", "name", "vcli0",
                  "netns", self.client]]
        for ns, dev, ip in ((self.camera, "vcam0", self.CAMERA_IP), (self.client, "vcli0", self.CLIENT_IP)):
            steps += [["ip", "-n", ns, "addr", "add", f"{ip}/{self.PREFIX}", "dev", dev],
                      ["ip", "-n", ns, "link", "set", dev, "up", "multicast", "on"],
                      ["ip", "-n", ns, "link", "set", "lo", "up"],
                      ["ip", "-n", ns, "route", "add", "224.0.0.0/4", "dev", dev]]
        if self.host_link:
            steps += [["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", "vhost0", "netns", self.camera],
                      ["ip", "addr", "add", f"{self.HOST_LINK_IP}/30", "dev", self.host_if],
                      ["ip", "link", "set", self.host_if, "up"],
                      ["ip", "-n", self.camera, "addr", "add", f"{self.HOST_LINK_PEER_IP}/30", "dev", "vhost0"],
                      ["ip", "-n", self.camera, "link", "set", "vhost0", "up"],
                      ["ip", "route", "add", f"{self.CAMERA_IP}/32", "via", self.HOST_LINK_PEER_IP]]
        try:
            for step in steps:
                subprocess.run(step, check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as exc:
            self.__exit__()
            raise RuntimeError(f"{' '.join(exc.cmd)} failed: {exc.stderr.strip()}") from exc
        return self

    def __exit__(self, *exc: object) -> None:
        for ns in (self.camera, self.client):  # deleting the camera namespace removes the host link and its route
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        if self.host_link:
            subprocess.run(["ip", "link", "delete", self.host_if], capture_output=True)

    def prefix(self, namespace: str) -> list[str]:
        return ["ip", "netns", "exec", namespace]


class OnvifDevice:
    """The ipycam ONVIF device as a subprocess (optionally inside `namespace`)."""

    def __init__(self, *, ip: str = "127.0.0.1", onvif_port: int, rtsp_port: int = 8554, user: str = "admin",
                 password: str = "secret", clock_offset_s: float = 0.0, name: str = "IPyCam", auth: str = "ws",
                 namespace: str | None = None, ready_timeout_s: float = 30.0):
        self.ip, self.onvif_port, self.rtsp_port = ip, onvif_port, rtsp_port
        self.user, self.password = user, password
        self._args = ["--ip", ip, "--onvif-port", str(onvif_port), "--rtsp-port", str(rtsp_port), "--user", user,
                      "--password", password, "--clock-offset-s", str(clock_offset_s), "--name", name, "--auth", auth]
        self.namespace, self.ready_timeout_s = namespace, ready_timeout_s
        self._proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.onvif_port}"

    def __enter__(self) -> OnvifDevice:
        prefix = ["ip", "netns", "exec", self.namespace] if self.namespace else []
        cmd = prefix + [sys.executable, "-u", "-m", "tests.support.onvif_device", *self._args]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
        ready, _, _ = select.select([self._proc.stdout], [], [], self.ready_timeout_s)
        line = self._proc.stdout.readline() if ready else ""
        if line.strip() != "READY":
            self.__exit__()
            raise RuntimeError(f"the ipycam ONVIF device did not start: {line!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _shift_clock(offset_s: float) -> None:
    """Run ipycam's ONVIF clock `offset_s` ahead: both the time it reports and the time it checks
    WS-Security Created stamps against."""
    import time as real_time
    from datetime import datetime as real_datetime

    import ipycam.onvif as onvif_module

    class _ShiftedTime:
        def __getattr__(self, name):
            return getattr(real_time, name)

        @staticmethod
        def gmtime(seconds=None):
            return real_time.gmtime((real_time.time() if seconds is None else seconds) + offset_s)

    class _ShiftedDatetime(real_datetime):
        @classmethod
        def now(cls, tz=None):
            from datetime import timedelta
            return real_datetime.now(tz) + timedelta(seconds=offset_s)

    onvif_module.time = _ShiftedTime()
    onvif_module.datetime = _ShiftedDatetime


def _answer_clock_before_auth(onvif) -> None:
    """Answer GetSystemDateAndTime without credentials, as the ONVIF Core specification's PRE_AUTH
    access class requires and real cameras do (ipycam 1.3.0 demands a token for it too, which would
    leave a client no way to learn a skewed camera's clock before its digest is checked)."""
    verify = onvif.verify_usernametoken

    def verify_usernametoken(body: str) -> bool:
        if "GetSystemDateAndTime" in body and "GetSystemDateAndTimeResponse" not in body:
            return True
        return verify(body)

    onvif.verify_usernametoken = verify_usernametoken


def _accept_text_only(onvif) -> None:
    """Refuse a PasswordDigest token: the camera takes the password as plain text only."""
    verify = onvif.verify_usernametoken
    onvif.verify_usernametoken = lambda body: "#PasswordDigest" not in body and verify(body)


def _http_digest_handler(base, user: str, password: str):
    """ipycam's HTTP handler, with every ONVIF request needing HTTP Digest (MD5, qop=auth) instead of a
    WS-UsernameToken."""
    import hashlib
    import re
    import secrets

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    nonces: set[str] = set()
    realm = "ipycam-test"

    class DigestHandler(base):
        def handle_onvif(self):
            fields = dict(re.findall(r'(\w+)="?([^",]*)"?', self.headers.get("Authorization", "")))
            if fields.get("nonce") in nonces and fields.get("username") == user:
                ha1, ha2 = md5(f"{user}:{realm}:{password}"), md5(f"POST:{fields.get('uri', '')}")
                expected = md5(f"{ha1}:{fields['nonce']}:{fields.get('nc', '')}:{fields.get('cnonce', '')}:auth:{ha2}")
                if secrets.compare_digest(expected, fields.get("response", "")):
                    return super().handle_onvif()
            nonce = secrets.token_hex(16)
            nonces.add(nonce)
            length = int(self.headers.get("Content-Length", 0))
            self.rfile.read(length)
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Digest realm="{realm}", qop="auth", nonce="{nonce}", algorithm=MD5')
            self.send_header("Content-Length", "0")
            self.end_headers()

    return DigestHandler


class _Camera:
    """What ipycam's HTTP handler needs of its camera for the ONVIF paths: `onvif` and `config`."""

    def __init__(self, onvif, config):
        self.onvif, self.config = onvif, config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ip", required=True)
    parser.add_argument("--onvif-port", type=int, required=True)
    parser.add_argument("--rtsp-port", type=int, default=8554)
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--clock-offset-s", type=float, default=0.0)
    parser.add_argument("--name", default="IPyCam")
    parser.add_argument("--auth", choices=("ws", "text", "http-digest"), default="ws")
    args = parser.parse_args(argv)

    from ipycam.camera import ReusableThreadingTCPServer
    from ipycam.config import CameraConfig
    from ipycam.discovery import WSDiscoveryServer
    from ipycam.http import IPCameraHTTPHandler
    from ipycam.onvif import ONVIFService
    from ipycam.ptz import PTZController

    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # before any thread starts: all inherit the mask
    if args.clock_offset_s:
        _shift_clock(args.clock_offset_s)
    config = CameraConfig(local_ip=args.ip, onvif_port=args.onvif_port, rtsp_port=args.rtsp_port, name=args.name)
    if args.auth != "http-digest":
        config.set_credentials(args.user, args.password)
    onvif = ONVIFService(config, PTZController(output_width=config.main_width, output_height=config.main_height))
    _answer_clock_before_auth(onvif)
    if args.auth == "text":
        _accept_text_only(onvif)
    handler = _http_digest_handler(IPCameraHTTPHandler, args.user, args.password) \
        if args.auth == "http-digest" else IPCameraHTTPHandler
    handler.camera = _Camera(onvif, config)
    server = ReusableThreadingTCPServer((args.ip, args.onvif_port), handler)
    discovery = WSDiscoveryServer(onvif)
    discovery.start()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("READY", flush=True)
    signal.sigwait(stop_signals)
    discovery.stop()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())


class NamespacedRtspServer:
    """The GStreamer test RTSP server (tests/support/rtsp_server.py) run inside a network namespace, at
    the address and port an ONVIF device names for its streams."""

    def __init__(self, *, namespace: str, address: str, port: int, mounts: dict[str, str],
                 ready_timeout_s: float = 30.0):
        self.namespace, self.address, self.port = namespace, address, port
        self.mounts, self.ready_timeout_s = mounts, ready_timeout_s
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> NamespacedRtspServer:
        from tests.support.rtsp import SERVER_SCRIPT, SYSTEM_PYTHON

        cmd = ["ip", "netns", "exec", self.namespace, SYSTEM_PYTHON, "-u", str(SERVER_SCRIPT), "--address",
               self.address, "--port", str(self.port)]
        for mount, spec in self.mounts.items():
            cmd += ["--mount", f"{mount}={spec}"]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self._proc.stdout], [], [], self.ready_timeout_s)
        line = self._proc.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            self.__exit__()
            raise RuntimeError(f"the RTSP server did not start in {self.namespace}: {line!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        from tests.support.rtsp import stop_process

        proc, self._proc = self._proc, None
        stop_process(proc)


class NoLanDiscovery:
    """Stands in for `drivers.onvif.discovery.discover` where an in-process appliance runs on the host's
    network (its ONVIF sources look for a camera that stopped answering): records each call, finds
    nothing, and so sends nothing to the host's LAN. Use as `with NoLanDiscovery() as probes:`."""

    def __init__(self):
        self.calls: list[float] = []
        self._saved = None

    def __call__(self, *, timeout_s: float = 0.0, **_kwargs) -> list:
        self.calls.append(timeout_s)
        return []

    def __enter__(self) -> NoLanDiscovery:
        import drivers.onvif.discovery as discovery

        self._saved, discovery.discover = discovery.discover, self
        return self

    def __exit__(self, *exc: object) -> None:
        import drivers.onvif.discovery as discovery

        discovery.discover = self._saved
