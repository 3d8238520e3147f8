"""Test instruments for the box as an RTSP source: a running appliance with the RTSP server on, and the
H.264 slices of what a client received and of what the recorder wrote, to compare them."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import av

from appliance.app import Appliance
from appliance.config.model import parse_config
from base.clock import RealClocks
from base.h264 import H264Error, split_annexb, split_length_prefixed
from support.web import free_port

USERS = {"viewer": "viewer-pass-1", "admin": "admin-pass-1"}
SLICE_TYPES = (1, 5)  # non-IDR and IDR slices: the picture data, untouched by any remuxer


@dataclass
class Box:
    nvr: Appliance
    rtsp_port: int
    root: Path

    def url(self, path: str = "/ch1/main", user: str = "viewer", password: str | None = None) -> str:
        password = USERS[user] if password is None else password
        return f"rtsp://{user}:{password}@127.0.0.1:{self.rtsp_port}{path}"


def start_box(tmp: Path, *, channels: int = 1, fps: int = 25, extra: str = "", rtsp_port: int | None = None,
              channels_yaml: str | None = None) -> Box:
    """An appliance recording `channels` test-pattern channels (or the YAML list items `channels_yaml`)
    with the RTSP server on `rtsp_port` of loopback (default: a free one)."""
    port = rtsp_port or free_port()
    chans = channels_yaml or "".join(f"  - {{id: {i}, source: {{type: test-pattern, width: 320, height: 240, fps: {fps}, "
                    f"bitrate: 300000, keyframe_interval_s: 1}}}}\n" for i in range(1, channels + 1))
    config = parse_config(f"storage: {{path: {tmp}/data, segment_seconds: 10}}\nchannels:\n{chans}"
                          f"web: {{listen: 127.0.0.1:8080}}\nrtsp_server: {{enabled: true, listen: 127.0.0.1:{port}}}\n"
                          + extra, base_dir=tmp)
    nvr = Appliance(config, clocks=RealClocks(), listen=("127.0.0.1", free_port()), sync=False)
    for name, password in USERS.items():
        nvr.users.add_user(name, password, name)
    nvr.start()
    return Box(nvr, port, tmp / "data")


def annexb_slices(data: bytes) -> list[str]:
    """SHA-256 of every slice NAL in an Annex B byte stream, in order."""
    return [hashlib.sha256(nal).hexdigest() for nal in split_annexb(data) if nal and nal[0] & 0x1F in SLICE_TYPES]


def recorded_slices(root: Path, channel: int = 1, stream: str = "main") -> list[str]:
    """SHA-256 of every slice NAL the recorder wrote for `channel`'s `stream`, in recording order.
    A segment still being written is read up to its last whole fragment."""
    hashes: list[str] = []
    for path in sorted(root.glob(f"ch{channel:02d}/{stream}/*.mp4")):  # named run-sequence: sorted is recorded order
        hashes += _mp4_slices(path)
    return hashes


def _mp4_slices(path: Path) -> list[str]:
    hashes = []
    try:
        with av.open(str(path)) as container:
            for packet in container.demux(video=0):
                if packet.size:
                    hashes += [hashlib.sha256(nal).hexdigest() for nal in split_length_prefixed(bytes(packet), 4)
                               if nal[0] & 0x1F in SLICE_TYPES]
    except (av.error.FFmpegError, H264Error):
        pass  # the fragment being written: what came before it is in `hashes`
    return hashes


def is_run_of(part: list[str], whole: list[str]) -> bool:
    """True if `part` appears in `whole` as one unbroken run, in order."""
    if not part or part[0] not in whole:
        return False
    start = whole.index(part[0])
    return whole[start:start + len(part)] == part


class StalledViewer:
    """An RTSP client that logs in with Digest, PLAYs one stream over TCP and then never reads: a viewer
    whose network or process froze. Its receive buffer is kept small so the server's side fills up soon."""

    RECV_BUFFER_BYTES = 4096

    def __init__(self, url: str):
        import socket
        from urllib.parse import urlsplit
        parts = urlsplit(url)
        self._user, self._password = parts.username, parts.password
        self._url = f"rtsp://{parts.hostname}:{parts.port}{parts.path}"
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.RECV_BUFFER_BYTES)
        self._sock.connect((parts.hostname, parts.port))
        self._file = self._sock.makefile("rb")
        self._cseq, self._auth = 0, None

    def play(self) -> None:
        status, headers, body = self._request("DESCRIBE", self._url, {"Accept": "application/sdp"})
        if status == 401:
            self._auth = headers["www-authenticate"]
            status, headers, body = self._request("DESCRIBE", self._url, {"Accept": "application/sdp"})
        assert status == 200, status
        control = next(line.split(":", 1)[1].strip() for line in body.decode().splitlines()
                       if line.startswith("a=control:") and line.strip() != "a=control:*")
        track = control if control.startswith("rtsp://") else f"{self._url.rstrip('/')}/{control}"
        status, headers, _ = self._request("SETUP", track, {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})
        assert status == 200, status
        session = headers["session"].split(";")[0]
        status, _, _ = self._request("PLAY", self._url, {"Session": session, "Range": "npt=0.000-"})
        assert status == 200, status

    def _authorization(self, method: str, uri: str) -> dict[str, str]:
        if self._auth is None:
            return {}
        params = dict(re.findall(r'(\w+)="([^"]*)"', self._auth))
        ha1 = hashlib.md5(f"{self._user}:{params['realm']}:{self._password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
        response = hashlib.md5(f"{ha1}:{params['nonce']}:{ha2}".encode()).hexdigest()
        return {"Authorization": f'Digest username="{self._user}", realm="{params["realm"]}", '
                                 f'nonce="{params["nonce"]}", uri="{uri}", response="{response}"'}

    def _request(self, method: str, uri: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        self._cseq += 1
        lines = [f"{method} {uri} RTSP/1.0", f"CSeq: {self._cseq}",
                 *(f"{k}: {v}" for k, v in {**headers, **self._authorization(method, uri)}.items())]
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status = int(self._file.readline().split()[1])
        reply: dict[str, str] = {}
        while (line := self._file.readline().decode().strip()):
            name, _, value = line.partition(":")
            reply[name.strip().lower()] = value.strip()
        return status, reply, self._file.read(int(reply.get("content-length", 0)))

    def close(self) -> None:
        self._file.close()
        self._sock.close()
