"""Wall layouts (1, 4, 8 = one big and 7, 9, 16 tiles) as rectangles, and the pages a tour cycles through."""
from __future__ import annotations

from dataclasses import dataclass

LAYOUTS = (1, 4, 8, 9, 16)
STATUS_BAR_FRACTION = 0.04  # of the screen height, at least MIN_STATUS_BAR_PX
MIN_STATUS_BAR_PX = 18
GAP_PX = 2  # dark line between tiles, so neighbouring pictures do not run together


@dataclass(frozen=True, slots=True)
class Rect:
    x: int
    y: int
    width: int
    height: int

    def contains(self, x: int, y: int) -> bool:
        return self.x <= x < self.x + self.width and self.y <= y < self.y + self.height

    def inset(self, pixels: int) -> Rect:
        return Rect(self.x + pixels, self.y + pixels, max(2, self.width - 2 * pixels),
                    max(2, self.height - 2 * pixels))


def status_bar_rect(width: int, height: int) -> Rect:
    bar = max(MIN_STATUS_BAR_PX, round(height * STATUS_BAR_FRACTION))
    return Rect(0, height - bar, width, bar)


def wall_rect(width: int, height: int) -> Rect:
    """The screen above the status bar, where the tiles go."""
    return Rect(0, 0, width, status_bar_rect(width, height).y)


def tile_rects(layout: int, area: Rect) -> list[Rect]:
    """The tiles of `layout` inside `area`, in reading order, each with even sides (for YUV scaling).

    Layout 8 is the DVR classic: one big tile over 3x3 cells of a 4x4 grid, three small tiles down
    its right and four along the bottom.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of: {', '.join(map(str, LAYOUTS))}")
    if layout == 8:
        cells = [(0, 0, 3, 3)] + [(3, row, 1, 1) for row in range(3)] + [(col, 3, 1, 1) for col in range(4)]
        return [_cell_rect(area, 4, *cell) for cell in cells]
    side = {1: 1, 4: 2, 9: 3, 16: 4}[layout]
    return [_cell_rect(area, side, col, row, 1, 1) for row in range(side) for col in range(side)]


def _cell_rect(area: Rect, grid: int, col: int, row: int, cols: int, rows: int) -> Rect:
    """Cells (col, row) to (col + cols, row + rows) of a grid x grid split of `area`, less the gap."""
    left = area.x + area.width * col // grid
    right = area.x + area.width * (col + cols) // grid
    top = area.y + area.height * row // grid
    bottom = area.y + area.height * (row + rows) // grid
    gap = GAP_PX if grid > 1 else 0
    width, height = _even(right - left - gap), _even(bottom - top - gap)
    return Rect(left + gap // 2, top + gap // 2, width, height)


def _even(value: int) -> int:
    return max(2, value - value % 2)


def pages(channels: list[int], layout: int) -> list[list[int | None]]:
    """`channels` split into pages of `layout` tiles, the last page padded with empty tiles."""
    if not channels:
        return [[None] * layout]
    result = []
    for start in range(0, len(channels), layout):
        page: list[int | None] = list(channels[start:start + layout])
        result.append(page + [None] * (layout - len(page)))
    return result


def fit_tiles(tiles: list[int | None], layout: int) -> list[int | None]:
    """`tiles` cut or padded with empty tiles to exactly `layout` entries."""
    return (list(tiles) + [None] * layout)[:layout]
