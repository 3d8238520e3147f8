"""The web's PTZ and alarm-output controls drive the appliance's real services: a simulated dome on a pty moves."""
from __future__ import annotations

import pytest

from appliance.ptz.service import PtzService
from appliance.web.services import WebPtz
from base.clock import RealClocks
from support.ptz import DomeRig, ptz_config


@pytest.fixture
def dome_and_web():
    rig = DomeRig("pelco-d")
    service = PtzService(ptz_config(rig.path, "pelco-d"), clocks=RealClocks())
    service.start()
    yield rig, WebPtz(service)
    service.shutdown()
    rig.close()


def test_browser_speeds_become_pelco_directions_and_speeds_on_the_wire(dome_and_web):
    rig, web = dome_and_web
    assert web.has_channel(1) and not web.has_channel(2)

    web.move(1, pan=-0.5, tilt=0.0)  # half speed left: 0x20 of 0x3F
    web.stop(1)
    web.goto_preset(1, 1)

    rig.wait_frames(3)
    assert rig.bus.received == [bytes.fromhex("FF 01 00 04 20 00 25"), bytes.fromhex("FF 01 00 00 00 00 01"),
                                bytes.fromhex("FF 01 00 07 00 01 09")]


def test_zoom_and_presets_reach_the_dome_state(dome_and_web):
    rig, web = dome_and_web
    web.set_preset(1, 4)
    web.zoom(1, speed=1.0)
    web.zoom(1, speed=0.0)  # the browser's button released: stop
    rig.wait_commands(3)
    state = rig.dome().state()
    assert 4 in state.presets
    assert web.state(1) == {"tour": None, "tours": []}
