"""Real annotations: YouTube-VIS 2019 (derived GT + real mmtracking predictions) and OVIS (GT as results)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wsovvis.evaluation import STAT_NAMES, evaluate, evaluate_full
from wsovvis.evaluation.reference import _video_iou, reference_evaluate


def approx(x):
    return pytest.approx(x, abs=1e-12)


@pytest.fixture(scope="module")
def ytvis_demo(real_data):
    root = real_data / "ytvis2019_mmtracking_demo"
    return root / "ytvis_format_DERIVED.json", root / "results_mmtracking_format.json"


@pytest.fixture(scope="module")
def ovis(real_data):
    path = real_data / "ovis_labelformat_fixture" / "annotations_train.json"
    return path, json.loads(path.read_text())


def test_ytvis_demo_hand_derived_numbers(ytvis_demo):
    gt_path, res_path = ytvis_demo
    gt, results = json.loads(gt_path.read_text()), json.loads(res_path.read_text())
    assert any(s is None for r in results for s in r["segmentations"])  # real results with absent frames
    # The two sedan GT tracks (category 6) and the best sedan predictions, as SOURCE.md states them.
    sedans = sorted((r for r in results if r["category_id"] == 6), key=lambda r: -r["score"])
    g1, g2 = (a["segmentations"] for a in gt["annotations"])
    assert round(_video_iou(sedans[0]["segmentations"], g1), 3) == 0.818
    assert round(_video_iou(sedans[1]["segmentations"], g2), 3) == 0.761
    assert _video_iou(sedans[0]["segmentations"], g2) < 0.5 and _video_iou(sedans[1]["segmentations"], g1) < 0.5
    s = evaluate(gt_path, res_path)
    # Only "sedan" has GT. IoU .818 and .761: both TPs up to .75, only the first at .80 (precision 1 up
    # to recall .5, i.e. 51 of 101 recall points), none above.
    assert s["AP"] == approx((6 + 51 / 101) / 10)
    assert s["AP50"] == approx(1.0) and s["AP75"] == approx(1.0)
    assert s["AR1"] == approx(0.35) and s["AR10"] == approx(0.65)
    assert s["APs"] == s["AP"]  # both tracks average ~3000 px: small
    assert s["APm"] == s["APl"] == -1.0
    ref = reference_evaluate(gt, results)
    assert all(s[k] == ref[k] for k in STAT_NAMES)


def test_ytvis_demo_class_agnostic(ytvis_demo):
    gt_path, res_path = ytvis_demo
    res = evaluate_full(gt_path, res_path, class_agnostic=True, progress=False)
    ref = reference_evaluate(json.loads(gt_path.read_text()), json.loads(res_path.read_text()), class_agnostic=True)
    assert all(res.stats[k] == ref[k] for k in STAT_NAMES)
    # the person predictions (score .956, .394) pool in with no GT overlap: they rank first as FPs
    assert res.stats["AP"] < evaluate(gt_path, res_path)["AP"]
    assert res.precision.shape[2] == 1


def _as_results(ann: list[dict], scores: list[float]) -> list[dict]:
    return [{"video_id": a["video_id"], "category_id": a["category_id"], "score": s,
             "segmentations": a["segmentations"]} for a, s in zip(ann, scores)]


def test_ovis_gt_against_itself(ovis):
    path, gt = ovis
    anns = gt["annotations"]
    assert len(anns) == 10 and {a["category_id"] for a in anns} == {19}
    s = evaluate(path, _as_results(anns, [1 - 0.01 * i for i in range(10)]))
    assert s["AP"] == approx(1.0) and s["AR10"] == approx(1.0)
    assert s["AR1"] == approx(0.1)  # ten Fish tracks in one (video, category): top-1 finds one
    # GT sizes come from the JSON 'areas', which in this file are box areas: 8 medium, 2 small, 0 large
    assert s["APs"] == approx(1.0) and s["APm"] == approx(1.0) and s["APl"] == -1.0


def test_ovis_keeps_json_areas_for_gt(ovis):
    """Only tracks 1 and 3 are small by their JSON (box) areas; by mask area 9 of 10 would be."""
    path, gt = ovis
    small = [a for a in gt["annotations"] if np.mean(a["areas"]) < 128**2]
    assert [a["id"] for a in small] == [1, 3]
    s = evaluate(path, _as_results(small, [0.9, 0.8]))
    assert s["ARs"] == approx(1.0)  # 2 of 2 small GT found (with mask areas: 2 of 9)
    assert s["APm"] == approx(0.0) and s["ARm"] == approx(0.0)
    assert s["AR100"] == approx(0.2)
    assert s["AP"] == approx(21 / 101)  # precision 1 up to recall .2 at every threshold
    ref = reference_evaluate(gt, _as_results(small, [0.9, 0.8]))
    assert all(s[k] == ref[k] for k in STAT_NAMES)


def test_ovis_lvvis_flavor_and_agnostic(ovis):
    path, gt = ovis
    gt = json.loads(json.dumps(gt))
    for c in gt["categories"]:
        c["partition"] = 0 if c["id"] < 19 else 2
    results = _as_results(gt["annotations"], [0.5] * 10)  # all tied: file order decides
    s = evaluate(gt, results, flavor="lvvis")
    assert s["novel"]["AP"] == s["AP"] == approx(1.0)
    assert all(v == -1.0 for v in s["base"].values())  # no base category has GT
    ref = reference_evaluate(gt, results, flavor="lvvis")
    assert all(s[k] == ref[k] for k in STAT_NAMES) and s["novel"] == ref["novel"]
