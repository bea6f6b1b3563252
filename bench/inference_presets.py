"""Peak memory of the inference presets (``model.inference.preset``) at 30 and 300 frames, on CPU.

Each (preset, length) runs in its own process: build the model (``--model``, random weights), run
one 2-frame warm-up video, read the resident set size (``VmRSS``), then ``predict_video`` on a
synthetic video of ``--height x --width`` frames generated one at a time (a generator, so the input
itself is never held whole by the caller). Reported: the process's peak RSS (``ru_maxrss``) minus the
RSS before the measured call, i.e. the extra memory the procedure needs on top of the loaded model.
Wall time is printed too (same machine, same run).

    .venv/bin/python bench/inference_presets.py [--lengths 30 300] [--test_size 360] [--height 360 --width 640]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(preset: str, length: int, args) -> dict:
    import numpy as np
    import torch
    import yaml

    sys.path.insert(0, str(ROOT))
    from wsovvis.modeling import build_model
    from wsovvis.modeling.seqformer.inference import predict_video

    torch.set_num_threads(args.threads)
    cfg = yaml.safe_load((ROOT / "configs" / "model" / f"{args.model}.yaml").read_text())
    cfg["inference"].update(preset=preset, test_size=args.test_size, max_size=args.max_size)
    torch.manual_seed(0)
    model, _, post = build_model({"model": cfg})
    model.eval()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (args.height, args.width, 3), dtype=np.uint8)

    def frames(n):
        for t in range(n):
            f = base.copy()
            y = 20 + 2 * (t % 50)
            f[y : y + 60, 40:140] = (230, 40, 40)
            yield f

    predict_video(model, post, frames(2))
    before = rss_mb()
    t0 = time.perf_counter()
    preds = predict_video(model, post, frames(length))
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"preset": preset, "frames": length, "extra_peak_mb": peak - before, "model_rss_mb": before,
            "wall_s": wall, "predictions": len(preds)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="seqformer_tiny")
    ap.add_argument("--presets", nargs="+", default=["default", "vnext", "original"])
    ap.add_argument("--lengths", nargs="+", type=int, default=[30, 300])
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--test_size", type=int, default=360)
    ap.add_argument("--max_size", type=int, default=1333)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child", nargs=2, metavar=("PRESET", "LENGTH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args)))
        return
    rows = []
    for length in args.lengths:
        for preset in args.presets:
            cmd = [sys.executable, __file__, "--child", preset, str(length)] + [
                f"--{k}={v}" for k, v in vars(args).items() if k in ("model", "height", "width", "test_size",
                                                                     "max_size", "threads")]
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(args.threads)}
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode:
                print(out.stderr[-2000:], file=sys.stderr)
                raise SystemExit(f"{preset} at {length} frames failed")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"model {args.model} (random weights), CPU, {args.threads} thread(s); video {args.height}x{args.width}, "
          f"test size {args.test_size} (max {args.max_size}); extra peak RSS over the loaded model")
    print(f"{'preset':<10} {'frames':>6} {'extra MB':>9} {'wall s':>7}")
    for r in rows:
        print(f"{r['preset']:<10} {r['frames']:>6} {r['extra_peak_mb']:>9.0f} {r['wall_s']:>7.1f}")


if __name__ == "__main__":
    main()
