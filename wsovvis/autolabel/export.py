"""COCO export of auto-labelled images and the training ZIP (resized images + COCO in their coordinates).

`coco_from_records` builds a COCO instances dict from per-image records
(``{"file_name", "height", "width", "annotations": [...]}`` as `label_image` returns them):
images get ids 1..N in file-name order, annotations ids 1..M, each keeps its ``score``.

`write_zip` writes ``images/<file_name>`` resized so that the long side is ``size`` pixels (JPEG
stays JPEG, other formats become ``.png``) and a ``coco_export.json`` whose boxes, areas and
segmentations are in the resized coordinates (polygons scaled; RLE masks resized by pixel
coverage, kept where > 0.5, and re-encoded).
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from wsovvis.data import rle as rle_utils
from wsovvis.errors import WsovvisError
from wsovvis.utils.io import atomic_open

COCO_NAME = "coco_export.json"


def coco_from_records(records: Sequence[dict], categories: Sequence[dict], info: dict | None = None) -> dict:
    images, anns = [], []
    for i, rec in enumerate(sorted(records, key=lambda r: r["file_name"]), 1):
        images.append({"id": i, "file_name": rec["file_name"], "height": int(rec["height"]),
                       "width": int(rec["width"])})
        for a in rec["annotations"]:
            anns.append(dict(a, id=len(anns) + 1, image_id=i))
    out = {"images": images, "annotations": anns,
           "categories": [{"id": int(c["id"]), "name": str(c["name"])} for c in categories]}
    if info:
        out["info"] = info
    return out


def resized_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) with the long side ``size`` (aspect kept, each side >= 1)."""
    scale = size / max(height, width)
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def scale_annotation(a: dict, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> dict:
    """One annotation moved from an image of ``src_hw`` to the same image resized to ``dst_hw``."""
    (h, w), (nh, nw) = src_hw, dst_hw
    sx, sy = nw / w, nh / h
    out = dict(a)
    x, y, bw, bh = a["bbox"]
    seg = a.get("segmentation")
    if isinstance(seg, dict):
        m = rle_utils.decode(seg).astype(np.float32)
        # pixel coverage, then majority: matches what the (filtered) resized image shows
        interp = cv2.INTER_AREA if nh * nw < h * w else cv2.INTER_LINEAR
        m = cv2.resize(m, (nw, nh), interpolation=interp) > 0.5
        out["segmentation"] = rle_utils.encode(m)
        out["area"] = int(m.sum())
        out["bbox"] = rle_utils.mask_bbox(m) if m.any() else [x * sx, y * sy, bw * sx, bh * sy]
    elif isinstance(seg, list):
        from wsovvis.data.coco import segmentation_to_rle

        polys = [[round(v * (sx if k % 2 == 0 else sy), 3) for k, v in enumerate(p)] for p in seg]
        out["segmentation"] = polys
        out["area"] = rle_utils.area(segmentation_to_rle(polys, nh, nw))
        out["bbox"] = [round(x * sx, 3), round(y * sy, 3), round(bw * sx, 3), round(bh * sy, 3)]
    else:
        out["bbox"] = [x * sx, y * sy, bw * sx, bh * sy]
        out["area"] = out["bbox"][2] * out["bbox"][3]
    return out


def _encode(img: Image.Image, file_name: str) -> tuple[str, bytes]:
    """-> (name in the ZIP, bytes): JPEGs stay JPEG (quality 95), everything else becomes PNG."""
    buf = io.BytesIO()
    name = Path(file_name)
    if name.suffix.lower() in (".jpg", ".jpeg"):
        img.save(buf, format="JPEG", quality=95)
    else:
        img.save(buf, format="PNG")
        if name.suffix.lower() != ".png":
            name = name.with_suffix(".png")
    return name.as_posix(), buf.getvalue()


def write_zip(path: str | os.PathLike, coco: dict, img_root: str | os.PathLike, size: int) -> dict:
    """Write the training ZIP; -> the resized COCO dict it holds. Images are read from ``img_root/<file_name>``."""
    if size < 1:
        raise WsovvisError(f"--zip_size must be >= 1, got {size}")
    root = Path(img_root)
    images, anns_by_image = [], {}
    for a in coco["annotations"]:
        anns_by_image.setdefault(a["image_id"], []).append(a)
    out_anns = []
    with atomic_open(path, "wb") as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        for im in coco["images"]:
            src = root / im["file_name"]
            try:
                with Image.open(src) as pil:
                    pil = pil.convert("RGB")
            except OSError as e:
                raise WsovvisError(f"{src}: cannot read the image for the ZIP ({e})") from e
            hw = (im["height"], im["width"])
            nh, nw = resized_size(*hw, size)
            name, data = _encode(pil.resize((nw, nh), Image.BILINEAR), im["file_name"])
            zf.writestr(f"images/{name}", data)
            images.append(dict(im, file_name=name, height=nh, width=nw))
            out_anns += [scale_annotation(a, hw, (nh, nw)) for a in anns_by_image.get(im["id"], [])]
        resized = dict(coco, images=images, annotations=out_anns)
        import json

        zf.writestr(COCO_NAME, json.dumps(resized))
    return resized
