"""``wsovvis selftrain``: CutLER's self-training rounds for either model.

Round 0 trains on ``data.train_json`` (the pseudo tubes) with the given training command line. Each
round ``r >= 1``: the previous round's model predicts on the training videos; predictions with
score ``>= thresholds[r-1]`` (0.7, then 0.65, then the last value) are kept; the round's earlier
labels whose tube IoU with every kept prediction is ``< add_back_iou`` (0.5) are added back; the
result is written (validated) as ``round_<r>/labels.json``; the model is retrained from the previous
round's final weights on it, with DropLoss off (``model.maskrcnn.droploss=False``), copy-paste
scales 0.5-1.0 and ``--round-option`` values (e.g. CutLER halves ``solver.base_lr``).

Layout (every file written atomically, so a killed run resumes where it stopped)::

    OUT/round_<r>/labels.json        labels trained on (round 0: a copy of data.train_json)
    OUT/round_<r>/label_counts.json  kept / added back / dropped (r >= 1)
    OUT/round_<r>/runs/<n>/          the training run directory (config, checkpoints, metrics, plots)
    OUT/round_<r>/trained.json       the run directory and its final weights, once training finished
    OUT/round_<r>/predictions.json   the round's model on the training videos (YouTube-VIS results)
    OUT/round_<r>/metrics_gt.json    AP of those predictions against --gt (when given)
    OUT/summary.json                 per round: label counts and AP against the GT (+ the pseudo labels')

A restarted command skips finished steps and resumes an unfinished training run from its newest
checkpoint (``resume=<run dir>``).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
import yaml

from wsovvis.data import ytvis
from wsovvis.engine.selftrain_labels import labels_as_results, round_labels
from wsovvis.errors import WsovvisError
from wsovvis.utils.io import atomic_write_json, read_json
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

DEFAULT_THRESHOLDS = (0.7, 0.65)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="self-training directory (one sub-directory per round)")
    p.add_argument("--rounds", type=int, default=2, help="self-training rounds after the initial training (2)")
    p.add_argument("--config", action="append", default=[],
                   help="a Sacred config file for every round's training (`with FILE.yaml`); repeatable")
    p.add_argument("--thresholds", type=float, nargs="+", default=list(DEFAULT_THRESHOLDS),
                   help="score threshold of round 1, 2, ... (the last repeats); default 0.7 0.65")
    p.add_argument("--add-back-iou", type=float, default=0.5,
                   help="earlier labels with tube IoU below this with every kept prediction are added back")
    p.add_argument("--round-option", action="append", default=[], metavar="KEY=VALUE",
                   help="training options for rounds >= 1 only (e.g. solver.base_lr=0.005); repeatable")
    p.add_argument("--initial-weights", default=None,
                   help="a trained model (model_final.pth) to start from instead of training round 0")
    p.add_argument("--gt", default=None, help="ground truth of the training videos: AP per round in the summary")
    p.add_argument("--class-aware", action="store_true", help="score against --gt per class (default agnostic)")
    p.add_argument("train_args", nargs=argparse.REMAINDER,
                   help="the training command line: [group=option ...] [with FILE.yaml key=value ...]")


# --- training command lines --------------------------------------------------------------------


def split_train_args(tokens: list[str]) -> tuple[list[str], list[str]]:
    """``[groups..., "with", updates...]`` -> (groups, updates)."""
    tokens = [t for t in tokens if t != "--"]
    if "with" in tokens:
        k = tokens.index("with")
        return tokens[:k], tokens[k + 1:]
    groups = [t for t in tokens if "=" in t and "." not in t.split("=", 1)[0]]
    return groups, [t for t in tokens if t not in groups]


def round_argv(groups: list[str], updates: list[str], configs: list[str], extra: list[str], runs_dir: Path
               ) -> list[str]:
    """The entry point's argv: groups, then ``with`` files and key=value (later wins), then ``-F``."""
    return [*groups, "with", *configs, *updates, *extra, "-F", str(runs_dir)]


def _latest_run(runs_dir: Path) -> Path | None:
    runs = sorted((p for p in runs_dir.glob("*") if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    return runs[-1] if runs else None


def train_round(argv: list[str], runs_dir: Path, done: Path) -> dict:
    """Train (or resume) one round; returns ``{"run_dir", "weights", "metrics"}`` (cached in ``done``)."""
    if done.is_file():
        return read_json(done, "self-training round record")
    from wsovvis.engine.launch import run_training

    last = _latest_run(runs_dir)
    if last is not None and any((last / "checkpoints").glob("ckpt_*.pth")):
        log.info("resuming the interrupted training run %s", last)
        argv = [*argv, f"resume={last}"]
    run_dir, metrics = run_training(argv)
    if run_dir is None:
        raise WsovvisError(f"{runs_dir}: training did not create a run directory")
    weights = Path(run_dir) / "checkpoints" / "model_final.pth"
    if not weights.is_file():
        raise WsovvisError(f"{weights}: training finished without final weights")
    record = {"run_dir": str(run_dir), "weights": str(weights), "metrics": metrics}
    atomic_write_json(done, record, indent=2)
    return record


# --- prediction on the training videos ---------------------------------------------------------


def predict_training_set(run_dir: Path, weights: Path, train_json: Path, img_root: str, progress: bool = True
                         ) -> list[dict]:
    """The trained model of ``run_dir`` (its saved config, ``weights``) on the videos of ``train_json``."""
    from wsovvis.data.dataset import YTVISVideoDataset, contiguous_category_map
    from wsovvis.engine.config import build_train_config
    from wsovvis.engine.evaluation import run_inference
    from wsovvis.modeling import build_model

    saved = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    saved["model"]["weights"] = str(weights)
    cfg = build_train_config(saved, where=str(run_dir / "config.yaml"))
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.device != "cpu" else "cpu")
    model, _, post = build_model(cfg)
    model.to(device).eval()
    if hasattr(post, "to"):
        post.to(device)
    val = YTVISVideoDataset(train_json, img_root)
    cats = sorted(c["id"] for c in val.ds.categories)
    if cfg.data.train_classes == "agnostic":
        index_to_id = [cats[0]] * cfg.model.num_classes
    else:
        cmap = contiguous_category_map(val.ds.categories)
        index_to_id = sorted(cmap, key=cmap.__getitem__)
    with torch.no_grad():
        return run_inference(model, post, val, index_to_id, progress, desc=f"predict {train_json.parent.name}")


def score(gt: str, results: list[dict], class_agnostic: bool) -> dict:
    from wsovvis.evaluation import evaluate

    return evaluate(gt, results, class_agnostic=class_agnostic) if results else {"AP": 0.0, "AP50": 0.0}


# --- the rounds ----------------------------------------------------------------------------------


def _train_settings(groups: list[str], updates: list[str], configs: list[str]) -> tuple[str, str]:
    """``data.train_json`` / ``data.train_img_root`` of the command line (the composed config)."""
    from wsovvis.engine.compose import compose_run

    composed = compose_run(groups, [*configs, *updates]).config
    d = composed.get("data") or {}
    if not d.get("train_json") or not d.get("train_img_root"):
        raise WsovvisError("selftrain: the training command line must set data.train_json and data.train_img_root")
    return str(d["train_json"]), str(d["train_img_root"])


def run_selftrain(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.rounds < 0:
        raise WsovvisError(f"--rounds: must be >= 0, got {args.rounds}")
    for c in args.config:
        if not Path(c).is_file():
            raise WsovvisError(f"{c}: --config file does not exist")
    groups, updates = split_train_args(list(args.train_args))
    train_json, img_root = _train_settings(groups, updates, args.config)
    if not Path(train_json).is_file():
        raise WsovvisError(f"{train_json}: data.train_json does not exist")
    if args.gt and not Path(args.gt).is_file():
        raise WsovvisError(f"{args.gt}: --gt file does not exist")
    summary: dict = {"rounds": [], "gt": args.gt}
    agnostic = not args.class_aware
    if args.gt:
        pseudo = read_json(train_json, "training YouTube-VIS JSON")
        summary["pseudo_labels"] = score(args.gt, labels_as_results(pseudo), agnostic)
    prev: dict | None = None
    for r in range(args.rounds + 1):
        rd = out / f"round_{r}"
        rd.mkdir(exist_ok=True)
        labels = rd / "labels.json"
        counts: dict = {}
        if r == 0:
            if not labels.is_file():
                shutil.copyfile(train_json, rd / "labels.json.tmp")
                (rd / "labels.json.tmp").replace(labels)
        elif not labels.is_file():
            thr = args.thresholds[min(r - 1, len(args.thresholds) - 1)]
            earlier = read_json(out / f"round_{r - 1}" / "labels.json", "self-training labels")
            preds = read_json(out / f"round_{r - 1}" / "predictions.json", "self-training predictions")
            data, counts = round_labels(earlier, preds, thr, args.add_back_iou)
            counts["threshold"] = thr
            if not data["annotations"]:
                raise WsovvisError(f"{out / f'round_{r - 1}' / 'predictions.json'}: no prediction scores >= {thr} "
                                   "and nothing to add back; lower --thresholds or train longer")
            ytvis.write(data, labels)  # validated before it is written
            atomic_write_json(rd / "label_counts.json", counts, indent=2)
        else:
            counts = read_json(rd / "label_counts.json", "label counts") if (rd / "label_counts.json").is_file() else {}
        extra = [f"data.train_json={labels}"]
        if r >= 1:
            # CutLER's self-training: DropLoss off, copy-paste scales 0.5-1.0 (used only when copy-paste is on)
            extra += [f"model.weights={prev['weights']}", "model.maskrcnn.droploss=False",
                      "data.copy_paste.scale=[0.5,1.0]", *args.round_option]
        elif args.initial_weights:
            extra += [f"model.weights={args.initial_weights}"]
        if r == 0 and args.initial_weights:
            record = {"run_dir": None, "weights": str(args.initial_weights), "metrics": {}}
        else:
            record = train_round(round_argv(groups, updates, args.config, extra, rd / "runs"), rd / "runs",
                                 rd / "trained.json")
        preds_path = rd / "predictions.json"
        if not preds_path.is_file():
            run_dir = Path(record["run_dir"]) if record["run_dir"] else None
            if run_dir is None:  # --initial-weights: the config of the command line
                raise WsovvisError("selftrain: --initial-weights needs round 0's config; train round 0 instead")
            results = predict_training_set(run_dir, Path(record["weights"]), labels, img_root)
            atomic_write_json(preds_path, results)
        entry = {"round": r, "labels": str(labels), "label_counts": counts, "run_dir": record["run_dir"],
                 "train_metrics": record.get("metrics") or {}}
        if args.gt:
            mpath = rd / "metrics_gt.json"
            if not mpath.is_file():
                atomic_write_json(mpath, score(args.gt, read_json(preds_path, "predictions"), agnostic), indent=2)
            entry["gt"] = read_json(mpath, "metrics")
        summary["rounds"].append(entry)
        atomic_write_json(out / "summary.json", summary, indent=2)
        prev = record
    return summary


def format_summary(summary: dict) -> str:
    lines = ["self-training summary" + (f" (AP against {summary['gt']})" if summary.get("gt") else ""),
             f"{'round':>8} {'kept':>6} {'added':>6} {'AP':>6} {'AP50':>6}"]
    if summary.get("pseudo_labels"):
        m = summary["pseudo_labels"]
        lines.append(f"{'pseudo':>8} {'':>6} {'':>6} {100 * m['AP']:6.1f} {100 * m['AP50']:6.1f}")
    for e in summary["rounds"]:
        c, m = e.get("label_counts") or {}, e.get("gt") or {}
        ap = f"{100 * m['AP']:6.1f} {100 * m['AP50']:6.1f}" if m else f"{'-':>6} {'-':>6}"
        lines.append(f"{e['round']:>8} {c.get('kept', '-'):>6} {c.get('added_back', '-'):>6} {ap}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    summary = run_selftrain(args)
    print(format_summary(summary), flush=True)
    print(json.dumps({"summary": str(Path(args.out) / "summary.json")}))
    return 0
