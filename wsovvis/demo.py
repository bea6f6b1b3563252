"""wsovvis demo: the whole pipeline end to end on generated sample videos (CPU, no downloads).

Stages, each through the same entry point a user would call:

1. ``wsovvis synth``: seeded synthetic videos with ground truth (frames, id PNGs, GT JSON).
2. ``wsovvis pseudo``: pseudo tubes from the raw frames with the built-in weight-free generator.
3. ``wsovvis convert``: pseudo-tube PNGs -> YouTube-VIS JSON (+ skip report).
4. ``wsovvis check``: the pseudo-label JSON against its frames.
5. ``wsovvis eval``: quality of the pseudo tubes against the synthetic GT (class-agnostic AP).
6. ``train_seqformer_pseudo.py``: a tiny SeqFormer trained on the pseudo tubes, evaluated class-agnostic
   against the synthetic GT (the unsupervised-VIS protocol).
7. ``wsovvis visualize``: contact sheets of the GT, the pseudo tubes and the model's predictions.

Everything lands under ``--out`` (default ``runs/demo``); the closing summary lists where.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from wsovvis.errors import WsovvisError
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--num_videos", type=int, default=8)
    p.add_argument("--num_frames", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max_iter", type=int, default=None, help="training iterations (default: the demo config's)")
    p.add_argument("--fresh", action="store_true", help="delete --out first instead of reusing finished stages")


def _stage(name: str):
    log.info("=" * 16 + " %s " + "=" * 16, name)
    return time.perf_counter()


def _run(module, argv: list[str], prog: str) -> None:
    """Run a CLI module exactly as the user would; a non-zero exit stops the demo."""
    from wsovvis.cli import run_module

    code = run_module(module, [str(a) for a in argv], prog=prog)
    if code != 0:
        raise WsovvisError(f"demo stage `{prog}` failed with exit code {code} (see the messages above)")


def main(args: argparse.Namespace) -> int:
    from wsovvis.data import check, convert, synthetic
    from wsovvis.data.class_agnostic import make_class_agnostic
    from wsovvis.engine.launch import run_training
    from wsovvis.evaluation import evaluate, format_stats_table
    from wsovvis.pseudo import cli as pseudo_cli
    from wsovvis.utils.io import atomic_write_json, read_json
    from wsovvis.viz.contact_sheet import visualize_dataset

    out = Path(args.out)
    if args.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    t_all = time.perf_counter()

    t = _stage("1/7 synthetic sample videos")
    data_dir = out / "data"
    if (data_dir / "gt.json").is_file():
        log.info("reusing %s", data_dir)
        img_root, gt_json = data_dir / "JPEGImages", data_dir / "gt.json"
    else:
        ds = synthetic.generate_dataset(data_dir, num_videos=args.num_videos, num_frames=args.num_frames,
                                        seed=args.seed)
        img_root, gt_json = ds.img_root, ds.gt_json
    times["synth"] = time.perf_counter() - t

    t = _stage("2/7 pseudo tubes (built-in weight-free generator)")
    pseudo_out = out / "pseudo"
    # The demo owns its folder: tubes made with other parameters (an upgrade) are redone, not refused.
    _run(pseudo_cli, ["--img_root", img_root, "--out", pseudo_out, "--overwrite"], "wsovvis pseudo")
    times["pseudo"] = time.perf_counter() - t

    t = _stage("3/7 convert pseudo-tube PNGs to YouTube-VIS JSON")
    tubes_json = out / "pseudo_tubes.json"
    _run(convert, ["--mask_root", pseudo_out / "masks", "--img_root", img_root, "--out_json", tubes_json,
                   "--split_name", "demo_pseudo", "--min_masks", 1, "--min_coverage", 0.0], "wsovvis convert")
    times["convert"] = time.perf_counter() - t

    t = _stage("4/7 check the pseudo-label JSON")
    _run(check, [tubes_json, "--img_root", img_root, "--report", out / "pseudo_tubes.check.json"], "wsovvis check")
    times["check"] = time.perf_counter() - t

    t = _stage("5/7 pseudo-tube quality against the synthetic ground truth")
    # the converted JSON carries each tube's score (from the generator's tracks.json): `wsovvis eval` takes it as is
    log.info("wsovvis eval --gt %s --results %s --class_agnostic", gt_json, tubes_json)
    pseudo_stats = evaluate(gt_json, tubes_json, class_agnostic=True)
    print("pseudo tubes vs synthetic GT (class-agnostic):")
    print(format_stats_table(pseudo_stats))
    times["pseudo_eval"] = time.perf_counter() - t

    t = _stage("6/7 train a tiny SeqFormer on the pseudo tubes, evaluate against the GT")
    argv = ["experiment=demo_synthetic", "with",
            f"data.train_json={tubes_json}", f"data.train_img_root={img_root}",
            f"data.val_json={gt_json}", f"data.val_img_root={img_root}"]
    if args.max_iter is not None:
        argv.append(f"solver.max_iter={args.max_iter}")
    argv += ["-F", str(out / "train"), "-c", "no"]
    log.info("python train_seqformer_pseudo.py %s", " ".join(argv))
    run_dir, metrics = run_training(argv, prog="train_seqformer_pseudo.py")
    times["train"] = time.perf_counter() - t
    if run_dir is None:
        raise WsovvisError("training returned no run directory")
    results_json = Path(run_dir) / "inference" / "results.json"
    model_stats = evaluate(gt_json, results_json, class_agnostic=True)

    t = _stage("7/7 contact sheets")
    sheets = out / "sheets"
    visualize_dataset(gt_json, img_root, sheets / "gt")
    visualize_dataset(tubes_json, img_root, sheets / "pseudo")
    # The model is class-agnostic: name its tubes 'object', not after GT category 1.
    agnostic_gt = make_class_agnostic(read_json(gt_json, "GT JSON"), source=str(gt_json))
    visualize_dataset(results_json, img_root, sheets / "predictions", videos_json=agnostic_gt, top_k=5,
                      score_threshold=0.2)
    times["visualize"] = time.perf_counter() - t

    summary = {
        "pseudo_tubes_vs_gt": {k: pseudo_stats[k] for k in ("AP", "AP50", "AP75", "AR1", "AR10")},
        "model_vs_gt": {k: model_stats[k] for k in ("AP", "AP50", "AP75", "AR1", "AR10")},
        "run_dir": str(run_dir),
        "seconds": {k: round(v, 1) for k, v in times.items()} | {"total": round(time.perf_counter() - t_all, 1)},
    }
    atomic_write_json(out / "summary.json", summary, indent=2)
    print()
    print("SeqFormer (trained on pseudo tubes) vs synthetic GT, class-agnostic:")
    print(format_stats_table(model_stats))
    print()
    print(f"data:            {img_root}")
    print(f"pseudo tubes:    {tubes_json}  (PNGs in {pseudo_out / 'masks'})")
    print(f"training run:    {run_dir}  (config, checkpoints, metrics.jsonl, plots)")
    print(f"predictions:     {results_json}")
    print(f"contact sheets:  {sheets}/{{gt,pseudo,predictions}}")
    print(f"summary:         {out / 'summary.json'}")
    print("seconds:         " + json.dumps(summary["seconds"]))
    return 0
