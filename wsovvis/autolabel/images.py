"""Auto-labelling one image: detect with every prompt, filter, NMS, segment, -> COCO annotations.

Filtering order (per image): prompt index -> class id; per-class score threshold (default
`AutolabelParams.threshold` 0.1, the OWLv2 post-processor's default); minimum box side; per-class
NMS (OWLv2 applies none, so a prompt ensemble or overlapping queries give duplicates); optional
class-agnostic NMS; the ``max_detections`` highest scores. In ``segment`` mode each kept box is
turned into a mask; the annotation's box and area then come from the mask, and a box whose mask
is empty is dropped (counted in the stats).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from wsovvis.autolabel.models import Detections, Detector, Segmenter
from wsovvis.autolabel.prompts import PromptSet
from wsovvis.data import rle as rle_utils
from wsovvis.errors import WsovvisError
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

MODES = ("detect", "segment")
POLYGON_MIN_IOU = 0.9  # polygons rasterised back must cover the mask this well, else RLE is written


@dataclass(frozen=True)
class AutolabelParams:
    """``class_thresholds``: class id -> score threshold (overrides ``threshold``); ``nms_iou``: per-class
    NMS IoU (None = off); ``agnostic_nms_iou``: NMS over all classes (None = off); ``min_box_size``:
    minimum box side in pixels; ``max_detections``: per image (0 = no cap)."""

    threshold: float = 0.1
    class_thresholds: Mapping[int, float] = field(default_factory=dict)
    nms_iou: float | None = 0.5
    agnostic_nms_iou: float | None = None
    max_detections: int = 100
    min_box_size: float = 0.0
    mode: str = "segment"
    polygons: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise WsovvisError(f"--mode {self.mode!r}: choose from {', '.join(MODES)}")
        checks = (("--threshold", self.threshold), ("--nms", self.nms_iou), ("--agnostic_nms", self.agnostic_nms_iou))
        for name, v in checks:
            if v is not None and not 0.0 <= v <= 1.0:
                raise WsovvisError(f"{name} must be in [0, 1], got {v}")
        for cid, v in self.class_thresholds.items():
            if not 0.0 <= v <= 1.0:
                raise WsovvisError(f"--class_threshold for class {cid} must be in [0, 1], got {v}")
        if self.max_detections < 0 or self.min_box_size < 0:
            raise WsovvisError("--max_detections and --min_box_size must be >= 0")

    def to_dict(self) -> dict:
        per_class = {str(k): v for k, v in sorted(self.class_thresholds.items())}
        return {"threshold": self.threshold, "class_thresholds": per_class,
                "nms_iou": self.nms_iou, "agnostic_nms_iou": self.agnostic_nms_iou,
                "max_detections": self.max_detections, "min_box_size": self.min_box_size, "mode": self.mode,
                "polygons": self.polygons}


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU ``[len(a), len(b)]`` of xyxy boxes."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, groups: np.ndarray | None = None) -> np.ndarray:
    """Greedy NMS -> kept indices, highest score first; boxes of different ``groups`` never suppress each other."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    if not len(order):
        return order.astype(np.int64)
    ious = box_iou(boxes, boxes)
    same = np.ones_like(ious, bool) if groups is None else (groups[:, None] == groups[None, :])
    suppressed = np.zeros(len(order), bool)
    keep = []
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= (ious[i] > iou) & same[i]
    return np.array(keep, dtype=np.int64)


def filter_detections(dets: Detections, prompts: PromptSet, params: AutolabelParams) -> tuple[Detections, np.ndarray]:
    """-> (kept detections sorted by score, their class ids ``int64 [N]``)."""
    if not len(dets):
        return dets, np.zeros(0, np.int64)
    if dets.labels.min() < 0 or dets.labels.max() >= len(prompts):
        raise ValueError(f"detector returned prompt indices outside 0..{len(prompts) - 1}")
    cls = np.asarray(prompts.class_ids, dtype=np.int64)[dets.labels]
    thr = np.array([params.class_thresholds.get(int(c), params.threshold) for c in cls])
    w = dets.boxes[:, 2] - dets.boxes[:, 0]
    h = dets.boxes[:, 3] - dets.boxes[:, 1]
    keep = np.nonzero((dets.scores >= thr) & (np.minimum(w, h) >= max(params.min_box_size, 1e-6)))[0]
    dets, cls = dets.take(keep), cls[keep]
    if params.nms_iou is not None:
        k = nms(dets.boxes, dets.scores, params.nms_iou, cls)
        dets, cls = dets.take(k), cls[k]
    if params.agnostic_nms_iou is not None:
        k = nms(dets.boxes, dets.scores, params.agnostic_nms_iou)
        dets, cls = dets.take(k), cls[k]
    order = np.argsort(-dets.scores, kind="stable")
    if params.max_detections:
        order = order[:params.max_detections]
    return dets.take(order), cls[order]


def polygons_or_rle(mask: np.ndarray, where: str = "") -> tuple[list | dict, bool]:
    """-> (segmentation, is_polygon): every outer part as a polygon when rasterising them back gives
    IoU >= `POLYGON_MIN_IOU` with the mask (holes are lost in polygons), else compressed RLE + a warning."""
    from wsovvis.data.coco import mask_to_polygons, segmentation_to_rle

    h, w = mask.shape
    polys = mask_to_polygons(mask)
    if polys:
        back = rle_utils.decode(segmentation_to_rle(polys, h, w)).astype(bool)
        inter = np.logical_and(back, mask).sum()
        union = np.logical_or(back, mask).sum()
        iou = inter / union if union else 0.0
        if iou >= POLYGON_MIN_IOU:
            return polys, True
        log.warning("%spolygons cover the mask with IoU %.3f < %.2f (holes?); writing RLE instead",
                    f"{where}: " if where else "", iou, POLYGON_MIN_IOU)
    return rle_utils.encode(mask), False


def label_image(image: np.ndarray, prompts: PromptSet, detector: Detector, segmenter: Segmenter | None,
                params: AutolabelParams, stats: dict | None = None, where: str = "") -> list[dict]:
    """COCO-style annotations (no ``id`` / ``image_id``) for one ``uint8 [H, W, 3]`` RGB image.

    Each: ``bbox`` [x, y, w, h] (pixels), ``category_id``, ``score``, ``area``, ``iscrowd`` 0 and, in
    segment mode, ``segmentation`` (compressed RLE, or polygons when ``params.polygons``). Highest score first.
    ``stats`` (if given) gains counts: ``raw``, ``kept``, ``empty_masks``, ``rle_fallbacks``.
    """
    if params.mode == "segment" and segmenter is None:
        raise WsovvisError("--mode segment needs a --segmenter")
    raw = detector.detect(image, list(prompts.prompts))
    dets, cls = filter_detections(raw, prompts, params)
    st = {"raw": len(raw), "kept": 0, "empty_masks": 0, "rle_fallbacks": 0}
    anns: list[dict] = []
    if params.mode == "detect":
        for b, s, c in zip(dets.boxes, dets.scores, cls):
            x1, y1, x2, y2 = (float(v) for v in b)
            anns.append({"bbox": [x1, y1, x2 - x1, y2 - y1], "category_id": int(c), "score": round(float(s), 6),
                         "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    elif len(dets):
        masks = segmenter.segment(image, dets.boxes)
        for m, s, c in zip(masks, dets.scores, cls):
            if not m.any():
                st["empty_masks"] += 1
                continue
            if params.polygons:
                seg, ok = polygons_or_rle(m, where)
                st["rle_fallbacks"] += int(not ok)
            else:
                seg = rle_utils.encode(m)
            anns.append({"bbox": rle_utils.mask_bbox(m), "category_id": int(c), "score": round(float(s), 6),
                         "area": int(m.sum()), "iscrowd": 0, "segmentation": seg})
    st["kept"] = len(anns)
    if stats is not None:
        for k, v in st.items():
            stats[k] = stats.get(k, 0) + v
    return anns
