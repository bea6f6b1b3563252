"""Benchmark of `wsovvis embed`: instances/s with a random-initialised open_clip ViT-B-32 at batch 32,
and where the time goes (frame reading + cropping + preprocessing vs the encoder).

    .venv/bin/python bench/embed.py [--device auto] [--videos 8] [--frames 8] [--batch_size 32]

Runs, side by side on one generated synthetic set:
  1. the encoder alone on a ready batch (the ceiling),
  2. the full embed with --num_workers 0 (preparation and encoding serial: their shares are measured),
  3. the full embed with --num_workers 2 (preparation overlapped with encoding).
Uses CUDA (with fp16 autocast) when available, else the CPU.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsovvis.data.synthetic import generate_dataset  # noqa: E402
from wsovvis.openvocab.embed import CropSettings, embed_source  # noqa: E402
from wsovvis.openvocab.embedder import build_embedder, resolve_device  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="openclip:ViT-B-32")
    p.add_argument("--device", default="auto")
    p.add_argument("--videos", type=int, default=8)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "embed"))
    args = p.parse_args()

    device = resolve_device(args.device)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    data = generate_dataset(out / "data", num_videos=args.videos, num_frames=args.frames, height=args.height,
                            width=args.width, seed=0, progress=False)
    emb = build_embedder(args.model, random_init=True, device=device)
    print(f"device {device} ({torch.cuda.get_device_name() if device.startswith('cuda') else 'CPU'}), "
          f"torch threads {torch.get_num_threads()}, model {args.model} (random init, D={emb.dim}), "
          f"{data.num_tracks} tubes x up to {args.frames} frames at {args.height}x{args.width}")

    x = torch.randn(args.batch_size, 3, 224, 224)
    emb.encode_images(x)  # warm-up

    def encoder_alone(n_rep: int = 3) -> float:
        t0 = time.perf_counter()
        for _ in range(n_rep):
            emb.encode_images(x)  # returns on the CPU, so CUDA work is finished
        return n_rep * args.batch_size / (time.perf_counter() - t0)

    # The machine is shared: the encoder alone is measured before and after the runs, the best is kept.
    enc = [encoder_alone()]
    rows = []
    for workers in (0, 2):
        stats = embed_source("tubes", data.gt_json, out / f"cache_w{workers}", emb, img_root=data.img_root,
                             settings=CropSettings(), batch_size=args.batch_size, num_workers=workers,
                             progress=False)
        rows.append((workers, stats))
    enc.append(encoder_alone())
    enc_only = max(enc)
    print(f"encoder alone, batch {args.batch_size}: {enc_only:.1f} crops/s (before/after: "
          f"{enc[0]:.1f} / {enc[1]:.1f})")
    print(f"{'workers':>7} {'instances':>9} {'crops':>6} {'wall s':>7} {'inst/s':>7} {'crops/s':>8} "
          f"{'prep s':>7} {'encode s':>8} {'prep share':>10} {'encode share':>12}")
    for workers, s in rows:
        busy = s.prep_s + s.encode_s
        print(f"{workers:>7} {s.written:>9} {s.crops:>6} {s.wall_s:>7.2f} {s.written / s.wall_s:>7.2f} "
              f"{s.crops / s.wall_s:>8.1f} {s.prep_s:>7.2f} {s.encode_s:>8.2f} {s.prep_s / busy:>10.1%} "
              f"{s.encode_s / busy:>12.1%}")
    s0 = rows[0][1]
    print(f"full embed vs encoder alone (crops/s, workers 0): {s0.crops / s0.wall_s / enc_only:.2f}x; "
          f"workers 2 vs 0 wall-time speed-up: {rows[0][1].wall_s / rows[1][1].wall_s:.2f}x")


if __name__ == "__main__":
    main()
