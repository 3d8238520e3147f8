"""ONVIF PTZ (drivers.onvif.ptz) against a SOAP responder replaying a camera's PTZ answers: the requests
that reach the camera, byte by byte, for moves, stops, presets and home; what the configuration offers."""
from __future__ import annotations

import asyncio

import pytest
from onvif import ONVIFCamera

from drivers.onvif.ptz import NoSuchPreset, OnvifPtz, PtzUnsupported
from support.onvif_events import PTZ_NS, OnvifResponder

SCHEMA_NS = "http://www.onvif.org/ver10/schema"


async def connected(responder: OnvifResponder, profile: str | None = None) -> tuple[ONVIFCamera, OnvifPtz]:
    camera = ONVIFCamera("127.0.0.1", responder.port, "admin", "secret", no_cache=True)
    await camera.update_xaddrs()
    ptz = OnvifPtz(camera, profile)
    await ptz.open()
    return camera, ptz


def run(responder: OnvifResponder, steps, profile: str | None = None):
    async def main():
        camera, ptz = await connected(responder, profile)
        try:
            return await steps(ptz)
        finally:
            await camera.close()
    return asyncio.run(main())


def only(responder: OnvifResponder, action: str):
    found = [r for r in responder.requests if r.action == action]
    assert len(found) == 1, responder.actions()
    return found[0].soap_body()


@pytest.fixture
def camera():
    with OnvifResponder() as responder:
        yield responder


def test_capabilities_come_from_the_profile_ptz_configuration_and_its_options(camera):
    caps = run(camera, lambda ptz: asyncio.sleep(0, ptz.capabilities))
    assert (caps.profile, caps.configuration, caps.node) == ("Profile_1", "PTZToken", "PTZNodeToken")
    assert caps.continuous_pan_tilt and caps.continuous_zoom and caps.relative_pan_tilt and caps.absolute
    assert not caps.relative_zoom
    options = only(camera, "GetConfigurationOptions")
    assert options.findtext(f"{{{PTZ_NS}}}ConfigurationToken") == "PTZToken"


def test_a_named_profile_is_the_one_steered(camera):
    async def steps(ptz):
        await ptz.stop()
    run(camera, steps, profile="Profile_2")
    assert only(camera, "Stop").findtext(f"{{{PTZ_NS}}}ProfileToken") == "Profile_2"


def test_continuous_move_sends_the_velocities_and_stop_stops_both_axes(camera):
    async def steps(ptz):
        await ptz.continuous_move(pan=0.5, tilt=-0.25)
        await ptz.continuous_move(zoom=2.0)  # clamped to the generic space's 1.0
        await ptz.stop()
    run(camera, steps)
    moves = [r.soap_body() for r in camera.requests if r.action == "ContinuousMove"]
    first = moves[0].find(f"{{{PTZ_NS}}}Velocity")
    assert first.find(f"{{{SCHEMA_NS}}}PanTilt").attrib == {"x": "0.5", "y": "-0.25"}
    assert first.find(f"{{{SCHEMA_NS}}}Zoom").attrib == {"x": "0.0"}
    assert moves[0].findtext(f"{{{PTZ_NS}}}ProfileToken") == "Profile_1"
    assert moves[0].findtext(f"{{{PTZ_NS}}}Timeout") in ("PT60S", "PT1M")  # the camera stops by itself if we vanish
    assert moves[1].find(f"{{{PTZ_NS}}}Velocity/{{{SCHEMA_NS}}}Zoom").attrib == {"x": "1.0"}
    stop = only(camera, "Stop")
    assert (stop.findtext(f"{{{PTZ_NS}}}PanTilt"), stop.findtext(f"{{{PTZ_NS}}}Zoom")) == ("true", "true")


def test_a_relative_move_reaches_the_camera_where_the_configuration_offers_it(camera):
    async def steps(ptz):
        await ptz.relative_move(pan=0.1, tilt=0.2)
    run(camera, steps)
    translation = only(camera, "RelativeMove").find(f"{{{PTZ_NS}}}Translation/{{{SCHEMA_NS}}}PanTilt")
    assert translation.attrib == {"x": "0.1", "y": "0.2"}


def test_a_relative_move_not_offered_is_refused_before_anything_is_sent():
    with OnvifResponder(relative_move=False) as camera:
        async def steps(ptz):
            with pytest.raises(PtzUnsupported, match="no relative move"):
                await ptz.relative_move(pan=0.1)
        run(camera, steps)
        assert "RelativeMove" not in camera.actions()


def test_presets_are_listed_gone_to_stored_and_removed_by_token(camera):
    async def steps(ptz):
        listed = await ptz.presets()
        await ptz.goto_preset_number(2)
        stored = await ptz.set_preset_number(7)
        await ptz.remove_preset_number(1)
        return listed, stored, await ptz.presets()
    listed, stored, after = run(camera, steps)
    assert [(p.token, p.name) for p in listed] == [("1", "Door"), ("2", "Gate")]
    assert only(camera, "GotoPreset").findtext(f"{{{PTZ_NS}}}PresetToken") == "2"
    set_preset = only(camera, "SetPreset")
    assert (set_preset.findtext(f"{{{PTZ_NS}}}PresetToken"), set_preset.findtext(f"{{{PTZ_NS}}}PresetName")) == \
        ("7", "7")
    assert stored == "7"
    assert only(camera, "RemovePreset").findtext(f"{{{PTZ_NS}}}PresetToken") == "1"
    assert [p.token for p in after] == ["2", "7"]


def test_a_preset_number_maps_to_a_camera_preset_named_so_when_no_token_matches(camera):
    camera.state.presets = {"Preset_A": "3", "Preset_B": "Gate"}

    async def steps(ptz):
        await ptz.goto_preset_number(3)
        with pytest.raises(NoSuchPreset, match="no preset 4 .*'Preset_A' \\(3\\)"):
            await ptz.goto_preset_number(4)
    run(camera, steps)
    assert only(camera, "GotoPreset").findtext(f"{{{PTZ_NS}}}PresetToken") == "Preset_A"


def test_home_goes_to_the_home_position(camera):
    async def steps(ptz):
        await ptz.goto_home()
    run(camera, steps)
    assert only(camera, "GotoHomePosition").findtext(f"{{{PTZ_NS}}}ProfileToken") == "Profile_1"


def test_every_ptz_request_carries_a_password_digest_not_the_password(camera):
    async def steps(ptz):
        await ptz.stop()
    run(camera, steps)
    request = next(r for r in camera.requests if r.action == "Stop").text()
    assert "#PasswordDigest" in request and "secret" not in request
