"""Embed instances: crop every (instance, frame), encode in batches, aggregate per instance, cache.

Per instance the frame embeddings are L2-normalised, averaged with the mask area as weight (small,
partly hidden views count less) and L2-normalised again. Frames are read and cropped in DataLoader
workers (one decode per frame serves every instance in it); the main process batches crops across
frames, so the encoder always sees full batches.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as mask_utils
from tqdm import tqdm

from wsovvis.data import masks as mask_io
from wsovvis.data import ytvis
from wsovvis.errors import WsovvisError
from wsovvis.openvocab import sources
from wsovvis.openvocab.cache import FORMAT_VERSION, SKIPPED_NAME, EmbeddingCache
from wsovvis.openvocab.crops import crop_blend
from wsovvis.openvocab.embedder import Embedder
from wsovvis.utils.io import atomic_write_json, file_sha256, read_json
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)


@dataclass
class CropSettings:
    """``pad_ratio``: context around the box per side; ``bg_alpha``: how much of the background stays
    (0 = replaced by the fill colour, 1 = untouched); ``topk_frames``: only the k largest-area frames
    of a tube (0 = all)."""

    pad_ratio: float = 0.1
    bg_alpha: float = 0.3
    topk_frames: int = 0

    def __post_init__(self):
        if self.pad_ratio < 0:
            raise WsovvisError(f"--pad_ratio must be >= 0, got {self.pad_ratio}")
        if not 0.0 <= self.bg_alpha <= 1.0:
            raise WsovvisError(f"--bg_alpha must be in [0, 1], got {self.bg_alpha}")
        if self.topk_frames < 0:
            raise WsovvisError(f"--topk_frames must be >= 0, got {self.topk_frames}")


@dataclass
class EmbedStats:
    written: int = 0
    already_done: int = 0
    skipped: list[dict] = field(default_factory=list)
    frames_skipped: list[dict] = field(default_factory=list)
    crops: int = 0
    prep_s: float = 0.0  # time in reading, decoding, cropping and preprocessing (summed over workers)
    encode_s: float = 0.0  # time in the encoder, including the host -> device copy
    wall_s: float = 0.0

    def summary(self) -> str:
        rate = self.written / self.wall_s if self.wall_s > 0 else 0.0
        return (
            f"{self.written} instance(s) embedded ({self.crops} crops, {rate:.1f} inst/s), "
            f"{self.already_done} already cached, {len(self.skipped)} skipped, "
            f"{len(self.frames_skipped)} frame(s) left out; prep {self.prep_s:.1f}s, encode {self.encode_s:.1f}s"
        )


class CropDataset(torch.utils.data.Dataset):
    """Frame jobs -> ``{"job", "crops" [n, 3, S, S] | None, "inst" [n], "areas" [n], "errors", "prep_s"}``.

    ``errors``: ``(instance index, reason)`` for every mask of the frame that gave no crop.
    """

    def __init__(self, jobs: list[sources.FrameJob], preprocess, settings: CropSettings, fill: tuple[int, int, int]):
        self.jobs, self.preprocess, self.settings, self.fill = jobs, preprocess, settings, fill

    def __len__(self) -> int:
        return len(self.jobs)

    def _masks(self, job: sources.FrameJob, hw: tuple[int, int]):
        ids = None
        if job.id_png is not None:
            ids = mask_io.read_ids(job.id_png, "rgb")
            if ids.shape != hw:
                raise WsovvisError(
                    f"{job.id_png}: id PNG is {ids.shape[0]}x{ids.shape[1]} but the image is {hw[0]}x{hw[1]}"
                )
        for idx, kind, payload in job.masks:
            if kind == "segment":
                m = ids == payload
                yield idx, m, None if m.any() else f"segment id {payload} does not occur in {job.id_png}"
                continue
            rle = sources.seg_to_rle(payload, *hw)
            if list(rle["size"]) != list(hw):
                yield idx, None, f"mask size {list(rle['size'])} != frame size {list(hw)}"
                continue
            m = mask_utils.decode(rle).astype(bool)
            yield idx, m, None if m.any() else "empty mask"

    def __getitem__(self, i: int) -> dict:
        if torch.utils.data.get_worker_info() is not None:
            return self._item(i)  # loader workers already run one torch thread each
        # In the main process: per-crop tensor ops are too small to gain from intra-op threads, and on a
        # busy machine the thread hand-off made ToTensor/Normalize ~50x slower (measured in bench/embed.py).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._item(i)
        finally:
            torch.set_num_threads(threads)

    def _item(self, i: int) -> dict:
        t0 = time.perf_counter()
        job = self.jobs[i]
        out = {"job": i, "crops": None, "inst": [], "areas": [], "errors": [], "prep_s": 0.0}
        try:
            with Image.open(job.image) as im:
                image = np.asarray(im.convert("RGB"))
            hw = image.shape[:2]
            if job.size is not None and tuple(job.size) != hw:
                raise WsovvisError(f"frame is {hw[0]}x{hw[1]} but the JSON says {job.size[0]}x{job.size[1]}")
            tensors = []
            for idx, m, problem in self._masks(job, hw):
                if problem is not None:
                    out["errors"].append((idx, f"{job.where}: {problem}"))
                    continue
                crop = crop_blend(image, m, self.settings.pad_ratio, self.settings.bg_alpha, self.fill)
                tensors.append(self.preprocess(Image.fromarray(crop)))
                out["inst"].append(idx)
                out["areas"].append(float(m.sum()))
            if tensors:
                out["crops"] = torch.stack(tensors)
        except (OSError, UnidentifiedImageError, WsovvisError, ValueError) as e:
            msg = f"{job.where}: {e}" if isinstance(e, WsovvisError) else f"{job.where}: unreadable {job.image} ({e})"
            done = set(out["inst"])
            out["errors"] += [(idx, msg) for idx, _, _ in job.masks if idx not in done]
            out["crops"], out["inst"], out["areas"] = None, [], []
        out["prep_s"] = time.perf_counter() - t0
        return out


def _identity(x):
    return x


def run_plan(
    plan: sources.Plan,
    embedder: Embedder,
    cache: EmbeddingCache,
    settings: CropSettings,
    batch_size: int = 32,
    num_workers: int = 0,
    progress: bool = True,
) -> EmbedStats:
    """Embed every instance of ``plan`` into ``cache`` (opened); returns the statistics."""
    if batch_size < 1:
        raise WsovvisError(f"--batch_size must be >= 1, got {batch_size}")
    t_start = time.perf_counter()
    stats = EmbedStats(already_done=plan.already_done, skipped=list(plan.skipped))
    names = plan.header[:2]
    frames_left = list(plan.frames_left)
    acc: dict[int, np.ndarray] = {}
    weight: dict[int, float] = defaultdict(float)
    errors: dict[int, list[str]] = defaultdict(list)

    def key_dict(idx: int) -> dict:
        return {names[0]: plan.keys[idx][0], names[1]: plan.keys[idx][1]}

    def finish(idx: int) -> None:
        vec, w, errs = acc.pop(idx, None), weight.pop(idx, 0.0), errors.pop(idx, [])
        norm = float(np.linalg.norm(vec)) if vec is not None else 0.0
        if w > 0 and norm > 1e-12:
            cache.add(plan.keys[idx], (vec / norm).astype(np.float32))
            stats.written += 1
            stats.frames_skipped += [{**key_dict(idx), "reason": e} for e in errs]
        else:
            reasons = errs + (["the embedder returned a zero vector for every frame"] if w > 0 else [])
            stats.skipped.append({**key_dict(idx), "reason": "; ".join(reasons)})

    buf_x: list[torch.Tensor] = []
    buf_meta: list[tuple[list[int], list[float]]] = []

    def encode(n: int) -> None:
        x = torch.cat(buf_x)
        inst = [i for m in buf_meta for i in m[0]]
        areas = [a for m in buf_meta for a in m[1]]
        buf_x.clear()
        buf_meta.clear()
        if x.shape[0] > n:  # keep the tail for the next batch
            buf_x.append(x[n:])
            buf_meta.append((inst[n:], areas[n:]))
            x, inst, areas = x[:n], inst[:n], areas[:n]
        t0 = time.perf_counter()
        f = embedder.encode_images(x).double().numpy()
        stats.encode_s += time.perf_counter() - t0
        f /= np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        for row, idx, a in zip(f, inst, areas):
            acc[idx] = acc[idx] + a * row if idx in acc else a * row
            weight[idx] += a
            frames_left[idx] -= 1
            if frames_left[idx] == 0:
                finish(idx)

    ds = CropDataset(plan.jobs, embedder.preprocess, settings, embedder.fill_rgb)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=None, shuffle=False, num_workers=num_workers, collate_fn=_identity,
        pin_memory=str(getattr(embedder, "device", "cpu")).startswith("cuda"),
        prefetch_factor=4 if num_workers > 0 else None, persistent_workers=False,
    )
    buffered = 0
    with tqdm(total=len(plan.jobs), desc="embed", unit="frame", disable=not progress) as bar:
        for item in loader:
            stats.prep_s += item["prep_s"]
            for idx, reason in item["errors"]:
                errors[idx].append(reason)
                frames_left[idx] -= 1
                if frames_left[idx] == 0:
                    finish(idx)
            if item["crops"] is not None:
                buf_x.append(item["crops"])
                buf_meta.append((item["inst"], item["areas"]))
                stats.crops += len(item["inst"])
                buffered += len(item["inst"])
            while buffered >= batch_size:
                encode(batch_size)
                buffered -= batch_size
            bar.update(1)
            bar.set_postfix(done=stats.written, skipped=len(stats.skipped), refresh=False)
        if buffered:
            encode(buffered)
        bar.set_postfix(done=stats.written, skipped=len(stats.skipped))
    stats.wall_s = time.perf_counter() - t_start
    return stats


def _write_report(root: Path, stats: EmbedStats, done: set, names: tuple[str, str]) -> None:
    """Merge with the previous report: frames left out of instances finished earlier stay listed."""
    path = root / SKIPPED_NAME
    old_frames = []
    if path.exists():
        old = read_json(path, "embedding skip report")
        old_frames = [f for f in old.get("frames", []) if (f.get(names[0]), f.get(names[1])) in done]
    atomic_write_json(path, {"instances": stats.skipped, "frames": old_frames + stats.frames_skipped}, indent=1)


def embed_source(
    source: str,
    path: str | os.PathLike,
    out: str | os.PathLike,
    embedder: Embedder,
    *,
    img_root: str | os.PathLike,
    videos: str | os.PathLike | None = None,
    panoptic_root: str | os.PathLike | None = None,
    settings: CropSettings | None = None,
    batch_size: int = 32,
    num_workers: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> EmbedStats:
    """Embed the instances of ``path`` into the cache directory ``out``; re-runs resume.

    ``source``: ``"tubes"`` (YouTube-VIS JSON with annotations), ``"results"`` (results list, with
    ``videos`` a YouTube-VIS JSON giving the frames), ``"panoptic"`` (COCO panoptic JSON, with
    ``panoptic_root`` the id PNG folder) or ``"coco"`` (COCO instances JSON).
    """
    settings = settings or CropSettings()
    if not Path(path).is_file():
        raise WsovvisError(f"{path}: input {source} JSON does not exist")
    if not Path(img_root).is_dir():
        raise WsovvisError(f"{img_root}: --img_root is not a directory")
    kind = "video" if source in ("tubes", "results") else "image"
    header = sources.VIDEO_INDEX_HEADER if kind == "video" else sources.IMAGE_INDEX_HEADER
    meta = {
        "format": FORMAT_VERSION,
        "kind": kind,
        "header": list(header),
        "model": embedder.spec,
        "fingerprint": embedder.fingerprint(),
        "weights_file": embedder.weights_file,
        "dim": embedder.dim,
        "crop": {"pad_ratio": settings.pad_ratio, "bg_alpha": settings.bg_alpha, "topk_frames": settings.topk_frames},
        "source": str(Path(path).resolve()),
        "source_sha256": file_sha256(path),
    }
    cache = EmbeddingCache(out, header, embedder.dim)
    cache.check_meta(meta, overwrite)
    done = cache.open()
    try:
        if source == "tubes":
            plan = sources.plan_tubes(path, img_root, done, settings.topk_frames)
        elif source == "results":
            if videos is None:
                raise WsovvisError("--results needs --videos: a YouTube-VIS JSON listing the videos' frames")
            ds = ytvis.load(videos, what="videos JSON")
            plan = sources.plan_results(sources.load_results(path, ds), ds, img_root, done, settings.topk_frames)
        elif source == "panoptic":
            if panoptic_root is None:
                raise WsovvisError("--panoptic needs --panoptic_root: the folder of its id PNGs")
            plan = sources.plan_panoptic(path, panoptic_root, img_root, done)
        elif source == "coco":
            plan = sources.plan_coco(path, img_root, done)
        else:
            raise WsovvisError(f"unknown embedding source {source!r}")
        log.info("%s: %d instance(s) to embed over %d frame(s), %d already cached -> %s",
                 path, len(plan.keys), len(plan.jobs), plan.already_done, out)
        stats = run_plan(plan, embedder, cache, settings, batch_size, num_workers, progress)
    finally:
        cache.close()
    _write_report(Path(out), stats, set(cache.entries), header[:2])
    log.info("embed: %s", stats.summary())
    if stats.skipped or stats.frames_skipped:
        log.warning("embed: skipped instances and frames are listed in %s", Path(out) / SKIPPED_NAME)
    return stats
