"""On-screen display drawn into the RGB wall: text, per-tile icons, the no-signal screen, the status bar, banners.

Text uses the built-in bitmap font (`base.font`), so the OSD needs no font files and draws the same
on every backend, offscreen included.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from base import font

from appliance.monitor.layouts import Rect

WHITE = (235, 235, 235)
BLACK = (0, 0, 0)
TEXT_BOX = (16, 16, 16)
NO_SIGNAL_BG = (18, 28, 72)
STATUS_BG = (24, 24, 28)
SELECTED = (250, 200, 40)
ALARM_BORDER = (230, 40, 40)
# Icon colours: recording red, motion amber, alarm orange-red, video loss grey.
ICON_COLOURS = {"REC": (220, 30, 30), "MD": (240, 170, 0), "AL": (255, 80, 0), "VL": (130, 130, 130)}


@dataclass(frozen=True, slots=True)
class TileOsd:
    """What one tile's OSD shows."""

    name: str
    recording: bool = False
    motion: bool = False
    alarm: bool = False
    video_loss: bool = False
    note: str = ""  # e.g. "PLAYBACK 2026-11-28 14:03:10"

    @property
    def icons(self) -> list[str]:
        flags = (("REC", self.recording), ("MD", self.motion), ("AL", self.alarm), ("VL", self.video_loss))
        return [name for name, on in flags if on]


def text_scale(height: int) -> int:
    """Integer font scale for text in an area `height` pixels tall: readable, never more than a tenth of it."""
    return max(1, min(4, height // 110))


def draw_text(canvas: np.ndarray, text: str, x: int, y: int, *, scale: int = 1, colour=WHITE,
              box=TEXT_BOX) -> tuple[int, int]:
    """Draw `text` at (x, y) on a padded box; clipped to the canvas. Returns the box's (width, height)."""
    mask = font.text_mask(text, scale)
    pad = scale
    width, height = mask.shape[1] + 2 * pad, mask.shape[0] + 2 * pad
    region = _clip(canvas, x, y, width, height)
    if region is None:
        return width, height
    view, (top, left) = region
    if box is not None:
        view[...] = box
    glyphs = mask[max(0, top - pad):, max(0, left - pad):]
    inner = view[max(0, pad - top):, max(0, pad - left):]
    rows, cols = min(glyphs.shape[0], inner.shape[0]), min(glyphs.shape[1], inner.shape[1])
    inner[:rows, :cols][glyphs[:rows, :cols]] = colour
    return width, height


def _clip(canvas: np.ndarray, x: int, y: int, width: int, height: int):
    """The part of the canvas under a (x, y, width, height) box, and how much was cut off at top/left."""
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(canvas.shape[1], x + width), min(canvas.shape[0], y + height)
    if x1 <= x0 or y1 <= y0:
        return None
    return canvas[y0:y1, x0:x1], (y0 - y, x0 - x)


def text_width(text: str, scale: int) -> int:
    return font.text_size(text, scale)[0] + 2 * scale


def fill(canvas: np.ndarray, rect: Rect, colour) -> None:
    canvas[rect.y:rect.y + rect.height, rect.x:rect.x + rect.width] = colour


def draw_border(canvas: np.ndarray, rect: Rect, colour, thickness: int = 2) -> None:
    x, y, w, h = rect.x, rect.y, rect.width, rect.height
    canvas[y:y + thickness, x:x + w] = colour
    canvas[y + h - thickness:y + h, x:x + w] = colour
    canvas[y:y + h, x:x + thickness] = colour
    canvas[y:y + h, x + w - thickness:x + w] = colour


def draw_tile_osd(canvas: np.ndarray, rect: Rect, osd: TileOsd) -> None:
    """Channel name top left, icons top right, a note (playback time, ...) bottom left."""
    scale = text_scale(rect.height)
    margin = 2 * scale + 2
    draw_text(canvas, osd.name, rect.x + margin, rect.y + margin, scale=scale)
    right = rect.x + rect.width - margin
    for icon in reversed(osd.icons):
        right -= text_width(icon, scale)
        draw_text(canvas, icon, right, rect.y + margin, scale=scale, colour=WHITE, box=ICON_COLOURS[icon])
        right -= scale * 2
    if osd.note:
        note_h = font.text_size(osd.note, scale)[1] + 2 * scale
        draw_text(canvas, osd.note, rect.x + margin, rect.y + rect.height - margin - note_h, scale=scale)


@lru_cache(maxsize=64)
def no_signal_picture(width: int, height: int, message: str = "NO SIGNAL") -> np.ndarray:
    """The picture a tile shows with video loss or no stream: dark blue, the message centred (read-only)."""
    picture = np.empty((height, width, 3), dtype=np.uint8)
    picture[...] = NO_SIGNAL_BG
    scale = max(1, min(6, width // (text_width(message, 1) * 2)))
    text_w, text_h = font.text_size(message, scale)
    draw_text(picture, message, (width - text_w) // 2 - scale, (height - text_h) // 2 - scale, scale=scale,
              box=None)
    picture.flags.writeable = False
    return picture


def draw_status_bar(canvas: np.ndarray, rect: Rect, left: str, right: str, *, alert: bool = False) -> None:
    """The bottom bar: date/time and recording state at the left, disk and health at the right."""
    fill(canvas, rect, (96, 16, 16) if alert else STATUS_BG)
    scale = max(1, (rect.height - 4) // 9)
    text_h = font.text_size(" ", scale)[1] + 2 * scale
    y = rect.y + (rect.height - text_h) // 2
    draw_text(canvas, left, rect.x + 4, y, scale=scale, box=None)
    draw_text(canvas, right, rect.x + rect.width - 4 - text_width(right, scale), y, scale=scale, box=None)


def draw_banner(canvas: np.ndarray, area: Rect, lines: list[str], *, colour=(40, 40, 48)) -> None:
    """A centred box with lines of text (PIN prompt, messages) over the wall."""
    scale = max(2, text_scale(area.height) + 1)
    widths = [text_width(line, scale) for line in lines]
    line_h = font.text_size(" ", scale)[1] + 4 * scale
    box_w, box_h = max(widths) + 8 * scale, line_h * len(lines) + 6 * scale
    x, y = area.x + (area.width - box_w) // 2, area.y + (area.height - box_h) // 2
    fill(canvas, Rect(max(0, x), max(0, y), min(box_w, area.width), min(box_h, area.height)), colour)
    for index, line in enumerate(lines):
        draw_text(canvas, line, x + (box_w - widths[index]) // 2, y + 3 * scale + index * line_h, scale=scale,
                  box=None)
