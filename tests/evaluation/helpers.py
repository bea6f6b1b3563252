"""Small YouTube-VIS GT / results builders for the evaluation tests."""

from __future__ import annotations

import numpy as np

from wsovvis.data import rle


def box(h: int, w: int, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def enc(mask: np.ndarray | None) -> dict | None:
    return None if mask is None else rle.encode(mask)


def make_gt(videos: list[tuple[int, int, int, int]], cats: list[int], tracks: list[dict],
            partitions: dict[int, int] | None = None) -> dict:
    """``videos``: (id, height, width, length); ``tracks``: dicts with video_id, category_id, masks
    (list of bool arrays or None), optional iscrowd / areas / id."""
    gt = {
        "videos": [{"id": v, "height": h, "width": w, "length": n, "file_names": [f"{v}/{t}.jpg" for t in range(n)]}
                   for v, h, w, n in videos],
        "categories": [{"id": c, "name": f"c{c}"} for c in cats],
        "annotations": [],
    }
    if partitions is not None:
        for c in gt["categories"]:
            c["partition"] = partitions[c["id"]]
    for i, t in enumerate(tracks):
        masks = t["masks"]
        areas = t.get("areas") or [None if m is None else int(m.sum()) for m in masks]
        gt["annotations"].append({
            "id": t.get("id", i + 1), "video_id": t["video_id"], "category_id": t["category_id"],
            "iscrowd": t.get("iscrowd", 0), "segmentations": [enc(m) for m in masks], "areas": areas,
            "bboxes": [None if m is None else rle.mask_bbox(m) for m in masks],
        })
    return gt


def pred(video_id: int, category_id: int, score: float, masks: list) -> dict:
    return {"video_id": video_id, "category_id": category_id, "score": score, "segmentations": [enc(m) for m in masks]}


def random_case(rng: np.random.Generator, num_videos: int = 4, num_frames: int = 3, h: int = 12, w: int = 16,
                num_cats: int = 3, crowd: float = 0.15, lvvis: bool = False, tie_scores: bool = True,
                absent: float = 0.2) -> tuple[dict, list]:
    """Random GT and predictions (copies of GT with noise, random blobs), with absent frames, crowd
    tracks, empty-but-present masks and tied scores, all on a tiny canvas."""
    def blob():
        y0, x0 = rng.integers(0, h - 2), rng.integers(0, w - 2)
        m = box(h, w, y0, x0, y0 + rng.integers(1, h // 2 + 2), x0 + rng.integers(1, w // 2 + 2))
        return m | (rng.random((h, w)) < 0.02)

    def track():
        return [None if rng.random() < absent else blob() for _ in range(num_frames)]

    videos = [(v + 1, h, w, num_frames) for v in range(num_videos)]
    cats = list(range(1, num_cats + 1))
    tracks, results = [], []
    for v in range(1, num_videos + 1):
        for _ in range(int(rng.integers(1, 4))):
            masks = track()
            # JSON areas are taken as they are: spread them over the size ranges, boundaries included
            scale = rng.choice([1, 300, 2000])
            areas = [None if m is None else float(m.sum() * scale) for m in masks]
            if rng.random() < 0.2:
                areas = [None if a is None else float(rng.choice([16384, 65536])) for a in areas]
            tracks.append({"video_id": v, "category_id": int(rng.integers(1, num_cats + 1)), "masks": masks,
                           "iscrowd": int(rng.random() < crowd), "areas": areas})
    for t in tracks:
        for _ in range(int(rng.integers(0, 4))):
            masks = [None if m is None or rng.random() < 0.1 else (m ^ (rng.random((h, w)) < 0.04)) for m in t["masks"]]
            if rng.random() < 0.2:
                masks = [np.zeros((h, w), bool) if m is not None and rng.random() < 0.5 else m for m in masks]
            cat = t["category_id"] if rng.random() < 0.8 else int(rng.integers(1, num_cats + 1))
            results.append(pred(t["video_id"], cat, _score(rng, tie_scores), masks))
    for v in range(1, num_videos + 1):
        for _ in range(int(rng.integers(0, 3))):
            results.append(pred(v, int(rng.integers(1, num_cats + 1)), _score(rng, tie_scores), track()))
    parts = {c: int(rng.integers(0, 4)) for c in cats} if lvvis else None
    return make_gt(videos, cats, tracks, parts), results


def _score(rng, ties: bool) -> float:
    return round(float(rng.random()), 1) if ties else float(rng.random())
