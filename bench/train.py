#!/usr/bin/env python
"""Benchmark the training step against the data loader, side by side in one run.

For ``seqformer_tiny`` (the CPU/demo setup: 2-frame clips at 80-96 px) and ``seqformer_r50`` (the
VNext input pipeline: 5-frame clips, shortest side 320-640; on CPU 320 only, see `CPU_R50_INPUT`),
on generated synthetic videos:

* loader: clips/s of the real training loader (`build_train_loader`: workers, prefetch, collate
  onto the padded canvas), measured on its own after a warm-up;
* step: iterations/s of `Trainer.step` (forward -> loss -> backward -> clip -> AdamW step) on
  batches taken from that loader, and the clips/s this consumes;
* ratio = loader clips/s / step clips/s (target >= 2: the loader is never the bottleneck).

On a GPU (``--device cuda``, the default when CUDA is available) the step runs with
``solver.amp`` (bf16 unless ``--amp``) and the peak memory is reported.

    python bench/train.py [--models seqformer_tiny seqformer_r50] [--threads 1 2] [--workers 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from wsovvis.data.synthetic import generate_dataset  # noqa: E402
from wsovvis.engine.compose import compose, deep_merge  # noqa: E402
from wsovvis.engine.config import build_train_config, train_config_dict  # noqa: E402
from wsovvis.engine.data import build_train_dataset, build_train_loader  # noqa: E402
from wsovvis.engine.trainer import Context, Trainer  # noqa: E402

# Per-model setup: Hydra overrides and config updates (one step = `ims_per_batch` clips).
SETUPS = {
    "seqformer_tiny": (["experiment=demo_synthetic"], {"solver": {"ims_per_batch": 2}}),
    "seqformer_r50": (["model=seqformer_r50", "input=ytvis", "solver=seqformer_r50"],
                      {"model": {"num_classes": 5}, "solver": {"ims_per_batch": 1}}),
}


def make_data(root: Path, large: bool):
    """Synthetic videos: 96x128 for the tiny model, 360x640 (a YTVIS-like size) for R50."""
    if large:
        return generate_dataset(root / "large", num_videos=4, num_frames=12, height=360, width=640, seed=0,
                                progress=False)
    return generate_dataset(root / "small", num_videos=6, num_frames=12, height=96, width=128, seed=0,
                            progress=False)


# A full-size R50 step (5 frames up to 640x1138) needs ~16 GB on CPU, more than a shared 24 GB
# machine has: on CPU the R50 clips use the smallest training size instead.
CPU_R50_INPUT = {"min_size_train": [320], "max_size_train": 640}


def build(model: str, data, workers: int, device: str, amp: str, batch: int | None):
    overrides, updates = SETUPS[model]
    base = compose(overrides)
    deep_merge(base, updates)
    if model == "seqformer_r50" and device == "cpu":
        deep_merge(base, {"input": CPU_R50_INPUT})
    deep_merge(base, {"data": {"train_json": str(data.gt_json), "train_img_root": str(data.img_root),
                               "num_workers": workers, "train_classes": "dataset"},
                      "device": device, "solver": {"amp": amp, "clip_max_norm": 0.1}})
    if batch:
        base["solver"]["ims_per_batch"] = batch
    cfg = build_train_config(base)
    if cfg.model.num_classes < len(data.categories):
        cfg.model.num_classes = len(data.categories)
    return cfg


def bench_loader(cfg, n: int, warmup: int) -> tuple[float, list]:
    """Clips/s of the loader alone; also returns a few batches for the step benchmark."""
    ds = build_train_dataset(cfg)
    loader = build_train_loader(cfg, ds, 0, 1, 0)
    it = iter(loader)
    kept = [next(it) for _ in range(warmup)]
    t0 = time.perf_counter()
    for _ in range(n):
        next(it)
    dt = time.perf_counter() - t0
    del it
    return n * cfg.solver.ims_per_batch / dt, kept


def bench_step(cfg, batches: list, n: int, device: torch.device, run_dir: Path) -> tuple[float, float]:
    """Iterations/s of `Trainer.step` and the peak GPU memory (MiB, 0 on CPU)."""
    trainer = Trainer(cfg, Context(device=device, run_dir=run_dir, config=train_config_dict(cfg)))
    trainer.model.train()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    trainer.step([batches[0]])  # warm-up (allocations, cudnn autotuning)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for i in range(n):
        trainer.step([batches[i % len(batches)]])
    sync()
    dt = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0
    return n / dt, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    ap.add_argument("--steps", type=int, default=20, help="timed optimiser steps (seqformer_tiny)")
    ap.add_argument("--r50_steps", type=int, default=2, help="timed steps (seqformer_r50; ~1 min each on CPU)")
    ap.add_argument("--loader_batches", type=int, default=20, help="timed loader batches per model")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, nargs="+", default=[0],
                    help="torch threads of the step, one row each (0 = torch's default)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--amp", default=None, choices=["none", "bf16", "fp16"])
    ap.add_argument("--batch", type=int, default=None, help="clips per step (default: per model)")
    args = ap.parse_args()
    default_threads = torch.get_num_threads()
    device = torch.device(args.device)
    amp = args.amp or ("bf16" if device.type == "cuda" else "none")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for model in args.models:
            data = make_data(tmp, large=model != "seqformer_tiny")
            cfg = build(model, data, args.workers, device.type, amp, args.batch)
            torch.set_num_threads(default_threads)
            loader_cps, batches = bench_loader(cfg, args.loader_batches, warmup=max(3, args.workers * 2))
            shape = tuple(batches[0]["images"].shape)
            for threads in args.threads:
                torch.set_num_threads(threads or default_threads)
                steps = args.steps if model == "seqformer_tiny" else args.r50_steps
                it_s, peak = bench_step(cfg, batches, steps, device, tmp / f"run_{model}")
                step_cps = it_s * cfg.solver.ims_per_batch
                rows.append((model, shape, torch.get_num_threads(), it_s, step_cps, loader_cps,
                             loader_cps / step_cps, peak))
                print(f"{model} ({torch.get_num_threads()} threads): batch {list(shape)}, {it_s:.3f} it/s, "
                      f"loader {loader_cps:.1f} clips/s", flush=True)
    print(f"\ndevice {device}, amp {amp}, {args.workers} loader workers (loader timed alone, then the step)")
    head = f"{'model':<16} {'batch [B,T,3,H,W]':<22} {'threads':>7} {'it/s':>8} {'step clips/s':>13} " \
           f"{'loader clips/s':>15} {'ratio':>7} {'peak MiB':>9}"
    print(head)
    print("-" * len(head))
    for model, shape, threads, it_s, step_cps, loader_cps, ratio, peak in rows:
        print(f"{model:<16} {str(list(shape)):<22} {threads:7d} {it_s:8.3f} {step_cps:13.2f} {loader_cps:15.1f} "
              f"{ratio:7.1f} {peak:9.0f}")
    print("target: ratio >= 2 (loader at least twice the step rate)")


if __name__ == "__main__":
    main()
