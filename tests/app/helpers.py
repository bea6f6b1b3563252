"""Tiny inputs for the app tests: a YouTube-VIS set with known tubes, run directories, a stand-in scene."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from wsovvis.autolabel.standins import COLOURS
from wsovvis.data import rle, ytvis

H, W = 24, 32


def box_mask(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def write_review_set(root: Path, *, length: int = 4, frames: bool = True) -> tuple[Path, Path]:
    """``root/frames/v1/0000t.png`` + ``root/tubes.json``: video 1 with tubes 1 (cat, frames 0-3),
    2 (dog, frames 0-1 and 3) and 3 (cat, frame 2); video 2 with tube 4 (dog). Returns (json, frame root)."""
    cats = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    videos, anns = [], []
    presence = {1: [True] * length, 2: [t != 2 for t in range(length)], 3: [t == 2 for t in range(length)]}
    boxes = {1: (2, 2, 10, 10), 2: (14, 4, 26, 16), 3: (4, 14, 12, 22), 4: (8, 8, 20, 20)}
    for vid, name, tube_ids in ((1, "v1", (1, 2, 3)), (2, "v2", (4,))):
        names = [f"{name}/{t:05d}.png" for t in range(length)]
        videos.append({"id": vid, "name": name, "height": H, "width": W, "length": length, "file_names": names})
        if frames:
            for t, n in enumerate(names):
                (root / "frames" / n).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((H, W, 3), 40 + 30 * (t % 6), np.uint8)).save(root / "frames" / n)
        for tid in tube_ids:
            present = presence.get(tid, [True] * length)
            m = box_mask(*boxes[tid])
            segs = [rle.encode(m) if p else None for p in present]
            anns.append({"id": tid, "video_id": vid, "category_id": 2 if tid in (2, 4) else 1, "iscrowd": 0,
                         "score": {1: 0.9, 2: 0.6, 3: 0.3, 4: 0.8}[tid], "segmentations": segs,
                         "areas": [int(m.sum()) if p else None for p in present],
                         "bboxes": [rle.mask_bbox(m) if p else None for p in present]})
    path = root / "tubes.json"
    ytvis.write({"videos": videos, "categories": cats, "annotations": anns}, path)
    return path, root / "frames"


def write_run_dir(root: Path, *, evals: bool = True) -> Path:
    """A run directory with 30 training lines (loss, loss_ce, lr) and, with ``evals``, two evaluations."""
    root.mkdir(parents=True, exist_ok=True)
    rows = [{"iteration": i, "time": 1000.0 + i, "loss": 10 / i, "loss_ce": 1 / i, "lr": 1e-3} for i in range(1, 31)]
    if evals:
        rows += [{"iteration": 10, "eval/AP": 0.125, "eval/AP50": 0.3, "eval/AR10": 0.2},
                 {"iteration": 20, "eval/AP": 0.25, "eval/AP50": 0.5, "eval/AR10": 0.4}]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    (root / "metrics.jsonl").write_text(text + '{"iteration": 31, "lo')  # torn last line of a killed writer
    return root


def scene(h: int = 60, w: int = 80, shift: int = 0) -> np.ndarray:
    """Grey image with a red rectangle (x 10..29, y 8..27) and a blue one (x 40..69, y 30..49), moved by ``shift``."""
    img = np.full((h, w, 3), 120, np.uint8)
    img[8:28, 10 + shift:30 + shift] = COLOURS["red"]
    img[30:50, 40:70] = COLOURS["blue"]
    return img
