"""Still images (COCO instances, or the one-frame videos of `wsovvis import coco`) as training clips.

`load_image_instances` reads the file and keeps what can be trained on; everything else is
skipped *with a count*, never a crash mid-run: images missing on disk, crowd annotations,
polygons with fewer than 3 points (an annotation left without any polygon is skipped), boxes of
zero width or height, masks without a pixel, images left without an annotation. Box-only
annotations train with their box as the mask.

`ImageClipDataset` yields the same samples as `wsovvis.data.dataset.YTVISClipDataset` (keys
``(index, seed)``): an image becomes a pseudo-video of ``num_frames`` frames, each an independent
random crop (each side ``>= min_crop`` of the image, anywhere in it) resized to one clip size, as
in SeqFormer's COCO joint training and VideoCutLER's ImageCut2Video. ``num_frames=1`` with
``min_crop=1`` is a plain image for Mask R-CNN.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from wsovvis.data import rle as rle_utils
from wsovvis.data.coco import load_coco, segmentation_to_rle
from wsovvis.data.dataset import SkippedVideo, boxes_and_valid, contiguous_category_map, read_frame
from wsovvis.data.transforms import ClipAugmentation, ClipTransform
from wsovvis.errors import WsovvisError
from wsovvis.utils.io import read_json
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)


@dataclass
class ImageRecord:
    id: int
    file_name: str
    height: int
    width: int
    rles: list[dict] = field(default_factory=list)
    category_ids: list[int] = field(default_factory=list)
    ann_ids: list[int] = field(default_factory=list)


@dataclass
class ImageInstances:
    records: list[ImageRecord]
    categories: list[dict]
    skip_counts: dict[str, int]  # reason -> number of images / annotations / polygons skipped
    skipped: list[SkippedVideo]  # the skipped images (as the video datasets report them)


def _box_rle(box: list, h: int, w: int) -> dict:
    x, y, bw, bh = (float(c) for c in box)
    return segmentation_to_rle([[x, y, x + bw, y, x + bw, y + bh, x, y + bh]], h, w)


def _as_coco_lists(data: dict, src: str) -> tuple[list[dict], list[dict]]:
    """(images, annotations) in COCO form; a YouTube-VIS file must hold one-frame videos."""
    if "videos" in data and "images" not in data:
        images, anns = [], []
        for v in data["videos"]:
            names = v.get("file_names") or []
            if len(names) != 1:
                raise WsovvisError(f"{src}: video {v.get('id')!r} has {len(names)} frames; image data takes "
                                   "one-frame videos (train real videos through data.train_json)")
            images.append({"id": v["id"], "file_name": names[0], "height": v["height"], "width": v["width"]})
        for a in data.get("annotations") or []:
            anns.append({"id": a["id"], "image_id": a["video_id"], "category_id": a["category_id"],
                         "iscrowd": a.get("iscrowd", 0), "segmentation": (a.get("segmentations") or [None])[0],
                         "bbox": (a.get("bboxes") or [None])[0]})
        return images, anns
    data = load_coco(data, source=src)
    return data["images"], data.get("annotations") or []


def load_image_instances(json_path: str | os.PathLike, img_root: str | os.PathLike, *,
                         max_images: int = 0) -> ImageInstances:
    src = str(json_path)
    data = read_json(json_path, "image instances JSON")
    if not isinstance(data, dict) or "categories" not in data:
        raise WsovvisError(f"{src}: expected a COCO instances JSON (images, annotations, categories)")
    images, anns = _as_coco_lists(data, src)
    counts: dict[str, int] = {}

    def count(reason: str, n: int = 1) -> None:
        counts[reason] = counts.get(reason, 0) + n

    by_image: dict[int, ImageRecord] = {}
    skipped: list[SkippedVideo] = []
    root = Path(img_root)
    for im in images:
        if not (root / im["file_name"]).is_file():
            count("images missing on disk")
            skipped.append(SkippedVideo(im["id"], im["file_name"], f"missing image {root / im['file_name']}"))
            continue
        by_image[im["id"]] = ImageRecord(im["id"], im["file_name"], int(im["height"]), int(im["width"]))
    for i, a in enumerate(anns):
        rec = by_image.get(a.get("image_id"))
        if rec is None:
            continue  # its image is missing (counted above)
        if a.get("iscrowd", 0):
            count("crowd annotations")
            continue
        box = a.get("bbox")
        if box is not None and (len(box) != 4 or box[2] <= 0 or box[3] <= 0):
            count("zero-area boxes")
            continue
        seg = a.get("segmentation")
        where = f"{src}: annotations[{i}].segmentation"
        if isinstance(seg, list) and seg:
            short = [p for p in seg if isinstance(p, list) and len(p) < 6]
            if short:
                count("polygons with < 3 points", len(short))
            seg = [p for p in seg if not (isinstance(p, list) and len(p) < 6)]
            if not seg:
                count("annotations without a polygon of >= 3 points")
                continue
        if seg is None or seg == []:
            if box is None:
                count("annotations without segmentation or box")
                continue
            rle = _box_rle(box, rec.height, rec.width)
        else:
            rle = segmentation_to_rle(seg, rec.height, rec.width, where=where)
        if rle_utils.area(rle) == 0:
            count("empty masks")
            continue
        rec.rles.append(rle)
        rec.category_ids.append(a["category_id"])
        rec.ann_ids.append(a["id"])
    records = []
    for rec in by_image.values():
        if not rec.rles:
            count("images without a usable annotation")
            skipped.append(SkippedVideo(rec.id, rec.file_name, "no annotations"))
            continue
        records.append(rec)
        if max_images and len(records) >= max_images:
            break
    if counts:
        log.warning("%s: skipped %s", src, ", ".join(f"{n} {r}" for r, n in counts.items()))
    if not records:
        raise WsovvisError(f"{src}: no image with a usable annotation on disk under {root} "
                           f"({', '.join(f'{n} {r}' for r, n in counts.items()) or 'no images'})")
    return ImageInstances(records, list(data["categories"]), counts, skipped)


class ImageClipDataset(Dataset):
    """Images of ``json_path`` under ``img_root`` as pseudo-video training clips (module docstring)."""

    def __init__(self, json_path: str | os.PathLike, img_root: str | os.PathLike, *, num_frames: int,
                 augmentation: ClipAugmentation, min_crop: float = 0.7, class_agnostic: bool = False,
                 max_images: int = 0) -> None:
        self.json_path = str(json_path)
        self.img_root = Path(img_root)
        if not self.img_root.is_dir():
            raise WsovvisError(f"{self.img_root}: image root of {self.json_path} is not a directory")
        inst = load_image_instances(json_path, img_root, max_images=max_images)
        self.records, self.categories = inst.records, inst.categories
        self.skip_counts, self.skipped = inst.skip_counts, inst.skipped
        self.category_map = contiguous_category_map(self.categories)
        self.class_agnostic = class_agnostic
        self.num_frames, self.augmentation, self.min_crop = num_frames, augmentation, min_crop

    @property
    def num_classes(self) -> int:
        return 1 if self.class_agnostic else len(self.category_map)

    def __len__(self) -> int:
        return len(self.records)

    def frame_transforms(self, h0: int, w0: int, rng: np.random.Generator) -> list[ClipTransform]:
        """One output size and flip for the clip; an independent crop per frame."""
        clip = self.augmentation.sample(h0, w0, rng)
        out = []
        for _ in range(self.num_frames):
            s = float(rng.uniform(self.min_crop, 1.0))
            ch, cw = max(1, int(round(h0 * s))), max(1, int(round(w0 * s)))
            y0, x0 = int(rng.integers(0, h0 - ch + 1)), int(rng.integers(0, w0 - cw + 1))
            crop = None if (ch, cw) == (h0, w0) else (y0, x0, ch, cw)
            out.append(ClipTransform(src_hw=(h0, w0), out_hw=clip.out_hw, crop=crop, flip=clip.flip))
        return out

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, seed = key if isinstance(key, tuple) else (key, None)
        rng = np.random.default_rng(seed)
        rec = self.records[index]
        img = read_frame(self.img_root / rec.file_name)
        if img.shape[:2] != (rec.height, rec.width):
            raise WsovvisError(f"{self.img_root / rec.file_name}: image is {img.shape[1]}x{img.shape[0]} but "
                               f"{self.json_path} says {rec.width}x{rec.height} for image {rec.id}")
        raw = np.stack([rle_utils.decode(r) for r in rec.rles])  # [n, H, W]
        tfs = self.frame_transforms(rec.height, rec.width, rng)
        frames = np.stack([tf.apply_image(img) for tf in tfs])  # [T, h, w, 3]
        masks = np.stack([tf.apply_masks(raw) for tf in tfs], axis=1)  # [n, T, h, w]
        keep = masks.reshape(len(masks), -1).any(1)
        masks = masks[keep]
        labels = [0 if self.class_agnostic else self.category_map[c] for c, k in zip(rec.category_ids, keep) if k]
        boxes, valid = boxes_and_valid(masks)
        h, w = frames.shape[1:3]
        return {
            "images": torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous(),
            "masks": torch.from_numpy(np.ascontiguousarray(masks)),
            "labels": torch.tensor(labels, dtype=torch.long),
            "boxes": torch.from_numpy(boxes),
            "valid": torch.from_numpy(valid),
            "size": torch.tensor([h, w], dtype=torch.long),
            "video_id": int(rec.id),
            "frame_indices": [0] * len(tfs),
            "ann_ids": [a for a, k in zip(rec.ann_ids, keep) if k],
        }
