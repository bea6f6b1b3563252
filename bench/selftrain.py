#!/usr/bin/env python
"""Self-training on the demo's synthetic set: AP50 per round against the GT, beside the pseudo tubes'.

Stages (each through the real entry points):

1. the demo's data: ``wsovvis synth`` videos (training set, seed 0) and a held-out set (seed 1);
   pseudo tubes of both with the built-in weight-free generator (``wsovvis pseudo`` + ``convert``);
2. ``wsovvis selftrain`` on the training set's pseudo tubes: round 0 trains on them (DropLoss on
   for Mask R-CNN), rounds 1..R retrain on the model's confident predictions + added-back tubes;
3. every round's model is scored class-agnostic against the GT on the training videos (the
   unsupervised protocol: GT never trains anything) and on the held-out videos, beside the pseudo
   tubes of the same videos. CutLER's central result is that the trained model beats the pseudo
   labels it learned from; this prints whether that happens here, either way.

    python bench/selftrain.py [--model maskrcnn|seqformer] [--rounds 2] [--iters 600] [--round_iters 300]
                              [--num_videos 8] [--num_frames 10] [--out runs/bench_selftrain]
Measured (2-core CPU, shared; defaults: 8+8 videos x 10 frames at 96x128, one seed each), class-agnostic
AP50 on the training videos / the held-out videos (the Mask R-CNN link IoU and tube score were chosen
on the training videos, so the held-out column is the fair one):

    pseudo tubes          31.9 / 32.3   (coherence gate, tau 0.4; 30.8 / 27.9 with the flow check alone,
                                         45.4 / 28.5 before it)
    Mask R-CNN (tiny_cnn, 600 + 2 x 300 iterations, 335 s)   round 0 42.0 / 39.2, round 1 43.5 / 32.5,
                                                             round 2 42.7 / 34.5
    SeqFormer (seqformer_tiny, same schedule, 115 s)          round 0 40.3 / 9.8, round 1 39.9 / 6.3,
                                                             round 2 35.0 / 10.0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsovvis.cli import run_module  # noqa: E402
from wsovvis.data import convert, synthetic  # noqa: E402
from wsovvis.evaluation import evaluate  # noqa: E402
from wsovvis.pseudo import cli as pseudo_cli  # noqa: E402

MASKRCNN_TINY = ["model=maskrcnn_r50", "with", "model.backbone.name=tiny_cnn", "model.backbone.width=16",
                 "model.maskrcnn.fpn_channels=64", "model.maskrcnn.representation_size=256",
                 "model.maskrcnn.anchor_sizes=[8,16,32,64,128]", "model.maskrcnn.rpn_post_nms_top_n_train=500",
                 "model.maskrcnn.box_batch_size_per_image=128", "model.inference.test_size=96",
                 "model.inference.max_size=160", "model.maskrcnn.droploss=True", "input.sampling_frame_num=1",
                 "solver.base_lr=0.002"]
SEQFORMER_TINY = ["experiment=demo_synthetic", "with"]


def data(root: Path, seed: int, num_videos: int, num_frames: int) -> tuple[Path, Path, Path]:
    """(img_root, gt_json, pseudo tubes json) of one synthetic set."""
    if not (root / "gt.json").is_file():
        synthetic.generate_dataset(root, num_videos=num_videos, num_frames=num_frames, seed=seed, progress=False)
    tubes = root / "pseudo_tubes.json"
    if not tubes.is_file():
        assert run_module(pseudo_cli, ["--img_root", str(root / "JPEGImages"), "--out", str(root / "pseudo")],
                          prog="wsovvis pseudo") == 0
        assert run_module(convert, ["--mask_root", str(root / "pseudo" / "masks"), "--img_root",
                                    str(root / "JPEGImages"), "--out_json", str(tubes), "--min_masks", "1",
                                    "--min_coverage", "0.0"], prog="wsovvis convert") == 0
    return root / "JPEGImages", root / "gt.json", tubes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["maskrcnn", "seqformer"], default="maskrcnn")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--iters", type=int, default=600, help="round-0 iterations")
    ap.add_argument("--round_iters", type=int, default=300, help="iterations of each self-training round")
    ap.add_argument("--num_videos", type=int, default=8)
    ap.add_argument("--num_frames", type=int, default=10)
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.7, 0.65])
    ap.add_argument("--out", default="runs/bench_selftrain")
    args = ap.parse_args()
    from wsovvis.engine import selftrain

    out = Path(args.out)
    t0 = time.perf_counter()
    img, gt, tubes = data(out / "train_set", 0, args.num_videos, args.num_frames)
    h_img, h_gt, h_tubes = data(out / "heldout_set", 1, args.num_videos, args.num_frames)
    base = MASKRCNN_TINY if args.model == "maskrcnn" else SEQFORMER_TINY
    k = base.index("with")
    train_args = [*base[:k], "input=small", "solver=cpu_small", *base[k:], f"data.train_json={tubes}",
                  f"data.train_img_root={img}", "data.train_classes=agnostic", "model.num_classes=1",
                  "device=auto", "num_threads=1", "data.num_workers=1", "progress=False", "plots=False",
                  "eval.at_end=False", "eval.period=0", f"solver.max_iter={args.iters}",
                  f"solver.steps=[{int(args.iters * 0.8)}]", f"solver.checkpoint_period={args.iters}"]
    ns = argparse.Namespace(
        out=str(out / f"selftrain_{args.model}"), rounds=args.rounds, config=[], thresholds=args.thresholds,
        add_back_iou=0.5, initial_weights=None, gt=str(gt), class_aware=False, train_args=train_args,
        round_option=[f"solver.max_iter={args.round_iters}", f"solver.steps=[{int(args.round_iters * 0.8)}]",
                      f"solver.checkpoint_period={args.round_iters}"],
    )
    summary = selftrain.run_selftrain(ns)
    print()
    print(selftrain.format_summary(summary))
    # held-out videos: pseudo tubes vs every round's model
    pseudo_h = evaluate(h_gt, h_tubes, class_agnostic=True)
    rows = [("pseudo tubes", summary["pseudo_labels"]["AP50"], pseudo_h["AP50"])]
    for e in summary["rounds"]:
        rec = selftrain.read_json(Path(ns.out) / f"round_{e['round']}" / "trained.json", "round record")
        preds = selftrain.predict_training_set(Path(rec["run_dir"]), Path(rec["weights"]), h_tubes, str(h_img),
                                               progress=False)
        m = selftrain.score(str(h_gt), preds, True)
        rows.append((f"round {e['round']} model", e["gt"]["AP50"], m["AP50"]))
    n = args.num_videos
    print(f"\n{args.model}, class-agnostic AP50 against the synthetic GT ({n} training videos seed 0, "
          f"{n} held-out videos seed 1, {args.num_frames} frames, 96x128; round 0: {args.iters} iterations, "
          f"rounds: {args.round_iters}; thresholds {args.thresholds})")
    print(f"{'':<16} {'train videos':>12} {'held-out':>9}")
    for name, a, b in rows:
        print(f"{name:<16} {100 * a:12.1f} {100 * b:9.1f}")
    best = max(r[2] for r in rows[1:])
    verdict = "beats" if best > rows[0][2] else "does NOT beat"
    print(f"best model {verdict} the pseudo tubes on the held-out videos ({100 * best:.1f} vs {100 * rows[0][2]:.1f})")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
