"""Simulated analog camera: moving yuv420p test patterns with a burnt-in label, clock and frame counter."""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from functools import lru_cache

import numpy as np

from base import font
from base.clock import Clocks
from base.media import CaptureFormat, RawFrame
from hal.video import CaptureError, DeviceGone, FpsMeter, NoSignal

PATTERNS = ("bars", "gradient", "checker", "ball", "zoneplate")
# Order for pattern="auto": neighbouring channels get patterns that look nothing alike.
_AUTO_ORDER = ("bars", "ball", "checker", "gradient", "zoneplate")

_PIXEL_FORMAT = "yuv420p"
FLASH_US = 50_000  # as long as the simulated microphone's beep
_MIN_SIDE = 16
_TEXT_Y, _BOX_Y, _NEUTRAL_C = 235, 16, 128  # limited-range white text on a black box, no colour

_Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


class TestPatternCapture:
    """A `VideoCapture` that draws a moving test pattern, like an analog camera on a capture card.

    Frames are paced by the injected clocks: frame n is due at start + n/fps; when the consumer
    falls more than a frame period behind, frames are skipped (the sequence number jumps) the way a
    capture card drops them, instead of being delivered in a burst.

    Test instruments pull the plugs a real card has, with the same effect on `frames()` and `open()`
    as `V4l2Capture` (see `hal.video.VideoCapture`): `cut_signal`/`restore_signal` (the camera's
    cable: frames keep coming but carry no picture, as vivid's noise does, and are not passed on),
    `stall`/`unstall` (the driver stops delivering), `unplug`/`replug` (the device itself).

    With `sync_flash`, a square in the bottom right corner is white in the frames due within the first
    `FLASH_US` of each second of the monotonic clock and black otherwise: the simulated microphone
    (hal.audio) beeps on the same seconds, so a recording shows its A/V offset.
    """

    __test__ = False  # the name starts with "Test"; keep pytest from collecting it

    def __init__(self, *, width: int, height: int, fps: float, pattern: str = "auto",
                 channel_id: int = 1, label: str = "", clocks: Clocks, frame_timeout_s: float = 2.0,
                 lock_grace_s: float = 1.0, sync_flash: bool = False):
        _check_size(width, height)
        if not fps > 0:
            raise ValueError(f"fps must be positive, not {fps!r}")
        self.width, self.height, self.fps = width, height, float(fps)
        self.channel_id = channel_id
        self.pattern = _resolve_pattern(pattern, channel_id)
        self.label = label or f"CH{channel_id}"
        self._clocks = clocks
        self.sync_flash = sync_flash
        self._scene: _Scene | None = None
        self._osd = _Osd(width, height, self.label)
        self._open = False
        self._closed = threading.Event()
        self._generated = self._skipped = 0
        self._render_s = 0.0
        self._frame_timeout_us, self._lock_grace_us = round(frame_timeout_s * 1e6), round(lock_grace_s * 1e6)
        self._signal = self._plugged = True
        self._stalled = False
        self._without_signal = self._signal_losses = 0
        self._fps = FpsMeter()

    def open(self) -> CaptureFormat:
        """Precompute the pattern and report the format; frames are yuv420p at the requested size.
        DeviceGone while unplugged."""
        if not self._plugged:
            raise DeviceGone(f"no such device: the simulated capture card of channel {self.channel_id} is unplugged")
        self._ensure_scene()
        self._closed.clear()
        self._open = True
        return CaptureFormat(self.width, self.height, _PIXEL_FORMAT, self.fps)

    def close(self) -> None:
        """Stop `frames()` within a frame period; safe to call from any thread, and more than once."""
        self._open = False
        self._closed.set()

    def frames(self) -> Iterator[RawFrame]:
        """Yield paced frames until `close()`; raises CaptureError at once if the capture is not open."""
        if not self._open:
            raise CaptureError(f"test pattern capture for channel {self.channel_id} is not open")
        return self._paced_frames()

    def render(self, sequence: int, utc_us: int) -> np.ndarray:
        """One frame's (height*3//2, width) yuv420p array, without pacing (for benchmarks and previews)."""
        scene = self._ensure_scene()
        data = np.empty((self.height * 3 // 2, self.width), dtype=np.uint8)
        planes = _split_planes(data, self.width, self.height)
        scene.render(sequence, planes)
        self._osd.draw(planes, sequence, utc_us)
        return data

    def statistics(self) -> dict[str, float | int | bool]:
        """Counters for the health page and benchmarks (the same names as V4l2Capture's where they match)."""
        generated = self._generated
        return {
            "frames_generated": generated,
            "frames_skipped": self._skipped,
            "frames_dropped": self._skipped,
            "frames_without_signal": self._without_signal,
            "signal_losses": self._signal_losses,
            "signal_present": self._signal,
            "fps_measured": self._fps.fps(),
            "avg_render_ms": (self._render_s / generated * 1000.0) if generated else 0.0,
        }

    def signal_present(self) -> bool:
        """Whether the simulated input has a picture (see `cut_signal`)."""
        return self._signal

    # --- test instruments ---------------------------------------------------------------------

    def cut_signal(self) -> None:
        """Unplug the camera from the input: `frames()` raises NoSignal within a frame period."""
        self._signal_losses += self._signal
        self._signal = False

    def restore_signal(self) -> None:
        """Plug the camera back in: frames carry a picture again."""
        self._signal = True

    def stall(self) -> None:
        """Make the driver stop delivering frames: `frames()` raises NoSignal after the no-frame timeout."""
        self._stalled = True

    def unstall(self) -> None:
        self._stalled = False

    def unplug(self) -> None:
        """Pull the capture card out: `frames()` raises DeviceGone within a frame period, `open()` too."""
        self._plugged = False

    def replug(self) -> None:
        self._plugged = True

    def _ensure_scene(self) -> _Scene:
        if self._scene is None:
            self._scene = _BUILDERS[self.pattern](self.width, self.height, self.fps)
        return self._scene

    def _paced_frames(self) -> Iterator[RawFrame]:
        clocks, period_us = self._clocks, 1_000_000 / self.fps
        start_us = waiting_since_us = clocks.monotonic_us()
        sequence = pictures = 0
        try:
            while not self._closed.is_set():
                due_us = start_us + round(sequence * period_us)
                now_us = clocks.monotonic_us()
                self._check_picture(now_us - start_us, pictures)
                if now_us < due_us:
                    # Only time spent waiting for a frame counts towards the no-frame timeout, as a V4L2
                    # card's select() does: a starved process or a slow consumer finds a frame ready.
                    self._check_frame_timeout(now_us - waiting_since_us)
                    # Sleep at most one period per turn so close() and the instruments are noticed promptly.
                    clocks.sleep(min(due_us - now_us, period_us) / 1_000_000)
                    continue
                if now_us - due_us > period_us:
                    sequence = self._skip_to(start_us, now_us, period_us, sequence)
                    continue
                sequence += 1
                if self._stalled:
                    continue
                if not self._signal:
                    self._without_signal += 1  # noise, as a card without a camera sends: not passed on
                    continue
                pictures += 1
                self._fps.frame(due_us)
                yield self._frame(sequence - 1, due_us, clocks.utc_now_us() + (due_us - now_us))
                waiting_since_us = clocks.monotonic_us()
        finally:
            self._fps.reset()

    def _check_picture(self, streaming_us: int, pictures: int) -> None:
        """DeviceGone or NoSignal from the instruments, with the timing V4l2Capture has (`hal.video.VideoCapture`)."""
        if not self._plugged:
            raise DeviceGone(f"the simulated capture card of channel {self.channel_id} went away (unplugged)")
        if not self._signal and (pictures or streaming_us >= self._lock_grace_us):
            raise NoSignal(f"the simulated input of channel {self.channel_id} has no signal")

    def _check_frame_timeout(self, waited_us: int) -> None:
        """NoSignal when no frame has come for `frame_timeout_s` of waiting for one (`stall`).

        Why waiting time and not time since the last frame: a simulated card starved of CPU (a loaded
        host, a QEMU guest) or read by a consumer held up for seconds has not lost its signal. A real
        card's driver goes on capturing into its queued buffers meanwhile, and V4l2Capture's timeout
        counts only its own waits in select(), which return at once when the process runs again. A
        lost signal here would end the run and raise a false `video_loss` exactly when the box is
        busiest; the frames that were passed over are counted as dropped instead (`frames_skipped`).
        """
        if waited_us >= self._frame_timeout_us:
            raise NoSignal(f"no frame from the simulated capture of channel {self.channel_id} for "
                           f"{waited_us / 1e6:.1f} s")

    def _skip_to(self, start_us: int, now_us: int, period_us: float, sequence: int) -> int:
        """Jump to the latest frame already due, counting the ones passed over as dropped."""
        latest = max(sequence, int((now_us - start_us) // period_us))
        self._skipped += latest - sequence
        return latest

    def _frame(self, sequence: int, due_us: int, utc_us: int) -> RawFrame:
        began = time.perf_counter()  # real CPU cost, whatever clock paces us
        data = self.render(sequence, utc_us)
        if self.sync_flash:
            _draw_flash(data, self.width, self.height, due_us % 1_000_000 < FLASH_US)
        self._render_s += time.perf_counter() - began
        self._generated += 1
        return RawFrame(data, _PIXEL_FORMAT, self.width, self.height, due_us, sequence)


def flash_box(width: int, height: int) -> tuple[int, int, int]:
    """(x, y, side) of the sync flash square, in luma pixels."""
    side = _even(min(width, height) / 8)
    margin = _even(min(width, height) / 40)
    return width - side - margin, height - side - margin, side


def _draw_flash(data: np.ndarray, width: int, height: int, on: bool) -> None:
    y_plane, u_plane, v_plane = _split_planes(data, width, height)
    x, y, side = flash_box(width, height)
    y_plane[y:y + side, x:x + side] = _TEXT_Y if on else _BOX_Y
    for chroma in (u_plane, v_plane):
        chroma[y // 2:(y + side) // 2, x // 2:(x + side) // 2] = _NEUTRAL_C


def _check_size(width: int, height: int) -> None:
    # yuv420p halves both axes for chroma, so odd sizes cannot be represented.
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or value < _MIN_SIDE or value % 2:
            raise ValueError(f"{name} must be an even integer >= {_MIN_SIDE}, not {value!r}")


def _resolve_pattern(pattern: str, channel_id: int) -> str:
    if pattern == "auto":
        return _AUTO_ORDER[(channel_id - 1) % len(_AUTO_ORDER)]
    if pattern not in PATTERNS:
        allowed = ", ".join(("auto",) + PATTERNS)
        raise ValueError(f"unknown test pattern {pattern!r}; choose one of: {allowed}")
    return pattern


def _split_planes(data: np.ndarray, width: int, height: int) -> _Planes:
    """Y, U, V views into one yuv420p array laid out as PyAV's from_ndarray reads it (flat, in order)."""
    flat = data.reshape(-1)
    luma, chroma = width * height, width * height // 4
    y = flat[:luma].reshape(height, width)
    u = flat[luma:luma + chroma].reshape(height // 2, width // 2)
    v = flat[luma + chroma:].reshape(height // 2, width // 2)
    return y, u, v


# --- colour helpers ---------------------------------------------------------------------------

def _rgb_to_yuv_linear(rgb: np.ndarray) -> _Planes:
    """BT.601 limited-range Y-16, U-128, V-128 as floats from RGB in 0..1 (last axis R, G, B)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 219 * (0.299 * r + 0.587 * g + 0.114 * b)
    u = 224 * (-0.168736 * r - 0.331264 * g + 0.5 * b)
    v = 224 * (0.5 * r - 0.418688 * g - 0.081312 * b)
    return y, u, v


def _rgb_to_yuv(rgb: np.ndarray) -> _Planes:
    """uint8 Y, U, V planes from an (H, W, 3) RGB image in 0..1, chroma averaged over 2x2."""
    y, u, v = _rgb_to_yuv_linear(rgb)
    return _to_u8(16 + y), _to_u8(128 + _half(u)), _to_u8(128 + _half(v))


def _half(plane: np.ndarray) -> np.ndarray:
    height, width = plane.shape
    return plane.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))


def _pair_mean(line: np.ndarray) -> np.ndarray:
    return line.reshape(-1, 2).mean(axis=1)


def _to_u8(plane: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(plane), 0, 255).astype(np.uint8)


def _even(value: float, minimum: int = 2) -> int:
    return max(minimum, int(round(value / 2)) * 2)


def _odd_half_step(distance: float, seconds: float, fps: float) -> int:
    """An even per-frame step covering `distance` in about `seconds`, whose half is odd.

    With an odd half-step, a bounce (see `_bounce`) over an even span never lands on the same
    spot twice in a row (the two would differ by 2 mod 4), so every frame moves.
    """
    half = max(1, round(distance / (seconds * fps) / 2))
    return 2 * (half | 1)


def _bounce(travelled: int, span: int) -> int:
    """Position after travelling `travelled` pixels back and forth over 0..span."""
    if span <= 0:
        return 0
    travelled %= 2 * span
    return travelled if travelled <= span else 2 * span - travelled


# --- scenes -----------------------------------------------------------------------------------

class _Scene:
    """Draws the pattern part of frame n into the Y, U, V planes."""

    def render(self, sequence: int, planes: _Planes) -> None:
        raise NotImplementedError


class _WindowScene(_Scene):
    """A picture precomputed larger than the frame; each frame copies a window of it.

    `path` maps the frame number to the window's even (x, y) offset, so chroma stays aligned.
    Copying a window is a memcpy per row: the cheapest possible moving picture.
    """

    def __init__(self, source: _Planes, size: tuple[int, int], path: Callable[[int], tuple[int, int]]):
        self._source, self._size, self._path = source, size, path

    def render(self, sequence: int, planes: _Planes) -> None:
        width, height = self._size
        x, y = self._path(sequence)
        src_y, src_u, src_v = self._source
        planes[0][...] = src_y[y:y + height, x:x + width]
        cx, cy, cw, ch = x // 2, y // 2, width // 2, height // 2
        planes[1][...] = src_u[cy:cy + ch, cx:cx + cw]
        planes[2][...] = src_v[cy:cy + ch, cx:cx + cw]


def _tile(planes: _Planes, across: int, down: int) -> _Planes:
    tiled = tuple(np.ascontiguousarray(np.tile(plane, (down, across))) for plane in planes)
    return tiled  # type: ignore[return-value]


_BAR_COLOURS = [(.75, .75, .75), (.75, .75, 0), (0, .75, .75), (0, .75, 0), (.75, 0, .75), (.75, 0, 0),
                (0, 0, .75)]
_CASTELLATION = [(0, 0, .75), (0, 0, 0), (.75, 0, .75), (0, 0, 0), (0, .75, .75), (0, 0, 0),
                 (.75, .75, .75)]
# Bottom row: -I, white, +Q, black, then the PLUGE steps (below black, black, above black), black.
_BOTTOM_EDGES = [0, 1.25, 2.5, 3.75, 5, 5 + 1 / 3, 5 + 2 / 3, 6, 7]
_BOTTOM_COLOURS = [(0, .13, .30), (1, 1, 1), (.2, 0, .42), (0, 0, 0), (-.04, -.04, -.04), (0, 0, 0),
                   (.04, .04, .04), (0, 0, 0)]


def _columns(width: int, edges: list[float], colours: list[tuple[float, float, float]]) -> np.ndarray:
    """A (width, 3) row of RGB with colour i between edges[i] and edges[i+1] (edges in bar units)."""
    units = np.arange(width) * (edges[-1] / width)
    index = np.searchsorted(np.asarray(edges[1:-1]), units, side="right")
    return np.asarray(colours, dtype=np.float32)[index]


def _build_bars(width: int, height: int, fps: float) -> _Scene:
    top, middle = _even(height * 0.67), _even(height * 0.08)
    bands = np.stack([_columns(width, list(range(8)), _BAR_COLOURS),
                      _columns(width, list(range(8)), _CASTELLATION),
                      _columns(width, _BOTTOM_EDGES, _BOTTOM_COLOURS)])
    # Convert one row pair per band and repeat it down: far cheaper than converting the whole frame.
    y, u, v = _rgb_to_yuv(np.repeat(bands, 2, axis=0))
    rows = np.array([top, middle, height - top - middle])
    planes = (np.repeat(y[::2], rows, axis=0), np.repeat(u, rows // 2, axis=0),
              np.repeat(v, rows // 2, axis=0))
    # Bars are periodic across the frame width, so two periods side by side hold every window.
    source = _tile(planes, 2, 1)
    step = min(_even(width / (4.0 * fps)), width - 2)  # a whole-width step would look frozen
    return _WindowScene(source, (width, height), lambda n: ((n * step) % width, 0))


def _build_gradient(width: int, height: int, fps: float) -> _Scene:
    """Hue cycling down the frame (two periods tall, for the window), brightness rising to the right."""
    hue = 2 * np.pi * np.arange(2 * height, dtype=np.float32) / height
    colour = np.stack([0.5 + 0.5 * np.cos(hue - k * 2 * np.pi / 3) for k in range(3)], axis=-1)
    shade = 0.3 + 0.7 * np.arange(width, dtype=np.float32) / width
    # Y, U, V are linear in RGB, so each plane is an outer product of a column and a row, and the
    # 2x2 chroma average factors into averaging the column and the row by pairs.
    y_col, u_col, v_col = _rgb_to_yuv_linear(colour)
    shade_pairs = _pair_mean(shade)
    planes = (_to_u8(16 + np.outer(y_col, shade)),
              _to_u8(128 + np.outer(_pair_mean(u_col), shade_pairs)),
              _to_u8(128 + np.outer(_pair_mean(v_col), shade_pairs)))
    step = min(_even(height / (3.0 * fps)), height - 2)
    return _WindowScene(planes, (width, height), lambda n: (0, (n * step) % height))


def _build_checker(width: int, height: int, fps: float) -> _Scene:
    side = _even(height / 8)
    period = 2 * side
    cells = (np.arange(period)[:, None] // side + np.arange(period)[None, :] // side) % 2
    rgb = np.where(cells[..., None] == 0, np.float32([.9, .9, .85]), np.float32([.05, .1, .35]))
    across, down = width // period + 2, height // period + 2
    source = _tile(_rgb_to_yuv(rgb), across, down)
    # Steps stay below the period, else the board would appear to stand still or run backwards.
    step_x = min(_even(side / (0.75 * fps)), period - 2)
    step_y = min(_even(step_x / 2), period - 2)
    return _WindowScene(source, (width, height), lambda n: ((n * step_x) % period, (n * step_y) % period))


def _build_zoneplate(width: int, height: int, fps: float) -> _Scene:
    pan_x, pan_y = _even(width / 8), _even(height / 8)
    full_w, full_h = width + 2 * pan_x, height + 2 * pan_y
    luma = _rings(full_w, full_h, step=1, max_cycles_per_px=0.25)
    tint_u = _rings(full_w, full_h, step=2, max_cycles_per_px=0.06)
    tint_v = _rings(full_w, full_h, step=2, max_cycles_per_px=0.04)
    source = (_to_u8(16 + 219 * luma), _to_u8(128 + 60 * (tint_u - .5)), _to_u8(128 + 60 * (tint_v - .5)))
    step_x = _odd_half_step(2 * pan_x, 2.0, fps)
    step_y = _odd_half_step(2 * pan_y, 1.5, fps)
    return _WindowScene(source, (width, height),
                        lambda n: (_bounce(n * step_x, 2 * pan_x), _bounce(n * step_y, 2 * pan_y)))


def _rings(full_w: int, full_h: int, *, step: int, max_cycles_per_px: float) -> np.ndarray:
    """A 0..1 zone plate cos(k r^2) sampled every `step` pixels, at `max_cycles_per_px` in the corners."""
    xs = (np.arange(0, full_w, step, dtype=np.float32) + (step - 1) / 2 - full_w / 2)[None, :]
    ys = (np.arange(0, full_h, step, dtype=np.float32) + (step - 1) / 2 - full_h / 2)[:, None]
    r_max = math.hypot(full_w / 2, full_h / 2)
    # Local frequency of cos(k r^2) is k r / pi cycles per pixel.
    k = math.pi * max_cycles_per_px / r_max
    return 0.5 + 0.5 * np.cos(k * (xs * xs + ys * ys))


class _BallScene(_Scene):
    """A ball bouncing over a static grid: the background is copied, the ball stamped through a mask."""

    def __init__(self, width: int, height: int, fps: float):
        self._background = _grid_background(width, height)
        diameter = 2 * max(2, min(width, height) // 8)
        self._sprite = _ball_sprite(diameter)
        self._span = (width - diameter, height - diameter)
        self._step = (_odd_half_step(width, 2.0, fps), _odd_half_step(height, 1.5, fps))

    def render(self, sequence: int, planes: _Planes) -> None:
        for plane, background in zip(planes, self._background):
            plane[...] = background
        x = _bounce(sequence * self._step[0], self._span[0])
        y = _bounce(sequence * self._step[1], self._span[1])
        for index, (plane, (values, mask)) in enumerate(zip(planes, self._sprite)):
            px, py = (x, y) if index == 0 else (x // 2, y // 2)
            height, width = mask.shape
            np.copyto(plane[py:py + height, px:px + width], values, where=mask)


def _grid_background(width: int, height: int) -> _Planes:
    """Dark blue-grey with grey grid lines, filled straight in YUV (two flat colours need no conversion)."""
    ground, line_colour = _yuv_colour((.06, .07, .12)), _yuv_colour((.3, .32, .35))
    sizes = ((height, width), (height // 2, width // 2), (height // 2, width // 2))
    planes = tuple(np.full(size, value, dtype=np.uint8) for size, value in zip(sizes, ground))
    spacing, thickness = _even(height / 8), _even(height / 240)
    for index, (plane, value) in enumerate(zip(planes, line_colour)):
        step, line = (spacing, thickness) if index == 0 else (spacing // 2, thickness // 2)
        for offset in range(0, max(plane.shape), step):
            plane[offset:offset + line, :] = value
            plane[:, offset:offset + line] = value
    return planes  # type: ignore[return-value]


def _yuv_colour(rgb: tuple[float, float, float]) -> tuple[int, int, int]:
    y, u, v = _rgb_to_yuv_linear(np.asarray(rgb, dtype=np.float32))
    return int(round(16 + float(y))), int(round(128 + float(u))), int(round(128 + float(v)))


def _ball_sprite(diameter: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(values, mask) for Y, U and V of a shaded orange ball of even `diameter`."""
    centre = (diameter - 1) / 2
    ys, xs = np.mgrid[0:diameter, 0:diameter].astype(np.float32)
    distance = np.hypot(xs - centre, ys - centre) / (diameter / 2)
    # A highlight up and to the left makes the ball read as a ball, not a disc.
    light = 1 - 0.55 * np.clip(np.hypot(xs - centre * 0.6, ys - centre * 0.6) / diameter, 0, 1)
    rgb = np.stack([light, 0.55 * light, 0.1 * light], axis=-1)
    y, u, v = _rgb_to_yuv(rgb)
    mask = distance <= 1
    chroma_mask = _half(mask.astype(np.float32)) >= 0.5
    return [(y, mask), (u, chroma_mask), (v, chroma_mask)]


_BUILDERS: dict[str, Callable[[int, int, float], _Scene]] = {
    "bars": _build_bars,
    "gradient": _build_gradient,
    "checker": _build_checker,
    "ball": _BallScene,
    "zoneplate": _build_zoneplate,
}


# --- on-screen display ------------------------------------------------------------------------

class _Osd:
    """Burns in the label (top left), frame counter (top right) and UTC wall clock (bottom left)."""

    def __init__(self, width: int, height: int, label: str):
        self._width, self._height = width, height
        self._label = label
        self._scale = _text_scale(width, height)
        self._margin = _even(2 * self._scale)
        self._clock_y = height - self._margin - _text_block(" ", self._scale).shape[0]
        self._clock_second: int | None = None
        self._clock_text = ""

    def draw(self, planes: _Planes, sequence: int, utc_us: int) -> None:
        self._stamp(planes, self._label, self._margin, self._margin)
        self._stamp(planes, self._clock(utc_us), self._margin, self._clock_y)
        counter = f"#{sequence}"
        counter_w = _text_block(counter, self._scale).shape[1]
        self._stamp(planes, counter, self._width - self._margin - counter_w, self._margin)

    def _clock(self, utc_us: int) -> str:
        # Formatting a datetime costs more than the rest of the OSD; do it once a second.
        second = utc_us // 1_000_000
        if second != self._clock_second:
            moment = datetime.fromtimestamp(second, tz=timezone.utc)
            self._clock_text = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
            self._clock_second = second
        return self._clock_text

    def _stamp(self, planes: _Planes, text: str, x: int, y: int) -> None:
        block = _text_block(text, self._scale)
        x, y = max(0, x), max(0, y)
        height = min(block.shape[0], self._height - y)
        width = min(block.shape[1], self._width - x)  # long labels are cut at the frame edge
        if height <= 0 or width <= 0:
            return
        planes[0][y:y + height, x:x + width] = block[:height, :width]
        for chroma in planes[1:]:
            chroma[y // 2:(y + height) // 2, x // 2:(x + width) // 2] = _NEUTRAL_C


def _text_scale(width: int, height: int) -> int:
    """Integer font scale: about 1/25 of the height, but small enough that the clock line fits."""
    by_height = max(1, round(height / 180))
    clock_w, _ = font.text_size("0000-00-00 00:00:00 UTC", 1)
    by_width = max(1, width // (clock_w + 8))
    return min(by_height, by_width)


@lru_cache(maxsize=128)
def _text_block(text: str, scale: int) -> np.ndarray:
    """White text on a black box, padded by `scale` and rounded to even size so chroma lines up."""
    mask = font.text_mask(text, scale)
    pad = scale
    height, width = _even(mask.shape[0] + 2 * pad), _even(mask.shape[1] + 2 * pad)
    block = np.full((height, width), _BOX_Y, dtype=np.uint8)
    block[pad:pad + mask.shape[0], pad:pad + mask.shape[1]][mask] = _TEXT_Y
    block.flags.writeable = False
    return block
