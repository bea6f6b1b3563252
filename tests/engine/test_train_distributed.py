"""Two CPU processes (gloo) from the single training command: one run directory, identical replicas,
and a failing rank that stops every rank with the root traceback in the run directory."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from .conftest import SCRIPT, data_args, run_train, train_env

DDP = ["debug=cpu_smoke", "eval=off", "num_gpus=2", "num_threads=1", "progress=False", "plots=False",
       "eval.period=0", "data.num_workers=0"]


def _argv(train_data, base, *extra):
    hydra = [a for a in DDP if "=" in a and a.split("=")[0] in ("debug", "eval")]
    sacred = [a for a in DDP if a not in hydra]
    return [*hydra, "with", *data_args(train_data, val=False), *sacred, *extra, "-F", str(base), "-c", "no"]


def test_two_process_gloo_run_one_directory_identical_weights(train_data, tmp_path):
    # Final evaluation on: each rank predicts its share of the 2 val videos, rank 0 gathers and scores.
    argv = _argv(train_data, tmp_path / "runs", "solver.max_iter=3", "solver.checkpoint_period=3", "eval.at_end=True",
                 f"data.val_json={train_data.gt_json}", f"data.val_img_root={train_data.img_root}")
    r = run_train(argv, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-4000:]
    runs = [p for p in (tmp_path / "runs").iterdir() if p.name.isdigit()]
    assert [p.name for p in runs] == ["1"]  # only rank 0 created a run directory
    ranks = json.loads((runs[0] / "ranks.json").read_text())
    assert ranks["world_size"] == 2 and ranks["iteration"] == 3
    assert len(ranks["weights_sha256"]) == 2 and len(set(ranks["weights_sha256"])) == 1
    prov = json.loads((runs[0] / "provenance.json").read_text())
    assert prov[0]["world_size"] == 2
    assert (runs[0] / "checkpoints" / "ckpt_0000003.pth").is_file()
    metrics = json.loads((runs[0] / "inference" / "metrics.json").read_text())
    assert metrics["protocol"]["videos"] == 2 and "AP50" in metrics["metrics"]


def test_the_same_script_runs_under_torchrun(train_data, tmp_path):
    """torchrun starts the ranks itself (num_gpus stays 1): still one run directory, equal replicas."""
    argv = [a for a in _argv(train_data, tmp_path / "runs", "solver.max_iter=2", "solver.checkpoint_period=2")
            if a != "num_gpus=2"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT), *argv]
    r = subprocess.run(cmd, cwd=tmp_path, env=train_env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-4000:]
    runs = [p for p in (tmp_path / "runs").iterdir() if p.name.isdigit()]
    assert [p.name for p in runs] == ["1"]
    ranks = json.loads((runs[0] / "ranks.json").read_text())
    assert ranks["world_size"] == 2 and ranks["iteration"] == 2
    assert len(ranks["weights_sha256"]) == 2 and len(set(ranks["weights_sha256"])) == 1


@pytest.mark.parametrize("kind", ["raise", "exit"])
def test_failing_rank_stops_every_rank(train_data, tmp_path, kind):
    t0 = time.time()
    r = run_train(_argv(train_data, tmp_path / "runs", "solver.max_iter=50", "inject_failure.rank=1",
                        "inject_failure.iteration=1", f"inject_failure.kind={kind}"), cwd=tmp_path, timeout=180)
    end = time.time()
    assert r.returncode == 1, r.stderr[-3000:]
    run = tmp_path / "runs" / "1"
    text = (run / "traceback.txt").read_text()
    assert text.startswith("root failure: rank 1")
    if kind == "raise":
        assert "RuntimeError: injected failure on rank 1 at iteration 1" in text
    else:
        assert "rank 1 exited with code 3 without a traceback" in text
    failed_at = float((run / "traceback.rank1.txt").read_text().splitlines()[0].split("=")[1])
    assert end - failed_at < 60, f"ranks took {end - failed_at:.0f} s to stop"
    assert "rank 1 failed" in r.stderr
    assert json.loads((run / "run.json").read_text())["status"] == "FAILED"
    assert end - t0 < 170
