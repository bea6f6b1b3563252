"""Draw instance masks over one frame: translucent fill, solid outline, and a track-id tag."""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from wsovvis.data import rle as rle_utils
from wsovvis.utils.io import atomic_write_bytes
from wsovvis.viz.colors import text_color, track_color


@dataclass
class Tube:
    """One track to draw. ``masks``: per frame an RLE dict, a bool array ``[H, W]`` or None (absent)."""

    track_id: int
    masks: Sequence
    category: str = ""
    score: float | None = None
    color: tuple[int, int, int] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def rgb(self) -> tuple[int, int, int]:
        return self.color or track_color(self.track_id)

    def label(self) -> str:
        parts = [f"id {self.track_id}"]
        if self.category:
            parts.append(self.category)
        if self.score is not None:
            parts.append(f"{self.score:.2f}")
        return "  ".join(parts)

    def num_present(self) -> int:
        return sum(1 for m in self.masks if m is not None)


@functools.lru_cache(maxsize=8)
def font(size: int) -> ImageFont.ImageFont:
    """Pillow's bundled scalable font; its bitmap fallback when FreeType is missing."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or no FreeType
        return ImageFont.load_default()


def mask_array(m, size_hw: tuple[int, int] | None = None) -> np.ndarray | None:
    """RLE / array / None -> bool ``[H, W]`` (None for absent or empty)."""
    if m is None:
        return None
    arr = rle_utils.decode(m) if isinstance(m, dict) else np.asarray(m, dtype=bool)
    if size_hw is not None and arr.shape != tuple(size_hw):
        arr = np.asarray(Image.fromarray(arr.astype(np.uint8) * 255).resize(size_hw[::-1], Image.NEAREST)) > 127
    return arr if arr.any() else None


def _outline(m: np.ndarray) -> np.ndarray:
    """Pixels of ``m`` with a 4-neighbour outside it (a 1-pixel inner border)."""
    inner = m.copy()
    inner[1:, :] &= m[:-1, :]
    inner[:-1, :] &= m[1:, :]
    inner[:, 1:] &= m[:, :-1]
    inner[:, :-1] &= m[:, 1:]
    return m & ~inner


def overlay_frame(
    frame: np.ndarray | None,
    tubes: Sequence[Tube],
    t: int,
    size_hw: tuple[int, int],
    alpha: float = 0.45,
    tag: bool = True,
    missing_text: str = "missing frame",
) -> Image.Image:
    """Frame ``[H, W, 3]`` uint8 (None = missing) with frame ``t`` of every tube drawn, resized to ``size_hw``.

    Tubes are drawn in the given order, so later ones end up on top.
    """
    h, w = size_hw
    if frame is None:
        canvas = np.full((h, w, 3), 70, dtype=np.float32)
    else:
        im = Image.fromarray(frame)
        canvas = np.asarray(im.resize((w, h), Image.BILINEAR) if im.size != (w, h) else im, dtype=np.float32).copy()
    tags = []
    for tube in tubes:
        m = mask_array(tube.masks[t], (h, w)) if t < len(tube.masks) else None
        if m is None:
            continue
        color = np.array(tube.rgb, dtype=np.float32)
        canvas[m] = (1 - alpha) * canvas[m] + alpha * color
        canvas[_outline(m)] = color
        ys, xs = np.nonzero(m)
        tags.append((tube, int(xs.min()), int(ys.min())))
    out = Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    f = font(max(9, min(14, h // 12)))
    if frame is None:
        draw.text((4, h // 2 - 6), missing_text, fill=(255, 200, 0), font=f)
    if tag:
        for tube, x, y in tags:
            text = str(tube.track_id)
            l, tp, r, b = draw.textbbox((0, 0), text, font=f)
            bw, bh = r - l + 4, b - tp + 2
            x, y = min(max(x, 0), w - bw), min(max(y - bh, 0), h - bh)
            draw.rectangle([x, y, x + bw, y + bh], fill=tube.rgb)
            draw.text((x + 2 - l, y + 1 - tp), text, fill=text_color(tube.rgb), font=f)
    return out


def write_png(img: Image.Image, path: str | os.PathLike) -> None:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    atomic_write_bytes(path, buf.getvalue())


def write_gif(frames: Sequence[Image.Image], path: str | os.PathLike, duration_ms: int = 120) -> None:
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=list(frames[1:]), duration=duration_ms, loop=0)
    atomic_write_bytes(path, buf.getvalue())
