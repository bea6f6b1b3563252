"""Evaluation inside training: inference on the val set -> ``inference/results.json`` -> metrics.

``eval.mode=local`` needs ground truth in ``data.val_json`` (checked at start-up by
`check_eval_setup`, so a run never trains for hours and then finds no ``annotations``) and
computes AP with `wsovvis.evaluation.evaluate`. ``eval.mode=submission`` writes the results,
validates them against the val JSON (video ids, category ids, frame counts, RLE sizes) and zips
them as the evaluation servers expect (``results.json`` at the root of ``submission.zip``).

Videos are split over ranks (video ``i`` on rank ``i % world``); rank 0 gathers, writes and scores.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Any

from tqdm import tqdm

from wsovvis.data import rle as rle_utils
from wsovvis.data import ytvis
from wsovvis.data.dataset import YTVISVideoDataset, contiguous_category_map
from wsovvis.engine import distributed as du
from wsovvis.errors import WsovvisError
from wsovvis.utils.io import atomic_open, atomic_write_json
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)


def check_eval_setup(cfg, val: YTVISVideoDataset, train_categories: list[dict] | None) -> list[int]:
    """Fail early on an impossible evaluation; returns contiguous class index -> result category id.

    Model classes (``model.num_classes``), training classes (``data.train_classes`` / the train
    JSON's categories), the val JSON's categories and the ``eval`` mode must agree: a 1-class model
    scored per class against a multi-category val JSON would report AP 0 everywhere, so it fails
    naming the fix (``eval=agnostic``)."""
    e = cfg.eval
    if e.mode == "local" and not val.ds.has_annotations:
        raise WsovvisError(
            f"{val.json_path}: data.val_json has no 'annotations' (ground truth), so eval.mode=local cannot "
            "compute metrics; use a labelled split (e.g. a hold-out from train) or eval.mode=submission to "
            "write a server submission"
        )
    val_ids = sorted(c["id"] for c in val.ds.categories)
    if not val_ids:
        raise WsovvisError(f"{val.json_path}: has no categories")
    if e.class_agnostic:
        return [val_ids[0]] * cfg.model.num_classes
    if getattr(cfg.model, "class_head", "linear") == "text":
        return []  # open vocabulary: classes = the eval vocabulary's rows (wsovvis.engine.vocabulary.eval_vocab)
    fix = "evaluate class-agnostic with eval=agnostic (or eval.class_agnostic=true)"
    if cfg.data.train_classes == "agnostic":
        raise WsovvisError(f"config: data.train_classes=agnostic trains one class, but eval is per class "
                           f"against the {len(val_ids)} categories of {val.json_path}; {fix}")
    cats = train_categories if train_categories is not None else val.ds.categories
    if cfg.model.num_classes == 1 and len(val_ids) > 1 and len(cats) > 1:
        raise WsovvisError(f"config: model.num_classes=1 (a class-agnostic model) scored per class against the "
                           f"{len(val_ids)} categories of {val.json_path} would give AP 0 for every class; {fix}")
    if len(cats) > cfg.model.num_classes:
        raise WsovvisError(f"config: model.num_classes={cfg.model.num_classes} but the "
                           f"{'training' if train_categories is not None else 'val'} JSON has {len(cats)} categories; "
                           f"set model.num_classes={len(cats)} or {fix}")
    cmap = contiguous_category_map(cats)
    index_to_id = sorted(cmap, key=cmap.__getitem__)
    unknown = [cid for cid in index_to_id if cid not in set(val_ids)]
    if unknown:
        raise WsovvisError(f"{val.json_path}: training category ids {unknown[:10]} are not categories of the "
                           f"val JSON; {fix}, or use matching categories")
    return index_to_id


def run_inference(model, postprocessor, val: YTVISVideoDataset, index_to_id: list[int], progress: bool = True,
                  desc: str = "inference") -> list[dict]:
    """This rank's share of the val videos -> YouTube-VIS results (gathered on every rank)."""
    from wsovvis.modeling.seqformer.inference import predict_video

    rank, world = du.get_rank(), du.world_size()
    mine = list(range(rank, len(val), world))
    results, dropped = [], 0
    for i in tqdm(mine, desc=desc, unit="video", disable=not (progress and rank == 0), leave=False):
        v = val.videos[i]
        # a model family with its own video inference (Mask R-CNN: per-frame detections linked) provides it
        preds = (postprocessor.predict_video(model, val.frames(i)) if hasattr(postprocessor, "predict_video")
                 else predict_video(model, postprocessor, val.frames(i)))
        for p in preds:
            k = p["category_index"]
            if not 0 <= k < len(index_to_id):
                dropped += 1
                continue
            results.append({"video_id": int(v["id"]), "category_id": int(index_to_id[k]),
                            "score": float(p["score"]), "segmentations": p["segmentations"]})
    if dropped:
        log.warning("inference: dropped %d predictions of classes without a dataset category", dropped)
    gathered = du.all_gather_object(results)
    return [r for part in gathered for r in part]


def submission_problems(results: list[dict], gt: ytvis.YTVIS) -> list[str]:
    """What an evaluation server would reject: unknown ids, wrong frame counts, wrong RLE sizes."""
    problems = []
    cats = set(gt.cat_by_id)
    for i, r in enumerate(results):
        v = gt.video_by_id.get(r.get("video_id"))
        if v is None:
            problems.append(f"results[{i}].video_id: {r.get('video_id')!r} is not a video of the val JSON")
            continue
        if r.get("category_id") not in cats:
            problems.append(f"results[{i}].category_id: {r.get('category_id')!r} is not a category of the val JSON")
        score = r.get("score")
        if not isinstance(score, (int, float)) or not math.isfinite(score):
            problems.append(f"results[{i}].score: must be a finite number, got {score!r}")
        segs = r.get("segmentations")
        n = ytvis.video_length(v)
        if not isinstance(segs, list) or len(segs) != n:
            problems.append(f"results[{i}].segmentations: needs {n} entries for video {v['id']}, got "
                            f"{len(segs) if isinstance(segs, list) else type(segs).__name__}")
            continue
        hw = [int(v["height"]), int(v["width"])]
        for t, s in enumerate(segs):
            if s is not None and (not rle_utils.is_compressed(s) or list(s["size"]) != hw):
                problems.append(f"results[{i}].segmentations[{t}]: must be a compressed RLE of size {hw}")
                break
    return problems


def write_submission(results: list[dict], gt: ytvis.YTVIS, out_dir: Path) -> Path:
    problems = submission_problems(results, gt)
    if problems:
        listing = "\n  ".join(problems[:20])
        raise WsovvisError(f"{out_dir / 'results.json'}: {len(problems)} problems against {gt.source}:\n  {listing}")
    import json

    path = out_dir / "submission.zip"
    with atomic_open(path, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("results.json", json.dumps(results, separators=(",", ":")))
    return path


def evaluate_results(cfg, results: list[dict], val: YTVISVideoDataset, run_dir: Path, iteration: int,
                     writer: Any = None) -> dict:
    """Rank 0: write ``inference/results.json`` and score (local) or zip (submission). Returns metrics."""
    out_dir = Path(run_dir) / "inference"
    atomic_write_json(out_dir / "results.json", results)
    log.info("inference: %d predictions on %d videos -> %s", len(results), len(val), out_dir / "results.json")
    if cfg.eval.mode == "submission":
        path = write_submission(results, val.ds, out_dir)
        log.info("submission (validated against %s): %s", val.json_path, path)
        return {}
    from wsovvis.evaluation import evaluate, format_stats_table

    gt = val.ds
    if cfg.data.max_val_videos:
        keep = {v["id"] for v in val.videos}
        gt = ytvis.load({**val.ds.data, "videos": val.videos,
                         "annotations": [a for a in val.ds.annotations if a["video_id"] in keep]},
                        validate_json=False, source=val.json_path)
    metrics = evaluate(gt, results, flavor=cfg.eval.flavor, class_agnostic=cfg.eval.class_agnostic,
                       lenient=cfg.eval.lenient)
    total = len(val.ds.videos)
    protocol = {"split": cfg.data.val_name, "val_json": val.json_path, "class_agnostic": cfg.eval.class_agnostic,
                "flavor": cfg.eval.flavor, "videos": len(val), "videos_total": total, "iteration": iteration}
    atomic_write_json(out_dir / "metrics.json", {"protocol": protocol, "metrics": metrics}, indent=2)
    print(f"\n{eval_header(cfg, val, iteration)}\n{format_stats_table(metrics)}\n", flush=True)
    if writer is not None:
        flat = {f"eval/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}
        for group in ("base", "novel"):
            if isinstance(metrics.get(group), dict):
                flat.update({f"eval/{group}/{k}": v for k, v in metrics[group].items()})
        writer.write(iteration, flat)
    return metrics


def eval_header(cfg, val: YTVISVideoDataset, iteration: int) -> str:
    """``evaluation at iteration 4 (<val json>, class-agnostic, 2 of 8 videos: data.max_val_videos=2)``:
    the file actually scored (not a group's ``val_name``) and how many of its videos."""
    kind = "class-agnostic" if cfg.eval.class_agnostic else "per class"
    total = len(val.ds.videos)
    videos = f"{len(val)} of {total} videos" + (f": data.max_val_videos={cfg.data.max_val_videos}"
                                                 if len(val) < total and cfg.data.max_val_videos else "")
    return f"evaluation at iteration {iteration} ({val.json_path}, {cfg.eval.flavor} {kind}, {videos})"
