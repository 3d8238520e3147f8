"""Test instruments for the box as an RTSP source: a running appliance with the RTSP server on, and the
H.264 slices of what a client received and of what the recorder wrote, to compare them."""
from __future__ import annotations

import hashlib
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
