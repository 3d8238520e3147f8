"""A `type: onvif` channel in the appliance: documented in default.yaml, built as ONVIF-resolved RTSP
sources, treated as a network camera by the monitor, motion and audio checks; and a box without ONVIF
cameras never loads the ONVIF library."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from appliance.config.model import ConfigError, parse_config
from appliance.monitor import channel_infos
from appliance.sources import channel_sources
from base.clock import SimulatedClocks

ROOT = Path(__file__).resolve().parents[2]
ONVIF_CHANNEL = ("channels:\n  - id: 3\n    name: Drive\n    source: {type: onvif, url: 'http://10.0.0.5', "
                 "username: admin, password: pw, profile: P1, sub_profile: P2}\n")


def test_default_yaml_documents_an_onvif_channel_that_is_valid_once_uncommented():
    sys.path.insert(0, str(Path(__file__).parent))
    from test_config import uncomment_example

    template = (ROOT / "appliance" / "default.yaml").read_text()
    config = parse_config(uncomment_example(template, "  # - id: 4"))

    source = config.channels[1].source
    assert (source.type, source.url, source.profile, source.sub_profile) == ("onvif", "http://192.168.1.65",
                                                                             "Profile_1", "Profile_2")
    rtsp = parse_config(uncomment_example(template, "  # - id: 2")).channels[1].source
    assert rtsp.onvif.url == "http://192.168.1.64" and rtsp.onvif.username == "admin"


def test_an_onvif_channel_records_main_and_sub_through_onvif_resolved_sources():
    channel = parse_config(ONVIF_CHANNEL).channels[0]

    streams = channel_sources(channel, clocks=SimulatedClocks())

    assert sorted(streams) == ["main", "sub"]
    assert [type(s).__name__ for s in streams.values()] == ["OnvifRtspCamera"] * 2
    assert streams["main"].url == "http://10.0.0.5/onvif/device_service" and streams["sub"].stream == "sub"


def test_the_monitor_and_motion_see_an_onvif_channel_as_a_network_camera_with_a_sub_stream():
    [info] = channel_infos(parse_config(ONVIF_CHANNEL))

    assert info.raw is False and info.has_sub is True


def test_an_analog_audio_device_on_an_onvif_channel_is_refused():
    with pytest.raises(ConfigError, match="audio.device"):
        parse_config(ONVIF_CHANNEL.replace("sub_profile: P2}", "sub_profile: P2}\n    audio: {device: 'hw:1,0'}"))


def test_a_box_without_onvif_cameras_never_imports_the_onvif_library():
    code = ("import sys; from appliance.config.model import default_config; from appliance.sources import "
            "channel_sources; import appliance.supervisor, appliance.cli, appliance.web.app; "
            "from base.clock import SimulatedClocks; "
            "[channel_sources(c, clocks=SimulatedClocks()) for c in default_config().channels]; "
            "print(sorted(m for m in ('onvif', 'zeep', 'aiohttp', 'lxml') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})

    assert done.stdout.strip() == "[]", done.stderr
