"""Benchmark: `wsovvis.evaluation.evaluate_full` against the plain per-(prediction, GT, frame) evaluator.

Generates a seeded synthetic YouTube-VIS case (default 300 videos x 36 frames, 10 categories, ~1,500 GT
tracks, ~9,000 predictions with moving ellipse masks, absent frames, crowd tracks and tied scores), times
both evaluators on the same in-memory input in one run, and prints both times, the ratio and the largest
|difference| of the 12 stats and of the precision/recall arrays. Then measures the peak traced memory of
the fast evaluator on an LV-VIS-sized input (1,196 categories, 100 predictions per video).

    .venv/bin/python bench/eval.py                       # full run (the plain evaluator takes minutes)
    .venv/bin/python bench/eval.py --videos 30 --lvvis-videos 50    # quick look
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsovvis.evaluation import STAT_NAMES, evaluate_full  # noqa: E402
from wsovvis.evaluation.reference import reference_evaluate  # noqa: E402


def ellipse_rle(h: int, w: int, cx: float, cy: float, rx: float, ry: float) -> tuple[str, int]:
    """Compressed RLE and area of a filled ellipse, built from its column intervals (no bitmap)."""
    xs = np.arange(max(0, int(np.floor(cx - rx))), min(w, int(np.ceil(cx + rx)) + 1))
    u = (xs + 0.5 - cx) / rx
    inside = np.abs(u) < 1
    xs, u = xs[inside], u[inside]
    hh = ry * np.sqrt(1 - u**2)
    y0 = np.clip(np.ceil(cy - hh - 0.5), 0, h).astype(np.int64)
    y1 = np.clip(np.floor(cy + hh - 0.5) + 1, 0, h).astype(np.int64)
    keep = y1 > y0
    xs, y0, y1 = xs[keep], y0[keep], y1[keep]
    if xs.size == 0:
        counts = np.array([h * w], dtype=np.uint32)
        area = 0
    else:
        start, end = xs * h + y0, xs * h + y1
        # merge intervals that touch across a column boundary
        brk = np.ones(start.size, dtype=bool)
        brk[1:] = start[1:] != end[:-1]
        s, e = start[brk], end[np.r_[brk[1:], True]]
        runs = np.empty(2 * s.size + 1, dtype=np.int64)
        runs[0] = s[0]
        runs[1::2] = e - s
        runs[2:-1:2] = s[1:] - e[:-1]
        runs[-1] = h * w - e[-1]
        counts = runs.astype(np.uint32)
        area = int((e - s).sum())
    rle = mask_utils.frPyObjects([{"size": [h, w], "counts": counts}], h, w)[0]
    return rle["counts"].decode("ascii"), area


def _track(rng, h, w, frames, base=None, jitter=0.0):
    """Per-frame (counts, area) of a moving ellipse; ``base`` = (cx, cy, vx, vy, rx, ry, t0, t1) to perturb."""
    if base is None:
        r = float(np.exp(rng.uniform(np.log(12), np.log(150))))
        rx, ry = r * rng.uniform(0.6, 1.4), r * rng.uniform(0.6, 1.4)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        vx, vy = rng.normal(0, 3, size=2)
        t0 = int(rng.integers(0, frames // 3)) if rng.random() < 0.5 else 0
        t1 = frames - (int(rng.integers(0, frames // 3)) if rng.random() < 0.5 else 0)
        base = (cx, cy, vx, vy, rx, ry, t0, t1)
    cx, cy, vx, vy, rx, ry, t0, t1 = base
    if jitter:
        cx, cy = cx + rng.normal(0, jitter * rx), cy + rng.normal(0, jitter * ry)
        rx, ry = rx * rng.uniform(1 - jitter, 1 + jitter), ry * rng.uniform(1 - jitter, 1 + jitter)
        t0 = max(0, t0 + int(rng.integers(-2, 3)))
        t1 = min(frames, t1 + int(rng.integers(-2, 3)))
    segs, areas = [], []
    for t in range(frames):
        if not t0 <= t < t1 or (jitter and rng.random() < 0.05):
            segs.append(None)
            areas.append(None)
            continue
        counts, area = ellipse_rle(h, w, cx + vx * t, cy + vy * t, rx, ry)
        segs.append({"size": [h, w], "counts": counts})
        areas.append(area)
    return segs, areas, base


def make_case(videos: int, frames: int, h: int, w: int, num_cats: int, gt_per_video: int, dt_per_video: int,
              seed: int = 0, partitions: bool = False) -> tuple[dict, list]:
    rng = np.random.default_rng(seed)
    cats = [{"id": c + 1, "name": f"class{c + 1}"} for c in range(num_cats)]
    if partitions:
        for c in cats:
            c["partition"] = int(rng.integers(0, 4))
    gt = {"videos": [], "categories": cats, "annotations": []}
    results = []
    for v in range(videos):
        vid = v + 1
        gt["videos"].append({"id": vid, "height": h, "width": w, "length": frames,
                             "file_names": [f"v{vid}/{t:05d}.jpg" for t in range(frames)]})
        bases = []
        for _ in range(gt_per_video):
            segs, areas, base = _track(rng, h, w, frames)
            cat = int(rng.integers(1, num_cats + 1))
            bases.append((base, cat))
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "video_id": vid, "category_id": cat,
                                      "iscrowd": int(rng.random() < 0.02), "segmentations": segs, "areas": areas,
                                      "bboxes": [None] * frames})
        n_dt = 0
        while n_dt < dt_per_video:
            if bases and rng.random() < 0.7:
                base, cat = bases[int(rng.integers(len(bases)))]
                if rng.random() < 0.2:
                    cat = int(rng.integers(1, num_cats + 1))
                segs, _, _ = _track(rng, h, w, frames, base, jitter=float(rng.uniform(0.02, 0.4)))
            else:
                segs, _, _ = _track(rng, h, w, frames)
                cat = int(rng.integers(1, num_cats + 1))
            results.append({"video_id": vid, "category_id": cat, "score": round(float(rng.random()), 2),
                            "segmentations": segs})
            n_dt += 1
    return gt, results


def max_abs_diff(fast, ref: dict) -> tuple[float, float]:
    stats = max(abs(fast.stats[k] - ref[k]) for k in STAT_NAMES)
    arrays = max(float(np.abs(fast.precision - ref["precision"]).max()),
                 float(np.abs(fast.recall - ref["recall"]).max()))
    return stats, arrays


def timed(fn, *args, **kw):
    """(result, wall seconds, CPU seconds): CPU time is what the ratio uses, since other jobs share the cores."""
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kw)
    return out, time.perf_counter() - w, time.process_time() - c


def compare(label: str, gt: dict, results: list, skip_reference: bool, **kw) -> None:
    fast, w_fast, c_fast = timed(evaluate_full, gt, results, progress=False, **kw)
    print(f"[{label}] fast evaluator:  cpu {c_fast:8.2f} s  wall {w_fast:8.2f} s   AP={fast.stats['AP']:.4f} "
          f"AR100={fast.stats['AR100']:.4f}")
    if skip_reference:
        return
    kw.pop("lenient", None)
    ref, w_ref, c_ref = timed(reference_evaluate, gt, results, **kw)
    d_stats, d_arrays = max_abs_diff(fast, ref)
    print(f"[{label}] plain evaluator: cpu {c_ref:8.2f} s  wall {w_ref:8.2f} s   ratio cpu {c_ref / c_fast:5.1f}x "
          f"wall {w_ref / w_fast:5.1f}x   max|d stats| {d_stats:.3g}   max|d precision/recall| {d_arrays:.3g}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=300)
    p.add_argument("--frames", type=int, default=36)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--categories", type=int, default=10)
    p.add_argument("--gt-per-video", type=int, default=5)
    p.add_argument("--dt-per-video", type=int, default=30)
    p.add_argument("--lvvis-videos", type=int, default=300, help="videos of the LV-VIS-sized run (0: skip)")
    p.add_argument("--lvvis-reference", action="store_true", help="also time the plain evaluator on it")
    p.add_argument("--skip-reference", action="store_true", help="time only the fast evaluator")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    t = time.perf_counter()
    gt, results = make_case(a.videos, a.frames, a.height, a.width, a.categories, a.gt_per_video, a.dt_per_video,
                            a.seed)
    print(f"case: {a.videos} videos x {a.frames} frames ({a.height}x{a.width}), {a.categories} categories, "
          f"{len(gt['annotations'])} GT tracks, {len(results)} predictions (generated in "
          f"{time.perf_counter() - t:.1f}s)")
    compare("ytvis", gt, results, a.skip_reference)
    compare("class-agnostic", gt, results, a.skip_reference, class_agnostic=True)

    if a.lvvis_videos:
        gt2, res2 = make_case(a.lvvis_videos, 12, 180, 320, 1196, 6, 100, a.seed + 1, partitions=True)
        tracemalloc.start()
        t = time.perf_counter()
        out = evaluate_full(gt2, res2, flavor="lvvis", progress=False)
        t_lv = time.perf_counter() - t
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        arrays = (out.precision.nbytes + out.recall.nbytes) / 2**20
        print(f"[lvvis-sized] {a.lvvis_videos} videos x 12 frames (180x320), 1196 categories, {len(res2)} predictions: "
              f"{t_lv:.2f} s wall, peak traced memory during evaluation {peak / 2**20:.0f} MiB (precision+recall "
              f"arrays {arrays:.0f} MiB of it, fixed for K=1196; the rest grows with the number of predictions)")
        if a.lvvis_reference:
            compare("lvvis-sized", gt2, res2, False, flavor="lvvis")
    return 0


if __name__ == "__main__":
    sys.exit(main())
