"""Mask-centred crops for embedding: padded square box, background blended towards a neutral fill.

The crop is square because CLIP preprocessing resizes the short side and centre-crops: a tall or
wide box would lose the object's ends. Context outside the mask is kept but faded (``bg_alpha``) so
the embedding describes the object, not its surroundings, while the model still sees where it is.
"""

from __future__ import annotations

import math

import numpy as np


def square_box(box: tuple[float, float, float, float], pad_ratio: float) -> tuple[int, int, int]:
    """``[x, y, w, h]`` -> ``(x0, y0, side)`` of the square around the box padded by ``pad_ratio`` per side.

    The square is centred on the box; ``side = ceil(max(w, h) * (1 + 2 * pad_ratio))`` (at least 1).
    It may extend past the image; callers fill that part.
    """
    x, y, w, h = box
    side = max(1, math.ceil(max(w, h) * (1.0 + 2.0 * pad_ratio) - 1e-9))
    cx, cy = x + w / 2.0, y + h / 2.0
    return math.floor(cx - side / 2.0 + 0.5), math.floor(cy - side / 2.0 + 0.5), side


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``[x, y, w, h]`` of a bool mask ``[H, W]``, or None when it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def crop_blend(
    image: np.ndarray,
    mask: np.ndarray,
    pad_ratio: float,
    bg_alpha: float,
    fill: tuple[int, int, int],
) -> np.ndarray | None:
    """Square crop ``uint8 [S, S, 3]`` of ``image [H, W, 3]`` around ``mask [H, W]`` (None if the mask is empty).

    Inside the mask pixels are unchanged; outside, ``bg_alpha * pixel + (1 - bg_alpha) * fill``;
    where the square leaves the image, ``fill``.
    """
    box = mask_box(mask)
    if box is None:
        return None
    h, w = mask.shape
    x0, y0, side = square_box(box, pad_ratio)
    out = np.empty((side, side, 3), dtype=np.uint8)
    out[:] = np.asarray(fill, dtype=np.uint8)
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    if ix0 >= ix1 or iy0 >= iy1:
        return out
    region = image[iy0:iy1, ix0:ix1].astype(np.float32)
    m = mask[iy0:iy1, ix0:ix1, None]
    faded = bg_alpha * region + (1.0 - bg_alpha) * np.asarray(fill, dtype=np.float32)
    out[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = np.clip(np.where(m, region, faded) + 0.5, 0, 255).astype(np.uint8)
    return out
