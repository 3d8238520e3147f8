"""The KMS/DRM display without a GPU stack: the kernel's mode setting API and two dumb buffers.

This is how the kernel's own console draws on a KMS device, and it needs nothing in user space but
ioctls: no Mesa, no EGL/GBM, no SDL. We set the monitor's mode on a CRTC, write each RGB frame into
the buffer that is not on screen (packed to XRGB8888) and page-flip to it, so a frame is never seen
half-drawn. Drivers that cannot page-flip get the buffer set with SETCRTC and flushed with DIRTYFB.

Why not SDL's kmsdrm: SDL draws through EGL/GLES on GBM. On a board or VM without a 3D driver that is
Mesa's software renderer, and under QEMU's virtio-gpu and bochs-display it puts only glClear on the
screen: every textured or filled draw is lost (measured; see design/monitor.md). A display that is
a memory copy and an ioctl has no such layer to go wrong, and costs no GPU memory or child process.

Only structures with fixed-width fields are used (the same layout on arm64, armhf and x86-64).
"""
from __future__ import annotations

import errno
import fcntl
import mmap
import os
import select
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from base.clock import Clocks
from hal.display import (DEFAULT_REFRESH_HZ, DisplayLost, DisplayMode, DisplayUnavailable, HotplugWatch, InputEvent)

HOTPLUG_CHECK_S = 1.0
FLIP_TIMEOUT_S = 5.0  # a flip waits for the next vblank: 1/60 s on a monitor, never seconds


def _iowr(number: int, size: int) -> int:
    """The kernel's _IOWR('d', number, size) for a DRM ioctl."""
    return (3 << 30) | (size << 16) | (ord("d") << 8) | number


# Structures from the kernel's include/uapi/drm/drm_mode.h, as struct formats.
MODEINFO = struct.Struct("<I10HII I32s")  # clock, h*/v* timings, vrefresh, flags, type, name
CARD_RES = struct.Struct("<4Q8I")
GET_CONNECTOR = struct.Struct("<4Q12I")
GET_ENCODER = struct.Struct("<5I")
CRTC = struct.Struct("<Q7I" + MODEINFO.format[1:])
CREATE_DUMB = struct.Struct("<6IQ")
MAP_DUMB = struct.Struct("<IIQ")
FB_CMD = struct.Struct("<7I")
PAGE_FLIP = struct.Struct("<4IQ")
FB_DIRTY = struct.Struct("<4IQ")
EVENT_HEADER = struct.Struct("<II")

IOCTL_GETRESOURCES = _iowr(0xA0, CARD_RES.size)
IOCTL_SETCRTC = _iowr(0xA2, CRTC.size)
IOCTL_GETENCODER = _iowr(0xA6, GET_ENCODER.size)
IOCTL_GETCONNECTOR = _iowr(0xA7, GET_CONNECTOR.size)
IOCTL_ADDFB = _iowr(0xAE, FB_CMD.size)
IOCTL_RMFB = _iowr(0xAF, 4)
IOCTL_PAGE_FLIP = _iowr(0xB0, PAGE_FLIP.size)
IOCTL_DIRTYFB = _iowr(0xB1, FB_DIRTY.size)
IOCTL_CREATE_DUMB = _iowr(0xB2, CREATE_DUMB.size)
IOCTL_MAP_DUMB = _iowr(0xB3, MAP_DUMB.size)
IOCTL_DESTROY_DUMB = _iowr(0xB4, 4)

CONNECTED = 1
MODE_TYPE_PREFERRED = 1 << 3
MODE_FLAG_INTERLACE = 1 << 4
PAGE_FLIP_EVENT = 0x01
EVENT_FLIP_COMPLETE = 0x02
HDMI_CONNECTOR_TYPES = (11, 12)  # DRM_MODE_CONNECTOR_HDMIA, HDMIB


@dataclass(frozen=True, slots=True)
class KmsMode:
    """One mode a connector offers: its size, refresh, flags and the raw modeinfo SETCRTC takes back."""

    width: int
    height: int
    refresh_hz: float
    preferred: bool
    interlaced: bool
    raw: bytes

    @classmethod
    def parse(cls, raw: bytes) -> KmsMode:
        fields = MODEINFO.unpack(raw)
        clock_khz, hdisplay, htotal, vdisplay, vtotal = fields[0], fields[1], fields[4], fields[6], fields[9]
        flags, kind = fields[12], fields[13]
        interlaced = bool(flags & MODE_FLAG_INTERLACE)
        refresh = clock_khz * 1000 / (htotal * vtotal) if htotal and vtotal else float(fields[11])
        return cls(hdisplay, vdisplay, round(refresh * (2 if interlaced else 1), 2), bool(kind & MODE_TYPE_PREFERRED),
                   interlaced, bytes(raw))


@dataclass(frozen=True, slots=True)
class KmsConnector:
    connector_id: int
    connector_type: int
    encoder_id: int
    encoder_ids: tuple[int, ...]
    modes: tuple[KmsMode, ...]


def choose_mode(modes: tuple[KmsMode, ...] | list[KmsMode], *, size: tuple[int, int] | None,
                refresh_hz: float | None) -> KmsMode:
    """The mode to set, among those of `size` (all if None): progressive before interlaced, then the refresh
    rate nearest `refresh_hz` if one is asked for, then the monitor's preferred mode, then the highest
    refresh rate, then the largest.

    Raises DisplayUnavailable when the monitor offers no mode of the requested size.
    """
    candidates = [m for m in modes if size is None or (m.width, m.height) == tuple(size)]
    if not candidates:
        offered = ", ".join(sorted({f"{m.width}x{m.height}" for m in modes})) or "none"
        raise DisplayUnavailable(f"the monitor offers no {size[0]}x{size[1]} mode (it offers: {offered}); "
                                 "set monitor.size to one of those or leave it out")

    def rank(mode: KmsMode):
        nearest = -abs(mode.refresh_hz - refresh_hz) if refresh_hz else 0.0
        return (not mode.interlaced, nearest, mode.preferred, mode.refresh_hz, mode.width * mode.height)

    return max(candidates, key=rank)


def pick_connector(connectors: list[KmsConnector]) -> KmsConnector | None:
    """The connected output to drive: HDMI before others, then the lowest id; None if none has modes."""
    usable = [c for c in connectors if c.modes]
    usable.sort(key=lambda c: (c.connector_type not in HDMI_CONNECTOR_TYPES, c.connector_id))
    return usable[0] if usable else None


def write_xrgb8888(frame: np.ndarray, rows: np.ndarray) -> None:
    """Write an RGB frame ((h, w, 3) uint8) into buffer rows ((h, pitch) uint8) as XRGB8888, which is
    B, G, R, X in memory. The X bytes are left as they are (zero): three strided copies, no temporaries."""
    height, width = frame.shape[:2]
    pixels = rows[:height].reshape(height, rows.shape[1] // 4, 4)
    pixels[:, :width, 0] = frame[..., 2]
    pixels[:, :width, 1] = frame[..., 1]
    pixels[:, :width, 2] = frame[..., 0]


class _Buffer:
    """One dumb buffer: its handle, framebuffer id and a writable mapping of its rows."""

    def __init__(self, fd: int, width: int, height: int):
        self.fd, self.handle, self.fb_id, self.map = fd, 0, 0, None
        request = bytearray(CREATE_DUMB.pack(height, width, 32, 0, 0, 0, 0))
        fcntl.ioctl(fd, IOCTL_CREATE_DUMB, request)
        _, _, _, _, self.handle, self.pitch, size = CREATE_DUMB.unpack(request)
        try:
            command = bytearray(FB_CMD.pack(0, width, height, self.pitch, 32, 24, self.handle))
            fcntl.ioctl(fd, IOCTL_ADDFB, command)
            self.fb_id = FB_CMD.unpack(command)[0]
            mapping = bytearray(MAP_DUMB.pack(self.handle, 0, 0))
            fcntl.ioctl(fd, IOCTL_MAP_DUMB, mapping)
            self.map = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                                 offset=MAP_DUMB.unpack(mapping)[2])
        except OSError:
            self.release()
            raise
        self.rows = np.frombuffer(self.map, dtype=np.uint8)[:self.pitch * height].reshape(height, self.pitch)
        self.rows[:] = 0  # a fresh buffer may hold what the last user of that memory left

    def release(self) -> None:
        self.rows = None
        if self.map is not None:
            self.map.close()
            self.map = None
        for request, value in ((IOCTL_RMFB, self.fb_id), (IOCTL_DESTROY_DUMB, self.handle)):
            if value:
                try:
                    fcntl.ioctl(self.fd, request, bytearray(struct.pack("<I", value)))
                except OSError:
                    pass  # the device went away; closing its file frees the rest
        self.fb_id = self.handle = 0


class DrmDisplay:
    """A `Display` on a KMS/DRM device (/dev/dri/card*), drawn into dumb buffers by the CPU.

    Opens the first connected output (HDMI first) at the monitor's preferred mode, or at `size` when
    the config asks for one the monitor offers. Raises DisplayUnavailable when there is no device,
    no connected monitor, or another program (an X server, SDL) is the device's master. Keys and
    remotes are read through evdev; /sys/class/drm is watched for the monitor going or changing.
    """

    name = "drm"

    def __init__(self, *, card: Path | None = None, size: tuple[int, int] | None = None,
                 refresh_hz: float | None = None, drm_root: Path = Path("/sys/class/drm"),
                 dev_root: Path = Path("/dev/dri"), clocks: Clocks):
        self._clocks, self._buffers, self._fd = clocks, [], -1
        self._front, self._flip_pending, self._can_flip = 0, False, True
        candidates = [Path(card)] if card else sorted(dev_root.glob("card*"))
        if not candidates:
            raise DisplayUnavailable(f"no KMS device under {dev_root}")
        reasons = []
        for path in candidates:
            try:
                self._open(path, size, refresh_hz)
            except DisplayUnavailable as exc:
                self.close()
                reasons.append(f"{path}: {exc}")
                continue
            self.path = path
            self._hotplug = HotplugWatch(drm_root, interval_s=HOTPLUG_CHECK_S, clocks=clocks)
            return
        raise DisplayUnavailable("; ".join(reasons))

    def _open(self, path: Path, size: tuple[int, int] | None, refresh_hz: float | None) -> None:
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise DisplayUnavailable(f"cannot open: {exc.strerror or exc}") from exc
        try:
            connector = pick_connector(self._connectors())
            if connector is None:
                raise DisplayUnavailable("no connected monitor")
            kms_mode = choose_mode(connector.modes, size=size, refresh_hz=refresh_hz)
            crtc_id = self._crtc_for(connector)
            self._buffers = [_Buffer(self._fd, kms_mode.width, kms_mode.height) for _ in range(2)]
            ids = np.array([connector.connector_id], dtype="<u4")  # kept alive until the ioctl has read it
            crtc = bytearray(CRTC.pack(ids.ctypes.data, 1, crtc_id, self._buffers[0].fb_id, 0, 0, 0, 1,
                                       *MODEINFO.unpack(kms_mode.raw)))
            fcntl.ioctl(self._fd, IOCTL_SETCRTC, crtc)
        except PermissionError as exc:
            raise DisplayUnavailable("another program (an X server or SDL) holds the display; "
                                     "stop it or choose its backend") from exc
        except OSError as exc:
            raise DisplayUnavailable(f"cannot set a mode: {exc.strerror or exc}") from exc
        self._crtc_id = crtc_id
        refresh = refresh_hz or kms_mode.refresh_hz or DEFAULT_REFRESH_HZ
        self.mode = DisplayMode(kms_mode.width, kms_mode.height, refresh)

    def show(self, frame: np.ndarray) -> None:
        if self._fd < 0:
            raise DisplayLost("the DRM display is closed")
        if frame.shape != (self.mode.height, self.mode.width, 3):
            raise ValueError(f"frame is {frame.shape[1]}x{frame.shape[0]}, "
                             f"the screen {self.mode.width}x{self.mode.height}")
        try:
            self._wait_flip()
            back = self._buffers[1 - self._front] if self._can_flip else self._buffers[0]
            write_xrgb8888(frame, back.rows)
            if self._can_flip:
                self._flip(back)
            else:
                self._dirty(back)
        except OSError as exc:
            raise DisplayLost(f"the DRM display failed: {exc.strerror or exc}") from exc

    def poll_events(self) -> list[InputEvent]:
        if self._fd < 0:
            raise DisplayLost("the DRM display is closed")
        self._hotplug.check()
        return []

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            self._wait_flip()
        except (OSError, DisplayLost):
            pass
        for buffer in self._buffers:
            buffer.release()
        self._buffers = []
        os.close(self._fd)  # the kernel gives the screen back to its console when the last user closes
        self._fd = -1

    # --- mode setting ---------------------------------------------------------------------------

    def _connectors(self) -> list[KmsConnector]:
        counts = bytearray(CARD_RES.size)
        fcntl.ioctl(self._fd, IOCTL_GETRESOURCES, counts)
        _, _, _, _, n_fbs, n_crtcs, n_connectors, n_encoders, *_ = CARD_RES.unpack(counts)
        self._crtc_ids = np.zeros(n_crtcs, dtype="<u4")
        connector_ids = np.zeros(n_connectors, dtype="<u4")
        # The counts can grow between the two calls (a connector appearing): ask for them once more, no more.
        request = bytearray(CARD_RES.pack(0, self._crtc_ids.ctypes.data, connector_ids.ctypes.data, 0,
                                          0, n_crtcs, n_connectors, 0, 0, 0, 0, 0))
        fcntl.ioctl(self._fd, IOCTL_GETRESOURCES, request)
        found = []
        for connector_id in connector_ids.tolist():
            connector = self._connector(int(connector_id))
            if connector is not None:
                found.append(connector)
        return found

    def _connector(self, connector_id: int) -> KmsConnector | None:
        probe = bytearray(GET_CONNECTOR.pack(0, 0, 0, 0, 0, 0, 0, 0, connector_id, 0, 0, 0, 0, 0, 0, 0))
        fcntl.ioctl(self._fd, IOCTL_GETCONNECTOR, probe)  # count_modes 0: the kernel probes the monitor
        fields = GET_CONNECTOR.unpack(probe)
        n_modes, n_encoders, connection = fields[4], fields[6], fields[11]
        if connection != CONNECTED or n_modes == 0:
            return None
        modes = bytearray(MODEINFO.size * n_modes)
        encoders = np.zeros(max(n_encoders, 1), dtype="<u4")
        mode_pointer = (np.frombuffer(modes, dtype=np.uint8)).ctypes.data
        request = bytearray(GET_CONNECTOR.pack(encoders.ctypes.data, mode_pointer, 0, 0, n_modes, 0, n_encoders,
                                               0, connector_id, 0, 0, 0, 0, 0, 0, 0))
        fcntl.ioctl(self._fd, IOCTL_GETCONNECTOR, request)
        fields = GET_CONNECTOR.unpack(request)
        if fields[4] > n_modes or fields[6] > n_encoders:  # the kernel copied nothing: the monitor changed
            return None
        parsed = tuple(KmsMode.parse(bytes(modes[i * MODEINFO.size:(i + 1) * MODEINFO.size])) for i in range(fields[4]))
        return KmsConnector(connector_id, fields[9], fields[7], tuple(int(e) for e in encoders[:fields[6]]), parsed)

    def _crtc_for(self, connector: KmsConnector) -> int:
        """The CRTC already driving the connector, else the first one any of its encoders can use."""
        encoder_ids = ([connector.encoder_id] if connector.encoder_id else []) + list(connector.encoder_ids)
        for encoder_id in encoder_ids:
            request = bytearray(GET_ENCODER.pack(encoder_id, 0, 0, 0, 0))
            fcntl.ioctl(self._fd, IOCTL_GETENCODER, request)
            _, _, crtc_id, possible, _ = GET_ENCODER.unpack(request)
            if crtc_id:
                return crtc_id
            for index, candidate in enumerate(self._crtc_ids.tolist()):
                if possible & (1 << index):
                    return int(candidate)
        raise DisplayUnavailable("no display controller (CRTC) can drive the connected output")

    # --- showing a buffer -------------------------------------------------------------------------

    def _flip(self, back: _Buffer) -> None:
        request = PAGE_FLIP.pack(self._crtc_id, back.fb_id, PAGE_FLIP_EVENT, 0, 0)
        try:
            fcntl.ioctl(self._fd, IOCTL_PAGE_FLIP, bytearray(request))
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            self._can_flip = False  # a driver without page flips: draw in place and flush
            self._front = 0
            self._dirty(self._buffers[0], frame_from=back)
            return
        self._flip_pending = True
        self._front = self._buffers.index(back)

    def _dirty(self, buffer: _Buffer, frame_from: _Buffer | None = None) -> None:
        if frame_from is not None and frame_from is not buffer:
            buffer.rows[:] = frame_from.rows
        try:
            fcntl.ioctl(self._fd, IOCTL_DIRTYFB, bytearray(FB_DIRTY.pack(buffer.fb_id, 0, 0, 0, 0)))
        except OSError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise  # drivers that scan out straight from memory have nothing to flush

    def _wait_flip(self) -> None:
        """Read DRM events until the pending page flip completes; DisplayLost if it never does."""
        deadline_us = self._clocks.monotonic_us() + round(FLIP_TIMEOUT_S * 1e6)
        while self._flip_pending:
            remaining = (deadline_us - self._clocks.monotonic_us()) / 1e6
            if remaining <= 0 or not select.select([self._fd], [], [], remaining)[0]:
                self._flip_pending = False
                raise DisplayLost(f"the display did not finish a page flip within {FLIP_TIMEOUT_S:.0f} s")
            data = os.read(self._fd, 4096)
            offset = 0
            while offset + EVENT_HEADER.size <= len(data):
                kind, length = EVENT_HEADER.unpack_from(data, offset)
                if kind == EVENT_FLIP_COMPLETE:
                    self._flip_pending = False
                offset += max(length, EVENT_HEADER.size)
