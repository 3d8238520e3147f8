"""WS-Discovery: the box answers probes and says Hello. Unicast on loopback here; multicast between two
network namespaces joined by a veth pair, with the WSDiscovery library (what Home Assistant uses) probing."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from base.clock import RealClocks
from appliance.onvif_server.discovery import MAX_ANSWERS_PER_S, DiscoveryResponder, probe_wants_us
from appliance.onvif_server.xml_reader import parse_xml
from support.netns import netns_available, veth_pair
from support.waiting import wait_for

ROOT = Path(__file__).parents[2]
PEER = ROOT / "tests" / "support" / "discovery_peer.py"
DEVICE = uuid.UUID("12345678-1234-5678-1234-567812345678")


def probe(types: str = "dn:NetworkVideoTransmitter", scopes: str = "", message_id: str = "urn:uuid:probe-1") -> bytes:
    return (f'<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
            'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" '
            'xmlns:dn="http://www.onvif.org/ver10/network/wsdl"><s:Header>'
            f"<a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action><a:MessageID>{message_id}</a:MessageID>"
            "<a:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To></s:Header><s:Body><d:Probe>"
            f"<d:Types>{types}</d:Types><d:Scopes>{scopes}</d:Scopes></d:Probe></s:Body></s:Envelope>").encode()


@pytest.fixture
def responder():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    device = DiscoveryResponder(DEVICE, "Gate box", http_port=8000, clocks=RealClocks(), port=port, bind="127.0.0.1")
    device.start()
    yield device, port
    device.stop()


def ask(port: int, data: bytes, timeout_s: float = 2.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout_s)
        s.sendto(data, ("127.0.0.1", port))
        try:
            return s.recvfrom(8192)[0]
        except TimeoutError:
            return None


def test_a_probe_for_video_transmitters_gets_probe_matches_with_the_device_service_address(responder):
    device, port = responder

    answer = parse_xml(ask(port, probe()))

    assert answer.find_text("Header", "RelatesTo") == "urn:uuid:probe-1"
    match = answer.child("Body").child("ProbeMatches").child("ProbeMatch")
    assert match.find_text("EndpointReference", "Address") == f"urn:uuid:{DEVICE}"
    assert match.find_text("XAddrs") == "http://127.0.0.1:8000/onvif/device_service"
    assert "onvif://www.onvif.org/name/Gate%20box" in match.find_text("Scopes").split()


def test_probes_for_other_types_or_scopes_get_no_answer_and_garbage_is_counted(responder):
    device, port = responder

    assert ask(port, probe(types="p:Printer"), timeout_s=0.5) is None
    assert ask(port, probe(scopes="onvif://www.onvif.org/location/elsewhere"), timeout_s=0.5) is None
    assert ask(port, b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>", timeout_s=0.5) is None
    assert ask(port, probe(types="", scopes="onvif://www.onvif.org/name/Gate")) is not None
    wait_for(lambda: device.refused == 1, what="the malformed datagram to be counted")


def test_answers_are_rate_limited_so_forged_probes_cannot_make_the_box_an_amplifier(responder):
    device, port = responder
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for number in range(3 * MAX_ANSWERS_PER_S):
            s.sendto(probe(message_id=f"urn:uuid:{number}"), ("127.0.0.1", port))
    wait_for(lambda: device.probes == 3 * MAX_ANSWERS_PER_S, what="every probe to be read")

    assert device.answered <= 2 * MAX_ANSWERS_PER_S and device.limited >= MAX_ANSWERS_PER_S


def test_probe_parsing_accepts_what_the_wsdiscovery_library_sends():
    pytest.importorskip("wsdiscovery", reason="needs WSDiscovery")
    from wsdiscovery import QName
    from wsdiscovery.actions.probe import createProbeMessage
    from wsdiscovery.envelope import SoapEnvelope
    env = SoapEnvelope()
    env.setAction("http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe")
    env.setMessageId("urn:uuid:from-the-library")
    env.setTo("urn:schemas-xmlsoap-org:ws:2005:04:discovery")
    env.setTypes([QName("http://www.onvif.org/ver10/network/wsdl", "NetworkVideoTransmitter")])
    data = createProbeMessage(env)

    assert probe_wants_us(data if isinstance(data, bytes) else data.encode(), []) == "urn:uuid:from-the-library"


@pytest.mark.skipif(not netns_available()[0], reason=netns_available()[1])
def test_in_a_network_namespace_the_box_says_hello_and_wsdiscovery_finds_it_by_multicast():
    pytest.importorskip("wsdiscovery", reason="needs WSDiscovery")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    with veth_pair() as pair:
        client = subprocess.Popen(pair.exec_b([sys.executable, str(PEER), "client"]), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env)
        assert client.stdout.readline().strip() == "LISTENING"
        box = subprocess.Popen(pair.exec_a([sys.executable, str(PEER), "responder", "8000"]), stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=env)
        try:
            out, err = client.communicate(timeout=60)
        finally:
            box.communicate("", timeout=30)

    xaddr = f"http://{pair.ip_a}:8000/onvif/device_service"
    assert f"HELLO {xaddr}" in out.splitlines(), err
    found = [line.split() for line in out.splitlines() if line.startswith("FOUND")]
    assert [(f[1], f[2]) for f in found] == [(f"urn:uuid:{DEVICE}", xaddr)], (out, err)
    assert "onvif://www.onvif.org/name/netns" in " ".join(found[0][3:])  # the library prints scopes unquoted


@pytest.mark.skipif(not netns_available()[0], reason=netns_available()[1])
def test_a_client_in_another_namespace_discovers_the_running_box_lists_its_channels_and_pulls_them(tmp_path):
    pytest.importorskip("wsdiscovery", reason="needs WSDiscovery")
    pytest.importorskip("onvif", reason="needs onvif-zeep-async")
    from support.web import add_web_user
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    add_web_user(tmp_path / "data", "viewer", "viewer-pass-1")
    with veth_pair() as pair:
        config = tmp_path / "nvr.yaml"
        config.write_text(
            f"storage: {{path: {tmp_path / 'data'}}}\nchannels:\n"
            "  - {id: 1, source: {type: test-pattern, width: 320, height: 240, fps: 25, bitrate: 300000}}\n"
            "  - {id: 2, source: {type: test-pattern, width: 352, height: 288, fps: 25, bitrate: 300000}}\n"
            f"web: {{listen: '{pair.ip_a}:8080'}}\nrtsp_server: {{enabled: true}}\n"
            "onvif_server: {enabled: true, name: Namespace box}\n")
        box = subprocess.Popen(pair.exec_a([str(Path(sys.executable).with_name("nvr")), "run", "--config", str(config)]),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        try:
            wait_for(lambda: subprocess.run(pair.exec_b(["python3", "-c", (
                f"import socket; socket.create_connection(('{pair.ip_a}', 8000), timeout=1)")]),
                capture_output=True).returncode == 0 or box.poll() is not None, what="the box's ONVIF service")
            client = subprocess.run(pair.exec_b([sys.executable, str(PEER), "onvif", "viewer", "viewer-pass-1"]),
                                    capture_output=True, text=True, env=env, timeout=120)
        finally:
            box.terminate()
            _, box_log = box.communicate(timeout=60)

    streams = [line.split() for line in client.stdout.splitlines() if line.startswith("STREAM")]
    assert f"FOUND http://{pair.ip_a}:8000/onvif/device_service" in client.stdout, (client.stdout, client.stderr, box_log[-3000:])
    assert streams == [["STREAM", "ch1_main", f"rtsp://{pair.ip_a}:8554/ch1/main", "h264,320,240"],
                       ["STREAM", "ch2_main", f"rtsp://{pair.ip_a}:8554/ch2/main", "h264,352,288"]], client.stderr
