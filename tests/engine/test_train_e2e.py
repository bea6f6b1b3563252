"""End-to-end runs of ``train_seqformer_pseudo.py`` on CPU: smoke run, eval_only, start-up failures,
submission mode, SIGKILL + resume equality. (DDP and learning: test_train_distributed.py,
test_train_learning.py.)"""

from __future__ import annotations

import json
import re
import signal
import time
import zipfile

import torch

from wsovvis.data import ytvis
from wsovvis.engine.metrics import read_metrics

from .conftest import data_args, popen_train, run_train

SMOKE = ["debug=cpu_smoke", "num_threads=1", "progress=False"]


def test_cpu_smoke_run_then_eval_only_submission_and_python_entry(train_data, tmp_path, monkeypatch):
    """One cpu_smoke run (4 iterations, checkpoints at 2 and 4, evaluation at 2 and 4), then the
    runs that reuse it. One test, so that parallel workers do not each repeat the smoke run."""
    r = run_train(["debug=cpu_smoke", "with", *data_args(train_data), *SMOKE[1:], "-F", str(tmp_path / "runs"),
                   "-c", "no"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-4000:]
    smoke = tmp_path, tmp_path / "runs" / "1", r
    check_smoke_run_directory(smoke)
    check_eval_only_resume_reuses_the_run_directory(smoke, train_data)
    check_eval_only_with_weights_and_submission_mode(smoke, train_data, tmp_path / "sub")
    check_python_entry_evaluates_given_weights(smoke, train_data, tmp_path / "py", monkeypatch)


def check_smoke_run_directory(smoke):
    base, run, r = smoke
    assert sorted(p.name for p in (base / "runs").iterdir() if p.name.isdigit()) == ["1"]
    # resolved config + provenance (git SHA, command line)
    cfg = (run / "config.yaml").read_text()
    assert "tiny_cnn" in cfg and "max_iter: 4" in cfg
    prov = json.loads((run / "provenance.json").read_text())
    assert len(prov) == 1 and "debug=cpu_smoke" in prov[0]["argv"] and prov[0]["hydra_overrides"] == ["debug=cpu_smoke"]
    assert prov[0]["git"]["sha"] is None or len(prov[0]["git"]["sha"]) == 40
    assert (run / "git.diff").is_file() == bool(prov[0]["git"]["dirty"])
    assert json.loads((run / "run.json").read_text())["status"] == "COMPLETED"
    # metrics: every logged iteration with each loss term, lr, timings, memory; evaluations at 2 and 4
    rows = read_metrics(run / "metrics.jsonl")
    train_rows = [x for x in rows if "loss" in x]
    assert [x["iteration"] for x in train_rows] == [1, 2, 3, 4]
    for key in ("loss_ce", "loss_bbox", "loss_giou", "loss_mask", "loss_dice", "lr", "iter_time", "data_time",
                "memory_mb"):
        assert all(key in x for x in train_rows), key
    assert [x["iteration"] for x in rows if "eval/AP" in x] == [2, 4]
    sacred_metrics = json.loads((run / "metrics.json").read_text())
    assert {"loss", "loss_dice", "lr", "data_time", "eval/AP50"} <= set(sacred_metrics)
    # checkpoints (keep_last 2 of cpu_small), final weights, results, plots
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["ckpt_0000002.pth", "ckpt_0000004.pth", "model_final.pth"]
    ck = torch.load(run / "checkpoints" / "ckpt_0000004.pth", weights_only=False)
    assert ck["iteration"] == 4 and {"model", "optimizer", "scheduler", "scaler", "rng", "config"} <= set(ck)
    assert ck["scheduler"]["last_epoch"] == 4 and len(ck["rng"]) == 1
    results = json.loads((run / "inference" / "results.json").read_text())
    assert isinstance(results, list)
    for res in results:
        assert {"video_id", "category_id", "score", "segmentations"} <= set(res)
    metrics = json.loads((run / "inference" / "metrics.json").read_text())
    assert metrics["protocol"]["iteration"] == 4 and "AP50" in metrics["metrics"]
    for png in ("loss.png", "ap.png"):
        assert (run / "plots" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "AP50" in r.stdout  # the printed table
    # the header names the val JSON actually scored and how many of its videos (cpu_smoke caps them at 2)
    assert re.search(r"evaluation at iteration 4 \(\S+gt\.json, ytvis per class, 2 of \d+ videos", r.stdout), r.stdout


def check_eval_only_resume_reuses_the_run_directory(smoke, train_data):
    """eval_only with nothing but resume: the run's saved config is used (tiny model, its data, its
    2 val videos), the final metrics come back exactly, and no file of the run is rewritten."""
    base, run, _ = smoke
    before = json.loads((run / "inference" / "results.json").read_text())
    metrics_before = json.loads((run / "inference" / "metrics.json").read_text())["metrics"]
    saved = {name: (run / name).read_bytes() for name in ("config.yaml", "provenance.json", "run.json", "config.json")}
    r = run_train(["with", "eval_only=True", f"resume={run}", "progress=False", "-F", str(base / "runs"), "-c", "no"],
                  cwd=base)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    # the differences are printed: nothing overridden; the defaults this command line would give are not applied
    assert "continuing this run's saved config unchanged" in out and "model.backbone.name: kept 'tiny_cnn'" in out
    assert sorted(p.name for p in (base / "runs").iterdir() if p.name.isdigit()) == ["1"]
    assert {name: (run / name).read_bytes() for name in saved} == saved  # byte-identical
    record = run / "invocations" / "2"
    assert json.loads((record / "run.json").read_text())["status"] == "COMPLETED"
    prov = json.loads((record / "provenance.json").read_text())
    assert prov[0]["eval_only"] is True and prov[0]["run_dir"] == str(run)
    assert "eval_only: true  # command line" in (record / "config.yaml").read_text()
    assert json.loads((record / "inference" / "results.json").read_text()) == before  # same weights, same results
    assert json.loads((record / "inference" / "metrics.json").read_text())["metrics"] == metrics_before
    assert json.loads((run / "inference" / "results.json").read_text()) == before  # the run's own results kept
    assert sorted(p.name for p in (run / "checkpoints").iterdir())[-1] == "model_final.pth"


def check_eval_only_with_weights_and_submission_mode(smoke, train_data, tmp_path):
    base, run, _ = smoke
    tmp_path.mkdir()
    gt = json.loads(train_data.gt_json.read_text())
    gt.pop("annotations")
    noann = tmp_path / "val_images_only.json"
    noann.write_text(json.dumps(gt))
    weights = run / "checkpoints" / "model_final.pth"
    common = ["debug=cpu_smoke", "with", f"data.val_json={noann}", f"data.val_img_root={train_data.img_root}",
              "num_threads=1", "progress=False", "eval_only=True", f"model.weights={weights}",
              "-F", str(tmp_path / "runs"), "-c", "no"]
    # local evaluation needs ground truth: fails at start-up naming the file
    r = run_train(common, cwd=tmp_path)
    assert r.returncode == 2
    assert f"error: {noann}: data.val_json has no 'annotations'" in r.stderr
    assert not list((tmp_path / "runs").glob("*/inference"))
    # submission mode writes, validates and zips the same predictions
    r = run_train([*common, "eval.mode=submission"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    out = next((tmp_path / "runs").glob("*/inference"))
    with zipfile.ZipFile(out / "submission.zip") as z:
        assert z.namelist() == ["results.json"]
        sub = json.loads(z.read("results.json"))
    assert sub == json.loads((run / "inference" / "results.json").read_text())
    sizes = {v["id"]: [v["height"], v["width"]] for v in gt["videos"]}
    for res in sub:
        assert all(s["size"] == sizes[res["video_id"]] for s in res["segmentations"] if s is not None)


def check_python_entry_evaluates_given_weights(smoke, train_data, tmp_path, monkeypatch):
    """`run_training` (what the demo calls), in process: eval_only with model.weights gives the
    smoke run's final numbers back."""
    from wsovvis.engine.launch import run_training

    base, run, _ = smoke
    tmp_path.mkdir()
    monkeypatch.chdir(tmp_path)
    run_dir, metrics = run_training(["debug=cpu_smoke", "with", *data_args(train_data), *SMOKE[1:], "eval_only=True",
                                     f"model.weights={run / 'checkpoints' / 'model_final.pth'}",
                                     "-F", str(tmp_path / "runs"), "-c", "no"])
    assert run_dir == (tmp_path / "runs" / "1").resolve()
    want = json.loads((run / "inference" / "metrics.json").read_text())["metrics"]
    assert metrics == want and "AP50" in metrics


def test_training_without_val_annotations_fails_before_training(train_data, tmp_path):
    gt = json.loads(train_data.gt_json.read_text())
    gt.pop("annotations")
    noann = tmp_path / "valid.json"
    ytvis.write(gt, noann)
    r = run_train(["debug=cpu_smoke", "with", f"data.train_json={train_data.gt_json}",
                   f"data.train_img_root={train_data.img_root}", f"data.val_json={noann}",
                   f"data.val_img_root={train_data.img_root}", *SMOKE[1:], "-F", str(tmp_path / "runs"), "-c", "no"],
                  cwd=tmp_path)
    assert r.returncode == 2 and f"{noann}: data.val_json has no 'annotations'" in r.stderr
    assert not list(tmp_path.glob("runs/*/checkpoints/*.pth"))


def _final_weights(run) -> dict:
    return torch.load(run / "checkpoints" / "model_final.pth", weights_only=False)["model"]


def test_sigkill_then_resume_equals_uninterrupted(train_data, tmp_path):
    args = ["debug=cpu_smoke", "eval=off", "with", *data_args(train_data, val=False), *SMOKE[1:], "eval.period=0",
            "plots=False", "solver.max_iter=8", "solver.steps=[5]", "solver.checkpoint_period=2",
            "solver.keep_last=3", "model.transformer.dropout=0.1", "data.num_workers=1"]
    full = run_train([*args, "-F", str(tmp_path / "full"), "-c", "no"], cwd=tmp_path)
    assert full.returncode == 0, full.stderr[-3000:]

    proc = popen_train([*args, "-F", str(tmp_path / "killed"), "-c", "no"], cwd=tmp_path)
    ckpt_dir = tmp_path / "killed" / "1" / "checkpoints"
    deadline = time.time() + 200
    while not (ckpt_dir / "ckpt_0000004.pth").exists():
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.time() < deadline, "no checkpoint at iteration 4"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    proc.stdout.close()
    assert not (ckpt_dir / "model_final.pth").exists(), "the run finished before it was killed"
    resumed = run_train([*args, "resume=True", "-F", str(tmp_path / "killed"), "-c", "no"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr
    a, b = _final_weights(tmp_path / "full" / "1"), _final_weights(tmp_path / "killed" / "1")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    rows = read_metrics(tmp_path / "killed" / "1" / "metrics.jsonl")
    assert [x["iteration"] for x in rows] == [1, 2, 3, 4, 5, 6, 7, 8]  # no duplicates from the killed part
    ref = read_metrics(tmp_path / "full" / "1" / "metrics.jsonl")
    assert [x["loss"] for x in rows] == [x["loss"] for x in ref]
