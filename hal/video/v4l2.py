"""Analog cameras through V4L2 capture cards: `V4l2Capture`, the real backend of the `VideoCapture` seam.

Opening a capture selects the input (by number or name), sets the analog standard (PAL, NTSC or
SECAM: each a family of V4L2 standard bits, OR-ed into one 64-bit mask), negotiates the first pixel
format of YUYV, UYVY, NV12 and MJPEG that the card offers, and streams through mmap buffers. Frames
keep the driver's timestamps (CLOCK_MONOTONIC for nearly every driver, converted to the injected
clocks) and sequence numbers, so a gap in the sequence is a frame the card dropped; those are
counted in `statistics()`, not hidden.

Errors are `CaptureError`s that say what to do. Video loss has two of its own: `NoSignal` when the
input status says there is no picture (read with the first frame and then every `status_interval_s`,
since cards such as vivid keep sending noise without a camera) or when no frame comes for
`frame_timeout_s`; `DeviceGone` when the device vanishes (USB unplug: ENODEV/EIO, the node is gone).
The recorder answers both by ending the run and opening the capture again until the picture is back.
"""
from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from base.clock import Clocks
from base.media import CaptureFormat, RawFrame
from hal.video.v4l2_device import ActiveFormat, Buffer, InputInfo, V4l2Device
from hal.video import CaptureError, DeviceGone, FpsMeter, NoSignal

log = logging.getLogger("nvr.v4l2")

# Standard bits from linux/videodev2.h (V4L2_STD_*); a family is every variant a card may call it.
_PAL_B, _PAL_B1, _PAL_G, _PAL_H, _PAL_I, _PAL_D, _PAL_D1, _PAL_K = (1 << bit for bit in range(8))
_NTSC_M, _NTSC_M_JP, _NTSC_M_KR = 0x1000, 0x2000, 0x8000
_SECAM_B, _SECAM_D, _SECAM_G, _SECAM_H, _SECAM_K, _SECAM_K1, _SECAM_L, _SECAM_LC = (1 << bit for bit in range(16, 24))
STANDARD_MASKS = {
    # V4L2_STD_PAL = PAL_BG | PAL_DK | PAL_H | PAL_I; there is no single "PAL" bit.
    "PAL": _PAL_B | _PAL_B1 | _PAL_G | _PAL_H | _PAL_I | _PAL_D | _PAL_D1 | _PAL_K,
    "NTSC": _NTSC_M | _NTSC_M_JP | _NTSC_M_KR,
    "SECAM": _SECAM_B | _SECAM_D | _SECAM_G | _SECAM_H | _SECAM_K | _SECAM_K1 | _SECAM_L | _SECAM_LC,
}
# Full-frame size and rate of each standard (D1); NTSC runs at 30000/1001 frames per second.
STANDARD_FRAMES = {"PAL": (720, 576, 25.0), "SECAM": (720, 576, 25.0), "NTSC": (720, 480, 30000 / 1001)}

# Preferred pixel formats by the name a config uses -> the fourccs a card may report for it.
PIXEL_FORMAT_FOURCCS = {"YUYV": ("YUYV",), "UYVY": ("UYVY",), "NV12": ("NV12",), "MJPEG": ("MJPG", "JPEG")}
DEFAULT_PIXEL_FORMATS = ("YUYV", "UYVY", "NV12", "MJPEG")
# What RawFrame.pixel_format says for each fourcc (PyAV's names); JPEG is decoded to yuv420p.
AV_PIXEL_FORMATS = {"YUYV": "yuyv422", "UYVY": "uyvy422", "NV12": "nv12", "MJPG": "yuv420p", "JPEG": "yuv420p"}

# V4L2_IN_ST_* flags that mean there is no usable picture on the input.
IN_ST_NO_POWER, IN_ST_NO_SIGNAL, IN_ST_NO_H_LOCK, IN_ST_NO_SYNC = 0x1, 0x2, 0x100, 0x10000
_NO_PICTURE = IN_ST_NO_POWER | IN_ST_NO_SIGNAL | IN_ST_NO_H_LOCK | IN_ST_NO_SYNC
# V4L2_BUF_FLAG_*: the timestamp clock, and a buffer the driver marks as damaged.
BUF_FLAG_ERROR, BUF_FLAG_TIMESTAMP_MASK, BUF_FLAG_TIMESTAMP_MONOTONIC = 0x40, 0xE000, 0x2000
# Field orders that put a whole frame in one buffer (others deliver half-height fields).
_FRAME_FIELDS = {"none", "interlaced", "interlaced_tb", "interlaced_bt"}
_GONE_ERRNOS = {errno.ENODEV, errno.EIO, errno.ENXIO, errno.ENOENT}
_WAIT_SLICE_S = 0.5  # close() wakes the wait at once; the slice only bounds the no-frame timeout's resolution
_FIRST_FRAME_S = 5.0  # a card may take this long to deliver its first frame after STREAMON


def standard_mask(standard: str) -> int:
    """The V4L2 standard bitmask for 'PAL', 'NTSC' or 'SECAM' (pass it as a ctypes.c_uint64)."""
    try:
        return STANDARD_MASKS[standard]
    except KeyError:
        raise ValueError(f"unknown video standard {standard!r}; choose PAL, NTSC or SECAM") from None


def standard_names(mask: int) -> str:
    """'PAL, SECAM' for a mask touching those families, or a hex mask if it touches none."""
    names = [name for name, bits in STANDARD_MASKS.items() if mask & bits]
    return ", ".join(names) if names else f"{mask:#x} (none of PAL, NTSC, SECAM)"


def frame_geometry(standard: str | None, width: int | None, height: int | None,
                   fps: float | None) -> tuple[int | None, int | None, float | None]:
    """(width, height, fps) with what was left out taken from the standard; None where there is none."""
    if standard is None:
        return width, height, fps
    std_width, std_height, std_fps = STANDARD_FRAMES[standard]
    return width or std_width, height or std_height, fps or std_fps


def choose_pixel_format(offered: Sequence[str], preferred: Sequence[str], *, device: str) -> str:
    """The first fourcc in `offered` that one of the `preferred` formats names, in preference order."""
    for name in preferred:
        for fourcc in PIXEL_FORMAT_FOURCCS[name]:
            if fourcc in offered:
                return fourcc
    offers = ", ".join(offered) if offered else "nothing"
    raise CaptureError(f"device {device} offers no {'/'.join(preferred)} format; it offers: {offers}. "
                       f"Use a card that delivers YUYV, UYVY, NV12 or MJPEG")


def find_input(inputs: Sequence[InputInfo], wanted: int | str, *, device: str) -> InputInfo:
    """The input numbered `wanted` (int) or named `wanted` (str, any case)."""
    for item in inputs:
        if (item.index == wanted) if isinstance(wanted, int) else (item.name.lower() == wanted.lower()):
            return item
    listing = ", ".join(f"{item.index} {item.name!r}" for item in inputs) or "none"
    raise CaptureError(f"device {device} has no input {wanted!r}; its inputs are: {listing}")


def has_signal(status: int) -> bool:
    """False if the input status flags say no power, no signal, no sync or no horizontal lock."""
    return not status & _NO_PICTURE


def driver_timestamp_us(flags: int, driver_us: int, *, offset_us: int, arrival_us: int) -> int:
    """A buffer's capture time on our monotonic clock.

    A CLOCK_MONOTONIC driver stamp is shifted by `offset_us` (our clock minus the kernel's); a buffer
    without one (timestamp unknown, or copied from an output) is stamped with its arrival time.
    """
    if flags & BUF_FLAG_TIMESTAMP_MASK == BUF_FLAG_TIMESTAMP_MONOTONIC and driver_us > 0:
        return driver_us + offset_us
    return arrival_us


def unpack(data: bytes, fmt: ActiveFormat) -> np.ndarray | None:
    """The array RawFrame carries for one YUYV/UYVY/NV12 buffer (line padding removed), or None if short."""
    width, height, stride = fmt.width, fmt.height, fmt.bytes_per_line
    if fmt.fourcc in ("YUYV", "UYVY"):
        stride = stride or width * 2
        if len(data) < stride * height:
            return None
        rows = np.frombuffer(data, np.uint8, count=stride * height).reshape(height, stride)
        return np.ascontiguousarray(rows[:, :width * 2]).reshape(height, width, 2)
    stride = stride or width
    lines = height * 3 // 2  # NV12: the Y rows, then half as many interleaved UV rows, same stride
    if len(data) < stride * lines:
        return None
    rows = np.frombuffer(data, np.uint8, count=stride * lines).reshape(lines, stride)
    return np.ascontiguousarray(rows[:, :width])


class _MjpegDecoder:
    """Decodes MJPEG buffers to yuv420p arrays with PyAV (imported only when a card sends MJPEG)."""

    def __init__(self) -> None:
        import av
        self._av = av
        self._codec = av.CodecContext.create("mjpeg", "r")

    def decode(self, data: bytes, width: int, height: int) -> np.ndarray | None:
        try:
            pictures = self._codec.decode(self._av.Packet(data))
        except self._av.FFmpegError:
            return None  # a damaged JPEG from the card: counted as corrupt by the caller
        if not pictures:
            return None
        picture = pictures[-1]
        if picture.format.name != "yuv420p" or (picture.width, picture.height) != (width, height):
            picture = picture.reformat(width=width, height=height, format="yuv420p")
        return picture.to_ndarray()


@dataclass
class _Counters:
    captured: int = 0
    dropped: int = 0  # sequence numbers the driver skipped
    corrupt: int = 0  # buffers flagged as errors, short, or undecodable
    without_signal: int = 0  # buffers delivered while the input reported no signal, not passed on
    signal_losses: int = 0


class V4l2Capture:
    """A `VideoCapture` over one input of a V4L2 capture card.

    `open` may be called again after `close` (the recorder reconnects that way). `close` may be called
    from any thread; it wakes a blocked `frames()` at once and releases the device before returning.
    While the input reports no signal, frames are dropped (the card sends noise or black) and counted;
    `signal_present()` says so. `frames()` raises `NoSignal` when a picture that was there goes, when
    there is none `lock_grace_s` after the stream starts (decoders need a moment to lock), or when no
    frame comes for `frame_timeout_s`; `DeviceGone` when the device goes away.
    """

    def __init__(self, *, device: str, input: int | str = 0, standard: str | None = "PAL",
                 width: int | None = None, height: int | None = None, fps: float | None = None,
                 pixel_formats: Sequence[str] = DEFAULT_PIXEL_FORMATS, clocks: Clocks, buffers: int = 4,
                 frame_timeout_s: float = 2.0, drop_without_signal: bool = True, lock_grace_s: float = 1.0,
                 status_interval_s: float = 0.5,
                 open_device: Callable[[str], V4l2Device] = V4l2Device):
        _check_arguments(input, standard, pixel_formats, buffers)
        self.device, self.input, self.standard = device, input, standard
        self.width, self.height, self.fps = width, height, fps
        self.pixel_formats = tuple(pixel_formats)
        self._clocks, self._buffers, self._frame_timeout_s = clocks, buffers, frame_timeout_s
        self._drop_without_signal, self._open_device = drop_without_signal, open_device
        self._lock_grace_s, self._status_interval_s = lock_grace_s, status_interval_s
        self._stream_started_s = self._status_read_s = 0.0  # seconds on the injected monotonic clock
        self._pictures = 0  # frames passed on since the stream started
        self._fps = FpsMeter()
        self._described: str | None = None
        self._lock = threading.RLock()  # guards the device: held around each ioctl, never across a yield
        self._wake_lock = threading.Lock()  # guards the wake pipe
        self._closed = threading.Event()
        self._dev: V4l2Device | None = None
        self._wake: tuple[int, int] | None = None
        self._input: InputInfo | None = None
        self._format: ActiveFormat | None = None
        self._decoder: _MjpegDecoder | None = None
        self._streaming = False
        self._signal = True
        self._offset_us = 0
        self._last_sequence: int | None = None
        self._last_timestamp_us: int | None = None
        self._timestamps_from_driver: bool | None = None
        self._counts = _Counters()

    # --- the VideoCapture interface ---------------------------------------------------------

    def open(self) -> CaptureFormat:
        """Open the device, select the input and standard, negotiate the format; returns what frames carry."""
        self.close()
        dev = self._open_node()
        try:
            fmt = self._configure(dev)
        except OSError as exc:
            dev.close()
            raise self._error(exc, "setting it up") from exc
        except BaseException:
            dev.close()
            raise
        with self._lock:
            self._dev = dev
            self._closed.clear()
            self._wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._last_sequence = self._last_timestamp_us = None
        return fmt

    def frames(self) -> Iterator[RawFrame]:
        """Frames as the driver delivers them, until `close()`; CaptureError if the device fails."""
        if self._dev is None:
            raise CaptureError(f"capture from {self.device} is not open")
        return self._stream()

    def close(self) -> None:
        """Stop streaming and release the device; safe from any thread, and more than once."""
        self._closed.set()
        with self._wake_lock:
            if self._wake is not None:
                try:
                    os.write(self._wake[1], b"\0")
                except OSError:
                    pass  # the pipe is full: a wake-up is already pending
        with self._lock:
            dev, self._dev = self._dev, None
            if dev is not None:
                try:
                    dev.close()
                except OSError as exc:
                    log.debug("%s: closing failed: %s", self.device, exc)
            with self._wake_lock:
                wake, self._wake = self._wake, None
            for fd in wake or ():
                os.close(fd)

    # --- status -----------------------------------------------------------------------------

    def signal_present(self) -> bool:
        """Whether the selected input has a picture (its status shows no NO_SIGNAL/NO_SYNC/NO_H_LOCK).

        While streaming this is the status read with the latest frame (or wait); otherwise the
        device is asked. Raises CaptureError if the capture is not open.
        """
        if self._streaming:
            return self._signal
        with self._lock:
            if self._dev is None or self._input is None:
                raise CaptureError(f"capture from {self.device} is not open")
            try:
                return has_signal(self._dev.input_status(self._input.index))
            except OSError as exc:
                raise self._error(exc, "reading the input status") from exc

    def statistics(self) -> dict[str, object]:
        """Counters for the health page and benchmarks."""
        counts = self._counts
        return {
            "frames_captured": counts.captured, "frames_dropped": counts.dropped,
            "frames_corrupt": counts.corrupt, "frames_without_signal": counts.without_signal,
            "signal_losses": counts.signal_losses, "signal_present": self._signal, "fps_measured": self._fps.fps(),
            "timestamps": {None: "none yet", True: "driver", False: "arrival"}[self._timestamps_from_driver],
        }

    @property
    def active_input(self) -> InputInfo | None:
        """The input selected by the last `open`."""
        return self._input

    @property
    def active_format(self) -> ActiveFormat | None:
        """The format the driver settled on at the last `open`."""
        return self._format

    # --- opening ----------------------------------------------------------------------------

    def _open_node(self) -> V4l2Device:
        try:
            return self._open_device(self.device)
        except FileNotFoundError:
            raise DeviceGone(f"no such device {self.device}; is the card plugged in? `nvr devices` lists "
                             f"the capture devices") from None
        except PermissionError:
            raise CaptureError(f"no permission to open {self.device}; add the user that runs nvr to the "
                               f"'video' group") from None
        except OSError as exc:
            raise self._error(exc, "opening it") from exc

    def _configure(self, dev: V4l2Device) -> CaptureFormat:
        self._check_capture_device(dev)
        self._input = self._select_input(dev)
        standard = self._set_standard(dev, self._input)
        width, height, fps = frame_geometry(standard, self.width, self.height, self.fps)
        if width is None or height is None:
            current = dev.get_format()
            width, height = width or current.width, height or current.height
        fourcc = choose_pixel_format([code for code, _ in dev.capture_formats()], self.pixel_formats,
                                     device=self.device)
        self._format = self._set_format(dev, width, height, fourcc, interlaced=standard is not None)
        self._decoder = _MjpegDecoder() if fourcc in ("MJPG", "JPEG") else None
        fps = self._set_fps(dev, fps)
        self._offset_us = self._clocks.monotonic_us() - time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        # self._signal keeps its last reading: it is read again with the first frame, and a reopen while
        # video is lost must not log the loss again.
        self._describe(f"input {self._input.index} {self._input.name!r}, {standard or 'no analog standard'}, "
                       f"{self._format.width}x{self._format.height} {fourcc} at {fps:.3g} fps")
        return CaptureFormat(self._format.width, self._format.height, AV_PIXEL_FORMATS[fourcc], fps)

    def _describe(self, text: str) -> None:
        # Logged at info once: while video is lost the capture is reopened every second or so.
        log.log(logging.INFO if text != self._described else logging.DEBUG, "%s: %s", self.device, text)
        self._described = text

    def _check_capture_device(self, dev: V4l2Device) -> None:
        info = dev.info()
        what = f"{self.device} ({info.driver} {info.card!r})"
        if not info.capture:
            hint = (" it only offers the multi-planar API, which is not supported yet" if info.capture_mplane
                    else " it is not a video capture device (an encoder, output or metadata node?)")
            raise CaptureError(f"cannot capture from {what}:{hint}; `nvr devices` lists the capture devices")
        if not info.streaming:
            raise CaptureError(f"cannot capture from {what}: it does not support streaming I/O")

    def _select_input(self, dev: V4l2Device) -> InputInfo:
        inputs = dev.inputs()
        if not inputs and self.input == 0:
            return InputInfo(0, "default", "camera", 0, 0, False)  # a driver that lists no inputs
        chosen = find_input(inputs, self.input, device=self.device)
        dev.set_input(chosen.index)
        return chosen

    def _set_standard(self, dev: V4l2Device, chosen: InputInfo) -> str | None:
        """Apply the standard if the input has analog standards; returns the one in effect, or None."""
        if self.standard is None:
            return None
        if not chosen.has_std:
            log.info("%s: input %r has no analog standard (digital or webcam); ignoring %s", self.device,
                     chosen.name, self.standard)
            return None
        mask = standard_mask(self.standard)
        if chosen.std_mask and not chosen.std_mask & mask:
            raise CaptureError(f"input {chosen.index} {chosen.name!r} of {self.device} does not support "
                               f"{self.standard}; it supports: {standard_names(chosen.std_mask)}")
        dev.set_standard(mask & chosen.std_mask if chosen.std_mask else mask)
        return self.standard

    def _set_format(self, dev: V4l2Device, width: int, height: int, fourcc: str, *, interlaced: bool) -> ActiveFormat:
        active = dev.set_format(width, height, fourcc, interlaced=interlaced)
        if active.fourcc != fourcc:
            raise CaptureError(f"{self.device} listed {fourcc} but switched to {active.fourcc} when asked for it")
        if active.field not in _FRAME_FIELDS:
            raise CaptureError(f"{self.device} delivers {active.field} fields instead of whole frames at "
                               f"{active.width}x{active.height}; this is not supported yet")
        if (active.width, active.height) != (width, height):
            log.warning("%s: asked for %dx%d, the card delivers %dx%d", self.device, width, height,
                        active.width, active.height)
        return active

    def _set_fps(self, dev: V4l2Device, fps: float | None) -> float:
        """Ask for `fps` (analog cards fix it by the standard and may refuse); returns the rate in effect."""
        if fps is not None:
            try:
                dev.set_fps(fps)
            except OSError as exc:  # ENOTTY/EINVAL: the rate is not settable on this card
                log.debug("%s: cannot set %s fps: %s", self.device, fps, exc)
        try:
            actual = float(dev.get_fps())
        except (OSError, ZeroDivisionError):
            actual = 0.0
        if actual > 0:
            if fps is not None and abs(actual - fps) > 0.01:
                log.warning("%s: asked for %.3g fps, the card delivers %.3g", self.device, fps, actual)
            return actual
        return fps or 25.0

    # --- streaming --------------------------------------------------------------------------

    def _stream(self) -> Iterator[RawFrame]:
        self._start_streaming()
        try:
            while True:
                buffer = self._next_buffer()
                if buffer is None:
                    return
                frame = self._to_frame(buffer)
                if frame is not None:
                    yield frame
        finally:
            self._streaming = False
            self._fps.reset()
            with self._lock:
                if self._dev is not None:
                    self._dev.stop_streaming()

    def _start_streaming(self) -> None:
        with self._lock:
            if self._dev is None or self._closed.is_set():
                raise CaptureError(f"capture from {self.device} is not open")
            try:
                self._dev.start_streaming(self._buffers)
            except OSError as exc:
                raise self._error(exc, "starting the stream") from exc
            self._streaming = True
            self._stream_started_s, self._status_read_s, self._pictures = self._clocks.monotonic_us() / 1e6, 0.0, 0

    def _next_buffer(self) -> Buffer | None:
        """The next buffer from the driver, or None once closed; NoSignal when the picture is gone or
        frames stop, DeviceGone or CaptureError when the device fails."""
        idle_s = 0.0
        timeout_s = self._frame_timeout_s if self._pictures else max(self._frame_timeout_s, _FIRST_FRAME_S)
        slice_s = min(_WAIT_SLICE_S, self._frame_timeout_s)
        while True:
            with self._lock:
                if self._closed.is_set() or self._dev is None:
                    return None
                dev, wake = self._dev, self._wake[0] if self._wake else None
                try:
                    ready = dev.wait(slice_s, wake)
                    if self._closed.is_set():
                        return None
                    buffer = dev.dequeue() if ready else None
                    self._poll_signal(dev, force=buffer is None)
                except BlockingIOError:
                    continue  # woken with no buffer ready after all
                except OSError as exc:
                    raise self._error(exc, "capturing") from exc
            self._check_picture()
            if buffer is not None:
                return buffer
            idle_s += slice_s
            if idle_s >= timeout_s:
                raise NoSignal(f"no frame from {self.device} for {idle_s:.1f} s; the driver stopped delivering "
                               f"(is the camera connected and powered?)")

    def _poll_signal(self, dev: V4l2Device, *, force: bool) -> None:
        """Read the input status with the first frame, on idle slices, and every `status_interval_s`."""
        now_s = self._clocks.monotonic_us() / 1e6
        if force or not self._status_read_s or now_s - self._status_read_s >= self._status_interval_s:
            self._status_read_s = now_s
            self._read_signal(dev)

    def _check_picture(self) -> None:
        """NoSignal if the input has no picture: at once after frames flowed, else after the lock grace."""
        if self._signal or not self._drop_without_signal:
            return
        if self._pictures or self._clocks.monotonic_us() / 1e6 - self._stream_started_s >= self._lock_grace_s:
            raise NoSignal(f"input {self._input.index} {self._input.name!r} of {self.device} has no signal "
                           f"(no camera connected, or its cable is cut)")

    def _read_signal(self, dev: V4l2Device) -> None:
        try:
            present = has_signal(dev.input_status(self._input.index))
        except OSError as exc:
            if exc.errno in _GONE_ERRNOS:
                raise
            return  # a driver that cannot report status: assume the picture is there
        if present != self._signal:
            log.warning("%s: input %r %s", self.device, self._input.name,
                        "has a signal again" if present else "lost its signal")
            self._counts.signal_losses += not present
        self._signal = present

    def _to_frame(self, buffer: Buffer) -> RawFrame | None:
        self._count_sequence(buffer.sequence)
        if buffer.flags & BUF_FLAG_ERROR or not buffer.data:
            self._counts.corrupt += 1
            return None
        if not self._signal and self._drop_without_signal:
            self._counts.without_signal += 1
            return None
        fmt = self._format
        data = (self._decoder.decode(buffer.data, fmt.width, fmt.height) if self._decoder is not None
                else unpack(buffer.data, fmt))
        if data is None:
            self._counts.corrupt += 1
            return None
        self._counts.captured += 1
        self._pictures += 1
        stamp = self._timestamp_us(buffer)
        self._fps.frame(stamp)
        return RawFrame(data, AV_PIXEL_FORMATS[fmt.fourcc], fmt.width, fmt.height, stamp, buffer.sequence)

    def _count_sequence(self, sequence: int) -> None:
        last = self._last_sequence
        if last is not None and sequence > last + 1:
            self._counts.dropped += sequence - last - 1
        self._last_sequence = sequence

    def _timestamp_us(self, buffer: Buffer) -> int:
        """The driver's timestamp on our clock, kept strictly increasing (the encoder needs that)."""
        arrival_us = self._clocks.monotonic_us()
        stamp = driver_timestamp_us(buffer.flags, buffer.timestamp_us, offset_us=self._offset_us,
                                    arrival_us=arrival_us)
        self._timestamps_from_driver = stamp != arrival_us
        if self._last_timestamp_us is not None and stamp <= self._last_timestamp_us:
            stamp = self._last_timestamp_us + 1
        self._last_timestamp_us = stamp
        return stamp

    def _error(self, exc: OSError, doing: str) -> CaptureError:
        """A CaptureError for an OSError from the device, saying what to do about it."""
        reason = exc.strerror or str(exc)
        if exc.errno in _GONE_ERRNOS:
            return DeviceGone(f"{self.device} went away while {doing} ({reason}); check the card's cable "
                              f"or USB connection; it is retried")
        if exc.errno == errno.EBUSY:
            return CaptureError(f"{self.device} is busy while {doing}: another program (or another channel) "
                                f"is using the card; stop it, or give each channel its own device")
        return CaptureError(f"{self.device}: {doing} failed: {reason}")


def _check_arguments(input: int | str, standard: str | None, pixel_formats: Sequence[str], buffers: int) -> None:
    if isinstance(input, bool) or not isinstance(input, (int, str)) or (isinstance(input, int) and input < 0):
        raise ValueError(f"input must be an input number >= 0 or an input name, not {input!r}")
    if standard is not None:
        standard_mask(standard)
    unknown = [name for name in pixel_formats if name not in PIXEL_FORMAT_FOURCCS]
    if unknown or not pixel_formats:
        raise ValueError(f"pixel formats must be some of {', '.join(PIXEL_FORMAT_FOURCCS)}, not {list(pixel_formats)!r}")
    if buffers < 2:
        raise ValueError(f"buffers must be at least 2, not {buffers!r}")
