"""``wsovvis eval`` end to end through the real entry point, and the table helpers."""

from __future__ import annotations

import json

import pytest

from wsovvis.cli import main as cli_main
from wsovvis.evaluation import STAT_NAMES, evaluate_full, format_per_category_table, format_stats_table
from wsovvis.evaluation.plot import plot_per_category_ap

from .helpers import box, make_gt, pred


@pytest.fixture()
def files(tmp_path):
    h, w = 8, 8
    a, b = box(h, w, 0, 0, 3, 3), box(h, w, 4, 4, 8, 8)
    gt = make_gt([(1, h, w, 2)], [1, 2, 3], [
        {"video_id": 1, "category_id": 1, "masks": [a, a]},
        {"video_id": 1, "category_id": 2, "masks": [b, None]},
    ], partitions={1: 0, 2: 3, 3: 1})
    results = [pred(1, 1, 0.9, [a, a]), pred(1, 2, 0.8, [b, b]), pred(1, 2, 0.95, [a, None])]
    gt_path, res_path = tmp_path / "gt.json", tmp_path / "res.json"
    gt_path.write_text(json.dumps(gt))
    res_path.write_text(json.dumps(results))
    return gt_path, res_path


def test_json_output_is_exactly_one_line(files, capsys):
    gt, res = files
    assert cli_main(["eval", "--gt", str(gt), "--results", str(res), "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    stats = json.loads(out)
    assert list(stats) == list(STAT_NAMES)
    assert stats == evaluate_full(gt, res, progress=False).metrics()
    assert 0 < stats["AP"] < 1


def test_lvvis_json_has_base_and_novel(files, capsys):
    gt, res = files
    assert cli_main(["eval", "--gt", str(gt), "--results", str(res), "--flavor", "lvvis", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert set(stats) == set(STAT_NAMES) | {"base", "novel"}
    assert list(stats["base"]) == list(STAT_NAMES)
    assert stats["base"]["AP"] == pytest.approx(1.0, abs=1e-12)  # category 1
    assert stats["novel"]["AP"] < 1  # category 2: an FP outranks the TP


def test_table_output_out_file_and_plot(files, capsys, tmp_path):
    gt, res = files
    out_json, png = tmp_path / "m" / "metrics.json", tmp_path / "ap.png"
    code = cli_main(["eval", "--gt", str(gt), "--results", str(res), "--per_category", "--out", str(out_json),
                     "--plot", str(png)])
    assert code == 0
    text = capsys.readouterr().out
    header, row = text.splitlines()[:2]
    assert header.split() == list(STAT_NAMES)
    ap = evaluate_full(gt, res, progress=False).stats["AP"]
    assert row.split()[0] == "all" and row.split()[1] == f"{100 * ap:.1f}"
    assert "c1" in text and "c3" in text  # per-category table
    saved = json.loads(out_json.read_text())
    assert saved["AP"] == ap and {r["name"] for r in saved["per_category"]} == {"c1", "c2", "c3"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_class_agnostic_flag(files, capsys):
    gt, res = files
    assert cli_main(["eval", "--gt", str(gt), "--results", str(res), "--class_agnostic", "--json"]) == 0
    agn = json.loads(capsys.readouterr().out)
    assert agn == evaluate_full(gt, res, class_agnostic=True, progress=False).metrics()


def test_errors_exit_2_with_the_message(files, tmp_path, capsys):
    gt, _ = files
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"video_id": 5, "category_id": 1, "score": 1, "segmentations": [None, None]}]))
    assert cli_main(["eval", "--gt", str(gt), "--results", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "bad.json" in err and "video ids not in the GT: 5" in err
    assert cli_main(["eval", "--gt", str(tmp_path / "missing.json"), "--results", str(bad)]) == 2
    assert "missing.json" in capsys.readouterr().err


def test_table_helpers_mark_undefined_stats_and_scale_by_100(files):
    gt, res = files
    r = evaluate_full(gt, res, flavor="lvvis", progress=False)
    table = format_stats_table(r)
    lines = table.splitlines()
    assert [ln.split()[0] for ln in lines[1:]] == ["all", "base", "novel"]
    assert "-" in lines[1].split()  # APm/APl: no medium or large GT
    assert f"{100 * r.stats['AP']:.1f}" == lines[1].split()[1]
    # plain dicts (e.g. from evaluate()) work too
    assert format_stats_table(r.metrics()) == table
    cat = format_per_category_table(r, sort_by_ap=True).splitlines()
    assert cat[0].split()[:2] == ["id", "category"] and cat[1].split()[1] == "c1"
    assert cat[-1].split()[-3:] == ["-", "-", "-"]  # category 3 has no GT


def test_plot_with_no_category_having_gt(tmp_path):
    h, w = 8, 8
    gt = make_gt([(1, h, w, 1)], [1], [{"video_id": 1, "category_id": 1, "masks": [box(h, w, 0, 0, 2, 2)],
                                         "iscrowd": 1}])
    r = evaluate_full(gt, [], progress=False)
    plot_per_category_ap(r, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0


def test_eval_command_process_loads_only_what_it_needs(files):
    """The real `wsovvis eval` process: no torch / scipy / matplotlib / tqdm import (a whole-command cost), one
    OpenBLAS thread unless the user chose a count; the stats are the in-process ones."""
    import os
    import subprocess
    import sys

    gt, res = files
    probe = (
        "import os, sys\n"
        "from wsovvis.cli import main\n"
        f"code = main(['eval', '--gt', {str(gt)!r}, '--results', {str(res)!r}, '--json'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'scipy', 'matplotlib', 'tqdm'))\n"
        "print(code, heavy, os.environ.get('OPENBLAS_NUM_THREADS'))\n"
    )
    for chosen, expect in ((None, "1"), ("3", "3")):
        env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
        if chosen:
            env["OPENBLAS_NUM_THREADS"] = chosen
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True,
                             timeout=120).stdout.splitlines()
        assert json.loads(out[0]) == evaluate_full(gt, res, progress=False).metrics()
        assert out[1] == f"0 [] {expect}"
