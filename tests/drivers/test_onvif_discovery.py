"""WS-Discovery: the bounded ProbeMatch parser on real and hostile datagrams, the probe on loopback, and
`nvr discover` finding a device nobody here wrote (ipycam) over multicast inside network namespaces."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from base.clock import RealClocks
from drivers.onvif.discovery import (MAX_DATAGRAM_BYTES, MAX_DEPTH, MAX_MATCHES, MAX_TEXT_CHARS, ProbeMatchError,
                                     discover, parse_probe_matches)
from tests.support.onvif_device import NetNamespacePair, OnvifDevice, ipycam_available, netns_available

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "fuzz" / "corpus" / "onvif_probe_match"
NVR = [sys.executable, "-m", "appliance.cli"]


def seed(prefix: str) -> bytes:
    [path] = CORPUS.glob(f"{prefix}-*")
    return path.read_bytes()


def match(body: str, *, endpoint: str = "urn:uuid:1", xaddrs: str = "http://10.0.0.5/onvif/device_service") -> bytes:
    return (f'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope" '
            f'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
            f'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"><e:Body><d:ProbeMatches><d:ProbeMatch>'
            f'<a:EndpointReference><a:Address>{endpoint}</a:Address></a:EndpointReference>'
            f'<d:XAddrs>{xaddrs}</d:XAddrs>{body}</d:ProbeMatch></d:ProbeMatches></e:Body></e:Envelope>').encode()


def test_reads_ipycams_probe_match():
    [device] = parse_probe_matches(seed("ipycam-probematch"), from_address="192.168.1.64")

    assert device.url == "http://192.168.1.64:8080/onvif/device_service"
    assert device.name == "Front" and device.endpoint.startswith("urn:uuid:")
    assert "dn:NetworkVideoTransmitter" in device.types and device.from_address == "192.168.1.64"


def test_reads_name_hardware_and_location_scopes_of_two_cameras_in_one_answer():
    devices = parse_probe_matches(seed("written-two"))

    assert [(d.name, d.hardware, d.location) for d in devices] == [
        ("HIKVISION DS-2CD2143G0-I", "DS-2CD2143G0-I", "city/hangzhou"), ("AXIS", "M3045-V", "city/hangzhou")]
    assert devices[0].url == "http://192.168.1.64/onvif/device_service"  # IPv4 before the IPv6 XAddr
    assert len(devices[0].xaddrs) == 2


def test_a_hello_announces_a_device_like_a_probe_match():
    [device] = parse_probe_matches(seed("ipycam-hello"))

    assert device.url.endswith("/onvif/device_service")


@pytest.mark.parametrize("datagram, problem", [
    (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><l>&b;</l>',
     "DTD"),
    (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY x SYSTEM "file:///etc/passwd">]><l>&x;</l>', "DTD"),
    (b"<a>" * (MAX_DEPTH + 1) + b"</a>" * (MAX_DEPTH + 1), "nested"),
    (match(f"<d:Scopes>{'s' * (MAX_TEXT_CHARS + 1)}</d:Scopes>"), "characters"),
    (b" " * (MAX_DATAGRAM_BYTES + 1), "datagram"),
    (b"\x00\xff garbage", "XML"),
    (b"<?xml version=\"1.0\" encoding=\"UTF-6\"?><a>\xff</a>", "XML"),
], ids=["entity-expansion", "external-entity", "deep", "long-text", "oversize", "garbage", "bad-encoding"])
def test_hostile_datagrams_are_refused_with_a_reason(datagram, problem):
    with pytest.raises(ProbeMatchError, match=problem):
        parse_probe_matches(datagram)


@pytest.mark.parametrize("declared", ["UTF-7", "shift_jis", "UTF-6", "utf-16"])
def test_the_declared_encoding_is_ignored_and_the_datagram_read_as_utf8(declared):
    datagram = seed("ipycam-probematch").replace(b'encoding="UTF-8"', f'encoding="{declared}"'.encode())
    assert declared.encode() in datagram

    [device] = parse_probe_matches(datagram)

    assert device.name == "Front"


def test_matches_without_an_endpoint_or_an_http_address_are_left_out():
    assert parse_probe_matches(match("", endpoint="")) == []
    assert parse_probe_matches(match("", xaddrs="ftp://10.0.0.5/ javascript:alert(1)")) == []


def test_one_datagram_yields_at_most_max_matches_devices():
    one = match("").decode()
    start, end = one.index("<d:ProbeMatch>"), one.index("</d:ProbeMatches>")
    many = one[:start] + one[start:end] * (MAX_MATCHES + 5) + one[end:]

    assert len(parse_probe_matches(many.encode())) == MAX_MATCHES


class _Responder:
    """A UDP responder on loopback answering a Probe with the datagrams given (in order)."""

    def __init__(self, answers: list[bytes]):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = self.sock.getsockname()
        self.probes: list[bytes] = []
        self._answers = answers

    def __enter__(self):
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def _serve(self):
        data, peer = self.sock.recvfrom(65536)
        self.probes.append(data)
        for answer in self._answers:
            self.sock.sendto(answer, peer)

    def __exit__(self, *exc):
        self.sock.close()


def test_probe_dedupes_by_endpoint_and_skips_bad_answers(caplog):
    first = match("", endpoint="urn:uuid:cam-1")
    answers = [first, b"<not xml", first, match("", endpoint="urn:uuid:cam-2"), b" " * (MAX_DATAGRAM_BYTES + 10)]
    with _Responder(answers) as responder:
        devices = discover(timeout_s=1.0, target=responder.address, clocks=RealClocks())

    assert [d.endpoint for d in devices] == ["urn:uuid:cam-1", "urn:uuid:cam-2"]
    assert b"NetworkVideoTransmitter" in responder.probes[0] and b"/discovery/Probe<" in responder.probes[0]
    assert len([r for r in caplog.records if "skipped an answer" in r.message]) == 2


# --- over multicast, in network namespaces --------------------------------------------------------------

ns_ok, ns_why = netns_available()
ipycam_ok, ipycam_why = ipycam_available()
in_namespaces = pytest.mark.skipif(not (ns_ok and ipycam_ok), reason=ns_why or ipycam_why)


@pytest.fixture(scope="module")
def camera_in_namespace():
    if not (ns_ok and ipycam_ok):
        pytest.skip(ns_why or ipycam_why)
    with NetNamespacePair(f"d{os.getpid() % 10000}") as pair:
        with OnvifDevice(ip=pair.CAMERA_IP, onvif_port=8080, namespace=pair.camera, name="Yard",
                         user="admin", password="secret") as device:
            yield pair, device


def _nvr_in(pair: NetNamespacePair, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(pair.prefix(pair.client) + NVR + list(args), capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=60, input=stdin)


@in_namespaces
def test_nvr_discover_finds_the_camera_over_multicast(camera_in_namespace):
    pair, device = camera_in_namespace

    done = _nvr_in(pair, "discover", "--json", "--timeout", "1.5")

    assert done.returncode == 0, done.stderr
    [row] = json.loads(done.stdout)
    assert row["url"] == f"http://{pair.CAMERA_IP}:8080/onvif/device_service"
    assert row["name"] == "Yard" and row["from"] == pair.CAMERA_IP


@in_namespaces
def test_nvr_discover_with_credentials_lists_profiles_and_stream_uris(camera_in_namespace):
    pair, device = camera_in_namespace

    done = _nvr_in(pair, "discover", "--timeout", "1.5", "--user", "admin", "--password", "secret")

    assert done.returncode == 0, done.stderr
    assert f"http://{pair.CAMERA_IP}:8080/onvif/device_service  Yard" in done.stdout
    assert f"profile Profile_Main: MainStream, H264 1920x1080, rtsp://{pair.CAMERA_IP}:8554/video_main" in done.stdout
    assert "password sent as digest" in done.stdout


@in_namespaces
def test_nvr_discover_reads_the_password_from_standard_input_when_not_given(camera_in_namespace):
    pair, device = camera_in_namespace

    done = _nvr_in(pair, "discover", "--json", "--timeout", "1.5", "--user", "admin", stdin="secret\n")

    [row] = json.loads(done.stdout)
    assert row["camera"]["model"] == "VirtualCam-1" and row["camera"]["auth"] == "digest"


@in_namespaces
def test_nvr_discover_with_a_wrong_password_says_so_per_camera(camera_in_namespace):
    pair, device = camera_in_namespace

    done = _nvr_in(pair, "discover", "--json", "--timeout", "1.5", "--user", "admin", "--password", "nope")

    [row] = json.loads(done.stdout)
    assert "check the user name and password" in row["camera"]["error"]


@in_namespaces
def test_nvr_discover_with_nobody_answering_exits_1_and_says_what_to_check():
    with NetNamespacePair(f"e{os.getpid() % 10000}") as pair:
        done = _nvr_in(pair, "discover", "--timeout", "0.5")

    assert done.returncode == 1
    assert "no ONVIF device answered" in done.stdout


MOVED_SCRIPT = """
import sys
from functools import partial
from base.clock import RealClocks
from drivers.onvif.discovery import discover
from drivers.onvif.source import OnvifRtspCamera

class Client:
    def __init__(self, url): self.url = url
    def open(self): return None
    def close(self): return None

camera = OnvifRtspCamera(sys.argv[1], username="admin", password="secret", profile=None, stream="main",
                         name="gate main", make_camera=Client, rediscover=partial(discover, clocks=RealClocks()))
camera.open()
print(camera.stream_url, flush=True)
sys.stdin.readline()
camera.open()
print(camera.stream_url, camera.url, camera.moves, flush=True)
"""


@in_namespaces
def test_a_camera_that_dhcp_moved_is_found_again_by_ws_discovery_and_its_identity():
    with NetNamespacePair(f"m{os.getpid() % 10000}") as pair:
        moved_ip = "10.77.0.3"
        subprocess.run(["ip", "-n", pair.camera, "addr", "add", f"{moved_ip}/24", "dev", "vcam0"], check=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with OnvifDevice(ip=pair.CAMERA_IP, onvif_port=8080, namespace=pair.camera, name="Gate"):
            client = subprocess.Popen(pair.prefix(pair.client) + [sys.executable, "-c", MOVED_SCRIPT,
                                                                  f"http://{pair.CAMERA_IP}:8080"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, cwd=ROOT, env=env)
            try:
                before = client.stdout.readline().strip()
            except BaseException:
                client.kill()
                raise
        try:
            with OnvifDevice(ip=moved_ip, onvif_port=8080, namespace=pair.camera, name="Gate"):
                out, err = client.communicate("go\n", timeout=60)
        finally:
            if client.poll() is None:
                client.kill()

    assert before == f"rtsp://admin:***@{pair.CAMERA_IP}:8554/video_main", client.stderr
    assert out.split() == [f"rtsp://admin:***@{moved_ip}:8554/video_main",
                           f"http://{moved_ip}:8080/onvif/device_service", "1"], err
    assert "moved from" in err and "put the new address in the config" in err
