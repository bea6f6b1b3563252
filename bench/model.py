#!/usr/bin/env python
"""Benchmark SeqFormer R50: training step on a 5-frame 360p clip, and inference memory vs video length.

1. ``train``: forward, criterion and backward of ``configs/model/seqformer_r50.yaml`` (random init) on one
   5-frame clip of 360x640 (padded 384x640) with 3 synthetic instances; median of ``--repeats`` steps
   after a warm-up, with the two deformable-attention implementations alternating step by step
   (``--msda`` forces one), the memory autograd saves for the backward pass with each, and the
   peak memory of the process.
2. ``infer``: `predict_video` (clip-wise, the config's clip_length / clip_overlap) on generated videos
   of ``--short`` and ``--long`` frames at ``--infer-height`` (16:9, run at that test size; frames are
   produced lazily by a generator); the peak memory of each run and the ratio long / short (target <= 1.5).
   On 2 CPU cores a 360p frame costs ~5 s (300 frames: ~40 min), hence the option.

Each measurement runs in a fresh subprocess so that its peak resident memory (CPU) or
``torch.cuda.max_memory_allocated`` (GPU, used when CUDA is available) is its own; "above base" is the
peak minus the memory after building the model.

    python bench/model.py [--threads 1] [--repeats 3] [--short 30] [--long 300] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.modeling.helpers import model_cfg  # noqa: E402
from wsovvis.modeling import build_model  # noqa: E402
from wsovvis.modeling.seqformer.inference import predict_video  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def peak_mb(device: str) -> float:
    return torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else rss_mb()


def base_mb(device: str) -> float:
    return torch.cuda.memory_allocated() / 2**20 if device == "cuda" else current_rss_mb()


def clip_targets(T: int, H: int, W: int, Hp: int, Wp: int, n: int = 3) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    masks = torch.zeros(n, T, Hp, Wp, dtype=torch.bool)
    boxes = torch.zeros(n, T, 4)
    for i in range(n):
        for t in range(T):
            h, w = 60 + 30 * i, 80 + 20 * i
            y0, x0 = int(torch.randint(0, H - h, (1,), generator=g)), int(torch.randint(0, W - w, (1,), generator=g))
            masks[i, t, y0 : y0 + h, x0 : x0 + w] = True
            boxes[i, t] = torch.tensor([(x0 + w / 2) / W, (y0 + h / 2) / H, w / W, h / H])
    return [{"labels": torch.arange(n), "boxes": boxes, "masks": masks, "valid": torch.ones(n, T, dtype=torch.bool),
             "size": torch.tensor([H, W])}]


def saved_mb(fn) -> float:
    """Memory autograd keeps for the backward pass of ``fn()`` (distinct storages)."""
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(seen.values()) / 2**20


def set_msda(model, impl: str) -> None:
    from wsovvis.modeling.ops import MSDeformAttn

    for m in model.modules():
        if isinstance(m, MSDeformAttn):
            m.impl = impl


def bench_train(device: str, repeats: int, msda: str) -> dict:
    """One model; steps alternate between the two MSDA implementations (side by side) unless one is forced."""
    torch.manual_seed(0)
    model, criterion, _ = build_model({"model": model_cfg("seqformer_r50")})
    model.to(device).train()
    T, H, W, Hp, Wp = 5, 360, 640, 384, 640
    images = torch.zeros(1, T, 3, Hp, Wp)
    images[..., :H, :W] = torch.rand(1, T, 3, H, W) * 255
    images, sizes = images.to(device), torch.tensor([[H, W]], device=device)
    targets = [{k: v.to(device) for k, v in t.items()} for t in clip_targets(T, H, W, Hp, Wp)]
    base = base_mb(device)
    impls = ["grid_sample", "embedding_bag"] if msda == "auto" else [msda]

    def forward():
        losses = criterion(model(images, sizes), targets)
        return sum(losses[k] * criterion.weight_dict[k] for k in losses if k in criterion.weight_dict)

    times = {impl: {"fwd": [], "bwd": []} for impl in impls}
    for i in range(repeats + 1):
        for impl in impls:
            set_msda(model, impl)
            model.zero_grad(set_to_none=True)
            sync(device)
            t0 = time.perf_counter()
            loss = forward()
            sync(device)
            t1 = time.perf_counter()
            loss.backward()
            sync(device)
            t2 = time.perf_counter()
            if i:  # the first round is a warm-up
                times[impl]["fwd"].append(t1 - t0)
                times[impl]["bwd"].append(t2 - t1)
    out = {"peak_mb": peak_mb(device), "base_mb": base, "impls": {}}
    for impl in impls:
        set_msda(model, impl)
        out["impls"][impl] = {
            "fwd_s": statistics.median(times[impl]["fwd"]),
            "bwd_s": statistics.median(times[impl]["bwd"]),
            "saved_mb": saved_mb(forward),
        }
    return out


def frames(n: int, H: int, W: int):
    rng = np.random.default_rng(0)
    bg = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    for t in range(n):
        f = bg.copy()
        x = (10 * t) % (W - W // 5)
        f[H // 4 : H // 4 + H // 3, x : x + W // 5] = (220, 40, 40)
        yield f


def bench_infer(device: str, n: int, height: int, msda: str) -> dict:
    torch.manual_seed(0)
    model, _, post = build_model({"model": model_cfg("seqformer_r50", msda_impl=msda)})
    model.to(device).eval()
    base = base_mb(device)
    t0 = time.perf_counter()
    H, W = height, height * 16 // 9
    preds = predict_video(model, post, frames(n, H, W), test_size=H, max_size=max(W, 1333))
    return {"frames": n, "seconds": time.perf_counter() - t0, "peak_mb": peak_mb(device), "base_mb": base,
            "predictions": len(preds), "clip_length": post.clip_length, "clip_overlap": post.clip_overlap}


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def child(args) -> None:
    torch.set_num_threads(args.threads)
    if args.child == "train":
        out = bench_train(args.device, args.repeats, args.msda)
    else:
        out = bench_infer(args.device, args.frames, args.infer_height, args.msda)
    print("RESULT " + json.dumps(out))


def spawn(args, *extra: str) -> dict:
    cmd = [sys.executable, __file__, "--threads", str(args.threads), "--repeats", str(args.repeats),
           "--device", args.device, "--msda", args.msda, "--infer-height", str(args.infer_height), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not line:
        raise SystemExit(f"child {' '.join(extra)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[-1][len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--short", type=int, default=30)
    ap.add_argument("--long", type=int, default=300)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--msda", default="auto", choices=["auto", "grid_sample", "embedding_bag"])
    ap.add_argument("--infer-height", type=int, default=360)
    ap.add_argument("--skip-infer", action="store_true")
    ap.add_argument("--child", choices=["train", "infer"], help=argparse.SUPPRESS)
    ap.add_argument("--frames", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--skip-train", action="store_true")
    args = ap.parse_args()
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.child:
        return child(args)
    unit = "max_memory_allocated" if args.device == "cuda" else "peak RSS"
    print(f"torch {torch.__version__}, device {args.device}, {args.threads} CPU thread(s), msda {args.msda}; "
          f"memory = {unit}")
    if not args.skip_train:
        r = spawn(args, "--child", "train")
        print(f"train step, R50, 1 clip x 5 frames 360x640, median of {args.repeats} (implementations alternate):")
        for impl, v in r["impls"].items():
            print(f"  msda {impl:13}: forward+loss {v['fwd_s']:.2f} s, backward {v['bwd_s']:.2f} s, "
                  f"total {v['fwd_s'] + v['bwd_s']:.2f} s; saved for backward {v['saved_mb']:.0f} MB")
        if len(r["impls"]) == 2:
            gs, eb = (v["fwd_s"] + v["bwd_s"] for v in r["impls"].values())
            print(f"  step time grid_sample / embedding_bag: {gs / eb:.2f}")
        print(f"  process peak {r['peak_mb']:.0f} MB ({r['peak_mb'] - r['base_mb']:.0f} MB above base)")
    if args.skip_infer:
        return
    res = [spawn(args, "--child", "infer", "--frames", str(n)) for n in (args.short, args.long)]
    size = f"{args.infer_height}x{args.infer_height * 16 // 9}"
    for r in res:
        print(f"inference, {r['frames']:4d} frames {size} (clip {r['clip_length']}, overlap {r['clip_overlap']}): "
              f"{r['seconds']:.1f} s, {r['predictions']} predictions, peak {r['peak_mb']:.0f} MB "
              f"({r['peak_mb'] - r['base_mb']:.0f} MB above base)")
    ratio = res[1]["peak_mb"] / res[0]["peak_mb"]
    above = (res[1]["peak_mb"] - res[1]["base_mb"]) / max(res[0]["peak_mb"] - res[0]["base_mb"], 1e-6)
    print(f"peak memory {args.long} / {args.short} frames: {ratio:.2f}x (above base: {above:.2f}x); target <= 1.5x")


if __name__ == "__main__":
    main()
