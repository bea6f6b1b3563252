#!/usr/bin/env python
"""Benchmark `wsovvis convert` against just decoding the same mask PNGs.

Prints, for the DAVIS OSVOS sample (if ../shared/data/real is present) and a generated set of
synthetic videos: the time to decode every mask PNG once (one process), the conversion time with
one worker and with ``--workers 2``, the ratio convert/decode (target <= 1.5 with one worker) and
the speed-up of two workers. ``WSOVVIS_RLE_ENCODER=numpy`` measures the fallback encoder.
Each timing is the best of ``--repeats`` runs, measured side by side.

    python bench/convert.py [--num_videos 200] [--num_frames 8] [--height 240] [--width 432]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsovvis.data.convert import convert  # noqa: E402
from wsovvis.data.masks import decode_ids  # noqa: E402
from wsovvis.data.rle import ENCODER_ENV, has_compiled_encoder  # noqa: E402
from wsovvis.data.synthetic import generate_dataset  # noqa: E402

REAL = Path(os.environ.get("WSOVVIS_REAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "real"))


def decode_all(pngs: list[Path]) -> int:
    """The baseline: decode every PNG to an array with PIL, nothing else."""
    n = 0
    for p in pngs:
        with Image.open(p) as im:
            n += np.asarray(im).size
    return n


def decode_all_wsovvis(pngs: list[Path]) -> int:
    """Decode with the converter's own reader (a zlib fast path for plain PNGs, else PIL)."""
    return sum(decode_ids(p)[0].size for p in pngs)


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench(name: str, mask_root: Path, img_root: Path, out: Path, repeats: int) -> dict:
    """Decode-only, convert x1 and convert x2 run in turn ``repeats`` times; the best of each is kept.

    Interleaving keeps the three under the same machine load; CPU time (this process) is also
    reported for the one-worker runs because it is less sensitive to other jobs on the machine.
    """
    pngs = sorted(mask_root.glob("*/*.png"))
    decode_all(pngs)  # warm the page cache so that both sides read from memory
    wall = {"decode": [], "decode_ws": [], "x1": [], "x2": []}
    cpu = {"decode": [], "x1": []}
    for _ in range(repeats):
        for key, fn in (("decode", lambda: decode_all(pngs)),
                        ("decode_ws", lambda: decode_all_wsovvis(pngs)),
                        ("x1", lambda: convert(mask_root, img_root, out / f"{name}_1.json", progress=False)),
                        ("x2", lambda: convert(mask_root, img_root, out / f"{name}_2.json", workers=2,
                                               progress=False))):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[key].append(time.perf_counter() - t0)
            if key in cpu:
                cpu[key].append(time.process_time() - c0)
    assert (out / f"{name}_1.json").read_bytes() == (out / f"{name}_2.json").read_bytes()
    b = {k: min(v) for k, v in wall.items()}
    bc = {k: min(v) for k, v in cpu.items()}
    row = {"set": name, "pngs": len(pngs), **{f"{k}_s": v for k, v in b.items()},
           "ratio": b["x1"] / b["decode"], "cpu_ratio": bc["x1"] / bc["decode"],
           "ratio_ws": b["x1"] / b["decode_ws"], "speedup2": b["x1"] / b["x2"]}
    print(f"{name:<16} {len(pngs):>5} PNGs  decode PIL {b['decode']:6.3f}s (wsovvis reader {b['decode_ws']:6.3f}s)  "
          f"convert x1 {b['x1']:6.3f}s  x2 {b['x2']:6.3f}s\n{'':<23}convert/decode {row['ratio']:.2f} "
          f"(cpu {row['cpu_ratio']:.2f}; target <= 1.5), vs the wsovvis reader {row['ratio_ws']:.2f}, "
          f"speed-up x2 {row['speedup2']:.2f}")
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num_videos", type=int, default=200)
    p.add_argument("--num_frames", type=int, default=8)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--width", type=int, default=432)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--work", help="folder for the generated set and outputs (default: a temp folder)")
    args = p.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"cpus: {os.cpu_count()}, load average {load:.2f} (timings: best of {args.repeats}, interleaved)")
    print("RLE encoder: " + ("compiled (wsovvis.data._rle_encode)" if has_compiled_encoder() else
                             f"numpy (compiled one not built, or {ENCODER_ENV}=numpy)"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        rows = []
        davis = REAL / "davis2016val_sample"
        if davis.is_dir():
            rows.append(bench("davis_osvos", davis / "Pseudo_OSVOS_davis2017", davis / "JPEGImages", work,
                              args.repeats))
            rows.append(bench("davis_rvos", davis / "Pseudo_RVOS_davis2017", davis / "JPEGImages", work,
                              args.repeats))
        else:
            print(f"(DAVIS sample not found at {davis}; skipped)")
        synth = work / "synth"
        if not (synth / "gt.json").is_file():
            t0 = time.perf_counter()
            generate_dataset(synth, num_videos=args.num_videos, num_frames=args.num_frames, height=args.height,
                             width=args.width, seed=0, progress=False)
            print(f"(generated {args.num_videos} videos x {args.num_frames} frames {args.height}x{args.width} "
                  f"in {time.perf_counter() - t0:.1f}s)")
        rows.append(bench(f"synthetic_{args.num_videos}", synth / "Annotations", synth / "JPEGImages", work,
                          args.repeats))
    worst = max(r["ratio"] for r in rows)
    print(f"worst ratio convert/decode (wall): {worst:.2f} -> {'OK' if worst <= 1.5 else 'ABOVE TARGET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
