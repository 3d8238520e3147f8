"""The two ends of the WS-Discovery test, each run inside its own network namespace (support.netns).

    python discovery_peer.py responder HTTP_PORT     the box's DiscoveryResponder; prints READY, runs until stdin closes
    python discovery_peer.py onvif USER PASSWORD     finds the box with WSDiscovery, asks the XAddr it gave for
                                                     the profiles and stream URIs (onvif-zeep-async) and
                                                     ffprobes each; prints STREAM <token> <uri> <codec,w,h>
    python discovery_peer.py client                  joins the group, prints LISTENING, prints the Hello it hears
                                                     (HELLO <xaddrs>), then probes with the WSDiscovery library
                                                     (nobody here wrote it) and prints FOUND <epr> <xaddrs> per match
"""
from __future__ import annotations

import socket
import struct
import sys
import uuid


def responder(http_port: int) -> None:
    from appliance.onvif_server.discovery import DiscoveryResponder
    from base.clock import RealClocks
    device = DiscoveryResponder(uuid.UUID("12345678-1234-5678-1234-567812345678"), "netns box", http_port=http_port,
                                clocks=RealClocks())
    device.start()
    print("READY", flush=True)
    sys.stdin.read()
    device.stop()


def client() -> None:
    from appliance.onvif_server.xml_reader import parse_xml
    listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listen.bind(("", 3702))
    listen.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                      struct.pack("4s4s", socket.inet_aton("239.255.255.250"), socket.inet_aton("0.0.0.0")))
    listen.settimeout(30)
    print("LISTENING", flush=True)
    hello = parse_xml(listen.recvfrom(8192)[0])
    print("HELLO", hello.find_text("Body", "Hello", "XAddrs"), flush=True)
    listen.close()

    from wsdiscovery import QName
    from wsdiscovery.discovery import ThreadedWSDiscovery
    wsd = ThreadedWSDiscovery()
    wsd.start()
    try:
        for service in wsd.searchServices(types=[QName("http://www.onvif.org/ver10/network/wsdl",
                                                       "NetworkVideoTransmitter")], timeout=3):
            print("FOUND", service.getEPR(), " ".join(service.getXAddrs()),
                  " ".join(str(s) for s in service.getScopes()), flush=True)
    finally:
        wsd.stop()
    print("DONE", flush=True)


def onvif_client(user: str, password: str) -> None:
    import asyncio
    import os
    import subprocess
    from urllib.parse import urlsplit

    import onvif
    from wsdiscovery import QName
    from wsdiscovery.discovery import ThreadedWSDiscovery
    wsd = ThreadedWSDiscovery()
    wsd.start()
    try:
        found = wsd.searchServices(types=[QName("http://www.onvif.org/ver10/network/wsdl", "NetworkVideoTransmitter")],
                                   timeout=3)
    finally:
        wsd.stop()
    xaddr = urlsplit(found[0].getXAddrs()[0])
    print("FOUND", xaddr.geturl(), flush=True)

    async def streams():
        cam = onvif.ONVIFCamera(xaddr.hostname, xaddr.port, user, password,
                                os.path.join(os.path.dirname(onvif.__file__), "wsdl"), encrypt=False)
        try:
            await cam.update_xaddrs()
            media = await cam.create_media_service()
            return [(p.token, (await media.GetStreamUri({"ProfileToken": p.token, "StreamSetup": {
                "Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}})).Uri) for p in await media.GetProfiles()]
        finally:
            await cam.close()
    for token, uri in asyncio.run(streams()):
        probe = subprocess.run(["/usr/bin/ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v",
                                "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0",
                                uri.replace("rtsp://", f"rtsp://{user}:{password}@")],
                               capture_output=True, text=True, timeout=60)
        print("STREAM", token, uri, probe.stdout.strip() or probe.stderr.strip(), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "responder":
        responder(int(sys.argv[2]))
    elif sys.argv[1] == "onvif":
        onvif_client(sys.argv[2], sys.argv[3])
    else:
        client()
