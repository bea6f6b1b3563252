"""Mixed precision through the real entry point. There is no GPU here, so the CPU autocast runs the
same trainer code (autocast around forward + loss, loss scaling, unscale before clipping, scaler
state in checkpoints) that a GPU run uses."""

from __future__ import annotations

import math

import torch

from wsovvis.engine.metrics import read_metrics

from .conftest import data_args, run_train

ARGS = ["debug=cpu_smoke", "eval=off", "num_threads=1", "progress=False", "plots=False", "eval.period=0",
        "solver.max_iter=2", "solver.checkpoint_period=2", "data.num_workers=0"]


def _run(train_data, tmp_path, name: str, amp: str):
    r = run_train(["with", *data_args(train_data, val=False), *ARGS, f"solver.amp={amp}", "-F",
                   str(tmp_path / name), "-c", "no"], cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return r, tmp_path / name / "1"


def test_fp16_and_bf16_steps_match_fp32_and_save_the_scaler(train_data, tmp_path):
    _, ref_dir = _run(train_data, tmp_path, "fp32", "none")
    ref = read_metrics(ref_dir / "metrics.jsonl")
    for amp, tol in (("fp16", 0.02), ("bf16", 0.05)):
        r, run = _run(train_data, tmp_path, amp, amp)
        assert f"solver.amp={amp} on cpu" in r.stderr
        rows = read_metrics(run / "metrics.jsonl")
        assert [x["iteration"] for x in rows] == [1, 2]
        # same seed, same clips: the first loss differs only by rounding
        assert all(math.isfinite(x["loss"]) for x in rows)
        assert abs(rows[0]["loss"] - ref[0]["loss"]) <= tol * abs(ref[0]["loss"]), (amp, rows[0], ref[0])
        final = torch.load(run / "checkpoints" / "model_final.pth", weights_only=False)
        assert all(v.dtype == torch.float32 for v in final["model"].values() if v.is_floating_point())
        ckpt = torch.load(run / "checkpoints" / "ckpt_0000002.pth", weights_only=False)
        if amp == "fp16":  # loss scaling is on, and its state resumes with the run
            assert ckpt["scaler"]["scale"] > 0 and "_growth_tracker" in ckpt["scaler"]
        else:
            assert not ckpt["scaler"]
