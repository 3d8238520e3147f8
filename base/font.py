"""A tiny built-in 5x7 bitmap font for burning text into frames, with no Pillow or FreeType dependency."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

GLYPH_WIDTH = 5
GLYPH_HEIGHT = 7
# One blank column between characters; a cell is the advance from one character to the next.
CELL_WIDTH = GLYPH_WIDTH + 1

# Each glyph is seven rows of five pixels, top row first, '1' = ink. Lowercase letters use the
# uppercase glyphs: on a 5x7 grid at OSD sizes they read better than cramped lowercase.
_ROWS: dict[str, str] = {
    " ": "00000 00000 00000 00000 00000 00000 00000",
    "0": "01110 10001 10011 10101 11001 10001 01110",
    "1": "00100 01100 00100 00100 00100 00100 01110",
    "2": "01110 10001 00001 00010 00100 01000 11111",
    "3": "11111 00010 00100 00010 00001 10001 01110",
    "4": "00010 00110 01010 10010 11111 00010 00010",
    "5": "11111 10000 11110 00001 00001 10001 01110",
    "6": "00110 01000 10000 11110 10001 10001 01110",
    "7": "11111 00001 00010 00100 01000 01000 01000",
    "8": "01110 10001 10001 01110 10001 10001 01110",
    "9": "01110 10001 10001 01111 00001 00010 01100",
    "A": "01110 10001 10001 11111 10001 10001 10001",
    "B": "11110 10001 10001 11110 10001 10001 11110",
    "C": "01110 10001 10000 10000 10000 10001 01110",
    "D": "11100 10010 10001 10001 10001 10010 11100",
    "E": "11111 10000 10000 11110 10000 10000 11111",
    "F": "11111 10000 10000 11110 10000 10000 10000",
    "G": "01110 10001 10000 10111 10001 10001 01111",
    "H": "10001 10001 10001 11111 10001 10001 10001",
    "I": "01110 00100 00100 00100 00100 00100 01110",
    "J": "00111 00010 00010 00010 00010 10010 01100",
    "K": "10001 10010 10100 11000 10100 10010 10001",
    "L": "10000 10000 10000 10000 10000 10000 11111",
    "M": "10001 11011 10101 10101 10001 10001 10001",
    "N": "10001 10001 11001 10101 10011 10001 10001",
    "O": "01110 10001 10001 10001 10001 10001 01110",
    "P": "11110 10001 10001 11110 10000 10000 10000",
    "Q": "01110 10001 10001 10001 10101 10010 01101",
    "R": "11110 10001 10001 11110 10100 10010 10001",
    "S": "01111 10000 10000 01110 00001 00001 11110",
    "T": "11111 00100 00100 00100 00100 00100 00100",
    "U": "10001 10001 10001 10001 10001 10001 01110",
    "V": "10001 10001 10001 10001 10001 01010 00100",
    "W": "10001 10001 10001 10101 10101 10101 01010",
    "X": "10001 10001 01010 00100 01010 10001 10001",
    "Y": "10001 10001 10001 01010 00100 00100 00100",
    "Z": "11111 00001 00010 00100 01000 10000 11111",
    "-": "00000 00000 00000 11111 00000 00000 00000",
    ":": "00000 01100 01100 00000 01100 01100 00000",
    ".": "00000 00000 00000 00000 00000 01100 01100",
    "/": "00000 00001 00010 00100 01000 10000 00000",
    "_": "00000 00000 00000 00000 00000 00000 11111",
    "#": "01010 01010 11111 01010 11111 01010 01010",
    "(": "00010 00100 01000 01000 01000 00100 00010",
    ")": "01000 00100 00010 00010 00010 00100 01000",
    ",": "00000 00000 00000 00000 01100 00100 01000",
    "'": "01100 00100 01000 00000 00000 00000 00000",
    '"': "01010 01010 01010 00000 00000 00000 00000",
    "+": "00000 00100 00100 11111 00100 00100 00000",
    "=": "00000 00000 11111 00000 11111 00000 00000",
    "!": "00100 00100 00100 00100 00100 00000 00100",
    "?": "01110 10001 00001 00010 00100 00000 00100",
    "%": "11000 11001 00010 00100 01000 10011 00011",
    "*": "00000 00100 10101 01110 10101 00100 00000",
    "<": "00010 00100 01000 10000 01000 00100 00010",
    ">": "01000 00100 00010 00001 00010 00100 01000",
    "[": "01110 01000 01000 01000 01000 01000 01110",
    "]": "01110 00010 00010 00010 00010 00010 01110",
    ";": "00000 01100 01100 00000 01100 00100 01000",
    "&": "01100 10010 10100 01000 10101 10010 01101",
    "@": "01110 10001 00001 01101 10101 10101 01110",
}
# Drawn for any character the font lacks, so odd channel names show up as boxes instead of crashing.
_MISSING = "11111 10001 10001 10001 10001 10001 11111"


def _parse(rows: str) -> np.ndarray:
    bitmap = np.array([[bit == "1" for bit in row] for row in rows.split()], dtype=bool)
    assert bitmap.shape == (GLYPH_HEIGHT, GLYPH_WIDTH), rows
    bitmap.flags.writeable = False
    return bitmap


_GLYPHS = {char: _parse(rows) for char, rows in _ROWS.items()}
_MISSING_GLYPH = _parse(_MISSING)


def has_glyph(char: str) -> bool:
    """Whether `char` has its own glyph (after folding lowercase to uppercase)."""
    return char.upper() in _GLYPHS


def glyph(char: str) -> np.ndarray:
    """The (7, 5) bool bitmap of one character; unknown characters give a hollow box."""
    return _GLYPHS.get(char.upper(), _MISSING_GLYPH)


@lru_cache(maxsize=512)
def _scaled_glyph(char: str, scale: int) -> np.ndarray:
    scaled = np.kron(glyph(char), np.ones((scale, scale), dtype=bool))
    scaled.flags.writeable = False
    return scaled


def text_size(text: str, scale: int = 1) -> tuple[int, int]:
    """(width, height) in pixels of `text` drawn at integer `scale`, without trailing spacing."""
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, not {scale!r}")
    width = max(0, len(text) * CELL_WIDTH - 1) * scale
    return width, GLYPH_HEIGHT * scale


@lru_cache(maxsize=256)
def text_mask(text: str, scale: int = 1) -> np.ndarray:
    """A read-only bool image of `text` on one line, True where ink is (cached: OSD text repeats)."""
    width, height = text_size(text, scale)
    mask = np.zeros((height, width), dtype=bool)
    advance = CELL_WIDTH * scale
    for index, char in enumerate(text):
        left = index * advance
        mask[:, left:left + GLYPH_WIDTH * scale] = _scaled_glyph(char, scale)
    mask.flags.writeable = False
    return mask
