"""Benchmark: `wsovvis.evaluation.evaluate_full` against the plain per-(prediction, GT, frame) evaluator.

Two seeded synthetic YouTube-VIS cases of the issue's size (300 videos x 36 frames at 360x640, 10 categories,
1,500 GT tracks, 9,000 predictions with moving ellipse masks, absent frames, crowd tracks and tied scores):

* ``issue``: each prediction takes a random category (70% of them jitter a GT track) -- the issue's case;
* ``model``: what a VIS model outputs: 10 queries per video (70% near a GT track), each reported for its top-3
  classes, drawn from the categories of the video, with the same mask -- more same-category (prediction, GT)
  pairs per video.

Both go through a JSON round trip (every string its own object, as when results are read from a file). Each
evaluator runs ``--repeat`` times on the same input in one process: CPU time (``time.process_time``: the cores
are shared) and wall time, min and median, their ratios, and the largest |difference| of the 12 stats and the
precision/recall arrays against the plain evaluator, for the compiled-kernel backend and for the pycocotools
backend (used when the kernel is not built). The whole command is timed too, each run a fresh process reading
the files from disk: `wsovvis eval` against a script that ``json.load``s them and runs the plain evaluator (a proxy
for the official evaluator, which cannot be installed here), interleaved, best and median of ``--whole-repeat``
rounds, wall and CPU (user+sys) time, and the stats of the two commands compared.
Then an LV-VIS-sized input (1,196 categories, 100 predictions per
video): time and peak traced memory (tracemalloc; the kernel allocates through PyMem_Raw, so it is traced).

    .venv/bin/python bench/eval.py                       # full run (the plain evaluator takes minutes)
    .venv/bin/python bench/eval.py --videos 30 --lvvis-videos 50 --repeat 1    # quick look
    .venv/bin/python bench/eval.py --size issue --whole-only --whole-repeat 5   # issue #13's 109 MB / 18 MB case
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsovvis.evaluation import STAT_NAMES, evaluate_full, kernel  # noqa: E402
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


def _add_gt_video(gt: dict, rng, vid: int, frames: int, h: int, w: int, num_cats: int, gt_per_video: int) -> list:
    """Append video ``vid`` and its ``gt_per_video`` random GT tracks to ``gt``; returns ``[(base, category)]``."""
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
    return bases


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
        bases = _add_gt_video(gt, rng, vid, frames, h, w, num_cats, gt_per_video)
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


def make_model_case(videos: int, frames: int, h: int, w: int, num_cats: int, gt_per_video: int, queries: int,
                    top_k: int, seed: int = 0) -> tuple[dict, list]:
    """Like `make_case`, but predictions come from ``queries`` tracks per video, each reported for its ``top_k``
    classes (the GT class first for a query near a GT track, then other classes of the video or random ones)."""
    rng = np.random.default_rng(seed)
    cats = [{"id": c + 1, "name": f"class{c + 1}"} for c in range(num_cats)]
    gt = {"videos": [], "categories": cats, "annotations": []}
    results = []
    for v in range(videos):
        vid = v + 1
        bases = _add_gt_video(gt, rng, vid, frames, h, w, num_cats, gt_per_video)
        video_cats = sorted({c for _, c in bases})
        for _ in range(queries):
            if bases and rng.random() < 0.7:
                base, cat = bases[int(rng.integers(len(bases)))]
                segs, _, _ = _track(rng, h, w, frames, base, jitter=float(rng.uniform(0.02, 0.4)))
                classes = [cat]
            else:
                segs, _, _ = _track(rng, h, w, frames)
                classes = []
            while len(classes) < top_k:
                pool = video_cats if rng.random() < 0.6 else range(1, num_cats + 1)
                c = int(rng.choice(list(pool)))
                if c not in classes:
                    classes.append(c)
            score = float(rng.uniform(0.3, 1.0))
            for c in classes:
                results.append({"video_id": vid, "category_id": c, "score": round(score, 3), "segmentations": segs})
                score *= float(rng.uniform(0.1, 0.8))
    return gt, results


def max_abs_diff(res, ref: dict) -> tuple[float, float]:
    stats = max(abs(res.stats[k] - ref[k]) for k in STAT_NAMES)
    arrays = max(float(np.abs(res.precision - ref["precision"]).max()),
                 float(np.abs(res.recall - ref["recall"]).max()))
    return stats, arrays


def timed(fn, repeat: int, *args, **kw):
    """(last result, CPU seconds per run, wall seconds per run)."""
    cpu, wall = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        out = fn(*args, **kw)
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return out, cpu, wall


def _fmt(xs: list[float]) -> str:
    return f"min {min(xs):7.3f}  med {statistics.median(xs):7.3f}"


def compare(label: str, gt: dict, results: list, repeat: int, skip_reference: bool, **kw) -> None:
    runs = {}
    for backend in ("kernel", "pycocotools"):
        if backend == "kernel" and kernel.load()[0] is None:
            print(f"[{label}] kernel backend: not built ({kernel.load()[1]})")
            continue
        runs[backend] = timed(evaluate_full, repeat if backend == "kernel" else 1, gt, results, progress=False,
                              backend=backend, **kw)
    ref = None
    if not skip_reference:
        ref = timed(reference_evaluate, repeat, gt, results, class_agnostic=kw.get("class_agnostic", False),
                    flavor=kw.get("flavor", "ytvis"))
        print(f"[{label}] plain evaluator     cpu {_fmt(ref[1])}  wall {_fmt(ref[2])}")
    for backend, (res, cpu, wall) in runs.items():
        line = f"[{label}] {backend + ' backend':19s} cpu {_fmt(cpu)}  wall {_fmt(wall)}"
        if ref is not None:
            d_stats, d_arrays = max_abs_diff(res, ref[0])
            med = statistics.median(ref[1]) / statistics.median(cpu)
            line += (f"   ratio cpu {min(ref[1]) / min(cpu):5.1f}x (medians {med:5.1f}x)"
                     f" wall {min(ref[2]) / min(wall):5.1f}x   max|d stats| {d_stats:.3g}"
                     f"  max|d arrays| {d_arrays:.3g}")
        print(line + f"   AP={res.stats['AP']:.4f} AR100={res.stats['AR100']:.4f}")


def json_round_trip(obj):
    return json.loads(json.dumps(obj))


PLAIN_COMMAND = """
import json, sys, time
from wsovvis.evaluation.reference import reference_evaluate
t = time.perf_counter()
gt = json.load(open(sys.argv[1])); res = json.load(open(sys.argv[2]))
t_load = time.perf_counter() - t
out = reference_evaluate(gt, res, class_agnostic=sys.argv[3] == '1')
print(json.dumps({k: float(out[k]) for k in sys.argv[4].split(',')}))
print('load', t_load)
"""


def write_case_files(directory: Path, gt: dict, results: list) -> tuple[Path, Path]:
    gt_path, res_path = directory / "gt.json", directory / "results.json"
    gt_path.write_text(json.dumps(gt))
    res_path.write_text(json.dumps(results))
    return gt_path, res_path


def whole_command_files(label: str, gt_path: Path, res_path: Path, class_agnostic: bool, skip_reference: bool,
                        repeat: int = 1) -> None:
    """Wall time of the whole command from files on disk (interpreter start, imports, JSON parsing, checks,
    evaluation, exit), each a fresh subprocess: `wsovvis eval` against the plain evaluator behind a plain
    ``json.load`` script, interleaved ``repeat`` times (ours, plain, ours, plain, ...); best and median of each.
    Both print the same stats (checked on the first round)."""
    import subprocess

    mb_gt, mb_res = gt_path.stat().st_size / 1e6, res_path.stat().st_size / 1e6
    root = str(Path(__file__).resolve().parents[1])
    cmd = [sys.executable, "-m", "wsovvis", "eval", "--gt", str(gt_path), "--results", str(res_path), "--json"]
    if class_agnostic:
        cmd.append("--class_agnostic")
    ours, plain, loads, ours_cpu, plain_cpu = [], [], [], [], []

    def child_cpu() -> float:
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return ru.ru_utime + ru.ru_stime

    for r in range(repeat):
        t, c = time.perf_counter(), child_cpu()
        mine = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=root)
        ours.append(time.perf_counter() - t)
        ours_cpu.append(child_cpu() - c)
        if not skip_reference:
            t, c = time.perf_counter(), child_cpu()
            out = subprocess.run([sys.executable, "-c", PLAIN_COMMAND, str(gt_path), str(res_path),
                                  "1" if class_agnostic else "0", ",".join(STAT_NAMES)], check=True,
                                 capture_output=True, text=True, cwd=root)
            plain.append(time.perf_counter() - t)
            plain_cpu.append(child_cpu() - c)
            lines = out.stdout.splitlines()
            loads.append(float(lines[-1].split()[-1]))
            if r == 0:
                a, b = json.loads(mine.stdout), json.loads(lines[-2])
                diff = max(abs(a[k] - b[k]) for k in STAT_NAMES)
                print(f"[{label}] whole command: max |d stats| between the two commands {diff:.3g}", flush=True)
    line = (f"[{label}] whole command from files (results {mb_res:.1f} MB, GT {mb_gt:.1f} MB; best of {repeat}, "
            f"interleaved; wall, and CPU user+sys of the process): wsovvis eval {min(ours):6.2f} s (median "
            f"{statistics.median(ours):.2f}; cpu {min(ours_cpu):.2f})")
    if plain:
        line += (f"   plain evaluator script {min(plain):6.2f} s (median {statistics.median(plain):.2f}; cpu "
                 f"{min(plain_cpu):.2f}; json.load {min(loads):.2f} s)   ratio best/best {min(plain) / min(ours):5.1f}x"
                 f" wall, {min(plain_cpu) / min(ours_cpu):5.1f}x cpu")
    print(line, flush=True)


def whole_command(label: str, gt: dict, results: list, class_agnostic: bool, skip_reference: bool,
                  repeat: int = 1) -> None:
    """`whole_command_files` on ``gt`` / ``results`` written to a temporary folder."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        gt_path, res_path = write_case_files(Path(d), gt, results)
        whole_command_files(label, gt_path, res_path, class_agnostic, skip_reference, repeat)


# --size presets: (videos, dt_per_video) of the issue-style case at 36 frames of 360x640, 5 GT tracks per video
SIZES = {
    "default": (300, 30),  # ~69 MB results, ~12 MB GT
    "issue": (465, 34),  # ~107 MB results, ~18 MB GT: the heavy case of issue #13 (109 MB / 18 MB)
}


def whole_only(a: argparse.Namespace) -> int:
    """The whole-command timing alone, on the issue case (files kept in ``--keep`` when given)."""
    import tempfile

    tag = (f"issue_v{a.videos}_f{a.frames}_{a.height}x{a.width}_c{a.categories}_g{a.gt_per_video}"
           f"_d{a.dt_per_video}_s{a.seed}")
    with tempfile.TemporaryDirectory() as tmp:
        d = (a.keep / tag) if a.keep else Path(tmp)
        gt_path, res_path = d / "gt.json", d / "results.json"
        if not (gt_path.is_file() and res_path.is_file()):
            t = time.perf_counter()
            gt, results = make_case(a.videos, a.frames, a.height, a.width, a.categories, a.gt_per_video,
                                    a.dt_per_video, a.seed)
            d.mkdir(parents=True, exist_ok=True)
            write_case_files(d, gt, results)
            print(f"generated {tag} in {time.perf_counter() - t:.1f}s", flush=True)
            del gt, results
        print(f"case issue: {a.videos} videos x {a.frames} frames ({a.height}x{a.width}), {a.categories} categories, "
              f"{a.videos * a.gt_per_video} GT tracks, {a.videos * a.dt_per_video} predictions", flush=True)
        whole_command_files(f"issue case, --size {a.size}", gt_path, res_path, False, a.skip_reference,
                            a.whole_repeat)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES), default="default",
                   help="issue: 465 videos x 34 predictions (~107 MB results, ~18 MB GT, the issue's heavy case); "
                        "sets --videos and --dt-per-video unless given")
    p.add_argument("--videos", type=int, default=None)
    p.add_argument("--frames", type=int, default=36)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--categories", type=int, default=10)
    p.add_argument("--gt-per-video", type=int, default=5)
    p.add_argument("--dt-per-video", type=int, default=None)
    p.add_argument("--repeat", type=int, default=3, help="runs per evaluator (the pycocotools backend runs once)")
    p.add_argument("--cases", default="issue,model", help="comma-separated: issue, model")
    p.add_argument("--lvvis-videos", type=int, default=300, help="videos of the LV-VIS-sized run (0: skip)")
    p.add_argument("--lvvis-reference", action="store_true", help="also time the plain evaluator on it")
    p.add_argument("--skip-reference", action="store_true", help="time only the fast evaluator")
    p.add_argument("--skip-whole-command", action="store_true",
                   help="skip the whole-command timing (subprocesses reading the JSON files)")
    p.add_argument("--whole-only", action="store_true",
                   help="only the whole-command timing of the issue case (no in-process comparison, no LV-VIS run)")
    p.add_argument("--whole-repeat", type=int, default=3, help="interleaved rounds of the whole-command timing")
    p.add_argument("--keep", type=Path, default=None,
                   help="folder for the issue case's JSON files with --whole-only: reused when present "
                        "(generated and written otherwise)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    videos, dt_per_video = SIZES[a.size]
    a.videos = videos if a.videos is None else a.videos
    a.dt_per_video = dt_per_video if a.dt_per_video is None else a.dt_per_video

    if a.whole_only:
        return whole_only(a)

    for case in a.cases.split(","):
        t = time.perf_counter()
        if case == "issue":
            gt, results = make_case(a.videos, a.frames, a.height, a.width, a.categories, a.gt_per_video,
                                    a.dt_per_video, a.seed)
        elif case == "model":
            gt, results = make_model_case(a.videos, a.frames, a.height, a.width, a.categories, a.gt_per_video,
                                          a.dt_per_video // 3, 3, a.seed)
        else:
            p.error(f"unknown case {case!r}")
        gt, results = json_round_trip(gt), json_round_trip(results)
        print(f"case {case}: {a.videos} videos x {a.frames} frames ({a.height}x{a.width}), {a.categories} categories, "
              f"{len(gt['annotations'])} GT tracks, {len(results)} predictions (generated in "
              f"{time.perf_counter() - t:.1f}s)")
        compare(f"{case} ytvis", gt, results, a.repeat, a.skip_reference)
        compare(f"{case} class-agnostic", gt, results, a.repeat, a.skip_reference, class_agnostic=True)
        if not a.skip_whole_command:
            whole_command(f"{case} ytvis", gt, results, False, a.skip_reference, a.whole_repeat)
        del gt, results

    if a.lvvis_videos:
        gt2, res2 = make_case(a.lvvis_videos, 12, 180, 320, 1196, 6, 100, a.seed + 1, partitions=True)
        gt2, res2 = json_round_trip(gt2), json_round_trip(res2)
        print(f"case lvvis-sized: {a.lvvis_videos} videos x 12 frames (180x320), 1196 categories, "
              f"{len(res2)} predictions")
        for backend in ("kernel", "pycocotools"):
            if backend == "kernel" and kernel.load()[0] is None:
                continue
            out, cpu, wall = timed(evaluate_full, 1, gt2, res2, flavor="lvvis", progress=False, backend=backend)
            tracemalloc.start()
            evaluate_full(gt2, res2, flavor="lvvis", progress=False, backend=backend)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            arrays = (out.precision.nbytes + out.recall.nbytes) / 2**20
            print(f"[lvvis-sized] {backend + ' backend':19s} cpu {cpu[0]:6.2f} s  wall {wall[0]:6.2f} s   peak traced "
                  f"memory during evaluation {peak / 2**20:.0f} MiB (precision+recall arrays {arrays:.0f} MiB of it, "
                  f"fixed for K=1196)")
        if a.lvvis_reference:
            compare("lvvis-sized", gt2, res2, 1, False, flavor="lvvis")
    return 0


if __name__ == "__main__":
    sys.exit(main())
