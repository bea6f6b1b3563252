"""Leave-one-sequence-out tuning of the weight-free engine on a set of videos with GT masks.

`run_grid` runs every configuration of a small grid on every sequence (features once per
sequence, detections once per cut setting, linking once per configuration) and keeps, per
(configuration, sequence), the YouTube-VIS results, DAVIS J and identity switches. `loo_report`
then chooses, for each held-out sequence, the configuration with the best AP50 on the other
sequences (ties broken by their mean J) and scores it on the held-out one
(`wsovvis.pseudo.quality.leave_one_out`), beside the in-sample figure (the configuration chosen the
same way on all sequences, scored on them: the engine's defaults are that configuration).

Grid axes (the numbers chosen by looking at real data; see `wsovvis.pseudo.defaults`):
``coherence`` (``ClassicFeatures.coherence_px``, the flow-coherence gate of the objectness), ``tau``
(affinity threshold of the weight-free cut) and ``link_iou`` (average-linkage threshold of the clip
linker). The flow is computed once per sequence and shared by every configuration.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from wsovvis.data import rle
from wsovvis.pseudo.quality import choose, identity_switches, leave_one_out, region_similarity, tube_iou

GRID = {"coherence": (0.15, 0.2, 0.3), "tau": (0.4, 0.5, 0.6), "link_iou": (0.3, 0.5)}
QUICK_GRID = {"coherence": (0.15,), "tau": (0.4,), "link_iou": (0.3, 0.5)}


def config_name(cfg: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in cfg.items())


def default_config() -> dict:
    """The engine's defaults on the grid's axes (the configuration that ties go to)."""
    from wsovvis.pseudo.classic_features import ClassicFeatures
    from wsovvis.pseudo.cliplink import ClipLinkParams
    from wsovvis.pseudo.engines import CLASSIC_CUT

    return {"coherence": ClassicFeatures().coherence_px, "tau": CLASSIC_CUT["tau"],
            "link_iou": ClipLinkParams().link_iou}


class _Fixed:
    """A feature extractor stand-in that returns precomputed `VideoFeatures`."""

    def __init__(self, feats, spec):
        self.feats = feats
        self.short_side, self.multiple, self.max_long = spec

    def __call__(self, frames):
        return self.feats


def _at_size(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if m.shape == tuple(size):
        return m
    return cv2.resize(m.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR) > 0.5


def run_grid(img_root: Path, gt_root: Path, seqs: list[str], grid: dict, extra_gt_root: Path | None = None,
             progress: bool = True, workers: int = 1) -> dict[str, dict[str, dict]]:
    """-> config name -> sequence -> ``{"results": [YTVIS result without video_id], "J", "id_switches",
    "id_switches_extra", "tube_iou", "scores"}`` (masks at the original frame size).

    ``workers`` > 1 runs that many sequences at once (processes).
    """
    jobs = [(img_root, gt_root, seq, grid, extra_gt_root) for seq in seqs]
    out: dict[str, dict[str, dict]] = {}
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
            done = list(tqdm(pool.imap(_grid_sequence, jobs), total=len(jobs), desc="grid", unit="video",
                             disable=not progress))
    else:
        done = [_grid_sequence(j) for j in tqdm(jobs, desc="grid", unit="video", disable=not progress)]
    for seq, per_config in done:
        for name, entry in per_config.items():
            out.setdefault(name, {})[seq] = entry
    return out


def _grid_sequence(job: tuple) -> tuple[str, dict[str, dict]]:
    """Every grid configuration on one sequence -> ``(seq, config name -> entry)`` (see `run_grid`)."""
    from wsovvis.data.masks import read_ids
    from wsovvis.pseudo.classic_features import ClassicFeatures
    from wsovvis.pseudo.cut import CutParams
    from wsovvis.pseudo.engines import CLASSIC_CUT
    from wsovvis.pseudo.frames import load_video
    from wsovvis.pseudo.maskcut import MaskCutEngine

    img_root, gt_root, seq, grid, extra_gt_root = job
    out: dict[str, dict] = {}
    extractor = ClassicFeatures()
    spec = (extractor.short_side, extractor.multiple, extractor.max_long)
    video = load_video(img_root, seq, *spec)
    stems = video.stems
    gt = np.stack([read_ids(gt_root / seq / f"{s}.png") for s in stems]).astype(np.int64)
    extra = (np.stack([read_ids(extra_gt_root / seq / f"{s}.png") for s in stems]).astype(np.int64)
             if extra_gt_root is not None else None)
    motion = extractor.motion(video.frames)
    gtube = {t: gt[t] == 1 for t in range(len(gt))}
    for coh, tau in itertools.product(grid["coherence"], grid["tau"]):
        feats = ClassicFeatures(coherence_px=coh)(video.frames, motion=motion)
        eng = MaskCutEngine(_Fixed(feats, spec), CutParams(**dict(CLASSIC_CUT, tau=tau)))
        dets, flow = eng.detect_all(video, feats)
        for li in grid["link_iou"]:
            eng.clip = replace(eng.clip, link_iou=li)
            res = eng.link_all(video, feats, dets, flow)
            tubes = [{t: _at_size(m, video.size) for t, m in tb.masks.items()} for tb in res.tubes]
            union = np.zeros(gt.shape, bool)
            for tb in tubes:
                for t, m in tb.items():
                    union[t] |= m
            out[config_name({"coherence": coh, "tau": tau, "link_iou": li})] = {
                "results": [{"category_id": 1, "score": float(tb.score),
                             "segmentations": [rle.encode(m[t]) if t in m else None for t in range(len(gt))]}
                            for tb, m in zip(res.tubes, tubes)],
                "J": region_similarity(union, gt == 1), "id_switches": identity_switches(tubes, gt),
                "id_switches_extra": identity_switches(tubes, extra) if extra is not None else None,
                "tube_iou": [tube_iou(m, gtube) for m in tubes], "scores": [float(tb.score) for tb in res.tubes],
            }
    return seq, out


def ap50(gt: dict, per_seq: dict[str, dict]) -> float:
    """Class-agnostic AP50 of the given sequences' results against the GT videos of the same names."""
    from wsovvis.evaluation import evaluate

    names = set(per_seq)
    vids = [v for v in gt["videos"] if v["name"] in names]
    ids = {v["id"] for v in vids}
    sub = dict(gt, videos=vids, annotations=[a for a in gt["annotations"] if a["video_id"] in ids])
    vid_of = {v["name"]: v["id"] for v in vids}
    results = [dict(r, video_id=vid_of[s]) for s, o in per_seq.items() for r in o["results"]]
    if not results:
        return 0.0
    return float(evaluate(sub, results, class_agnostic=True)["AP50"])


def loo_report(gt: dict, per_config: dict[str, dict[str, dict]], default: str) -> dict:
    """Leave-one-sequence-out numbers beside the in-sample ones (see the module docstring)."""
    names = [default] + [n for n in per_config if n != default]  # exact ties (AP50 and J) go to the default

    def select(sub: dict[str, dict]) -> tuple[float, float]:
        # AP50 on few sequences takes few values; mean J on the same sequences breaks its ties, so
        # the choice does not fall back on the default (itself chosen by looking at all sequences).
        return ap50(gt, sub), float(np.mean([o["J"] for o in sub.values()]))

    folds = leave_one_out(per_config, select, order=names)
    for f in folds:
        o = per_config[f["chosen"]][f["held_out"]]
        f["held_out_ap50"] = ap50(gt, {f["held_out"]: o})
        f["held_out_J"] = o["J"]
        f["held_out_id_switches"] = o["id_switches"]
    pooled = {f["held_out"]: per_config[f["chosen"]][f["held_out"]] for f in folds}
    seqs = sorted(next(iter(per_config.values())))
    in_sample = {n: {"AP50": ap50(gt, per_config[n]), "J": float(np.mean([per_config[n][s]["J"] for s in seqs])),
                     "id_switches": int(sum(per_config[n][s]["id_switches"] for s in seqs))} for n in names}
    best, _ = choose(names, lambda n: (in_sample[n]["AP50"], in_sample[n]["J"]))  # a fold's rule, on all sequences
    a = np.array([f["held_out_ap50"] for f in folds])
    j = np.array([f["held_out_J"] for f in folds])
    return {"folds": folds, "held_out_ap50_mean": float(a.mean()), "held_out_ap50_std": float(a.std()),
            "held_out_J_mean": float(j.mean()), "held_out_J_std": float(j.std()),
            "held_out_ap50_pooled": ap50(gt, pooled), "in_sample": in_sample, "in_sample_best": best,
            "default": default}


def grid_configs(grid: dict) -> list[dict]:
    return [dict(zip(grid, vals)) for vals in itertools.product(*grid.values())]
