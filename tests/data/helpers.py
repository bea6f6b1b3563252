"""Builders of tiny on-disk datasets for the data/viz tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from wsovvis.data import masks


def write_frame(path: Path, h: int, w: int, value: int = 120) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), value, dtype=np.uint8)).save(path, quality=95)


def write_ids(path: Path, ids: np.ndarray, fmt: str = "palette") -> None:
    """Id PNG in the given format: palette (P), gray (L), uint16 (I;16) or rgb (panoptic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "palette":
        masks.write_ids(path, ids.astype(np.uint8))
    elif fmt == "gray":
        Image.fromarray(ids.astype(np.uint8), mode="L").save(path)
    elif fmt == "uint16":
        Image.fromarray(ids.astype(np.uint16)).save(path)
    elif fmt == "rgb":
        path.write_bytes(masks.encode_rgb_ids_png(ids))
    else:
        raise ValueError(fmt)


def make_video(root: Path, name: str, id_maps: list[np.ndarray | None], *, naming: str = "mask_",
               fmt: str = "palette", frame_hw: tuple[int, int] | None = None) -> None:
    """Frames ``<root>/img/<name>/0000t.jpg`` and masks ``<root>/masks/<name>/<naming>0000t.png``.

    ``id_maps[t] = None`` leaves frame t without a mask file.
    """
    for t, ids in enumerate(id_maps):
        h, w = frame_hw or (ids.shape if ids is not None else (12, 16))
        write_frame(root / "img" / name / f"{t:05d}.jpg", h, w)
        if ids is not None:
            write_ids(root / "masks" / name / f"{naming}{t:05d}.png", ids, fmt)


def blob_ids(h: int, w: int, t: int, ids=(1, 2)) -> np.ndarray:
    """Deterministic id map with one rectangle per id, shifted by ``t``."""
    out = np.zeros((h, w), dtype=np.int64)
    for k, tid in enumerate(ids):
        y = 1 + 3 * k
        out[y:y + 3, 1 + t + 4 * k:4 + t + 4 * k] = tid
    return out
