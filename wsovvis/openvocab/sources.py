"""What to embed: instances (tubes or image segments) and the frames they appear in.

Four sources, one plan format:

* YouTube-VIS tubes (``--tubes``): one instance per annotation, key ``(video_id, track_id)``
  where ``track_id`` is the annotation's ``track_id`` when present, else its ``id``.
* YouTube-VIS results (``--results`` + ``--videos``): one instance per prediction, key
  ``(video_id, index + 1)`` with ``index`` its position in the results list.
* COCO panoptic (``--panoptic``): one instance per segment, key ``(image_id, segment_id)``; masks
  come from the RGB id PNG (``segment_id = R + 256 G + 256^2 B``).
* COCO instances (``--coco``): one instance per annotation, key ``(image_id, annotation id)``.

A plan lists frame jobs (one image each, with the masks of every instance in it) in a fixed
order, so one decode of a frame serves all its instances.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pycocotools import mask as mask_utils

from wsovvis.data import rle as rle_utils
from wsovvis.data import ytvis
from wsovvis.errors import WsovvisError
from wsovvis.utils.io import read_json

VIDEO_INDEX_HEADER = ("video_id", "track_id", "feat_file")
IMAGE_INDEX_HEADER = ("image_id", "segment_id", "feat_file")


@dataclass
class FrameJob:
    """One image and the masks to crop from it.

    ``masks``: ``(instance index, kind, payload)`` with kind ``"rle"`` (RLE or polygon list, decoded
    at ``size``) or ``"segment"`` (an id in ``id_png``). ``where`` names the frame in reports.
    """

    image: Path
    masks: list[tuple[int, str, Any]]
    size: tuple[int, int] | None
    where: str
    id_png: Path | None = None


@dataclass
class Plan:
    """Instances still to embed (``keys[i]`` has ``frames_left[i]`` frame jobs) and those skipped."""

    kind: str  # "video" | "image"
    keys: list[tuple[int, int]] = field(default_factory=list)
    frames_left: list[int] = field(default_factory=list)
    jobs: list[FrameJob] = field(default_factory=list)
    already_done: int = 0
    skipped: list[dict] = field(default_factory=list)

    @property
    def header(self) -> tuple[str, str, str]:
        return VIDEO_INDEX_HEADER if self.kind == "video" else IMAGE_INDEX_HEADER


def track_key(ann: dict) -> int:
    """The per-video track number of a YouTube-VIS annotation: ``track_id`` if present, else ``id``."""
    return ann["track_id"] if isinstance(ann.get("track_id"), int) else ann["id"]


def seg_to_rle(seg: Any, h: int, w: int) -> dict:
    """Compressed/uncompressed RLE or polygon list -> compressed RLE (bytes counts) of size ``(h, w)``."""
    if isinstance(seg, list):
        return mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    if isinstance(seg.get("counts"), list):
        return mask_utils.frPyObjects(seg, h, w)
    return seg


def seg_area(seg: Any, h: int, w: int) -> int:
    if isinstance(seg, dict) and isinstance(seg.get("counts"), str):
        return rle_utils.area(seg)
    return int(mask_utils.area(seg_to_rle(seg, h, w)))


def _top_frames(frames: list[tuple[int, int]], topk: int) -> list[tuple[int, int]]:
    """Keep the ``topk`` largest ``(t, area)`` frames (ties: earlier first), in time order; 0 keeps all."""
    if topk <= 0 or len(frames) <= topk:
        return frames
    best = sorted(frames, key=lambda fa: (-fa[1], fa[0]))[:topk]
    return sorted(best)


def _video_plan(
    videos: list[dict],
    tubes: list[tuple[int, int, list]],
    frames_root: Path,
    done: set[tuple[int, int]],
    topk_frames: int,
) -> Plan:
    """``tubes``: ``(video_id, track_id, segmentations)`` in file order."""
    plan = Plan("video")
    video_by_id = {v["id"]: v for v in videos}
    jobs: dict[tuple[int, int], FrameJob] = {}
    for vid, tid, segs in tubes:
        key = (vid, tid)
        if key in done:
            plan.already_done += 1
            continue
        v = video_by_id[vid]
        h, w = v["height"], v["width"]
        frames = [(t, seg_area(s, h, w)) for t, s in enumerate(segs) if s is not None]
        frames = _top_frames([fa for fa in frames if fa[1] > 0], topk_frames)
        if not frames:
            plan.skipped.append({"video_id": vid, "track_id": tid, "reason": "no frame with a non-empty mask"})
            continue
        idx = len(plan.keys)
        plan.keys.append(key)
        plan.frames_left.append(len(frames))
        for t, _ in frames:
            job = jobs.get((vid, t))
            if job is None:
                name = v["file_names"][t]
                job = jobs[(vid, t)] = FrameJob(frames_root / name, [], (h, w), f"video {vid} frame {t} ({name})")
            job.masks.append((idx, "rle", segs[t]))
    order = {v["id"]: i for i, v in enumerate(videos)}
    plan.jobs = [jobs[k] for k in sorted(jobs, key=lambda k: (order[k[0]], k[1]))]
    return plan


def plan_tubes(path: str | os.PathLike, frames_root: str | os.PathLike, done: set, topk_frames: int = 0) -> Plan:
    """Tubes of a YouTube-VIS JSON with annotations (pseudo tubes or GT)."""
    ds = ytvis.load(path, require_annotations=True, what="tubes JSON")
    seen: dict[tuple[int, int], int] = {}
    tubes = []
    for i, a in enumerate(ds.annotations):
        key = (a["video_id"], track_key(a))
        if key in seen:
            raise WsovvisError(
                f"{path}: annotations[{i}] and annotations[{seen[key]}] have the same (video_id, track_id) {key}; "
                "embedding files are named by it, so it must be unique"
            )
        seen[key] = i
        tubes.append((key[0], key[1], a["segmentations"]))
    return _video_plan(ds.videos, tubes, Path(frames_root), done, topk_frames)


def load_results(path: str | os.PathLike, ds: ytvis.YTVIS) -> list[dict]:
    """A YouTube-VIS results list checked against the videos of ``ds`` (errors name the result index)."""
    results = read_json(path, "results JSON")
    if not isinstance(results, list):
        raise WsovvisError(f"{path}: a results file must be a JSON list of predictions, got {type(results).__name__}")
    for i, r in enumerate(results):
        where = f"{path}: results[{i}]"
        if not isinstance(r, dict) or "video_id" not in r or "segmentations" not in r:
            raise WsovvisError(f"{where}: must be an object with 'video_id', 'score' and 'segmentations'")
        v = ds.video_by_id.get(r["video_id"])
        if v is None:
            raise WsovvisError(f"{where}: video_id {r['video_id']!r} is not in {ds.source}")
        segs = r["segmentations"]
        n = ytvis.video_length(v)
        if not isinstance(segs, list) or len(segs) != n:
            got = len(segs) if isinstance(segs, list) else type(segs).__name__
            raise WsovvisError(f"{where}: segmentations has {got} entries but video {v['id']} has {n} frames")
        for t, s in enumerate(segs):
            if s is None:
                continue
            if not rle_utils.is_rle(s):
                raise WsovvisError(f"{where}.segmentations[{t}]: must be null or an RLE")
            if list(s["size"]) != [v["height"], v["width"]]:
                raise WsovvisError(
                    f"{where}.segmentations[{t}]: RLE size {list(s['size'])} != video size "
                    f"{[v['height'], v['width']]}"
                )
        score = r.get("score", 1.0)
        if not isinstance(score, (int, float)) or isinstance(score, bool) or score != score:
            raise WsovvisError(f"{where}: score must be a number, got {score!r}")
    return results


def plan_results(results: list[dict], ds: ytvis.YTVIS, frames_root: str | os.PathLike, done: set,
                 topk_frames: int = 0) -> Plan:
    """Predicted tubes (already checked by `load_results`); track id = list position + 1."""
    tubes = [(r["video_id"], i + 1, r["segmentations"]) for i, r in enumerate(results)]
    return _video_plan(ds.videos, tubes, Path(frames_root), done, topk_frames)


def _images_by_id(data: dict, path: str | os.PathLike) -> dict[int, dict]:
    images = data.get("images")
    if not isinstance(images, list):
        raise WsovvisError(f"{path}: missing the 'images' list of a COCO JSON")
    out = {}
    for i, im in enumerate(images):
        if not isinstance(im, dict) or not all(k in im for k in ("id", "file_name")):
            raise WsovvisError(f"{path}: images[{i}] needs 'id' and 'file_name'")
        out[im["id"]] = im
    return out


def _size(im: dict) -> tuple[int, int] | None:
    h, w = im.get("height"), im.get("width")
    return (h, w) if isinstance(h, int) and isinstance(w, int) else None


def plan_panoptic(path: str | os.PathLike, png_root: str | os.PathLike, images_root: str | os.PathLike,
                  done: set) -> Plan:
    """Segments of a COCO panoptic JSON; masks from ``png_root/<annotation file_name>``."""
    data = read_json(path, "COCO panoptic JSON")
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise WsovvisError(f"{path}: a COCO panoptic JSON needs an 'annotations' list")
    images = _images_by_id(data, path)
    plan = Plan("image")
    for i, a in enumerate(data["annotations"]):
        where = f"{path}: annotations[{i}]"
        if not isinstance(a, dict) or not all(k in a for k in ("image_id", "file_name", "segments_info")):
            raise WsovvisError(f"{where}: needs 'image_id', 'file_name' and 'segments_info'")
        im = images.get(a["image_id"])
        if im is None:
            raise WsovvisError(f"{where}: image_id {a['image_id']!r} is not in 'images'")
        job = FrameJob(Path(images_root) / im["file_name"], [], _size(im),
                       f"image {im['id']} ({im['file_name']})", id_png=Path(png_root) / a["file_name"])
        for j, s in enumerate(a["segments_info"]):
            if not isinstance(s, dict) or not isinstance(s.get("id"), int) or s["id"] <= 0:
                raise WsovvisError(f"{where}.segments_info[{j}]: needs a positive integer 'id'")
            key = (im["id"], s["id"])
            if key in done:
                plan.already_done += 1
                continue
            idx = len(plan.keys)
            plan.keys.append(key)
            plan.frames_left.append(1)
            job.masks.append((idx, "segment", s["id"]))
        if job.masks:
            plan.jobs.append(job)
    return plan


def plan_coco(path: str | os.PathLike, images_root: str | os.PathLike, done: set) -> Plan:
    """Annotations of a COCO instances JSON (polygon or RLE segmentations)."""
    data = read_json(path, "COCO instances JSON")
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise WsovvisError(f"{path}: a COCO instances JSON needs an 'annotations' list")
    images = _images_by_id(data, path)
    jobs: dict[int, FrameJob] = {}
    plan = Plan("image")
    for i, a in enumerate(data["annotations"]):
        where = f"{path}: annotations[{i}]"
        if not isinstance(a, dict) or not all(k in a for k in ("id", "image_id", "segmentation")):
            raise WsovvisError(f"{where}: needs 'id', 'image_id' and 'segmentation'")
        im = images.get(a["image_id"])
        if im is None:
            raise WsovvisError(f"{where}: image_id {a['image_id']!r} is not in 'images'")
        size = _size(im)
        if size is None:
            raise WsovvisError(f"{path}: image {im['id']} has no integer 'height'/'width' (needed to decode masks)")
        seg = a["segmentation"]
        if not (rle_utils.is_rle(seg) or (isinstance(seg, list) and all(isinstance(p, list) for p in seg))):
            raise WsovvisError(f"{where}: segmentation must be a polygon list or an RLE")
        key = (im["id"], a["id"])
        if key in done:
            plan.already_done += 1
            continue
        idx = len(plan.keys)
        plan.keys.append(key)
        plan.frames_left.append(1)
        job = jobs.get(im["id"])
        if job is None:
            job = jobs[im["id"]] = FrameJob(Path(images_root) / im["file_name"], [], size,
                                            f"image {im['id']} ({im['file_name']})")
        job.masks.append((idx, "rle", seg))
    plan.jobs = list(jobs.values())
    return plan
