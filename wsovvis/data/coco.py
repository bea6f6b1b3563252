"""COCO instance JSON: loading/validation, mask <-> polygon/RLE, and YouTube-VIS <-> COCO.

A COCO instances file is one dict::

    images:      [{id, file_name, height, width, (video_id, frame_index)}]
    categories:  [{id, name, (supercategory)}]
    annotations: [{id, image_id, category_id, iscrowd, bbox: [x, y, w, h], area,
                   segmentation: polygons [[x0, y0, x1, y1, ...], ...] | RLE, (track_id, score)}]

`ytvis_to_coco` writes one image per (kept) frame and one annotation per present (track, frame).
It also keeps two extra top-level lists that COCO readers ignore, ``videos`` (the YouTube-VIS
video entries) and ``tracks`` (each track's own keys, without the per-frame lists), so that
`coco_to_ytvis` rebuilds the YouTube-VIS dict exactly. A COCO file without them (COCO, LVIS,
an auto-labelled folder) becomes one-frame videos, one track per annotation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from wsovvis.data import rle as rle_utils
from wsovvis.data.ytvis_schema import (
    Problem,
    _is_int,
    _is_num,
    check_category_and_crowd,
    check_size,
    format_problems,
    validate_structure,
    video_length,
)
from wsovvis.errors import WsovvisError
from wsovvis.utils.io import atomic_write_json, read_json
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

MAX_LISTED_PROBLEMS = 20
PER_FRAME_KEYS = ("segmentations", "bboxes", "areas")


# ---------------------------------------------------------------- masks, polygons, RLE


def mask_to_polygons(mask: np.ndarray) -> list[list[float]]:
    """Binary mask ``[H, W]`` -> COCO polygons ``[[x0, y0, x1, y1, ...], ...]``, one per outer part.

    Every 8-connected part becomes one polygon that runs along pixel edges, so rasterising it back
    (pycocotools) gives that part exactly. Holes cannot be expressed in COCO polygons and are
    filled; use RLE to keep them. The mask is traced at twice the resolution: there every pixel is
    a 2x2 block, no part is thinner than two pixels, and block coordinate ``u`` maps to the pixel
    edge ``ceil(u / 2)`` (diagonal steps at inner corners collapse onto the shared corner).
    """
    import cv2

    m = np.asarray(mask).astype(bool)
    if m.ndim != 2:
        raise WsovvisError(f"mask_to_polygons: mask must be 2-D [H, W], got shape {list(m.shape)}")
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    if rows.size == 0:
        return []
    y0, x0 = int(rows[0]), int(cols[0])  # trace only the box around the mask (frames are much larger)
    crop = m[y0:rows[-1] + 1, x0:cols[-1] + 1].astype(np.uint8)
    up = np.repeat(np.repeat(crop, 2, axis=0), 2, axis=1)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        pts = (c.reshape(-1, 2).astype(np.int64) + 1) // 2 + (x0, y0)
        keep = np.ones(len(pts), dtype=bool)  # drop repeats (the collapsed diagonal steps)
        keep[1:] = np.any(pts[1:] != pts[:-1], axis=1)
        if len(pts) > 1 and np.array_equal(pts[0], pts[-1]):
            keep[-1] = False
        pts = pts[keep]
        if len(pts) < 3:  # cannot happen for a 2x2-block trace; kept as a guard
            continue
        polys.append([float(v) for v in pts.reshape(-1)])
    return polys


def _polygons_valid(seg: Any) -> bool:
    return isinstance(seg, list) and all(
        isinstance(p, list) and len(p) % 2 == 0 and all(_is_num(c) for c in p) for p in seg)


def segmentation_to_rle(seg: Any, height: int, width: int, *, where: str = "segmentation") -> dict:
    """Polygons, uncompressed RLE or compressed RLE -> compressed RLE ``{"size": [H, W], "counts": str}``.

    Polygons with fewer than 3 points enclose nothing and are dropped (pycocotools would read a
    4-number polygon as a box). ``where`` names the item in error messages (file and JSON path).
    """
    if isinstance(seg, list):
        if not _polygons_valid(seg):
            raise WsovvisError(f"{where}: polygons must be flat [x0, y0, x1, y1, ...] lists of numbers")
        polys = [[float(c) for c in p] for p in seg if len(p) >= 6]
        if not polys:
            return rle_utils.encode(np.zeros((height, width), dtype=bool))
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
        rle["counts"] = rle["counts"].decode("ascii")
        return rle
    if not (isinstance(seg, dict) and "counts" in seg and "size" in seg):
        raise WsovvisError(f"{where}: must be a polygon list or an RLE {{'size': [H, W], 'counts': ...}}, "
                           f"got {type(seg).__name__}")
    size = seg["size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(_is_int(v) for v in size)):
        raise WsovvisError(f"{where}: RLE size must be [height, width], got {size!r}")
    if [size[0], size[1]] != [height, width]:
        raise WsovvisError(f"{where}: RLE size {list(size)} != image size [height, width] {[height, width]}")
    counts = seg["counts"]
    if isinstance(counts, list):
        if not all(_is_int(c) and c >= 0 for c in counts) or sum(counts) != height * width:
            raise WsovvisError(f"{where}: uncompressed RLE counts must be non-negative integers summing to "
                               f"height*width = {height * width}")
        rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
        rle["counts"] = rle["counts"].decode("ascii")
        return rle
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    if not isinstance(counts, str):
        raise WsovvisError(f"{where}: RLE counts must be a string or a list of integers, got {type(counts).__name__}")
    return {"size": [height, width], "counts": counts}


# ---------------------------------------------------------------- validation and loading


def _check_image(i: int, im: dict, problems: list[Problem]) -> None:
    p = f"images[{i}]"
    check_size(p, im, problems)
    if not isinstance(im.get("file_name"), str):
        problems.append(Problem(p, "missing required string 'file_name'"))


def _check_annotation(i: int, a: dict, images: list, image_index: dict, cat_index: dict,
                      problems: list[Problem]) -> None:
    p = f"annotations[{i}]"
    image = None
    if "image_id" not in a:
        problems.append(Problem(p, "missing required key 'image_id'"))
    elif a["image_id"] not in image_index:
        problems.append(Problem(f"{p}.image_id", f"unknown image id {a['image_id']!r}", kind="unknown_id"))
    else:
        image = images[image_index[a["image_id"]]]
    check_category_and_crowd(p, a, cat_index, problems)
    box = a.get("bbox")
    if box is not None and not (isinstance(box, list) and len(box) == 4 and all(_is_num(c) for c in box)
                                and box[2] >= 0 and box[3] >= 0):
        problems.append(Problem(f"{p}.bbox", f"must be [x, y, w, h] with w, h >= 0, got {box!r}"))
    if "area" in a and (not _is_num(a["area"]) or a["area"] < 0):
        problems.append(Problem(f"{p}.area", f"must be a non-negative number, got {a['area']!r}"))
    if "score" in a and not _is_num(a["score"]):
        problems.append(Problem(f"{p}.score", f"must be a number, got {a['score']!r}"))
    seg = a.get("segmentation")
    if seg is None or seg == []:
        return  # box-only annotations are valid COCO
    if isinstance(seg, list):
        if not _polygons_valid(seg):
            problems.append(Problem(f"{p}.segmentation",
                                    "polygons must be flat [x0, y0, x1, y1, ...] lists of numbers"))
        return
    if not rle_utils.is_rle(seg) and not (isinstance(seg, dict) and isinstance(seg.get("counts"), bytes)):
        problems.append(Problem(f"{p}.segmentation",
                                "must be a polygon list or an RLE {'size': [H, W], 'counts': ...}"))
        return
    if image is not None and _is_int(image.get("height")) and _is_int(image.get("width")):
        hw = [image["height"], image["width"]]
        if list(seg["size"]) != hw:
            problems.append(Problem(f"{p}.segmentation", f"RLE size {list(seg['size'])} != image size "
                                    f"[height, width] {hw}", kind="size_mismatch"))


def validate_coco(data: Any) -> list[Problem]:
    """Structural validation of a COCO instances dict; returns every problem found (empty if valid)."""
    if not isinstance(data, dict):
        return [Problem("$", f"top level must be an object, got {type(data).__name__}")]
    problems: list[Problem] = []
    if "videos" in data and "images" not in data:
        problems.append(Problem("$", "this looks like a YouTube-VIS file ('videos', no 'images'); "
                                "convert it with `wsovvis export coco`", kind="format"))
    return validate_structure(data, "images", _check_image, _check_annotation, problems)


def format_coco_problems(source: str, problems: list[Problem], limit: int = MAX_LISTED_PROBLEMS) -> str:
    return format_problems(source, problems, limit, what="COCO JSON", more_hint="")


def _fill_lvis_file_names(data: dict) -> None:
    """LVIS images have ``coco_url`` and no ``file_name``: use its last two parts (``val2017/000000397133.jpg``)."""
    for im in data.get("images") or []:
        if isinstance(im, dict) and "file_name" not in im and isinstance(im.get("coco_url"), str):
            im["file_name"] = "/".join(im["coco_url"].rstrip("/").split("/")[-2:])


def load_coco(src: str | os.PathLike | dict, *, source: str | None = None, validate: bool = True) -> dict:
    """Read (or take) a COCO instances dict and validate it; `WsovvisError` lists every problem with its path.

    LVIS images without ``file_name`` get one from ``coco_url`` (``<split>/<name>.jpg``, in place).
    """
    if isinstance(src, dict):
        data, source = src, source or "<memory>"
    else:
        data, source = read_json(src, "COCO JSON"), str(src)
    if isinstance(data, dict):
        _fill_lvis_file_names(data)
    if validate:
        problems = [p for p in validate_coco(data) if p.severity == "error"]
        if problems:
            raise WsovvisError(format_coco_problems(source, problems))
    return data


def write_coco(data: dict, path: str | os.PathLike, indent: int | None = None) -> Path:
    """Validate, then write atomically; an invalid dict is never written (`WsovvisError` lists its problems)."""
    problems = [p for p in validate_coco(data) if p.severity == "error"]
    if problems:
        raise WsovvisError(format_coco_problems(f"{path} (not written)", problems))
    atomic_write_json(path, data, indent=indent)
    return Path(path)


# ---------------------------------------------------------------- YouTube-VIS <-> COCO


def ytvis_to_coco(ytvis: dict, every: int = 1, polygons: bool = False, *, source: str | None = None) -> dict:
    """YouTube-VIS dict -> COCO dict: every ``every``-th frame an image, every present (track, frame) an annotation.

    Images: ``{id, file_name (the video's file_names[t]), height, width, video_id, frame_index}``, ids 1..N
    in video then frame order. Annotations: ``{id, image_id, category_id, iscrowd, bbox, area,
    segmentation, track_id (the YouTube-VIS annotation id), video_id, (score)}``; segmentation is
    compressed RLE, or polygons with ``polygons=True`` (holes filled). bbox/area come from the
    track's ``bboxes``/``areas`` when given, else from the mask. ``source`` names the input in errors.
    """
    from wsovvis.data import ytvis as ytvis_io

    if not _is_int(every) or every < 1:
        raise WsovvisError(f"every must be a positive integer, got {every!r}")
    src = source or "<ytvis_to_coco input>"
    ds = ytvis_io.load(ytvis, source=src)
    out: dict[str, Any] = {k: v for k, v in ds.data.items() if k not in ("videos", "annotations", "categories")}
    images: list[dict] = []
    image_of: dict[tuple[int, int], dict] = {}
    for v in ds.videos:
        for t in range(0, video_length(v), every):
            im = {"id": len(images) + 1, "file_name": v["file_names"][t], "height": v["height"],
                  "width": v["width"], "video_id": v["id"], "frame_index": t}
            images.append(im)
            image_of[(v["id"], t)] = im
    anns: list[dict] = []
    tracks: list[dict] = []
    for a in ds.annotations:
        track = {k: val for k, val in a.items() if k not in PER_FRAME_KEYS}
        track["per_frame_keys"] = [k for k in PER_FRAME_KEYS if k in a]
        tracks.append(track)
        video = ds.video_by_id[a["video_id"]]
        h, w = video["height"], video["width"]
        boxes, areas = a.get("bboxes"), a.get("areas")
        for t, seg in enumerate(a["segmentations"]):
            im = image_of.get((a["video_id"], t))
            if seg is None or im is None:
                continue
            rle = segmentation_to_rle(seg, h, w, where=f"{src}: annotations[id={a['id']}].segmentations[{t}]")
            box = boxes[t] if boxes is not None and boxes[t] is not None else rle_utils.bbox(rle)
            area = areas[t] if areas is not None and areas[t] is not None else rle_utils.area(rle)
            ann = {"id": len(anns) + 1, "image_id": im["id"], "category_id": a["category_id"],
                   "iscrowd": a.get("iscrowd", 0), "bbox": box, "area": area,
                   "segmentation": mask_to_polygons(rle_utils.decode(rle)) if polygons else rle,
                   "track_id": a["id"], "video_id": a["video_id"]}
            if "score" in a:
                ann["score"] = a["score"]
            anns.append(ann)
    out.update(images=images, categories=ds.categories, annotations=anns, videos=ds.videos, tracks=tracks)
    return out


BOX_ONLY = ("mask", "skip")


def _one_frame_videos(coco: dict, src: str, box_only: str) -> dict:
    """Plain COCO: each image a one-frame video (same id), each annotation a one-frame track (same id)."""
    # other image keys (LVIS neg_category_ids, not_exhaustive_category_ids, urls) stay on the video
    videos = [{**{k: v for k, v in im.items() if k not in ("file_name", "video_id", "frame_index")},
               "name": os.path.splitext(im["file_name"])[0], "file_names": [im["file_name"]], "length": 1}
              for im in coco["images"]]
    size = {im["id"]: (im["height"], im["width"]) for im in coco["images"]}
    anns = []
    n_box_only = 0
    for i, a in enumerate(coco.get("annotations") or []):
        h, w = size[a["image_id"]]
        seg = a.get("segmentation")
        rle = (None if seg is None or seg == [] else
               segmentation_to_rle(seg, h, w, where=f"{src}: annotations[{i}].segmentation"))
        box = a.get("bbox")
        if box is None:
            box = rle_utils.bbox(rle) if rle is not None else None
        area = a.get("area")
        if area is None:
            area = rle_utils.area(rle) if rle is not None else None
        if rle is None:  # a box-only annotation: its box as the mask, or dropped
            if box is None:
                raise WsovvisError(f"{src}: annotations[{i}]: has neither a segmentation nor a bbox")
            n_box_only += 1
            if box_only == "skip":
                continue
            rle = segmentation_to_rle([_box_polygon(box)], h, w, where=f"{src}: annotations[{i}].bbox")
        track = {"id": a["id"], "video_id": a["image_id"], "category_id": a["category_id"],
                 "iscrowd": a.get("iscrowd", 0), "segmentations": [rle], "bboxes": [box], "areas": [area]}
        if "score" in a:
            track["score"] = a["score"]
        anns.append(track)
    if n_box_only:
        log.warning("%s: %d annotation(s) have a box but no segmentation: %s", src, n_box_only,
                    "dropped (box_only='skip')" if box_only == "skip" else "their boxes are used as masks "
                    "(box_only='skip' drops them)")
    out = {k: v for k, v in coco.items() if k not in ("images", "annotations", "categories", "videos", "tracks")}
    out.update(videos=videos, categories=coco["categories"], annotations=anns)
    return out


def _box_polygon(box: list) -> list[float]:
    x, y, w, h = (float(c) for c in box)
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def coco_to_ytvis(coco: dict, *, source: str | None = None, box_only: str = "mask") -> dict:
    """COCO dict -> YouTube-VIS dict (segmentations as compressed RLE).

    With the ``videos`` and ``tracks`` lists that `ytvis_to_coco` writes, the original YouTube-VIS
    dict comes back exactly (frames skipped by ``every`` become ``None``). Otherwise every image is a
    one-frame video and every annotation a one-frame track; an annotation with a box and no segmentation
    gets its box as the mask (``box_only="mask"``, logged with a count) or is dropped (``"skip"``).
    ``source`` names the input in errors.
    """
    if box_only not in BOX_ONLY:
        raise WsovvisError(f"box_only must be one of {', '.join(BOX_ONLY)}, got {box_only!r}")
    src = source or "<coco_to_ytvis input>"
    data = load_coco(coco, source=src)
    if not (isinstance(data.get("videos"), list) and isinstance(data.get("tracks"), list)):
        return _one_frame_videos(data, src, box_only)
    video_by_id = {v["id"]: v for v in data["videos"]}
    image_by_id = {im["id"]: im for im in data["images"]}
    rebuilt: dict[int, dict] = {}
    for tr in data["tracks"]:
        video = video_by_id.get(tr.get("video_id"))
        if video is None:
            raise WsovvisError(f"{src}: tracks[id={tr.get('id')!r}]: unknown video id {tr.get('video_id')!r}")
        t_len = video_length(video)
        track = {k: v for k, v in tr.items() if k != "per_frame_keys"}
        for key in tr.get("per_frame_keys", PER_FRAME_KEYS):
            track[key] = [None] * t_len
        rebuilt[tr["id"]] = track
    for i, a in enumerate(data.get("annotations") or []):
        track = rebuilt.get(a.get("track_id"))
        if track is None:
            raise WsovvisError(f"{src}: annotations[{i}]: track_id {a.get('track_id')!r} is not in 'tracks'")
        im = image_by_id[a["image_id"]]
        t = im.get("frame_index")
        t_len = video_length(video_by_id[track["video_id"]])
        if not _is_int(t) or not 0 <= t < t_len or im.get("video_id") != track["video_id"]:
            raise WsovvisError(f"{src}: annotations[{i}]: image {im['id']} is not a frame of video {track['video_id']}")
        where = f"{src}: annotations[{i}].segmentation"
        if "segmentations" in track:
            seg = a.get("segmentation")
            track["segmentations"][t] = segmentation_to_rle(seg, im["height"], im["width"], where=where)
        if "bboxes" in track:
            track["bboxes"][t] = a.get("bbox")
        if "areas" in track:
            track["areas"][t] = a.get("area")
    out = {k: v for k, v in data.items() if k not in ("images", "annotations", "categories", "videos", "tracks")}
    out.update(videos=data["videos"], categories=data["categories"], annotations=list(rebuilt.values()))
    return out
