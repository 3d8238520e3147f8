"""ONVIF PTZ (drivers.onvif.ptz) against a device nobody here wrote: the `ipycam` virtual camera's ONVIF
service and its PTZ controller (digital PTZ), served on loopback by its own HTTP handler.

What ipycam covers: WS-UsernameToken auth, GetServices, GetProfiles with a PTZ configuration,
ContinuousMove / Stop (its controller's velocities), RelativeMove, GotoHomePosition and GotoPreset
(its controller's position). What it lacks or gets wrong: its GetConfigurationOptions, GetPresets and
SetPreset answers use a namespace prefix the envelope never declares (so presets cannot be listed or
stored through it, and the driver judges capabilities from the configuration's default spaces
instead, which is itself proven here); no RemovePreset, no events. Those are proven against tests/support/onvif_events.py.
"""
from __future__ import annotations

import asyncio
import http.server
import threading

import pytest

pytest.importorskip("ipycam")
from ipycam.config import CameraConfig  # noqa: E402
from ipycam.http import IPCameraHTTPHandler  # noqa: E402
from ipycam.onvif import ONVIFService  # noqa: E402
from ipycam.ptz import PTZController  # noqa: E402
from onvif import ONVIFCamera  # noqa: E402

from drivers.onvif.ptz import OnvifPtz  # noqa: E402
from support.waiting import wait_for  # noqa: E402


class _Camera:
    """What ipycam's handler asks of its camera object for ONVIF: `.onvif`."""

    def __init__(self, onvif: ONVIFService):
        self.onvif = onvif


@pytest.fixture
def ipycam():
    handler = type("Handler", (IPCameraHTTPHandler,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    port = server.server_address[1]
    controller = PTZController(enable_digital_ptz=False)
    config = CameraConfig(local_ip="127.0.0.1", onvif_port=port, username="admin", password="secret")
    handler.camera = _Camera(ONVIFService(config, controller))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield port, controller
    controller.stop()
    server.shutdown()
    server.server_close()


def run(port: int, steps):
    async def main():
        camera = ONVIFCamera("127.0.0.1", port, "admin", "secret", no_cache=True)
        try:
            await camera.update_xaddrs()
            ptz = OnvifPtz(camera)
            await ptz.open()
            return await steps(ptz)
        finally:
            await camera.close()
    return asyncio.run(main())


def test_the_profile_ptz_configuration_is_found_even_when_its_options_cannot_be_read(ipycam):
    port, _ = ipycam
    caps = run(port, lambda ptz: asyncio.sleep(0, ptz.capabilities))
    assert caps.profile == "Profile_Main" and caps.configuration == "PTZ_Config_1"
    assert caps.continuous_pan_tilt and caps.continuous_zoom and caps.relative_pan_tilt


def test_a_continuous_move_turns_the_camera_and_stop_halts_it(ipycam):
    port, controller = ipycam

    async def steps(ptz):
        await ptz.continuous_move(pan=0.5, tilt=0.25)
        velocity = (controller.velocity.pan_speed, controller.velocity.tilt_speed)
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: wait_for(lambda: controller.state.pan > 0.0, what="the virtual camera to pan right"))
        await ptz.stop()
        return velocity
    assert run(port, steps) == (0.5, 0.25)
    assert (controller.velocity.pan_speed, controller.velocity.tilt_speed) == (0.0, 0.0)
    assert controller.state.pan > 0.0 and controller.state.tilt > 0.0


def test_relative_move_home_and_goto_preset_move_the_virtual_camera(ipycam):
    port, controller = ipycam

    async def steps(ptz):
        await ptz.relative_move(pan=0.4, tilt=-0.2)
        moved = (round(controller.state.pan, 3), round(controller.state.tilt, 3))
        controller.set_preset("5", "gate")  # ipycam's SetPreset answer cannot be parsed (see the docstring)
        await ptz.goto_home()
        home = (controller.state.pan, controller.state.tilt)
        await ptz.goto_preset("5")
        return moved, home
    moved, home = run(port, steps)
    assert moved == (0.4, -0.2) and home == (0.0, 0.0)
    assert (round(controller.state.pan, 3), round(controller.state.tilt, 3)) == (0.4, -0.2)
