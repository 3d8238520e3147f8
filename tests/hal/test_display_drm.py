"""The KMS/DRM dumb-buffer display: ioctl numbers and structures as the kernel has them, mode and output
choice, pixel packing, and clear refusals where there is no device. Drawing on a real KMS device is
proven by image-build/smoke (QEMU's virtio-gpu, screendumps); this machine has none."""
from __future__ import annotations

import numpy as np
import pytest

from base.clock import RealClocks
from hal.display import DisplayRequest, DisplayUnavailable, open_display
from hal.display import drm
from hal.display.drm import DrmDisplay, KmsConnector, KmsMode, choose_mode, pick_connector, write_xrgb8888


def test_ioctl_numbers_are_the_kernels():
    # The values of DRM_IOCTL_MODE_* in Linux's include/uapi/drm/drm.h, as compiled for every 64-bit and
    # 32-bit ARM and x86 target (the structures have fixed-width fields only).
    assert drm.IOCTL_GETRESOURCES == 0xC04064A0
    assert drm.IOCTL_SETCRTC == 0xC06864A2
    assert drm.IOCTL_GETENCODER == 0xC01464A6
    assert drm.IOCTL_GETCONNECTOR == 0xC05064A7
    assert drm.IOCTL_ADDFB == 0xC01C64AE
    assert drm.IOCTL_RMFB == 0xC00464AF
    assert drm.IOCTL_PAGE_FLIP == 0xC01864B0
    assert drm.IOCTL_DIRTYFB == 0xC01864B1
    assert drm.IOCTL_CREATE_DUMB == 0xC02064B2
    assert drm.IOCTL_MAP_DUMB == 0xC01064B3
    assert drm.IOCTL_DESTROY_DUMB == 0xC00464B4
    assert drm.MODEINFO.size == 68


def modeinfo(width, height, *, hz=60, preferred=False, interlaced=False, name=b""):
    htotal, vtotal = width + 160, height + 45
    clock_khz = round(htotal * vtotal * hz / 1000 / (2 if interlaced else 1))
    return drm.MODEINFO.pack(clock_khz, width, width + 40, width + 80, htotal, 0, height, height + 5, height + 10,
                             vtotal, 0, hz, drm.MODE_FLAG_INTERLACE if interlaced else 0,
                             drm.MODE_TYPE_PREFERRED if preferred else 0, name or f"{width}x{height}".encode())


def mode(width, height, **kwargs) -> KmsMode:
    return KmsMode.parse(modeinfo(width, height, **kwargs))


def test_a_modeinfo_parses_to_its_size_and_refresh_and_keeps_its_bytes_for_setcrtc():
    raw = modeinfo(1920, 1080, hz=50, preferred=True)
    parsed = KmsMode.parse(raw)
    assert (parsed.width, parsed.height, parsed.preferred, parsed.interlaced) == (1920, 1080, True, False)
    assert parsed.refresh_hz == pytest.approx(50, abs=0.1)
    assert parsed.raw == raw
    assert KmsMode.parse(modeinfo(1920, 1080, hz=60, interlaced=True)).refresh_hz == pytest.approx(60, abs=0.1)


def test_the_monitors_preferred_mode_is_chosen_unless_the_config_asks_otherwise():
    modes = [mode(1920, 1080, hz=60), mode(1280, 720, hz=60, preferred=True), mode(1280, 720, hz=50),
             mode(1920, 1080, hz=60, interlaced=True), mode(720, 576, hz=50)]
    preferred = choose_mode(modes, size=None, refresh_hz=None)
    assert (preferred.width, preferred.height, preferred.preferred) == (1280, 720, True)
    chosen = choose_mode(modes, size=(1920, 1080), refresh_hz=None)
    assert (chosen.width, chosen.interlaced) == (1920, False)  # progressive before interlaced
    assert choose_mode(modes, size=(1280, 720), refresh_hz=50).refresh_hz == pytest.approx(50, abs=0.1)


def test_a_size_the_monitor_does_not_offer_is_refused_naming_what_it_offers():
    with pytest.raises(DisplayUnavailable, match=r"no 800x600 mode \(it offers: 1280x720, 1920x1080\)"):
        choose_mode([mode(1920, 1080), mode(1280, 720)], size=(800, 600), refresh_hz=None)


def test_hdmi_is_driven_before_other_connected_outputs():
    dsi = KmsConnector(31, 16, 0, (30,), (mode(800, 480),))
    hdmi2 = KmsConnector(40, 11, 0, (39,), (mode(1920, 1080),))
    hdmi1 = KmsConnector(35, 11, 0, (34,), (mode(1920, 1080),))
    assert pick_connector([dsi, hdmi2, hdmi1]) is hdmi1
    assert pick_connector([dsi]) is dsi
    assert pick_connector([KmsConnector(35, 11, 0, (), ())]) is None


def test_frames_are_written_as_xrgb8888_with_the_pitch_left_alone():
    frame = np.zeros((2, 3, 3), dtype=np.uint8)
    frame[0, 0] = (10, 20, 30)
    frame[1, 2] = (255, 128, 1)
    rows = np.full((2, 16), 0xEE, dtype=np.uint8)  # pitch 16 bytes: 4 pixels, one past the frame's width
    rows[:, :12] = 0
    write_xrgb8888(frame, rows)
    assert rows[0, 0:4].tolist() == [30, 20, 10, 0]  # B, G, R, X in memory
    assert rows[1, 8:12].tolist() == [1, 128, 255, 0]
    assert rows[:, 12:].tolist() == [[0xEE] * 4] * 2


def test_no_kms_device_is_unavailable_and_auto_goes_on_to_the_next_backend(tmp_path):
    with pytest.raises(DisplayUnavailable, match="no KMS device under"):
        DrmDisplay(dev_root=tmp_path, drm_root=tmp_path, clocks=RealClocks())
    not_a_card = tmp_path / "card0"
    not_a_card.write_bytes(b"\0" * 64)
    with pytest.raises(DisplayUnavailable, match="card0: cannot set a mode"):
        DrmDisplay(dev_root=tmp_path, drm_root=tmp_path, clocks=RealClocks())
    display = open_display(DisplayRequest(backend="auto", size=(320, 240), drm_root=tmp_path / "nodrm",
                                          fb_path=tmp_path / "nofb", dri_path=tmp_path, env={}), clocks=RealClocks())
    assert display.name == "offscreen"
