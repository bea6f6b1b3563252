#!/usr/bin/env python
"""Benchmark multi-scale deformable attention: our gather path vs the plain grid_sample formulation.

Shapes are SeqFormer's for one 5-frame clip at 360p (padded 384x640): 4 levels 48x80, 24x40, 12x20,
6x10 (S = 5100), 8 heads x 32 channels, 4 points; the encoder (Lq = S per frame) and the decoder
(Lq = 300 queries per frame). For each shape and mode (forward under no_grad, forward + backward),
the implementations run in turn ``--repeats`` times (interleaved, so they share the machine load)
and the median wall time is printed with the ratio grid_sample / embedding_bag (> 1: ours is faster)
and what ``impl="auto"`` picks. Runs on CPU, and also on CUDA when available.

    python bench/msda.py [--repeats 5] [--threads 1] [--frames 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsovvis.modeling.ops.ms_deform_attn_func import (  # noqa: E402
    _use_fast_path,
    ms_deform_attn_embedding_bag,
    ms_deform_attn_grid_sample,
)

IMPLS = {"grid_sample": ms_deform_attn_grid_sample, "embedding_bag": ms_deform_attn_embedding_bag}
SHAPES = [(48, 80), (24, 40), (12, 20), (6, 10)]


def inputs(n: int, lq: int, device: str, grad: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ss = torch.tensor(SHAPES)
    lsi = torch.cat([ss.new_zeros(1), (ss[:, 0] * ss[:, 1]).cumsum(0)[:-1]])
    S = int((ss[:, 0] * ss[:, 1]).sum())
    value = torch.randn(n, S, 8, 32, generator=g)
    loc = torch.rand(n, lq, 8, 4, 4, 2, generator=g)
    w = torch.rand(n, lq, 8, 4, 4, generator=g).softmax(-1)
    ts = [t.to(device).requires_grad_(grad) for t in (value, loc, w)]
    return ts[0], ss.to(device), lsi.to(device), ts[1], ts[2]


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run(fn, args, grad: bool, device: str) -> float:
    sync(device)
    t0 = time.perf_counter()
    if grad:
        out = fn(*args)
        out.square().mean().backward()
    else:
        with torch.no_grad():
            fn(*args)
    sync(device)
    return time.perf_counter() - t0


def saved_mb(fn, args) -> float:
    """Memory autograd keeps for the backward pass (distinct storages packed by saved-tensor hooks)."""
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*args)
    inputs = {a.untyped_storage().data_ptr() for a in args if torch.is_tensor(a)}
    del out
    return sum(n for ptr, n in seen.items() if ptr not in inputs) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="CPU intra-op threads")
    ap.add_argument("--frames", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {args.threads} CPU thread(s), median of {args.repeats} interleaved runs")
    print(f"{'device':6} {'part':8} {'mode':8} {'grid_sample':>12} {'embedding_bag':>14} {'ratio':>6}  auto picks")
    for device in devices:
        for part, lq in (("encoder", int(sum(h * w for h, w in SHAPES))), ("decoder", 300)):
            for grad in (False, True):
                data = inputs(args.frames, lq, device, grad)
                times = {name: [] for name in IMPLS}
                for fn in IMPLS.values():  # warm-up
                    run(fn, data, grad, device)
                for _ in range(args.repeats):
                    for name, fn in IMPLS.items():
                        times[name].append(run(fn, data, grad, device))
                gs, eb = (statistics.median(times[n]) for n in IMPLS)
                with torch.set_grad_enabled(grad):
                    auto = "embedding_bag" if _use_fast_path(data[0], data[3], data[4]) else "grid_sample"
                mode = "fwd+bwd" if grad else "fwd"
                line = f"{device:6} {part:8} {mode:8} {gs * 1e3:10.1f}ms {eb * 1e3:12.1f}ms {gs / eb:6.2f}  {auto}"
                if grad:
                    mem = {name: saved_mb(fn, data) for name, fn in IMPLS.items()}
                    line += f"  (saved for backward: {mem['grid_sample']:.0f} MB vs {mem['embedding_bag']:.0f} MB)"
                print(line)


if __name__ == "__main__":
    main()
