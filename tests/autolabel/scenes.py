"""Synthetic coloured scenes for the auto-labelling tests (flat colours the stand-ins recognise)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from wsovvis.autolabel.standins import COLOURS

BG = (90, 90, 90)


def video_frames(num_frames: int = 16, h: int = 64, w: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """-> (frames uint8 [T, h, w, 3], GT ids uint8 [T, h, w]).

    GT ids: 1 red square (static, hidden behind a white bar on frames 6..8), 2 blue square moving
    right 2 px/frame, 3 green square entering from the right edge on frame 7 (moving left).
    """
    frames = np.zeros((num_frames, h, w, 3), np.uint8)
    ids = np.zeros((num_frames, h, w), np.uint8)
    for t in range(num_frames):
        f = np.empty((h, w, 3), np.uint8)
        f[:] = BG
        g = np.zeros((h, w), np.uint8)
        f[8:24, 8:24] = COLOURS["red"]
        g[8:24, 8:24] = 1
        x = 30 + 2 * t
        f[36:52, x:x + 14] = COLOURS["blue"]
        g[36:52, x:x + 14] = 2
        if t >= 7:
            x3 = w - 3 * (t - 6)
            f[6:20, x3:x3 + 12] = COLOURS["green"]
            g[6:20, x3:x3 + 12] = 3
        if 6 <= t <= 8:  # the occluder covers the red square entirely
            f[4:28, 4:28] = COLOURS["white"]
            g[4:28, 4:28] = 0
        frames[t], ids[t] = f, g
    return frames, ids


def write_video(root: Path, name: str, frames: np.ndarray) -> None:
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    for t, f in enumerate(frames):
        Image.fromarray(f).save(d / f"{t:05d}.png")


def image_with(shapes: list[tuple[str, tuple[int, int, int, int]]], h: int = 60, w: int = 90) -> np.ndarray:
    """Image with filled rectangles ``(colour, (x, y, w, h))`` on a grey background."""
    im = np.empty((h, w, 3), np.uint8)
    im[:] = BG
    for colour, (x, y, bw, bh) in shapes:
        im[y:y + bh, x:x + bw] = COLOURS[colour]
    return im
