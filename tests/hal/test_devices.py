"""Tests for the device listing behind `nvr devices` (hal.devices), over fake /dev, /sys and /proc folders."""
from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

from hal.devices import (devices_text, list_audio_capture, list_capture_devices, list_devices, list_serial_ports,
                         status_text)
from hal.video.v4l2_device import DeviceInfo, InputInfo

ROOT = Path(__file__).resolve().parents[2]


class FakeCard:
    """The V4l2Device methods the listing calls, for a two-input analog card (or another node kind)."""

    def __init__(self, path: str, *, info: DeviceInfo | None = None, status: int = 0):
        self.path = path
        self._info = info or DeviceInfo("tw686x", "TW6869", "PCI:0000:01:00.0", True, False, True)
        self._status = status
        self.closed = False

    def info(self):
        return self._info

    def get_input(self):
        return 1

    def inputs(self):
        return [InputInfo(0, "Composite 0", "camera", 0xB0FF, 0, True),
                InputInfo(1, "Composite 1", "camera", 0xB0FF, self._status, True)]

    def standards(self):
        return [("PAL", 0xFF), ("NTSC", 0xB000)]

    def capture_formats(self):
        return [("UYVY", "UYVY 4:2:2"), ("RGB3", "24-bit RGB 8-8-8")]

    def frame_sizes(self, fourcc):
        raise OSError(errno.ENOTTY, "Inappropriate ioctl")  # analog cards size by the standard

    def close(self):
        self.closed = True


def fake_dev(tmp_path: Path, *names: str) -> Path:
    dev = tmp_path / "dev"
    (dev / "v4l" / "by-path").mkdir(parents=True)
    for name in names:
        (dev / name).touch()
    return dev


# --- capture devices --------------------------------------------------------------------------

def test_capture_devices_are_listed_with_links_inputs_standards_and_formats(tmp_path):
    dev = fake_dev(tmp_path, "video0", "video1", "video10")
    (dev / "v4l" / "by-path" / "pci-0000:01:00.0-video-index0").symlink_to("../../video0")
    cards = {}

    def open_device(path):
        info = DeviceInfo("uvcvideo", "Cam", "usb-1", False, False, True) if path.endswith("video1") else None
        cards[path] = FakeCard(path, info=info, status=0x2)
        return cards[path]

    entries = list_capture_devices(dev_dir=dev, open_device=open_device)

    assert [entry["path"] for entry in entries] == [str(dev / "video0"), str(dev / "video1"), str(dev / "video10")]
    first = entries[0]
    assert first["links"] == [str(dev / "v4l" / "by-path" / "pci-0000:01:00.0-video-index0")]
    assert (first["driver"], first["card"], first["bus_info"]) == ("tw686x", "TW6869", "PCI:0000:01:00.0")
    assert first["inputs"][1] == {"index": 1, "name": "Composite 1", "type": "camera", "selected": True,
                                  "standards": "PAL, NTSC", "status_flags": 2, "signal": "no signal"}
    assert first["inputs"][0]["signal"] is None  # drivers report status for the selected input only
    assert first["standards"] == ["PAL", "NTSC"]
    assert first["formats"] == [{"fourcc": "UYVY", "description": "UYVY 4:2:2", "usable": True, "sizes": []},
                                {"fourcc": "RGB3", "description": "24-bit RGB 8-8-8", "usable": False, "sizes": []}]
    assert entries[1]["note"] == "not a video capture node (metadata, output or codec)"
    assert all(card.closed for card in cards.values())


def test_a_device_that_cannot_be_opened_is_listed_with_the_reason(tmp_path):
    dev = fake_dev(tmp_path, "video0")

    def refuse(path):
        raise PermissionError(errno.EACCES, "Permission denied")

    [entry] = list_capture_devices(dev_dir=dev, open_device=refuse)
    assert entry["error"] == f"no permission to open {dev / 'video0'}; add your user to the 'video' group"
    assert "no permission" in devices_text({"capture": [entry], "serial": [], "audio": []})


def test_the_text_shows_what_a_config_needs(tmp_path):
    dev = fake_dev(tmp_path, "video0")
    report = {"capture": list_capture_devices(dev_dir=dev, open_device=FakeCard), "serial": [], "audio": []}

    text = devices_text(report)

    assert f"  {dev / 'video0'}  tw686x 'TW6869'  bus PCI:0000:01:00.0" in text
    assert "      1  'Composite 1'  camera  PAL, NTSC  signal: ok" in text
    assert "      0  'Composite 0'  camera  PAL, NTSC  not selected" in text
    assert "      UYVY (UYVY 4:2:2): sizes set by the standard" in text
    assert "    other formats (not used): RGB3" in text


def test_input_status_flags_read_as_words():
    assert status_text(0) == "ok"
    assert status_text(0x2 | 0x10000) == "no signal, no sync"


# --- serial ports -----------------------------------------------------------------------------

def _tty(sys_dir: Path, name: str, *, uart_type: str | None = None, driver: str | None = None,
         product: str | None = None) -> None:
    folder = sys_dir / "class" / "tty" / name
    folder.mkdir(parents=True)
    if uart_type is not None:
        (folder / "type").write_text(uart_type + "\n")
    if driver:
        device = sys_dir / "devices" / name / "port"
        (device.parent / "driver").parent.mkdir(parents=True, exist_ok=True)
        device.mkdir(parents=True)
        (sys_dir / "bus" / driver).mkdir(parents=True, exist_ok=True)
        (device.parent / "driver").symlink_to(sys_dir / "bus" / driver)
        if product:
            (device.parent / "product").write_text(product + "\n")
        (folder / "device").symlink_to(device)


def test_serial_ports_come_from_sysfs_without_pyserial(tmp_path):
    sys_dir, dev = tmp_path / "sys", fake_dev(tmp_path, "ttyS0", "ttyS1", "ttyUSB0", "ttyACM0", "tty1")
    _tty(sys_dir, "ttyS0", uart_type="4", driver="serial8250")
    _tty(sys_dir, "ttyS1", uart_type="0", driver="serial8250")  # a placeholder: no UART there
    _tty(sys_dir, "ttyUSB0", driver="ftdi_sio", product="FT232R USB UART")
    _tty(sys_dir, "ttyACM0", driver="cdc_acm")
    _tty(sys_dir, "ttyAMA0", uart_type="1", driver="uart-pl011")  # no /dev node: not there
    _tty(sys_dir, "tty1")

    ports = list_serial_ports(sys_tty_dir=sys_dir / "class" / "tty", dev_dir=dev, use_pyserial=False)

    assert ports == [
        {"path": str(dev / "ttyACM0"), "driver": "cdc_acm", "description": None},
        {"path": str(dev / "ttyS0"), "driver": "serial8250", "description": None},
        {"path": str(dev / "ttyUSB0"), "driver": "ftdi_sio", "description": "FT232R USB UART"},
    ]


# --- ALSA -------------------------------------------------------------------------------------

def test_alsa_capture_devices_are_listed_as_hw_card_device(tmp_path):
    asound = tmp_path / "asound"
    (asound / "card1").mkdir(parents=True)
    (asound / "card1" / "id").write_text("Device\n")
    (asound / "cards").write_text(
        " 0 [PCH            ]: HDA-Intel - HDA Intel PCH\n"
        "                      HDA Intel PCH at 0xf7f10000 irq 32\n"
        " 1 [Device         ]: USB-Audio - USB Audio Device\n"
        "                      C-Media USB Audio Device at usb-0000:00:14.0-2, full speed\n")
    (asound / "pcm").write_text(
        "00-00: ALC892 Analog : ALC892 Analog : playback 1 : capture 1\n"
        "00-03: HDMI 0 : HDMI 0 : playback 1\n"
        "01-00: USB Audio : USB Audio : playback 1 : capture 1\n")

    assert list_audio_capture(asound_dir=asound) == [
        {"device": "hw:0,0", "name": "ALC892 Analog", "card": "HDA-Intel - HDA Intel PCH", "card_id": "hw:CARD=0,DEV=0"},
        {"device": "hw:1,0", "name": "USB Audio", "card": "USB-Audio - USB Audio Device",
         "card_id": "hw:CARD=Device,DEV=0"},
    ]


# --- nothing at all ---------------------------------------------------------------------------

def test_a_machine_without_devices_says_so_for_each_kind(tmp_path):
    report = list_devices(dev_dir=tmp_path / "dev", sys_tty_dir=tmp_path / "sys", asound_dir=tmp_path / "asound",
                          use_pyserial=False)

    assert report == {"capture": [], "serial": [], "audio": []}
    text = devices_text(report)
    assert "no capture devices found (/dev/video*)" in text
    assert "no serial ports found" in text
    assert "no audio capture devices found" in text


def test_nvr_devices_prints_text_or_json_without_a_traceback():
    for args in ([], ["--json"]):
        result = subprocess.run([sys.executable, "-m", "appliance.cli", "devices", *args], cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    assert set(json.loads(result.stdout)) == {"capture", "serial", "audio"}
