"""COCO panoptic (JSON + RGB PNGs, ``segment_id = R + 256*G + 256^2*B``) -> COCO instances with RLE masks.

The panoptic JSON has ``images``, ``categories`` (with ``isthing``) and one annotation per image
``{image_id, file_name (the PNG), segments_info: [{id, category_id, iscrowd, (area, bbox)}]}``.
Each segment becomes one instance annotation whose mask is ``png == id``; `wsovvis.data.coco.coco_to_ytvis`
then makes one-frame videos of them. Stuff segments are kept unless ``things_only``.
"""

from __future__ import annotations

import os
from pathlib import Path

from tqdm import tqdm

from wsovvis.data import rle as rle_utils
from wsovvis.data.masks import read_ids
from wsovvis.data.ytvis import _is_int
from wsovvis.errors import WsovvisError


def is_panoptic(data: dict) -> bool:
    anns = data.get("annotations")
    return isinstance(anns, list) and bool(anns) and isinstance(anns[0], dict) and "segments_info" in anns[0]


def default_png_root(json_path: str | os.PathLike) -> Path:
    """COCO's layout: ``annotations/panoptic_val2017.json`` beside the folder ``annotations/panoptic_val2017/``."""
    p = Path(json_path)
    return p.with_suffix("")


def panoptic_to_coco(data: dict, png_root: str | os.PathLike, *, things_only: bool = False,
                     source: str = "<panoptic>", progress: bool = True) -> tuple[dict, dict]:
    """Panoptic dict + PNG folder -> (COCO instances dict, report ``{segments, empty_segments, unlisted_pixels,
    stuff_dropped}``). Annotation ids are 1..M in image then segment order; ``segment_id`` keeps the PNG id."""
    for key in ("images", "categories", "annotations"):
        if not isinstance(data.get(key), list):
            raise WsovvisError(f"{source}: panoptic JSON needs a '{key}' list")
    image_by_id = {im.get("id"): im for im in data["images"] if isinstance(im, dict)}
    cat_by_id = {c.get("id"): c for c in data["categories"] if isinstance(c, dict)}
    root = Path(png_root)
    if not root.is_dir():
        raise WsovvisError(f"{root}: panoptic PNG folder does not exist (pass --panoptic_root)")
    report = {"segments": 0, "empty_segments": 0, "unlisted_pixels": 0, "stuff_dropped": 0}
    anns: list[dict] = []
    for i, pa in enumerate(tqdm(data["annotations"], desc="panoptic", unit="img", disable=not progress)):
        where = f"{source}: annotations[{i}]"
        if not isinstance(pa, dict) or not isinstance(pa.get("segments_info"), list):
            raise WsovvisError(f"{where}: missing 'segments_info' list")
        im = image_by_id.get(pa.get("image_id"))
        if im is None:
            raise WsovvisError(f"{where}.image_id: unknown image id {pa.get('image_id')!r}")
        if not isinstance(pa.get("file_name"), str):
            raise WsovvisError(f"{where}: missing the PNG 'file_name'")
        segs = []
        for j, s in enumerate(pa["segments_info"]):
            if not isinstance(s, dict) or not _is_int(s.get("id")) or s.get("category_id") not in cat_by_id:
                raise WsovvisError(f"{where}.segments_info[{j}]: needs an integer 'id' and a known 'category_id', "
                                   f"got {s!r}")
            if things_only and not cat_by_id[s["category_id"]].get("isthing", 1):
                report["stuff_dropped"] += 1
                continue
            segs.append(s)
        ids = read_ids(root / pa["file_name"], id_format="rgb")
        if list(ids.shape) != [im["height"], im["width"]]:
            raise WsovvisError(f"{root / pa['file_name']}: PNG is {ids.shape[0]}x{ids.shape[1]} but image "
                               f"{im['id']} is {im['height']}x{im['width']}")
        listed = {s["id"] for s in pa["segments_info"]} | {0}
        present = set(int(v) for v in set(ids.ravel().tolist()))
        report["unlisted_pixels"] += int(sum((ids == v).sum() for v in present - listed))
        rles = rle_utils.encode_ids(ids, [s["id"] for s in segs])
        areas, boxes = rle_utils.areas_and_boxes(rles)
        for s, r, area, box in zip(segs, rles, areas, boxes):
            report["segments"] += 1
            if area == 0:
                report["empty_segments"] += 1
                continue
            anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": s["category_id"],
                         "iscrowd": int(s.get("iscrowd", 0)), "bbox": box, "area": area, "segmentation": r,
                         "segment_id": s["id"]})
    out = {k: v for k, v in data.items() if k != "annotations"}
    out["annotations"] = anns
    return out, report
