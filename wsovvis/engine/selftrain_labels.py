"""Self-training labels (CutLER ``get_self_training_ann.py``, for tubes): keep confident predictions,
add back earlier pseudo tubes that no kept prediction explains.

Tube IoU (the YouTube-VIS one): summed per-frame intersections over summed per-frame unions.
"""

from __future__ import annotations

from pycocotools import mask as mask_utils

from wsovvis.data import rle as rle_utils


def tube_iou(a: list, b: list) -> float:
    """IoU of two tubes (per-frame compressed RLE or None, same length)."""
    inter = union = 0.0
    for x, y in zip(a, b):
        ax = rle_utils.area(x) if x is not None else 0
        ay = rle_utils.area(y) if y is not None else 0
        i = 0
        if ax and ay:
            i = float(mask_utils.area(mask_utils.merge([_b(x), _b(y)], intersect=True)))
        inter += i
        union += ax + ay - i
    return inter / union if union > 0 else 0.0


def _b(r: dict) -> dict:
    c = r["counts"]
    return {"size": r["size"], "counts": c.encode("ascii") if isinstance(c, str) else c}


def keep_confident(results: list[dict], threshold: float) -> list[dict]:
    """Predictions with ``score >= threshold`` that have at least one non-empty frame."""
    return [r for r in results if r["score"] >= threshold
            and any(s is not None and rle_utils.area(s) > 0 for s in r["segmentations"])]


def add_back(kept: list[dict], earlier: list[dict], iou_threshold: float = 0.5) -> list[dict]:
    """Earlier pseudo tubes (annotations) whose tube IoU with every kept prediction of the same video
    is ``< iou_threshold``."""
    by_video: dict[int, list[dict]] = {}
    for r in kept:
        by_video.setdefault(r["video_id"], []).append(r)
    out = []
    for a in earlier:
        preds = by_video.get(a["video_id"], [])
        if all(tube_iou(a["segmentations"], p["segmentations"]) < iou_threshold for p in preds):
            out.append(a)
    return out


def _track(ann_id: int, video_id: int, category_id: int, segs: list, score: float | None) -> dict:
    track = {"id": ann_id, "video_id": video_id, "category_id": category_id, "iscrowd": 0, "segmentations": segs,
             "bboxes": [rle_utils.bbox(s) if s is not None and rle_utils.area(s) > 0 else None for s in segs],
             "areas": [int(rle_utils.area(s)) if s is not None and rle_utils.area(s) > 0 else None for s in segs]}
    track["segmentations"] = [s if a is not None else None for s, a in zip(segs, track["areas"])]
    if score is not None:
        track["score"] = float(score)
    return track


def round_labels(train: dict, results: list[dict], threshold: float, iou_threshold: float = 0.5
                 ) -> tuple[dict, dict]:
    """The next round's YouTube-VIS dict from ``train`` (the labels trained on) and the model's
    ``results`` on its videos; returns (dict, counts ``{"kept", "added_back", "dropped_predictions"}``)."""
    kept = keep_confident(results, threshold)
    back = add_back(kept, train.get("annotations") or [], iou_threshold)
    anns = [_track(k + 1, r["video_id"], r["category_id"], list(r["segmentations"]), r["score"])
            for k, r in enumerate(kept)]
    for a in back:
        anns.append(_track(len(anns) + 1, a["video_id"], a["category_id"], list(a["segmentations"]), a.get("score")))
    out = {k: v for k, v in train.items() if k != "annotations"}
    out["annotations"] = anns
    return out, {"kept": len(kept), "added_back": len(back), "dropped_predictions": len(results) - len(kept)}


def labels_as_results(data: dict, default_score: float = 1.0) -> list[dict]:
    """A label file's tubes in the results format (to score the pseudo labels themselves against GT)."""
    return [{"video_id": a["video_id"], "category_id": a["category_id"], "score": float(a.get("score", default_score)),
             "segmentations": a["segmentations"]} for a in data.get("annotations") or []]
