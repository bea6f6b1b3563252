"""metrics.jsonl writing/truncation on resume, PNG plots, and submission validation."""

from __future__ import annotations

import json

import numpy as np

from wsovvis.data import rle, ytvis
from wsovvis.engine.evaluation import submission_problems
from wsovvis.engine.metrics import MetricsWriter, read_metrics
from wsovvis.viz.plots import loss_keys, plot_run


class FakeSacredRun:
    def __init__(self):
        self.logged = []

    def log_scalar(self, name, value, step):
        self.logged.append((name, value, step))


def test_writer_appends_forwards_and_truncates_on_resume(tmp_path):
    run = FakeSacredRun()
    w = MetricsWriter(tmp_path, run)
    for it in range(1, 6):
        w.write(it, {"loss": 10.0 / it, "loss_ce": 1.0, "lr": 0.1, "eval/AP": float("nan")})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"iteration": 6, "lo')  # torn line of a killed writer
    assert [r["iteration"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3, 4, 5]
    assert ("loss", 5.0, 2) in run.logged and not any(n == "eval/AP" for n, _, _ in run.logged)  # NaN not sent
    MetricsWriter(tmp_path, None, start_iter=3)  # resumed from the checkpoint of iteration 3
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    assert (tmp_path / "metrics.jsonl").read_text().endswith("\n")


def test_plots_from_metrics(tmp_path):
    rows = [{"iteration": i, "loss": 10 / i, "loss_ce": 1 / i, "loss_ce_0": 2 / i, "lr": 1e-3, "iter_time": 0.1}
            for i in range(1, 30)]
    rows += [{"iteration": 10, "eval/AP": 0.1, "eval/AP50": 0.3}, {"iteration": 20, "eval/AP": 0.2, "eval/AP50": 0.5}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert loss_keys(rows) == ["loss", "loss_ce", "loss_ce_0"]
    out = plot_run(tmp_path)
    assert [p.name for p in out] == ["loss.png", "ap.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" and p.stat().st_size > 5000 for p in out)
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"iteration": 1, "loss": 2.0}) + "\n")
    assert [p.name for p in plot_run(tmp_path)] == ["loss.png"]  # no evaluation rows: no AP plot


def test_submission_problems_name_each_defect():
    m = np.zeros((4, 6), dtype=bool)
    m[1:3, 2:4] = True
    gt = ytvis.load({"videos": [{"id": 1, "height": 4, "width": 6, "length": 2, "file_names": ["a", "b"]}],
                     "categories": [{"id": 3, "name": "x"}]})
    good = {"video_id": 1, "category_id": 3, "score": 0.5, "segmentations": [rle.encode(m), None]}
    assert submission_problems([good], gt) == []
    bad = [
        {**good, "video_id": 9},
        {**good, "category_id": 4},
        {**good, "score": float("inf")},
        {**good, "segmentations": [rle.encode(m)]},
        {**good, "segmentations": [rle.encode(np.zeros((5, 6), dtype=bool)), None]},
    ]
    problems = submission_problems(bad, gt)
    assert len(problems) == 5
    assert "results[0].video_id: 9 is not a video" in problems[0]
    assert "results[1].category_id: 4 is not a category" in problems[1]
    assert "results[2].score" in problems[2]
    assert "needs 2 entries for video 1, got 1" in problems[3]
    assert "results[4].segmentations[0]: must be a compressed RLE of size [4, 6]" in problems[4]
