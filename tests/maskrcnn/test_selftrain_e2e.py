"""`wsovvis selftrain` end to end on CPU: rounds with their own directories, resume after SIGKILL, SeqFormer too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.engine.conftest import train_env
from tests.maskrcnn.test_maskrcnn_train import TINY
from wsovvis.data import ytvis

COMMON = ["input=small", "solver=cpu_small"]
SMALL = ["input.min_size_train=[64]", "input.max_size_train=64", "data.num_workers=0", "num_threads=1",
         "device=cpu", "progress=False", "plots=False", "data.train_classes=agnostic", "eval.at_end=False",
         "input.sampling_frame_num=2"]


@pytest.fixture(scope="module")
def frames64(tmp_path_factory):
    from wsovvis.data.synthetic import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("st64"), num_videos=2, num_frames=3, height=64, width=64, seed=1)


def _cmd(d, out, model, extra, rounds=2):
    return [sys.executable, "-m", "wsovvis", "selftrain", "--out", str(out), "--rounds", str(rounds),
            "--thresholds", "0.0", "--gt", str(d.gt_json), "--round-option", "solver.base_lr=0.0005", "--",
            *COMMON, f"model={model}", "with", f"data.train_json={d.gt_json}", f"data.train_img_root={d.img_root}",
            *SMALL, *extra]


@pytest.mark.slow
def test_maskrcnn_selftrain_resumes_after_kill(frames64, tmp_path):
    out = tmp_path / "st"
    cmd = _cmd(frames64, out, "maskrcnn_r50", [*TINY, "solver.max_iter=6", "solver.checkpoint_period=3"])
    p = subprocess.Popen(cmd, cwd=tmp_path, env=train_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    target = out / "round_1" / "runs" / "1" / "checkpoints" / "ckpt_0000003.pth"
    t0 = time.time()
    while not target.exists() and p.poll() is None and time.time() - t0 < 600:
        time.sleep(0.2)
    assert target.exists(), p.stderr.read()[-3000:] if p.poll() is not None else "no round-1 checkpoint in time"
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert not (out / "round_1" / "trained.json").exists()
    round0 = (out / "round_0" / "trained.json").read_text()
    r = subprocess.run(cmd, cwd=tmp_path, env=train_env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    assert (out / "round_0" / "trained.json").read_text() == round0  # round 0 not trained again
    assert [q.name for q in (out / "round_1" / "runs").iterdir() if q.name.isdigit()] == ["1"]  # resumed, not new
    assert json.loads((out / "round_1" / "trained.json").read_text())["run_dir"].endswith("round_1/runs/1")
    summary = json.loads((out / "summary.json").read_text())
    assert [e["round"] for e in summary["rounds"]] == [0, 1, 2]
    assert summary["pseudo_labels"]["AP"] == pytest.approx(1.0)  # the GT scored against itself
    for e in summary["rounds"]:
        assert 0.0 <= e["gt"]["AP50"] <= 1.0
        assert ytvis.load(e["labels"], require_annotations=True).annotations
    counts = json.loads((out / "round_1" / "label_counts.json").read_text())
    assert counts["threshold"] == 0.0 and counts["kept"] > 0
    cfg1 = (out / "round_1" / "runs" / "1" / "config.yaml").read_text()
    assert "droploss: false" in cfg1 and "base_lr: 0.0005" in cfg1 and "model_final.pth" in cfg1
    assert "AP50" in r.stdout and "pseudo" in r.stdout


@pytest.mark.slow
def test_seqformer_selftrain_one_round(frames64, tmp_path):
    out = tmp_path / "st"
    cmd = _cmd(frames64, out, "seqformer_tiny", ["solver.max_iter=2", "solver.checkpoint_period=2",
                                                 "model.num_classes=1"], rounds=1)
    r = subprocess.run(cmd, cwd=tmp_path, env=train_env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert [e["round"] for e in summary["rounds"]] == [0, 1]
    assert ytvis.load(out / "round_1" / "labels.json", require_annotations=True).annotations
