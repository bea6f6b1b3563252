"""Colour-coded synthetic data for the open-vocabulary tests: the category of an object is its colour."""

from __future__ import annotations

import colorsys
import json
from pathlib import Path

import numpy as np
from PIL import Image

from wsovvis.data import masks as mask_io
from wsovvis.data import rle as rle_utils
from wsovvis.data import ytvis
from wsovvis.openvocab.color_embedder import COLOR_HUES

# 60 degrees apart: a stand-in embedder must separate them; partitions alternate base (1) / novel (3).
PALETTE = ("red", "yellow", "green", "cyan", "blue", "magenta")


def colour_categories(names=PALETTE) -> list[dict]:
    return [{"id": i + 1, "name": n, "partition": 1 if i % 2 == 0 else 3} for i, n in enumerate(names)]


def _rgb(name: str, rng: np.random.Generator) -> np.ndarray:
    """The colour ``name`` with jittered hue (+-8 deg), saturation and value, as 0..1 RGB."""
    h = (COLOR_HUES[name] + rng.uniform(-8, 8)) % 360 / 360
    return np.array(colorsys.hsv_to_rgb(h, rng.uniform(0.75, 1.0), rng.uniform(0.75, 1.0)))


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Low-saturation textured grey: it must not vote for any colour."""
    grey = rng.uniform(0.35, 0.65) + 0.06 * rng.standard_normal((h, w, 1))
    tint = 0.03 * rng.standard_normal((1, 1, 3))
    return np.clip(grey + tint, 0, 1)


def make_colour_videos(root: Path, *, num_videos: int = 6, num_frames: int = 4, h: int = 64, w: int = 80,
                       objects: int = 3, seed: int = 0, names=PALETTE) -> dict:
    """Videos of moving discs and squares whose colour is their category; writes JPEG frames,
    GT id PNGs (``<root>/Annotations``) and ``<root>/gt.json`` (LV-VIS style, with ``partition``).

    Returns ``{"gt": path, "img_root": path, "mask_root": path, "categories": [...]}``.
    """
    rng = np.random.default_rng(seed)
    cats = colour_categories(names)
    videos, anns = [], []
    yy, xx = np.mgrid[0:h, 0:w]
    for vi in range(num_videos):
        vname = f"cv_{vi:03d}"
        objs = []
        for k in range(objects):
            name = names[(vi * objects + k) % len(names)]
            r = rng.uniform(0.12, 0.2) * min(h, w)
            p0 = rng.uniform([r, r], [w - r, h - r])
            p1 = np.clip(p0 + rng.normal(0, 0.25 * min(h, w), 2), r, [w - r, h - r])
            objs.append((k + 1, name, _rgb(name, rng), r, p0, p1, bool(rng.integers(2))))
        ids_t = []
        for t in range(num_frames):
            s = t / max(num_frames - 1, 1)
            img = _background(rng, h, w)
            ids = np.zeros((h, w), dtype=np.uint8)
            for tid, _, rgb, r, p0, p1, square in objs:  # painter's order: later objects occlude earlier ones
                cx, cy = p0 + s * (p1 - p0)
                if square:
                    m = np.maximum(abs(xx - cx), abs(yy - cy)) <= r * 0.85
                else:
                    m = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
                shade = 1.0 + 0.15 * np.sin(xx / 3.0)[..., None]
                img = np.where(m[..., None], np.clip(rgb * shade, 0, 1), img)
                ids[m] = tid
            path = root / "JPEGImages" / vname / f"{t:05d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((img * 255 + 0.5).astype(np.uint8)).save(path, quality=92)
            mask_io.write_ids(root / "Annotations" / vname / f"{t:05d}.png", ids)
            ids_t.append(ids)
        videos.append({"id": vi + 1, "name": vname, "height": h, "width": w, "length": num_frames,
                       "file_names": [f"{vname}/{t:05d}.jpg" for t in range(num_frames)]})
        for tid, name, *_ in objs:
            segs = [rle_utils.encode(ids == tid) if (ids == tid).any() else None for ids in ids_t]
            if not any(segs):
                continue
            anns.append({"id": len(anns) + 1, "video_id": vi + 1, "category_id": names.index(name) + 1,
                         "iscrowd": 0, "track_id": tid, "segmentations": segs,
                         "bboxes": [rle_utils.bbox(s) if s else None for s in segs],
                         "areas": [rle_utils.area(s) if s else None for s in segs]})
    gt = {"info": {"description": "colour-coded test videos"}, "videos": videos, "categories": cats,
          "annotations": anns}
    ytvis.write(gt, root / "gt.json")
    return {"gt": root / "gt.json", "img_root": root / "JPEGImages", "mask_root": root / "Annotations",
            "categories": cats}


def write_vocab_txt(path: Path, names=PALETTE) -> Path:
    path.write_text("# colour vocabulary\n" + "\n".join(names) + "\n")
    return path


def make_coco_images(root: Path, *, seed: int = 0) -> dict:
    """Two images with coloured rectangles; a COCO panoptic JSON + RGB id PNGs (segment ids above 255,
    so all three channels matter) and a COCO instances JSON (polygons and an RLE) of the same segments.

    Returns paths and ``truth``: ``{(image_id, segment_id): colour name}``.
    """
    rng = np.random.default_rng(seed)
    h, w = 48, 64
    layout = {  # image_id -> [(segment_id, colour, (x0, y0, x1, y1))]
        1: [(300, "red", (4, 4, 28, 28)), (70_001, "blue", (34, 10, 60, 40))],
        7: [(513, "green", (8, 20, 40, 44)), (66_000, "yellow", (44, 2, 62, 22)), (1, "magenta", (2, 2, 12, 12))],
    }
    images, pan_anns, inst_anns, truth = [], [], [], {}
    for image_id, segs in layout.items():
        img = _background(rng, h, w)
        ids = np.zeros((h, w), dtype=np.int64)
        infos = []
        for sid, name, (x0, y0, x1, y1) in segs:
            img[y0:y1, x0:x1] = _rgb(name, rng)
            ids[y0:y1, x0:x1] = sid
            infos.append({"id": sid, "category_id": PALETTE.index(name) + 1, "iscrowd": 0,
                          "area": (x1 - x0) * (y1 - y0), "bbox": [x0, y0, x1 - x0, y1 - y0]})
            truth[(image_id, sid)] = name
            poly = [[x0, y0, x1, y0, x1, y1, x0, y1]]
            seg = poly if sid != 513 else rle_utils.encode(ids == sid)  # one RLE among the polygons
            inst_anns.append({"id": sid, "image_id": image_id, "category_id": PALETTE.index(name) + 1,
                              "segmentation": seg, "area": (x1 - x0) * (y1 - y0), "iscrowd": 0,
                              "bbox": [x0, y0, x1 - x0, y1 - y0]})
        fname = f"{image_id:012d}.jpg"
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray((img * 255 + 0.5).astype(np.uint8)).save(root / "images" / fname, quality=95)
        (root / "panoptic").mkdir(parents=True, exist_ok=True)
        (root / "panoptic" / f"{image_id:012d}.png").write_bytes(mask_io.encode_rgb_ids_png(ids))
        images.append({"id": image_id, "file_name": fname, "height": h, "width": w})
        pan_anns.append({"image_id": image_id, "file_name": f"{image_id:012d}.png", "segments_info": infos})
    cats = [{"id": i + 1, "name": n, "isthing": 1} for i, n in enumerate(PALETTE)]
    (root / "panoptic.json").write_text(json.dumps({"images": images, "annotations": pan_anns, "categories": cats}))
    (root / "instances.json").write_text(json.dumps({"images": images, "annotations": inst_anns, "categories": cats}))
    return {"panoptic": root / "panoptic.json", "panoptic_root": root / "panoptic", "coco": root / "instances.json",
            "images": root / "images", "truth": truth}
