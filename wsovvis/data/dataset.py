"""YouTube-VIS datasets for training (random clips) and inference (whole videos).

`YTVISClipDataset` yields one augmented clip per item. An item key is either an index or an
``(index, seed)`` pair; with a seed, the clip (frames, crop, size, flip) depends only on it, so
training is reproducible whatever the number of loader workers. Videos without annotations are
kept as negatives (as VNext does; ``drop_empty=True`` skips them); videos whose frames are missing
on disk are skipped at construction; ``skipped`` lists them with the reason and the count is logged.

One training sample (tensors on CPU)::

    images       uint8 [T, 3, h, w]    RGB, resized/flipped/cropped clip (not padded)
    masks        bool  [n, T, h, w]    one row per instance seen in at least one sampled frame
    labels       long  [n]             contiguous class index (0 for every track when class-agnostic)
    boxes        float [n, T, 4]       cxcywh / (w, h) from the augmented masks; zeros where absent
    valid        bool  [n, T]          False where the instance is absent (its box and mask are zero)
    size         long  [2]             (h, w)
    video_id     int;  frame_indices list[int];  ann_ids list[int]
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from pycocotools import mask as mask_utils
from torch.utils.data import Dataset

from wsovvis.data import rle as rle_utils
from wsovvis.data import ytvis
from wsovvis.data.clip_sampler import sample_clip_indices
from wsovvis.data.transforms import ClipAugmentation, ClipTransform
from wsovvis.errors import WsovvisError
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

# Frames are decoded by OpenCV in loader workers; its own thread pool would oversubscribe the cores.
cv2.setNumThreads(0)


def contiguous_category_map(categories: list[dict]) -> dict[int, int]:
    """Dataset category id -> contiguous index 0..K-1 in ascending id order."""
    return {cid: i for i, cid in enumerate(sorted(c["id"] for c in categories))}


BASE_PARTITIONS = (0, 1)  # LV-VIS: 0/1 base (COCO / frequent+common LVIS), 2/3 novel


def base_categories(categories: list[dict], source: str) -> list[dict]:
    """The base categories (``partition`` 0/1); every category needs a ``partition``."""
    missing = [c["id"] for c in categories if c.get("partition") not in (0, 1, 2, 3)]
    if missing:
        raise WsovvisError(f"{source}: data.train_classes=base needs an LV-VIS 'partition' (0/1 base, 2/3 novel) "
                           f"on every category; categories {missing[:10]} have none")
    base = [c for c in categories if c["partition"] in BASE_PARTITIONS]
    if not base:
        raise WsovvisError(f"{source}: data.train_classes=base: no base category (partition 0/1)")
    return base


BAD_FRAMES = ("fail", "skip")
_JPEG_EOI, _PNG_IEND = b"\xff\xd9", b"IEND\xaeB`\x82"


def truncated_image(path: str | os.PathLike) -> str | None:
    """Why a JPEG / PNG file is cut short (its end marker is missing), or None.

    Decoders fill a truncated frame with grey and go on (OpenCV only warns), so the end marker is
    checked: a JPEG ends with EOI (``FF D9``, trailing padding allowed), a PNG with its IEND chunk.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64))
            tail = f.read()
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if head.startswith(b"\xff\xd8") and _JPEG_EOI not in tail:
        return f"is a truncated JPEG ({size} bytes, no end-of-image marker)"
    if head.startswith(b"\x89PNG") and not tail.rstrip(b"\x00").endswith(_PNG_IEND):
        return f"is a truncated PNG ({size} bytes, no IEND chunk)"
    return None


def read_frame(path: str | os.PathLike, video: str = "") -> np.ndarray:
    """RGB ``uint8 [H, W, 3]``; a missing, undecodable or truncated file raises `WsovvisError` naming it."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    what = f" (video {video})" if video else ""
    if img is None:
        reason = "does not exist" if not os.path.exists(path) else "cannot be decoded as an image"
        raise WsovvisError(f"{path}: frame{what} {reason}")
    cut = truncated_image(path)
    if cut:
        raise WsovvisError(f"{path}: frame{what} {cut}; data.bad_frames=skip skips videos with such frames")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def decode_segmentation(seg: Any, h: int, w: int) -> np.ndarray | None:
    """RLE / polygon / None -> bool ``[h, w]`` (None when absent)."""
    if seg is None:
        return None
    if isinstance(seg, list):  # polygons
        if not seg:
            return None
        rles = mask_utils.frPyObjects(seg, h, w)
        return mask_utils.decode(mask_utils.merge(rles)).astype(bool)
    return rle_utils.decode(seg)


def box_cxcywh(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """Normalised ``(cx, cy, w, h)`` of the tight box around a bool mask ``[h, w]``; None if empty."""
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    hh, ww = mask.shape
    x0, x1, y0, y1 = xs[0], xs[-1] + 1, ys[0], ys[-1] + 1
    return ((x0 + x1) / 2 / ww, (y0 + y1) / 2 / hh, (x1 - x0) / ww, (y1 - y0) / hh)


def boxes_and_valid(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """bool ``[n, T, h, w]`` -> (cxcywh normalised ``[n, T, 4]``, ``valid [n, T]``)."""
    n, T = masks.shape[:2]
    boxes = np.zeros((n, T, 4), dtype=np.float32)
    valid = np.zeros((n, T), dtype=bool)
    for i in range(n):
        for t in range(T):
            b = box_cxcywh(masks[i, t])
            if b is not None:
                boxes[i, t], valid[i, t] = b, True
    return boxes, valid


@dataclass
class SkippedVideo:
    video_id: int
    name: str
    reason: str


def _video_name(v: dict) -> str:
    if v.get("name"):
        return str(v["name"])
    names = v.get("file_names") or []
    return str(Path(names[0]).parent) if names else str(v.get("id"))


def _missing_frame(v: dict, img_root: Path) -> str | None:
    for fn in v.get("file_names") or []:
        if not (img_root / fn).is_file():
            return str(img_root / fn)


def _truncated_frame(v: dict, img_root: Path) -> str | None:
    for fn in v.get("file_names") or []:
        cut = truncated_image(img_root / fn)
        if cut:
            return f"{img_root / fn} {cut}"
    return None


class YTVISClipDataset(Dataset):
    """Training clips of a YouTube-VIS JSON (``json_path``) with frames under ``img_root``."""

    def __init__(
        self,
        json_path: str | os.PathLike,
        img_root: str | os.PathLike,
        *,
        num_frames: int,
        frame_range: int,
        augmentation: ClipAugmentation,
        class_agnostic: bool = False,
        check_frames: bool = True,
        max_videos: int = 0,
        base_only: bool = False,
        tube_embeddings: dict | None = None,
        drop_empty: bool = False,
        bad_frames: str = "fail",
    ) -> None:
        """``base_only`` (``data.train_classes=base``): tracks of novel categories (LV-VIS ``partition``
        2/3) are dropped from the targets (counted in ``dropped_novel``) and labels index the base
        categories only. ``tube_embeddings``: ``{(video_id, track_id): vector [D]}`` (a `wsovvis embed`
        cache) adds ``embeddings [n, D]`` / ``has_embedding [n]`` to each sample (distillation).
        ``bad_frames`` (``data.bad_frames``): a truncated frame fails at start-up naming the file
        (``fail``), or its video is skipped and counted in ``skipped`` (``skip``); checked with
        ``check_frames``."""
        if bad_frames not in BAD_FRAMES:
            raise WsovvisError(f"data.bad_frames: {bad_frames!r} is not one of {', '.join(BAD_FRAMES)}")
        self.json_path = str(json_path)
        self.img_root = Path(img_root)
        if not self.img_root.is_dir():
            raise WsovvisError(f"{self.img_root}: image root of {self.json_path} is not a directory")
        ds = ytvis.load(json_path, require_annotations=True, what="training YouTube-VIS JSON")
        self.categories = ds.categories
        self.category_map = contiguous_category_map(ds.categories)
        self.dropped_novel = 0
        if base_only:
            self.category_map = contiguous_category_map(base_categories(ds.categories, self.json_path))
        self.tube_embeddings = tube_embeddings
        self.class_agnostic = class_agnostic
        self.num_frames = num_frames
        self.frame_range = frame_range
        self.augmentation = augmentation
        self.videos: list[dict] = []
        self.anns: list[list[dict]] = []
        self.skipped: list[SkippedVideo] = []
        # VNext keeps videos without annotations (FILTER_EMPTY_ANNOTATIONS False): negatives whose clips
        # have no targets; ``drop_empty`` (data.drop_empty_videos) skips them instead.
        self.negatives = 0
        for v in ds.videos:
            anns = [a for a in ds.anns_by_video.get(v["id"], []) if not a.get("iscrowd", 0)]
            anns = [a for a in anns if any(s is not None for s in a["segmentations"])]
            if base_only:
                n_all = len(anns)
                anns = [a for a in anns if a["category_id"] in self.category_map]
                self.dropped_novel += n_all - len(anns)
            if not anns and drop_empty:
                self.skipped.append(SkippedVideo(v["id"], _video_name(v), "no annotations"))
                continue
            if ytvis.video_length(v) < 1:
                self.skipped.append(SkippedVideo(v["id"], _video_name(v), "no frames"))
                continue
            missing = _missing_frame(v, self.img_root) if check_frames else None
            if missing:
                self.skipped.append(SkippedVideo(v["id"], _video_name(v), f"missing frame {missing}"))
                continue
            cut = _truncated_frame(v, self.img_root) if check_frames else None
            if cut and bad_frames == "fail":
                raise WsovvisError(f"{cut} (video {_video_name(v)} of {self.json_path}); "
                                   "data.bad_frames=skip skips such videos and counts them")
            if cut:
                self.skipped.append(SkippedVideo(v["id"], _video_name(v), f"truncated frame {cut}"))
                continue
            self.videos.append(v)
            self.anns.append(anns)
            self.negatives += not anns
            if max_videos and len(self.videos) >= max_videos:
                break
        if base_only:
            log.warning("%s: data.train_classes=base: dropped %d novel-category track(s) (partition 2/3); "
                        "training on %d base categories", self.json_path, self.dropped_novel, len(self.category_map))
        if self.skipped:
            reasons: dict[str, int] = {}
            for s in self.skipped:
                key = s.reason.split(" ")[0] if s.reason.startswith(("missing", "truncated")) else s.reason
                reasons[key] = reasons.get(key, 0) + 1
            log.warning("%s: skipped %d of %d videos (%s)", self.json_path, len(self.skipped), len(ds.videos),
                        ", ".join(f"{n} {r}" for r, n in reasons.items()))
        if self.negatives:
            log.info("%s: %d of %d training videos have no annotations: kept as negatives "
                     "(data.drop_empty_videos=true drops them)", self.json_path, self.negatives, len(self.videos))
        if not any(self.anns):
            raise WsovvisError(f"{self.json_path}: no video with annotations and frames on disk to train on "
                               f"({len(self.skipped)} skipped)")

    @property
    def num_classes(self) -> int:
        return 1 if self.class_agnostic else len(self.category_map)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, seed = key if isinstance(key, tuple) else (key, None)
        rng = np.random.default_rng(seed)
        v, anns = self.videos[index], self.anns[index]
        length = ytvis.video_length(v)
        frames = sample_clip_indices(length, self.num_frames, self.frame_range, rng)
        h0, w0 = int(v["height"]), int(v["width"])
        tf = self.augmentation.sample(h0, w0, rng)
        images = []
        for t in frames:
            img = read_frame(self.img_root / v["file_names"][t], _video_name(v))
            if img.shape[:2] != (h0, w0):
                raise WsovvisError(
                    f"{self.img_root / v['file_names'][t]}: frame is {img.shape[1]}x{img.shape[0]} but video "
                    f"{v['id']} in {self.json_path} says {w0}x{h0} (run `wsovvis check`)"
                )
            images.append(tf.apply_image(img))
        return self._targets(v, anns, frames, tf, np.stack(images))

    def _targets(self, v: dict, anns: list[dict], frames: list[int], tf: ClipTransform, images: np.ndarray) -> dict:
        h0, w0 = int(v["height"]), int(v["width"])
        h, w = tf.out_hw
        T = len(frames)
        masks, labels, ann_ids = [], [], []
        for a in anns:
            raw = np.zeros((T, h0, w0), dtype=bool)
            for j, t in enumerate(frames):
                m = decode_segmentation(a["segmentations"][t], h0, w0)
                if m is not None:
                    raw[j] = m
            if not raw.any():
                continue
            m = tf.apply_masks(raw)
            if not m.any():  # cropped away
                continue
            masks.append(m)
            labels.append(0 if self.class_agnostic else self.category_map[a["category_id"]])
            ann_ids.append(a["id"])
        n = len(masks)
        extra = self._embedding_targets(int(v["id"]), anns, ann_ids) if self.tube_embeddings is not None else {}
        mask_arr = np.stack(masks) if n else np.zeros((0, T, h, w), dtype=bool)
        boxes, valid = boxes_and_valid(mask_arr)
        return {
            "images": torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
            "masks": torch.from_numpy(mask_arr),
            "labels": torch.tensor(labels, dtype=torch.long),
            "boxes": torch.from_numpy(boxes),
            "valid": torch.from_numpy(valid),
            "size": torch.tensor([h, w], dtype=torch.long),
            "video_id": int(v["id"]),
            "frame_indices": frames,
            "ann_ids": ann_ids,
            **extra,
        }

    def _embedding_targets(self, video_id: int, anns: list[dict], ann_ids: list[int]) -> dict:
        """Cached tube embeddings of the kept tracks: ``embeddings [n, D]``, ``has_embedding [n]``."""
        by_id = {a["id"]: a for a in anns}
        dim = len(next(iter(self.tube_embeddings.values()))) if self.tube_embeddings else 0
        emb = np.zeros((len(ann_ids), dim), dtype=np.float32)
        has = np.zeros(len(ann_ids), dtype=bool)
        for i, aid in enumerate(ann_ids):
            a = by_id[aid]
            tid = a["track_id"] if isinstance(a.get("track_id"), int) else a["id"]
            vec = self.tube_embeddings.get((video_id, tid))
            if vec is not None:
                emb[i], has[i] = vec, True
        return {"embeddings": torch.from_numpy(emb), "has_embedding": torch.from_numpy(has)}


class YTVISVideoDataset:
    """Whole videos for inference; annotations are not needed.

    `frames` yields a video's RGB ``uint8 [H, W, 3]`` frames one at a time at the size the JSON
    declares (the model's inference resizes them), so memory does not grow with video length.
    """

    def __init__(self, json_path: str | os.PathLike, img_root: str | os.PathLike, *, max_videos: int = 0) -> None:
        self.json_path = str(json_path)
        self.img_root = Path(img_root)
        self.ds = ytvis.load(json_path, what="validation YouTube-VIS JSON")
        self.videos = list(self.ds.videos)[: max_videos or None]
        if not self.img_root.is_dir():
            raise WsovvisError(f"{self.img_root}: image root of {self.json_path} is not a directory")

    def __len__(self) -> int:
        return len(self.videos)

    def frames(self, index: int) -> Iterator[np.ndarray]:
        v = self.videos[index]
        h0, w0 = int(v["height"]), int(v["width"])
        for fn in v["file_names"]:
            img = read_frame(self.img_root / fn, _video_name(v))
            if img.shape[:2] != (h0, w0):
                # Results must be at the declared size; a mis-sized frame is resized to it.
                img = cv2.resize(img, (w0, h0), interpolation=cv2.INTER_LINEAR)
            yield img
