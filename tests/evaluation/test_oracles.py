"""The evaluator against two independent oracles on random cases.

* `wsovvis.evaluation.reference.reference_evaluate`: the official algorithm written out per
  (prediction, GT, frame) with pycocotools merges (multi-frame, crowd, LV-VIS, class-agnostic, lenient).
* pip's ``pycocotools.cocoeval.COCOeval`` (segm, YTVIS area ranges, maxDets 1/10/100): for 1-frame videos
  without crowd the video IoU is the image IoU, so all 12 stats must agree.
"""

from __future__ import annotations

import contextlib
import io
import random

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from wsovvis.evaluation import STAT_NAMES, evaluate_full
from wsovvis.evaluation.reference import reference_evaluate

from .helpers import random_case


def _assert_same(fast, ref: dict) -> None:
    for k in STAT_NAMES:
        assert fast.stats[k] == ref[k], (k, fast.stats[k], ref[k])
    np.testing.assert_array_equal(fast.precision, ref["precision"])
    np.testing.assert_array_equal(fast.recall, ref["recall"])


@pytest.mark.parametrize("backend", ["auto", "pycocotools"])
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("flavor,agnostic", [("ytvis", False), ("ytvis", True), ("lvvis", False)])
def test_matches_reference_on_random_cases(seed, flavor, agnostic, backend):
    """``auto`` is the compiled kernel where it is built; ``pycocotools`` the path used without it."""
    rng = np.random.default_rng(seed + (100 if agnostic else 0) + (200 if flavor == "lvvis" else 0))
    gt, results = random_case(rng, lvvis=flavor == "lvvis")
    fast = evaluate_full(gt, results, flavor=flavor, class_agnostic=agnostic, progress=False, backend=backend)
    ref = reference_evaluate(gt, results, flavor=flavor, class_agnostic=agnostic)
    _assert_same(fast, ref)
    if flavor == "lvvis":
        assert fast.base == ref["base"] and fast.novel == ref["novel"]
    assert any(v > 0 for v in fast.stats.values())  # the cases are not degenerate


def test_matches_reference_with_many_predictions_per_category():
    """> 100 predictions in one (video, category): the top-100 cut before IoU and matching."""
    rng = np.random.default_rng(7)
    gt, results = random_case(rng, num_videos=1, num_cats=1, num_frames=2)
    extra = [dict(r, score=float(rng.random())) for r in results for _ in range(40)]
    results = results + extra
    assert len(results) > 100
    fast = evaluate_full(gt, results, progress=False)
    _assert_same(fast, reference_evaluate(gt, results))


def test_matches_reference_lenient_zip_truncation():
    rng = np.random.default_rng(3)
    gt, results = random_case(rng, num_frames=4)
    for i, r in enumerate(results):
        if i % 3 == 0:
            r["segmentations"] = r["segmentations"][:2]
        elif i % 3 == 1:
            r["segmentations"] = r["segmentations"] + r["segmentations"][:1]
    fast = evaluate_full(gt, results, lenient=True, progress=False)
    _assert_same(fast, reference_evaluate(gt, results))


def _coco_stats(gt: dict, results: list, use_cats: bool) -> np.ndarray:
    images = [{"id": v["id"], "height": v["height"], "width": v["width"]} for v in gt["videos"]]
    anns = [{"id": a["id"], "image_id": a["video_id"], "category_id": a["category_id"], "iscrowd": 0,
             "segmentation": a["segmentations"][0], "area": a["areas"][0], "bbox": a["bboxes"][0]}
            for a in gt["annotations"]]
    coco_gt = COCO()
    coco_gt.dataset = {"images": images, "annotations": anns, "categories": gt["categories"]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
        dets = coco_gt.loadRes([{"image_id": r["video_id"], "category_id": r["category_id"], "score": r["score"],
                                 "segmentation": r["segmentations"][0]} for r in results])
        ev = COCOeval(coco_gt, dets, iouType="segm")
        ev.params.areaRng = [[0, 1e5**2], [0, 128**2], [128**2, 256**2], [256**2, 1e5**2]]
        ev.params.maxDets = [1, 10, 100]
        ev.params.useCats = int(use_cats)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("use_cats", [True, False])
def test_single_frame_videos_match_pycocotools_cocoeval(seed, use_cats):
    rng = np.random.default_rng(1000 + seed)
    gt, results = random_case(rng, num_videos=8, num_frames=1, h=48, w=64, crowd=0.0, absent=0.0)
    # every GT and prediction present (COCO has no "absent"), some GT areas on the range boundaries
    results = [r for r in results if r["segmentations"][0] is not None]
    for a in gt["annotations"][::4]:
        a["areas"] = [random.Random(seed).choice([16384, 65536, 16383.5])]
    assert results and gt["annotations"]
    fast = evaluate_full(gt, results, class_agnostic=not use_cats, progress=False)
    expected = _coco_stats(gt, results, use_cats)
    got = np.array([fast.stats[k] for k in STAT_NAMES])
    assert (expected > 0).any()  # not a vacuous comparison
    np.testing.assert_array_equal(got, expected)
