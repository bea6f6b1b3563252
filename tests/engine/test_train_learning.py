"""Learning really happens: seqformer_tiny trained through the real entry point on the synthetic
clips reaches class-agnostic AP50 >= 0.5 on its own training videos (near 0 early in training)."""

from __future__ import annotations

import json

from .conftest import data_args, run_train


def test_tiny_training_reaches_ap50_on_its_training_videos(train_data, tmp_path):
    # No augmentation and the test size as the training size: the check is memorisation of 3 videos.
    # 300 iterations of 2 clips x 2 frames take ~35 s of one core.
    r = run_train(["experiment=demo_synthetic", "with", *data_args(train_data), "num_threads=1", "progress=False",
                   "input.sampling_frame_num=2", "input.flip_prob=0.0", "input.min_size_train=[96]",
                   "model.inference.test_size=96", "solver.base_lr=0.001", "solver.max_iter=300",
                   "solver.steps=[250]", "solver.checkpoint_period=300", "log_period=50", "seed=1",
                   "-F", str(tmp_path / "runs"), "-c", "no"], cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads((tmp_path / "runs" / "1" / "inference" / "metrics.json").read_text())
    assert out["protocol"]["class_agnostic"] is True and out["protocol"]["videos"] == 3
    assert out["metrics"]["AP50"] >= 0.5, out["metrics"]
    rows = [json.loads(x) for x in (tmp_path / "runs" / "1" / "metrics.jsonl").read_text().splitlines()]
    losses = [x["loss"] for x in rows if "loss" in x]
    assert losses[-1] < 0.5 * losses[0]
