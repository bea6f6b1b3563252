"""Small hand-made YouTube-VIS sets for the engine tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from wsovvis.data import rle


def write_video_set(root: Path, videos: list[dict], categories: int = 2, annotations: bool = True) -> Path:
    """``videos``: ``[{"name", "frames": [RGB uint8 [H, W, 3]], "tracks": [(category_id, [bool mask | None])]}]``.

    Writes ``root/JPEGImages/<name>/<t>.png`` and ``root/data.json``; returns the JSON path.
    """
    vids, anns = [], []
    for vi, v in enumerate(videos, start=1):
        names = []
        for t, frame in enumerate(v["frames"]):
            p = root / "JPEGImages" / v["name"] / f"{t:05d}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(frame).save(p)
            names.append(f"{v['name']}/{t:05d}.png")
        h, w = v["frames"][0].shape[:2]
        vids.append({"id": vi, "name": v["name"], "file_names": names, "height": h, "width": w,
                     "length": len(names)})
        for cat, masks in v.get("tracks", []):
            segs = [rle.encode(m) if m is not None else None for m in masks]
            anns.append({"id": len(anns) + 1, "video_id": vi, "category_id": cat, "iscrowd": 0,
                         "segmentations": segs, "bboxes": [rle.mask_bbox(m) if m is not None else None for m in masks],
                         "areas": [int(m.sum()) if m is not None else None for m in masks]})
    data = {"videos": vids, "categories": [{"id": c + 1, "name": f"c{c + 1}"} for c in range(categories)]}
    if annotations:
        data["annotations"] = anns
    path = root / "data.json"
    path.write_text(json.dumps(data))
    return path


def box_mask(h: int, w: int, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def frames(n: int, h: int = 32, w: int = 48, value: int = 100) -> list[np.ndarray]:
    return [np.full((h, w, 3), value + t, dtype=np.uint8) for t in range(n)]
