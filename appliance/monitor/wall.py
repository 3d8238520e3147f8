"""The wall compositor: tiles' newest pictures, no-signal screens, OSD and status bar drawn into one RGB frame."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from appliance.monitor.feeds import Feed
from appliance.monitor.layouts import Rect, status_bar_rect, wall_rect
from appliance.monitor.osd import (ALARM_BORDER, SELECTED, TileOsd, draw_banner, draw_border, draw_status_bar,
                                   draw_tile_osd, no_signal_picture)

EMPTY_TILE = (8, 8, 10)


@dataclass(frozen=True, slots=True)
class TileView:
    """One tile as the monitor wants it drawn. `channel` None is an empty tile; `message` set means
    the tile shows the no-signal screen with it ('NO SIGNAL', 'CONNECTING', 'NO CHANNEL 7')."""

    rect: Rect
    channel: int | None
    feed: Feed | None
    osd: TileOsd | None
    message: str | None = None
    selected: bool = False


@dataclass(frozen=True, slots=True)
class StatusLine:
    left: str
    right: str
    alert: bool = False


class Wall:
    """Composes frames of one display size; the canvas is reused frame after frame."""

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.canvas = np.zeros((height, width, 3), dtype=np.uint8)
        self.area = wall_rect(width, height)
        self.status_rect = status_bar_rect(width, height)
        self.tiles_drawn = self.no_signal_drawn = 0

    def render(self, tiles: list[TileView], status: StatusLine, banner: list[str] | None = None) -> np.ndarray:
        canvas = self.canvas
        canvas[:self.area.height] = 0
        for tile in tiles:
            self._draw_tile(tile)
        draw_status_bar(canvas, self.status_rect, status.left, status.right, alert=status.alert)
        if banner:
            draw_banner(canvas, self.area, banner)
        return canvas

    def _draw_tile(self, tile: TileView) -> None:
        rect, canvas = tile.rect, self.canvas
        target = canvas[rect.y:rect.y + rect.height, rect.x:rect.x + rect.width]
        if tile.channel is None:
            target[...] = EMPTY_TILE
        else:
            picture = tile.feed.picture() if tile.feed is not None and tile.message is None else None
            if picture is None:
                target[...] = no_signal_picture(rect.width, rect.height, tile.message or "CONNECTING")
                self.no_signal_drawn += 1
            else:
                target[...] = picture
            self.tiles_drawn += 1
        if tile.osd is not None:
            draw_tile_osd(canvas, rect, tile.osd)
            if tile.osd.alarm:
                draw_border(canvas, rect, ALARM_BORDER, thickness=3)
        if tile.selected:
            draw_border(canvas, rect, SELECTED, thickness=2)
