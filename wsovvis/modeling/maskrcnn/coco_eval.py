"""Mask R-CNN on still images: COCO results and COCO mask / box AP (pycocotools' COCOeval).

`predict_images` runs the detector on every image of a COCO instances JSON that exists on disk
(missing images are skipped and counted) and returns COCO results ``{image_id, category_id,
bbox [x, y, w, h], score, segmentation (compressed RLE)}``; `coco_ap` scores them with COCOeval
(``iouType`` ``segm`` and ``bbox``; class-agnostic maps every category to one).
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from wsovvis.data import rle as rle_utils
from wsovvis.data.coco import load_coco
from wsovvis.data.dataset import contiguous_category_map, read_frame
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def predict_images(model, postprocessor, coco_json: str | os.PathLike | dict, img_root: str | os.PathLike,
                   class_agnostic: bool = True, progress: bool = True) -> tuple[list[dict], list[int]]:
    """(COCO results, ids of the images predicted on)."""
    gt = load_coco(coco_json if isinstance(coco_json, dict) else str(coco_json))
    cats = sorted(c["id"] for c in gt["categories"])
    cmap = contiguous_category_map(gt["categories"])
    index_to_id = sorted(cmap, key=cmap.__getitem__)
    results, done, missing = [], [], 0
    for im in tqdm(gt["images"], desc="images", unit="image", disable=not progress, leave=False):
        path = Path(img_root) / im["file_name"]
        if not path.is_file():
            missing += 1
            continue
        det = postprocessor.detect(model, read_frame(path))
        for m, s, c, b in zip(det["masks"], det["scores"], det["labels"], det["boxes"]):
            if not m.any():
                continue
            cid = cats[0] if class_agnostic else index_to_id[int(c)] if 0 <= int(c) < len(index_to_id) else None
            if cid is None:
                continue
            x0, y0, x1, y1 = (float(v) for v in b)
            results.append({"image_id": im["id"], "category_id": cid, "score": float(s),
                            "bbox": [x0, y0, x1 - x0, y1 - y0], "segmentation": rle_utils.encode(np.asarray(m))})
        done.append(im["id"])
    if missing:
        log.warning("%s: skipped %d images missing on disk under %s", coco_json if not isinstance(coco_json, dict)
                    else "<COCO dict>", missing, img_root)
    return results, done


def coco_ap(coco_gt: str | os.PathLike | dict, results: list[dict], image_ids: list[int] | None = None,
            class_agnostic: bool = True) -> dict[str, dict[str, float]]:
    """``{"segm": {AP, AP50, ...}, "bbox": {...}}`` (0..1; -1 where undefined) from pycocotools' COCOeval."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = copy.deepcopy(load_coco(coco_gt if isinstance(coco_gt, dict) else str(coco_gt)))
    res = copy.deepcopy(results)
    if class_agnostic:
        gt["categories"] = [{"id": 1, "name": "object"}]
        for a in gt.get("annotations") or []:
            a["category_id"] = 1
        for r in res:
            r["category_id"] = 1
    for a in gt.get("annotations") or []:
        a.setdefault("iscrowd", 0)
        if "area" not in a:
            x, y, w, h = a["bbox"]
            a["area"] = float(w * h)
    out = {}
    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints its own tables
        cg = COCO()
        cg.dataset = gt
        cg.createIndex()
        for iou_type in ("segm", "bbox"):
            if not res:
                out[iou_type] = {k: 0.0 for k in STAT_NAMES}
                continue
            dt = cg.loadRes(copy.deepcopy(res))
            ev = COCOeval(cg, dt, iou_type)
            if image_ids is not None:
                ev.params.imgIds = list(image_ids)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            out[iou_type] = {k: float(v) for k, v in zip(STAT_NAMES, ev.stats)}
    return out
