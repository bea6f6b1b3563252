"""Tiny Mask R-CNN through the real training entry point on CPU: overfitting, evaluation, 2-rank gloo DDP."""

from __future__ import annotations

import json

import pytest

from tests.engine.conftest import run_train
from wsovvis.data import ytvis
from wsovvis.engine.evaluation import submission_problems

TINY = ["model.backbone.name=tiny_cnn", "model.backbone.width=8", "model.maskrcnn.fpn_channels=32",
        "model.maskrcnn.representation_size=64", "model.maskrcnn.anchor_sizes=[8,16,32,64,128]",
        "model.maskrcnn.rpn_post_nms_top_n_train=200", "model.maskrcnn.box_batch_size_per_image=64",
        "model.inference.test_size=64", "model.inference.max_size=64"]
SMALL = ["input.min_size_train=[64]", "input.max_size_train=64", "data.num_workers=0", "num_threads=1",
         "device=cpu", "progress=False", "plots=False", "data.train_classes=agnostic", "eval.class_agnostic=True"]


@pytest.fixture(scope="module")
def frames64(tmp_path_factory):
    from wsovvis.data.synthetic import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("synth64"), num_videos=2, num_frames=3, height=64, width=64,
                            seed=0)


def _data(d, val=True):
    out = [f"data.train_json={d.gt_json}", f"data.train_img_root={d.img_root}"]
    return out + ([f"data.val_json={d.gt_json}", f"data.val_img_root={d.img_root}"] if val else [])


@pytest.mark.slow
def test_tiny_maskrcnn_overfits_and_writes_valid_results(frames64, tmp_path):
    argv = ["input=small", "solver=cpu_small", "debug=overfit", "model=maskrcnn_r50", "with", *_data(frames64),
            *TINY, *SMALL, "solver.max_iter=150", "data.max_train_videos=1", "data.max_val_videos=1",
            "eval.period=0", "solver.checkpoint_period=150", "solver.base_lr=0.004", "input.sampling_frame_num=2",
            "log_period=1", "model.maskrcnn.droploss=True", "-F", str(tmp_path / "runs"), "-c", "no"]
    r = run_train(argv, cwd=tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    run = tmp_path / "runs" / "1"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [row["loss"] for row in rows if "loss" in row]
    assert len(losses) == 150
    assert {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"} <= set(rows[0])
    last = sum(losses[-10:]) / 10
    assert losses[0] / last >= 5.0, f"loss {losses[0]:.3f} -> mean of the last 10 {last:.3f}"
    # the final evaluation wrote YouTube-VIS results the evaluator and the server checks accept
    results = json.loads((run / "inference" / "results.json").read_text())
    gt = ytvis.load(frames64.gt_json)
    assert results and not submission_problems(results, gt)
    metrics = json.loads((run / "inference" / "metrics.json").read_text())["metrics"]
    assert metrics["AP50"] > 0.0  # trained and evaluated on the same video: it must find something


@pytest.mark.slow
def test_two_process_gloo_ddp_maskrcnn(frames64, tmp_path):
    argv = ["debug=cpu_smoke", "eval=off", "model=maskrcnn_r50", "with", *_data(frames64, val=False), *TINY, *SMALL,
            "num_gpus=2", "solver.max_iter=2", "solver.checkpoint_period=2", "eval.period=0",
            "input.sampling_frame_num=1", "-F", str(tmp_path / "runs"), "-c", "no"]
    r = run_train(argv, cwd=tmp_path, timeout=400)
    assert r.returncode == 0, r.stderr[-4000:]
    ranks = json.loads((tmp_path / "runs" / "1" / "ranks.json").read_text())
    assert ranks["world_size"] == 2 and ranks["iteration"] == 2
    assert len(set(ranks["weights_sha256"])) == 1


@pytest.mark.slow
def test_num_classes_from_the_data_is_resolved_once_and_saved(frames64, tmp_path):
    """model.num_classes=0: the training JSON's category count goes into the saved config (with its source), so
    resume and eval-only rebuild the same model."""
    from wsovvis.engine.num_classes import resolve_num_classes
    from wsovvis.errors import WsovvisError

    cats = json.loads(frames64.gt_json.read_text())["categories"]
    assert len(cats) > 1
    small = [a for a in SMALL if not a.startswith(("data.train_classes", "eval.class_agnostic"))]
    argv = ["debug=cpu_smoke", "eval=off", "model=maskrcnn_r50", "with", *_data(frames64, val=False), *TINY, *small,
            "model.num_classes=0", "solver.max_iter=1", "solver.checkpoint_period=1", "eval.period=0",
            "input.sampling_frame_num=1", "-F", str(tmp_path / "runs"), "-c", "no"]
    r = run_train(argv, cwd=tmp_path, timeout=400)
    assert r.returncode == 0, r.stderr[-4000:]
    saved = (tmp_path / "runs" / "1" / "config.yaml").read_text()
    line = next(ln for ln in saved.splitlines() if ln.strip().startswith("num_classes:"))
    assert line.split("#")[0].split(":")[1].strip() == str(len(cats)) and "from the data" in line
    # class-agnostic training data: one class; no training data named: an error that says what to set
    config, sources = {"model": {"num_classes": 0}, "data": {"train_classes": "agnostic"}}, {}
    assert resolve_num_classes(config, sources) and config["model"]["num_classes"] == 1
    with pytest.raises(WsovvisError, match="neither data.train_json nor data.images.json is set"):
        resolve_num_classes({"model": {"num_classes": 0}, "data": {}}, {})
