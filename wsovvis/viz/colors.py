"""Distinct, stable colours for track ids (the same id gets the same colour in every picture)."""

from __future__ import annotations

import colorsys

GOLDEN = 0.618033988749895


def track_color(track_id: int) -> tuple[int, int, int]:
    """RGB 0..255 for a track id: hues spaced by the golden ratio, alternating brightness."""
    h = (0.1 + track_id * GOLDEN) % 1.0
    s = 0.85 if track_id % 3 else 0.65
    v = 1.0 if track_id % 2 else 0.85
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return int(r * 255 + 0.5), int(g * 255 + 0.5), int(b * 255 + 0.5)


def text_color(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``rgb`` (ITU-R BT.601 luma)."""
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return (0, 0, 0) if luma > 140 else (255, 255, 255)
