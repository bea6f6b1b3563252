"""Metrics tab logic: parsing a run directory, the AP table, plots written outside the run, bad input."""

from __future__ import annotations

import json

import pytest

from tests.app.helpers import write_run_dir
from wsovvis.app import run_metrics
from wsovvis.errors import WsovvisError


def test_ap_table_and_plots(tmp_path):
    run = write_run_dir(tmp_path / "run")
    (run / "inference").mkdir()
    (run / "inference" / "metrics.json").write_text(json.dumps({
        "protocol": {"split": "val_small", "videos": 5, "iteration": 20, "class_agnostic": True},
        "metrics": {"AP": 0.25, "AP50": 0.5}}))
    view = run_metrics.read_run(run)
    assert len(view.rows) == 32 and view.skipped == 1  # the torn line
    headers, rows = run_metrics.ap_table(view.rows)
    assert headers == ["iteration", "AP", "AP50", "AR10"]
    assert rows == [[10, "12.5", "30.0", "20.0"], [20, "25.0", "50.0", "40.0"]]
    assert run_metrics.final_summary(view) == ("last evaluation: split val_small, 5 videos, iteration 20, "
                                               "class-agnostic: AP 25.0, AP50 50.0")
    before = sorted(p.name for p in run.rglob("*"))
    loss, ap = run_metrics.render_plots(view, tmp_path / "plots")
    assert loss.read_bytes()[:4] == b"\x89PNG" and ap.read_bytes()[:4] == b"\x89PNG"
    assert loss.parent == tmp_path / "plots" and sorted(p.name for p in run.rglob("*")) == before


def test_run_without_evaluations_has_no_ap_plot(tmp_path):
    view = run_metrics.read_run(write_run_dir(tmp_path / "run", evals=False))
    assert run_metrics.ap_table(view.rows) == (["iteration"], [])
    loss, ap = run_metrics.render_plots(view, tmp_path / "plots")
    assert loss is not None and ap is None and run_metrics.final_summary(view) == ""


def test_lvvis_groups_become_columns():
    rows = [{"iteration": 5, "eval/AP": 0.1, "eval/base/AP": 0.2, "eval/novel/AP": 0.05}]
    assert run_metrics.ap_table(rows) == (["iteration", "AP", "base/AP", "novel/AP"], [[5, "10.0", "20.0", "5.0"]])


def test_bad_run_dirs(tmp_path):
    with pytest.raises(WsovvisError, match="no run directory given"):
        run_metrics.read_run(" ")
    with pytest.raises(WsovvisError, match="does not exist"):
        run_metrics.read_run(tmp_path / "nope")
    with pytest.raises(WsovvisError, match="has no metrics.jsonl"):
        run_metrics.read_run(tmp_path)
