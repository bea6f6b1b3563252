"""One COCO image and its annotations -> the features of a ``tf.train.Example`` (profiles ``scenic`` / ``tfds``).

``scenic`` is the layout of Scenic's COCO TFRecord tool (``baselines/centernet/tools/build_coco_tfrecord.py``)::

    image/encoded (bytes, JPEG)   image/filename (bytes)   image/id, image/height, image/width (int64)
    objects/bbox (float, 4*N: ymin, xmin, ymax, xmax per object, normalised, clipped to [0, 1])
    objects/label (int64, contiguous 0-based index over categories sorted by id)
    objects/id, objects/is_crowd (int64)
    objects/area (int64, box w*h rounded, as that tool writes)
    objects/segmentation (bytes, optional: one PNG per object, values 0/255)

``tfds`` is what the TFDS COCO builder serializes (its example serializer flattens ``objects``)::

    image (bytes, JPEG)   image/filename (bytes)   image/id (int64)
    objects/bbox, objects/label, objects/id, objects/is_crowd as above
    objects/area (int64: the COCO ``area`` truncated, as TFDS's int64 feature stores it)
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from wsovvis.data import rle as rle_utils
from wsovvis.data.coco import segmentation_to_rle
from wsovvis.export.example_proto import Features

PROFILES = ("scenic", "tfds")
IMAGE_KEY = {"scenic": "image/encoded", "tfds": "image"}


@dataclass
class ImageStats:
    """What happened to one image's annotations (summed into the export report)."""

    boxes: int = 0
    clipped: int = 0  # boxes reaching outside the image, clipped to it
    no_box: int = 0  # annotations with neither a bbox nor a segmentation: dropped
    clipped_ids: list[int] = field(default_factory=list)


def yxyx_normalised(box: list[float], height: int, width: int) -> tuple[list[float], bool]:
    """COCO ``[x, y, w, h]`` in pixels -> ``[ymin, xmin, ymax, xmax]`` in [0, 1], and whether it was clipped."""
    x, y, w, h = box
    x, y = float(x), float(y)
    raw = [y / height, x / width, (y + float(h)) / height, (x + float(w)) / width]
    if 0.0 <= raw[0] <= 1.0 and 0.0 <= raw[1] <= 1.0 and 0.0 <= raw[2] <= 1.0 and 0.0 <= raw[3] <= 1.0:
        return raw, False  # the usual case, tested first: this runs once per box
    out = [0.0 if v < 0.0 else 1.0 if v > 1.0 else v for v in raw]  # NaN passes through, as unclipped
    return out, out != raw


def _mask_png(mask: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def image_features(
    profile: str,
    image: dict,
    encoded: bytes,
    anns: Sequence[dict],
    label_of: dict[int, int],
    *,
    segmentation: bool = False,
) -> tuple[Features, ImageStats]:
    """Features of one image. ``image``: a COCO image dict; ``encoded``: its JPEG bytes; ``anns``: its annotations
    (already ordered); ``label_of``: category id -> contiguous label. ``segmentation`` (scenic only) adds one
    0/255 PNG per object (an empty mask for box-only annotations).
    """
    h, w = image["height"], image["width"]
    stats = ImageStats()
    bbox: list[float] = []
    labels, ids, areas, crowd, pngs = [], [], [], [], []
    scenic = profile == "scenic"
    for a in anns:
        seg = a.get("segmentation")
        box = a.get("bbox")
        rle = None
        # the mask is only needed for a missing box or area, or for the PNGs
        if seg is not None and seg != [] and (box is None or segmentation or (not scenic and a.get("area") is None)):
            rle = segmentation_to_rle(seg, h, w, where=f"annotation {a['id']}")
        if box is None:
            if rle is None:
                stats.no_box += 1
                continue
            box = rle_utils.bbox(rle)
        yxyx, clipped = yxyx_normalised(box, h, w)
        if clipped:
            stats.clipped += 1
            stats.clipped_ids.append(a["id"])
        bbox += yxyx
        labels.append(label_of[a["category_id"]])
        ids.append(int(a["id"]))
        crowd.append(int(a.get("iscrowd", 0)))
        if scenic:
            areas.append(int(round(float(box[2]) * float(box[3]))))
        else:
            area = a.get("area")
            if area is None:
                area = rle_utils.area(rle) if rle is not None else float(box[2]) * float(box[3])
            areas.append(math.trunc(float(area)))
        if segmentation:
            pngs.append(_mask_png(rle_utils.decode(rle) if rle is not None else np.zeros((h, w), bool)))
    stats.boxes = len(ids)
    feats: Features = {
        IMAGE_KEY[profile]: ("bytes", [encoded]),
        "image/filename": ("bytes", [image["file_name"].encode("utf-8")]),
        "image/id": ("int64", [int(image["id"])]),
        "objects/bbox": ("float", bbox),
        "objects/label": ("int64", labels),
        "objects/id": ("int64", ids),
        "objects/area": ("int64", areas),
        "objects/is_crowd": ("int64", crowd),
    }
    if profile == "scenic":
        feats["image/height"] = ("int64", [int(h)])
        feats["image/width"] = ("int64", [int(w)])
        if segmentation:
            feats["objects/segmentation"] = ("bytes", pngs)
    return feats, stats


def to_nested(feats: Features) -> dict:
    """Decoded features -> the nested dict a TFDS-style reader yields and OWL-ViT's ``DecodeCocoExample`` consumes.

    Keys: ``image`` (JPEG bytes), ``image/filename`` (str), ``image/id`` (int), ``objects``: ``bbox`` float32
    ``[N, 4]`` (ymin, xmin, ymax, xmax), ``label``/``id``/``area`` int64 ``[N]``, ``is_crowd`` bool ``[N]``; plus
    ``image/height``/``image/width`` and ``objects/segmentation`` (list of PNG bytes) when present.
    """
    def values(key: str) -> list:
        return feats[key][1] if key in feats else []

    image_key = "image/encoded" if "image/encoded" in feats else "image"
    nested: dict = {
        "image": values(image_key)[0],
        "image/filename": values("image/filename")[0].decode("utf-8"),
        "image/id": int(values("image/id")[0]),
        "objects": {
            "bbox": np.asarray(values("objects/bbox"), dtype=np.float32).reshape(-1, 4),
            "label": np.asarray(values("objects/label"), dtype=np.int64),
            "id": np.asarray(values("objects/id"), dtype=np.int64),
            "area": np.asarray(values("objects/area"), dtype=np.int64),
            "is_crowd": np.asarray(values("objects/is_crowd"), dtype=np.int64).astype(bool),
        },
    }
    for key in ("image/height", "image/width"):
        if key in feats:
            nested[key] = int(values(key)[0])
    if "objects/segmentation" in feats:
        nested["objects"]["segmentation"] = list(values("objects/segmentation"))
    return nested
