"""A thin V4L2 capture device over linuxpy: the one place in the project where V4L2 ioctls happen.

linuxpy supplies the ctypes structs and small functions over a file descriptor; `V4l2Device` keeps
only what capture and `nvr devices` need and returns plain values (fourcc strings, ints, dataclasses),
so `hal.video.v4l2` can be tested against a fake with the same few methods. Errors are the kernel's
own `OSError`s (ENODEV, EBUSY, EINVAL ...); callers translate them into messages.
"""
from __future__ import annotations

import ctypes
import logging
import select
from dataclasses import dataclass
from fractions import Fraction

from linuxpy.ioctl import ioctl
from linuxpy.video import device as lp
from linuxpy.video import raw

# linuxpy logs every open, close and buffer allocation at INFO; that is noise in the appliance's log.
logging.getLogger("linuxpy").setLevel(logging.WARNING)
log = logging.getLogger("nvr.v4l2")

FIELD_NAMES = {field.value: field.name.lower() for field in raw.Field}


@dataclass(frozen=True)
class DeviceInfo:
    """What VIDIOC_QUERYCAP says about a device node."""

    driver: str
    card: str
    bus_info: str
    capture: bool  # single-planar video capture, the only kind this project streams from
    capture_mplane: bool
    streaming: bool


@dataclass(frozen=True)
class InputInfo:
    """One video input (connector) of a device, as VIDIOC_ENUMINPUT reports it."""

    index: int
    name: str
    kind: str  # "camera" (composite, S-Video, HDMI, sensor) or "tuner"
    std_mask: int  # analog standards the input accepts; 0 if it has none (webcam, HDMI)
    status: int  # V4L2_IN_ST_* flags; meaningful for the selected input
    has_std: bool  # VIDIOC_S_STD applies to this input


@dataclass(frozen=True)
class ActiveFormat:
    """The capture format the driver settled on after VIDIOC_S_FMT."""

    width: int
    height: int
    fourcc: str
    bytes_per_line: int
    size_bytes: int
    field: str  # "none", "interlaced", "alternate", ... (V4L2 field order, lower case)


@dataclass(frozen=True)
class Buffer:
    """One dequeued frame: a copy of its bytes and the driver's bookkeeping."""

    data: bytes
    flags: int  # V4L2_BUF_FLAG_*
    timestamp_us: int  # as the driver stamped it; its clock is given by the flags
    sequence: int


def fourcc_text(code: int) -> str:
    """0x56595559 -> 'YUYV'; a big-endian variant gets '-BE', as v4l2-ctl shows it."""
    text = "".join(chr((code >> shift) & 0xFF) for shift in (0, 8, 16)) + chr((code >> 24) & 0x7F)
    return text.rstrip() + ("-BE" if code & (1 << 31) else "")


class V4l2Device:
    """An open /dev/video* node (non-blocking), with mmap streaming.

    Not thread-safe: one thread uses it at a time (`V4l2Capture` serialises access with a lock).
    """

    def __init__(self, path: str):
        self.path = path
        self._device = lp.Device(path, read_write=True, blocking=False)
        self._device.open()
        self._capture: lp.VideoCapture | None = None

    def fileno(self) -> int:
        return self._device.fileno()

    def close(self) -> None:
        try:
            self.stop_streaming()
        finally:
            self._device.close()

    # --- description -----------------------------------------------------------------------

    def info(self) -> DeviceInfo:
        caps = lp.read_capabilities(self._device)
        device_caps = lp.Capability(caps.device_caps if caps.capabilities & lp.Capability.DEVICE_CAPS
                                    else caps.capabilities)
        return DeviceInfo(driver=caps.driver.decode(errors="replace"), card=caps.card.decode(errors="replace"),
                          bus_info=caps.bus_info.decode(errors="replace"),
                          capture=lp.Capability.VIDEO_CAPTURE in device_caps,
                          capture_mplane=lp.Capability.VIDEO_CAPTURE_MPLANE in device_caps,
                          streaming=lp.Capability.STREAMING in device_caps)

    def inputs(self) -> list[InputInfo]:
        return [_input_info(item) for item in lp.iter_read(self._device, lp.IOC.ENUMINPUT, raw.v4l2_input())]

    def input_status(self, index: int) -> int:
        """The V4L2_IN_ST_* flags of input `index` (drivers fill them in for the selected input)."""
        item = raw.v4l2_input()
        item.index = index
        ioctl(self._device, lp.IOC.ENUMINPUT, item)
        return int(item.status)

    def get_input(self) -> int:
        return lp.get_input(self._device)

    def set_input(self, index: int) -> None:
        lp.set_input(self._device, index)

    def set_standard(self, mask: int) -> None:
        lp.set_std(self._device, ctypes.c_uint64(mask))

    def get_standard(self) -> int:
        return int(lp.get_std(self._device))

    def standards(self) -> list[tuple[str, int]]:
        """(name, mask) of each standard the selected input offers, e.g. ('PAL', 0xff)."""
        return [(std.name, int(std.id)) for std in lp.iter_read_video_standards(self._device)]

    def capture_formats(self) -> list[tuple[str, str]]:
        """(fourcc, description) of each single-planar capture format.

        Enumerated for VIDEO_CAPTURE only: linuxpy's `info.formats` also walks VIDEO_OVERLAY and fails
        on devices that have it (vivid does).
        """
        item = raw.v4l2_fmtdesc()
        item.type = lp.BufferType.VIDEO_CAPTURE
        return [(fourcc_text(fmt.pixelformat), fmt.description.decode(errors="replace"))
                for fmt in lp.iter_read(self._device, lp.IOC.ENUM_FMT, item)]

    def frame_sizes(self, fourcc: str) -> list[str]:
        """'720x576' for each discrete size, or one 'W1x H1 - W2xH2' range for stepwise ones."""
        sizes = []
        for size in lp.iter_read_frame_sizes(self._device, raw.v4l2_fourcc(*fourcc.ljust(4))):
            info = size.info
            if size.type == lp.FrameSizeType.DISCRETE:
                sizes.append(f"{info.width}x{info.height}")
            else:
                sizes.append(f"{info.min_width}x{info.min_height} - {info.max_width}x{info.max_height}")
        return sizes

    # --- format and rate -------------------------------------------------------------------

    def get_format(self) -> ActiveFormat:
        return _active_format(lp.get_raw_format(self._device, lp.BufferType.VIDEO_CAPTURE))

    def set_format(self, width: int, height: int, fourcc: str, *, interlaced: bool) -> ActiveFormat:
        """VIDIOC_S_FMT; `interlaced` asks for both fields woven into one buffer (analog inputs)."""
        fmt = raw.v4l2_format()
        fmt.type = lp.BufferType.VIDEO_CAPTURE
        pix = fmt.fmt.pix
        pix.width, pix.height = width, height
        pix.pixelformat = raw.v4l2_fourcc(*fourcc.ljust(4))
        pix.field = raw.Field.INTERLACED if interlaced else raw.Field.ANY
        lp.set_raw_format(self._device, fmt)
        return _active_format(fmt)

    def set_fps(self, fps: float) -> None:
        lp.set_fps(self._device, lp.BufferType.VIDEO_CAPTURE, Fraction(fps).limit_denominator(1001))

    def get_fps(self) -> Fraction:
        return lp.get_fps(self._device, lp.BufferType.VIDEO_CAPTURE)

    # --- controls --------------------------------------------------------------------------

    def set_control(self, name: str, value: int | str) -> None:
        """Set a control by its name as v4l2-ctl shows it ('standard_signal_mode') or as the driver
        names it ('Standard Signal Mode'); a menu control also takes the menu item's text."""
        control = self._find_control(name)
        if isinstance(value, str) and hasattr(control, "data"):
            matches = [index for index, text in control.data.items() if str(text).lower() == value.lower()]
            if not matches:
                raise ValueError(f"control {name!r} has no item {value!r}; it has: {list(control.data.values())}")
            value = matches[0]
        control.value = value

    def _find_control(self, name: str):
        wanted = name.lower().replace(" ", "_")
        for control in self._device.controls.values():
            if control.config_name == wanted or control.name.lower() == name.lower():
                return control
        raise KeyError(f"{self.path} has no control named {name!r}")

    # --- streaming -------------------------------------------------------------------------

    def start_streaming(self, buffers: int) -> None:
        """Allocate and mmap `buffers` buffers, queue them all and start the stream."""
        capture = lp.VideoCapture(self._device, size=buffers, buffer_type=lp.MemoryMap)
        capture.open()
        self._capture = capture

    def stop_streaming(self) -> None:
        """Stop the stream and free its buffers; never raises (a vanished device cannot be stopped)."""
        capture, self._capture = self._capture, None
        if capture is None:
            return
        source = capture.buffer
        try:
            capture.stream_off()
        except OSError as exc:
            log.debug("%s: VIDIOC_STREAMOFF failed: %s", self.path, exc)
        for mapping in (source.buffers or []) if source is not None else []:
            mapping.close()
        if source is not None:
            source.buffers = None
        try:
            lp.free_buffers(self._device, lp.BufferType.VIDEO_CAPTURE, lp.Memory.MMAP)
        except OSError as exc:
            log.debug("%s: freeing the buffers failed: %s", self.path, exc)
        capture.buffer = None

    def wait(self, timeout_s: float, wake_fd: int | None = None) -> bool:
        """Block until a frame is ready (True), `wake_fd` becomes readable or the timeout passes (False).

        A device that has gone away reports itself ready; the following `dequeue` then raises ENODEV.
        """
        fds = [self._device.fileno()] + ([wake_fd] if wake_fd is not None else [])
        readable, _, errored = select.select(fds, [], fds, timeout_s)
        return self._device.fileno() in readable or self._device.fileno() in errored

    def dequeue(self) -> Buffer:
        """Take the next filled buffer, copy its bytes out and give the buffer back to the driver."""
        if self._capture is None:
            raise RuntimeError("dequeue() before start_streaming()")
        data, buff = self._capture.buffer.raw_grab()
        timestamp_us = buff.timestamp.secs * 1_000_000 + buff.timestamp.usecs
        return Buffer(data=bytes(data), flags=int(buff.flags), timestamp_us=timestamp_us, sequence=int(buff.sequence))


def _active_format(fmt: raw.v4l2_format) -> ActiveFormat:
    pix = fmt.fmt.pix
    return ActiveFormat(width=pix.width, height=pix.height, fourcc=fourcc_text(pix.pixelformat),
                        bytes_per_line=pix.bytesperline, size_bytes=pix.sizeimage,
                        field=FIELD_NAMES.get(pix.field, str(pix.field)))


def _input_info(item: raw.v4l2_input) -> InputInfo:
    return InputInfo(index=int(item.index), name=item.name.decode(errors="replace"),
                     kind="tuner" if item.type == lp.InputType.TUNER else "camera",
                     std_mask=int(item.std), status=int(item.status),
                     has_std=bool(item.capabilities & lp.InputCapabilities.STD) or bool(item.std))
