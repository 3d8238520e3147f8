"""A running appliance for web tests: the real `Appliance` recording test-pattern channels and serving
the web on a free loopback port, with some recording in the past made under simulated clocks."""
from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from appliance.app import Appliance
from appliance.config.model import parse_config
from appliance.supervisor import Supervisor
from appliance.web.users import UserStore
from base.clock import RealClocks, SimulatedClocks
from recorder.index import Index
from support.recording import make_segmenter, record
from support.waiting import DEFAULT_TIMEOUT_S, wait_for

PASSWORDS = {"admin": "admin-pass-1", "operator": "operator-pass-1", "viewer": "viewer-pass-1"}
WEB_USER = ("tester", "tester-pass-1")  # what tests that run `nvr run` log in with


def add_web_user(root: Path, name: str = WEB_USER[0], password: str = WEB_USER[1], role: str = "viewer") -> None:
    """Put a web user into the users file of data root `root` (before or while `nvr run` uses it)."""
    store = UserStore(root, clocks=RealClocks())
    try:
        store.add_user(name, password, role, replace=True)
    finally:
        store.close()


def login(app: WebRig, role: str = "admin", *, timeout_s: float = 30) -> httpx.Client:
    """An httpx client logged in to `app` as the web user `role` (password from PASSWORDS), carrying the
    CSRF token that state-changing calls need. The caller closes it."""
    client = httpx.Client(base_url=app.url, timeout=timeout_s)
    answer = client.post("/api/login", json={"username": role, "password": PASSWORDS[role]})
    assert answer.status_code == 200, answer.text
    client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
    return client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_text(root: Path, *, channels: int = 1, width: int = 320, height: int = 240, extra: str = "",
                top: str = "") -> str:
    chans = extra + "".join(
        f"  - id: {i}\n    name: Cam {i}\n    source: {{type: test-pattern, width: {width}, height: {height}, fps: 25,"
        f" bitrate: 300000, keyframe_interval_s: 1}}\n" for i in range(1, channels + 1))
    return f"storage:\n  path: {root}\n  segment_seconds: 10\nchannels:\n{chans}web:\n  listen: 127.0.0.1:8080\n{top}"


def record_past(root: Path, *, start_us: int, seconds: float, channels: int = 1) -> None:
    """Record `seconds` of test pattern per channel starting at wall time `start_us` (simulated time)."""
    index = Index(root)
    try:
        for ch in range(1, channels + 1):
            clocks = SimulatedClocks(utc_start_us=start_us)
            seg = make_segmenter(root, index, clocks, channel=ch, segment_seconds=4)
            record(seg, clocks, seconds=seconds, channel=ch)
    finally:
        index.close()


@dataclass
class WebRig:
    """A started `Appliance` (`nvr`) and what the test recorded before it started."""

    nvr: Appliance
    url: str
    root: Path
    config_file: Path
    past_start_us: int
    past_end_us: int

    @property
    def supervisor(self) -> Supervisor:
        return self.nvr.supervisor

    @property
    def users(self) -> UserStore:
        return self.nvr.users

    def stop(self) -> None:
        self.nvr.stop()


def start_appliance(tmp: Path, *, channels: int = 1, past_seconds: float = 30, past_ago_s: float = 600,
                    with_users: bool = True, extra_channels: str = "", extra_top: str = "",
                    tls: bool = False, audio_playback=None) -> WebRig:
    """`extra_channels`: YAML list items put before the test-pattern channels (e.g. RTSP cameras);
    `extra_top`: top-level YAML sections after the rest (e.g. `audio_out:`); `tls`: serve HTTPS with a
    self-signed certificate (appliance.web.tls), as the image does; `audio_playback`: opens a sound
    output by its ALSA name (e.g. a simulated speaker), behind the appliance's shared outputs."""
    root = tmp / "data"
    root.mkdir(parents=True, exist_ok=True)
    past_start_us = time.time_ns() // 1000 - round(past_ago_s * 1e6)
    if past_seconds:
        record_past(root, start_us=past_start_us, seconds=past_seconds, channels=channels)
    config_file = tmp / "nvr.yaml"
    config_file.write_text(config_text(root, channels=channels, extra=extra_channels, top=extra_top))
    config = parse_config(config_file.read_text(), source=str(config_file), base_dir=tmp)
    port = free_port()
    cert, key = (None, None)
    if tls:
        from appliance.web.tls import ensure_self_signed

        cert, key = ensure_self_signed(tmp / "tls")
    sound = {"audio_playback": audio_playback} if audio_playback is not None else {}
    nvr = Appliance(config, clocks=RealClocks(), listen=("127.0.0.1", port), sync=False, tls_cert=cert, tls_key=key,
                    **sound)
    if with_users:
        for role, password in PASSWORDS.items():
            nvr.users.add_user(role, password, role, replace=True)
    nvr.start()
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        _wait_up(url)
    except BaseException:
        nvr.stop()
        raise
    return WebRig(nvr, url, root, config_file, past_start_us, past_start_us + round(past_seconds * 1e6))


def start_intercom_box(tmp: Path, speaker, *, lease_s: float) -> WebRig:
    """An appliance with one small test-pattern channel whose LINE IN (the simulated microphone) is heard on
    its AUDIO OUT, `speaker` (e.g. hal.audio_out.SimulatedAudioPlayback), while held; a web hold lasts
    `lease_s` unless renewed."""
    return start_appliance(tmp, channels=0, past_seconds=0,
                           extra_channels="  - {id: 1, source: {type: test-pattern, width: 160, height: 120, fps: 5}}\n",
                           extra_top=f"audio_out: {{device: simulated}}\nline_in: {{device: simulated, lease_s: {lease_s}}}\n",
                           audio_playback=lambda device: speaker)


def _wait_up(url: str) -> None:
    import ssl
    import urllib.request

    unverified = ssl._create_unverified_context()  # a test's own self-signed certificate

    def answers() -> bool:
        try:
            urllib.request.urlopen(url + "/api/ping", timeout=5, context=unverified).read()
            return True
        except OSError:
            return False
    wait_for(answers, what=f"the web server at {url} to come up")


def wait_recording(app: WebRig, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    sup = app.supervisor  # its list of recorders is replaced when channels restart
    wait_for(lambda: sup.recorders and all(r.connected and r.statistics()["packets"] > 5 for r in sup.recorders),
             timeout_s=timeout_s, what="the appliance to record",
             details=lambda: [r.statistics() for r in sup.recorders])
