"""The ONVIF camera client against a device nobody here wrote (ipycam's ONVIF service, on loopback),
and against hostile servers written here: silent, huge, not ONVIF."""
from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest

from tests.support.onvif_device import OnvifDevice, ipycam_available

pytest.importorskip("onvif", reason="onvif-zeep-async is not installed: pip install onvif-zeep-async")

from drivers.onvif.camera import (OnvifCamera, device_service_url, read_camera,  # noqa: E402
                                  resolve_stream_uris)
from drivers.onvif.errors import CameraUnreachable, NotOnvif, ResponseTooLarge, WrongCredentials  # noqa: E402

available, why = ipycam_available()
needs_ipycam = pytest.mark.skipif(not available, reason=why)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def device():
    if not available:
        pytest.skip(why)
    with OnvifDevice(onvif_port=_free_port(), user="admin", password="s3cret:/@") as dev:
        yield dev


def test_a_bare_address_means_the_standard_device_service_path():
    assert device_service_url("http://10.0.0.5") == "http://10.0.0.5/onvif/device_service"
    assert device_service_url("http://10.0.0.5:8080/") == "http://10.0.0.5:8080/onvif/device_service"
    assert device_service_url("http://10.0.0.5/onvif/other") == "http://10.0.0.5/onvif/other"


@needs_ipycam
def test_reads_device_information_profiles_and_uris_with_a_password_digest(device):
    report = read_camera(device.url, username="admin", password="s3cret:/@", timeout_s=5)

    assert report.auth == "digest"
    assert (report.device.manufacturer, report.device.model) == ("PythonCam", "VirtualCam-1")
    assert [(p.token, p.encoding, p.width, p.height) for p in report.profiles] == [
        ("Profile_Main", "H264", 1920, 1080), ("Profile_Sub", "H264", 640, 360)]
    assert report.stream_uris == {"Profile_Main": f"rtsp://127.0.0.1:{device.rtsp_port}/video_main",
                                  "Profile_Sub": f"rtsp://127.0.0.1:{device.rtsp_port}/video_sub"}
    assert report.snapshot_uris["Profile_Main"] == f"http://127.0.0.1:{device.onvif_port}/snapshot.jpg"


@needs_ipycam
def test_stream_uris_default_to_the_first_profile_and_name_the_sub(device):
    uris = resolve_stream_uris(device.url, username="admin", password="s3cret:/@", sub_profile="Profile_Sub")

    assert (uris.main_profile, uris.main) == ("Profile_Main", f"rtsp://127.0.0.1:{device.rtsp_port}/video_main")
    assert uris.sub.endswith("/video_sub")


@needs_ipycam
def test_a_wrong_password_is_wrong_credentials_that_the_recorder_does_not_hammer(device):
    with pytest.raises(WrongCredentials, match="check the user name and password") as caught:
        read_camera(device.url, username="admin", password="wrong", timeout_s=5)

    assert caught.value.refused is True
    assert isinstance(caught.value, PermissionError)


@needs_ipycam
def test_a_camera_clock_hours_off_still_takes_the_password_digest():
    with OnvifDevice(onvif_port=_free_port(), clock_offset_s=7200) as dev:
        report = read_camera(dev.url, username="admin", password="secret", timeout_s=5)

    assert report.auth == "digest"
    assert 7198 <= report.clock_offset_s <= 7201


@needs_ipycam
def test_a_camera_that_takes_only_plain_text_gets_plain_text():
    with OnvifDevice(onvif_port=_free_port(), auth="text") as dev:
        report = read_camera(dev.url, username="admin", password="secret", timeout_s=5)

    assert report.auth == "text" and len(report.profiles) == 2


@needs_ipycam
def test_a_camera_that_wants_http_digest_gets_it():
    with OnvifDevice(onvif_port=_free_port(), auth="http-digest") as dev:
        report = read_camera(dev.url, username="admin", password="secret", timeout_s=5)
        with pytest.raises(WrongCredentials):
            read_camera(dev.url, username="admin", password="wrong", timeout_s=5)

    assert report.device.model == "VirtualCam-1"


@needs_ipycam
def test_the_connected_library_camera_is_handed_to_other_modules(device):
    import asyncio

    from onvif import ONVIFCamera

    async def ask():
        async with OnvifCamera(device.url, username="admin", password="s3cret:/@", timeout_s=5) as camera:
            library = camera.library_camera
            ptz = await library.create_ptz_service()
            return isinstance(library, ONVIFCamera), library.xaddrs, ptz.xaddr

    is_library_camera, xaddrs, ptz_xaddr = asyncio.run(ask())

    assert is_library_camera
    assert "http://www.onvif.org/ver10/media/wsdl" in xaddrs
    assert ptz_xaddr.endswith("/onvif/ptz_service")


def test_nothing_listening_is_unreachable_and_says_what_to_check():
    with pytest.raises(CameraUnreachable, match="check the address"):
        read_camera(f"http://127.0.0.1:{_free_port()}", username="admin", password="x", timeout_s=3)


class _Server:
    """A one-purpose HTTP server on loopback answering every POST with `reply(handler)`."""

    def __init__(self, reply):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                self.body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                reply(self)

            def log_message(self, *args):
                return None

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _send(handler, body: bytes, *, status: int = 200, chunked: bool = False, ctype: str = "application/soap+xml"):
    handler.send_response(status)
    handler.send_header("Content-Type", ctype)
    if chunked:
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for start in range(0, len(body), 65536):
            piece = body[start:start + 65536]
            handler.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        handler.wfile.write(b"0\r\n\r\n")
        return
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def test_a_web_page_that_is_not_onvif_is_not_onvif():
    with _Server(lambda h: _send(h, b"<html><body>router login</body></html>", ctype="text/html")) as server:
        with pytest.raises(NotOnvif, match="ONVIF"):
            read_camera(server.url, username="admin", password="x", timeout_s=3)


def test_a_404_is_not_onvif_and_names_the_status():
    with _Server(lambda h: _send(h, b"no", status=404, ctype="text/plain")) as server:
        with pytest.raises(NotOnvif, match="HTTP 404"):
            read_camera(server.url, username="admin", password="x", timeout_s=3)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_answer_over_the_size_cap_is_refused_without_being_kept(chunked):
    async def read(url):
        async with OnvifCamera(url, username="admin", password="x", timeout_s=5, max_response_bytes=100_000):
            return None

    import asyncio
    huge = b"<a>" + b"x" * 1_000_000 + b"</a>"
    with _Server(lambda h: _send(h, huge, chunked=chunked)) as server:
        with pytest.raises(ResponseTooLarge, match="100000 bytes"):
            asyncio.run(read(server.url))


def test_a_camera_that_never_answers_costs_only_the_timeout():
    release = threading.Event()
    with _Server(lambda h: release.wait(10)) as server:
        started = time.monotonic()
        try:
            with pytest.raises(CameraUnreachable, match="within 1 s"):
                read_camera(server.url, username="admin", password="x", timeout_s=1)
        finally:
            release.set()
        elapsed_s = time.monotonic() - started

    assert elapsed_s < 5  # two auth modes would be 2 s; one timeout ends the connect (no retry on silence)


LATE_S = 1.3


@needs_ipycam
def test_asking_a_slow_camera_for_its_stream_ends_within_the_budget(device):
    """GetDeviceInformation, GetProfiles and each GetStreamUri answered 1.3 s late (under the 2 s per
    call, with room for the proxy's own call to ipycam on a busy machine): together about 5.2 s, over the
    budget of RESOLVE_CALLS_BUDGET (2) calls' timeouts, 4 s."""
    import urllib.request

    proxy: list[str] = []

    def late(handler):  # a proxy to ipycam naming itself in the services' addresses, so every call passes here
        if any(action in handler.body for action in (b"GetDeviceInformation", b"GetProfiles", b"GetStreamUri")):
            time.sleep(LATE_S)
        forwarded = urllib.request.Request(device.url + handler.path, data=handler.body, method="POST",
                                           headers={"Content-Type": handler.headers.get("Content-Type", "")})
        try:
            with urllib.request.urlopen(forwarded, timeout=5) as answer:
                body = answer.read().replace(device.url.encode(), proxy[0].encode())
                _send(handler, body, status=answer.status)
        except urllib.error.HTTPError as refused:
            _send(handler, refused.read(), status=refused.code)

    with _Server(late) as server:
        proxy.append(server.url)
        started = time.monotonic()
        with pytest.raises(CameraUnreachable, match="took over 4 s to name its stream"):
            resolve_stream_uris(server.url, username="admin", password="s3cret:/@", sub_profile="Profile_Sub",
                                timeout_s=2)
        elapsed_s = time.monotonic() - started

    assert 4 <= elapsed_s < 4 + LATE_S  # ended by the budget, before the last late answer
