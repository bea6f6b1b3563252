"""One small hand-computed case per rule of the official evaluators, through both implementations."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from wsovvis.errors import WsovvisError
from wsovvis.evaluation import STAT_NAMES, evaluate, evaluate_full
from wsovvis.evaluation.reference import reference_evaluate

from .helpers import box, make_gt, pred, random_case

T = 10  # IoU thresholds .50:.05:.95
R = 101  # recall thresholds


def approx(x):
    # COCO precision is tp / (tp + fp + eps): a perfect result is 1 - 2.2e-16, not 1.0
    return pytest.approx(x, abs=1e-12)


def run(impl: str, gt: dict, results: list, **kw) -> dict:
    if impl == "fast":  # the official semantics drop results of unknown categories whatever their share
        return evaluate(gt, results, allow_drops=True, **kw)
    kw.pop("lenient", None)
    return reference_evaluate(gt, results, **kw)


both = pytest.mark.parametrize("impl", ["fast", "reference"])


@both
def test_video_iou_is_a_ratio_of_sums(impl):
    # frame 0: |d∩g| = |d∪g| = 10; frame 1: |d∩g| = 15, |d∪g| = 30.
    # ratio of sums 25/40 = 0.625 (passes .50 .55 .60), mean of frame IoUs would be 0.75.
    h, w = 10, 10
    g = [box(h, w, 0, 0, 2, 5), box(h, w, 0, 0, 3, 10)]
    d = [box(h, w, 0, 0, 2, 5), box(h, w, 0, 0, 3, 5)]
    gt = make_gt([(1, h, w, 2)], [1], [{"video_id": 1, "category_id": 1, "masks": g}])
    s = run(impl, gt, [pred(1, 1, 0.9, d)])
    assert s["AP50"] == approx(1.0) and s["AP75"] == approx(0.0)
    assert s["AP"] == approx(3 / T)


@both
@pytest.mark.parametrize("side", ["gt_only", "pred_only"])
def test_one_sided_frames_add_to_the_union(impl, side):
    h, w = 10, 10
    m = box(h, w, 2, 2, 6, 7)  # 20 px in both frames; the other track has only frame 0
    full, half = [m, m], [m, None]
    g, d = (full, half) if side == "gt_only" else (half, full)
    gt = make_gt([(1, h, w, 2)], [1], [{"video_id": 1, "category_id": 1, "masks": g}])
    s = run(impl, gt, [pred(1, 1, 0.9, d)])
    # IoU = 20 / 40 = 0.5: a match at .50 only
    assert s["AP50"] == approx(1.0)
    assert s["AP"] == approx(1 / T)
    assert s["AR100"] == approx(1 / T)


@both
def test_empty_but_present_mask_counts_like_null_and_does_not_lower_track_area(impl):
    # GT 21000 px (medium) matched by a copy; an FP of 21000 px with a second, empty-but-present frame.
    # The FP's area is the mean of its truthy frame areas, 21000 (medium), not 10500 (small), so it
    # lowers APm to 0.5; with null instead of the empty mask the numbers are the same.
    h, w = 150, 300
    g = box(h, w, 0, 0, 150, 140)
    fp = box(h, w, 0, 150, 150, 290)
    empty = np.zeros((h, w), bool)
    gt = make_gt([(1, h, w, 2)], [1], [{"video_id": 1, "category_id": 1, "masks": [g, None]}])
    copy = pred(1, 1, 0.9, [g, None])
    with_empty = run(impl, gt, [copy, pred(1, 1, 0.95, [fp, empty])])
    with_null = run(impl, gt, [copy, pred(1, 1, 0.95, [fp, None])])
    assert all(with_empty[k] == with_null[k] for k in STAT_NAMES)
    assert with_empty["APm"] == approx(0.5)
    assert with_empty["APs"] == -1.0  # no small GT


@both
def test_area_range_ends_are_inclusive(impl):
    # JSON avg areas 16384 (small AND medium) and 65536 (medium AND large); masks are tiny copies.
    h, w = 8, 8
    m1, m2 = box(h, w, 0, 0, 3, 3), box(h, w, 4, 4, 8, 8)
    gt = make_gt([(1, h, w, 1), (2, h, w, 1)], [1], [
        {"video_id": 1, "category_id": 1, "masks": [m1], "areas": [16384]},
        {"video_id": 2, "category_id": 1, "masks": [m2], "areas": [65536]},
    ])
    s = run(impl, gt, [pred(1, 1, 0.9, [m1]), pred(2, 1, 0.8, [m2])])
    for k in ("APs", "APm", "APl", "ARs", "ARm", "ARl", "AP"):
        assert s[k] == approx(1.0), k


@both
def test_max_dets_apply_per_video_and_category(impl):
    h, w = 8, 8
    a, b, c = box(h, w, 0, 0, 3, 3), box(h, w, 4, 4, 8, 8), box(h, w, 0, 5, 3, 8)
    gt = make_gt([(1, h, w, 1)], [1, 2], [
        {"video_id": 1, "category_id": 1, "masks": [a]},
        {"video_id": 1, "category_id": 1, "masks": [b]},
        {"video_id": 1, "category_id": 2, "masks": [c]},
    ])
    s = run(impl, gt, [pred(1, 1, 0.9, [a]), pred(1, 1, 0.8, [b]), pred(1, 2, 0.7, [c])])
    # category 1: top-1 finds one of two GTs (0.5); category 2: 1.0 -> mean 0.75; perfect with 10.
    assert s["AR1"] == approx(0.75)
    assert s["AR10"] == approx(1.0) and s["AP"] == approx(1.0)


@both
def test_equal_iou_goes_to_the_later_gt(impl):
    # g1 only in frame 0, g2 only in frame 1 (20 px each); p1 covers both: IoU 0.5 with each.
    # p2 = g1: IoU 1 with g1. At .50, p1 takes g2 (the later GT, ">=" rule) and p2 takes g1.
    h, w = 10, 10
    A, B = box(h, w, 0, 0, 4, 5), box(h, w, 5, 5, 9, 10)
    gt = make_gt([(1, h, w, 2)], [1], [
        {"video_id": 1, "category_id": 1, "masks": [A, None]},
        {"video_id": 1, "category_id": 1, "masks": [None, B]},
    ])
    s = run(impl, gt, [pred(1, 1, 0.9, [A, B]), pred(1, 1, 0.8, [A, None])])
    assert s["AP50"] == approx(1.0)  # "first GT wins" would give 51/101
    # above .50: p1 is an FP before p2's TP -> precision 0.5 up to recall 0.5
    assert s["AP"] == approx((1 + 9 * 51 * 0.5 / R) / T)


@both
def test_crowd_absorbs_in_ytvis_and_counts_as_positive_in_lvvis(impl):
    h, w = 8, 8
    m = box(h, w, 1, 1, 6, 6)
    tracks = [{"video_id": 1, "category_id": 1, "masks": [m]},
              {"video_id": 1, "category_id": 1, "masks": [m], "iscrowd": 1}]
    results = [pred(1, 1, s, [m]) for s in (0.9, 0.8, 0.7)]
    yt = run(impl, make_gt([(1, h, w, 1)], [1], tracks), results)
    lv = run(impl, make_gt([(1, h, w, 1)], [1], tracks, partitions={1: 0}), results, flavor="lvvis")
    assert yt["AR10"] == approx(1.0) and yt["AP"] == approx(1.0)  # crowd ignored, its two matches ignored too
    assert lv["AR10"] == approx(1.5)  # every prediction takes the crowd track: 3 TP / 2 GT
    assert lv["AR1"] == approx(0.5)


@both
def test_crowd_has_no_crowd_iou(impl):
    # a prediction inside a big crowd region: COCO's crowd IoU (|d∩g|/|d|) would be 1 and absorb it;
    # the video IoU is the plain one (16/64 = 0.25), so it stays an FP.
    h, w = 8, 8
    crowd, inside, obj = box(h, w, 0, 0, 8, 8), box(h, w, 0, 0, 4, 4), box(h, w, 0, 0, 2, 2)
    gt = make_gt([(1, h, w, 1), (2, h, w, 1)], [1], [
        {"video_id": 1, "category_id": 1, "masks": [crowd], "iscrowd": 1},
        {"video_id": 2, "category_id": 1, "masks": [obj]},
    ])
    s = run(impl, gt, [pred(1, 1, 0.9, [inside]), pred(2, 1, 0.8, [obj])])
    assert s["AP"] == approx(0.5)  # the FP ranks first: precision 0.5 at recall 1


@both
def test_lvvis_splits_use_an_id_map_and_report_empty_splits_as_minus_one(impl):
    h, w = 8, 8
    a, b = box(h, w, 0, 0, 3, 3), box(h, w, 4, 4, 8, 8)
    # non-contiguous ids: the official id-1 indexing would read the wrong category
    gt = make_gt([(1, h, w, 1)], [5, 9], [
        {"video_id": 1, "category_id": 5, "masks": [a]},
        {"video_id": 1, "category_id": 9, "masks": [b]},
    ], partitions={5: 1, 9: 3})
    results = [pred(1, 5, 0.9, [a]), pred(1, 9, 0.95, [a]), pred(1, 9, 0.5, [b])]
    s = run(impl, gt, results, flavor="lvvis")
    assert s["base"]["AP"] == approx(1.0)  # category 5 alone
    assert s["novel"]["AP"] == approx(0.5)  # category 9: FP then TP
    assert s["AP"] == approx(0.75)
    gt_base = make_gt([(1, h, w, 1)], [5, 9], [{"video_id": 1, "category_id": 5, "masks": [a]}],
                      partitions={5: 0, 9: 1})
    s = run(impl, gt_base, results, flavor="lvvis")
    assert all(v == -1.0 for v in s["novel"].values())
    assert s["base"]["AP"] == s["AP"] == approx(1.0)


@both
def test_class_agnostic_pool_order_breaks_score_ties(impl, caplog):
    # Pool = category 1's predictions, then category 2's (sorted ids), each in file order; a stable score
    # sort keeps that order among ties, so the category-1 FP ranks before the category-2 TP.
    h, w = 8, 8
    g, other = box(h, w, 0, 0, 4, 4), box(h, w, 5, 5, 8, 8)
    gt = make_gt([(1, h, w, 1)], [1, 2], [{"video_id": 1, "category_id": 2, "masks": [g]}])
    results = [pred(1, 2, 0.5, [g]), pred(1, 1, 0.5, [other]), pred(1, 7, 0.99, [other])]
    with caplog.at_level(logging.WARNING, logger="wsovvis"):
        s = run(impl, gt, results, class_agnostic=True)
    assert s["AP"] == approx(0.5)  # file order would give 1.0
    assert s["AR1"] == approx(0.0)  # the top-1 of the pool is the FP
    assert s["AR10"] == approx(1.0)
    if impl == "fast":  # the category-7 result (not a GT category) is dropped, not pooled
        assert "dropped 1 result" in caplog.text


@both
def test_category_without_gt_is_left_out_of_the_mean(impl):
    h, w = 8, 8
    a, b = box(h, w, 0, 0, 3, 3), box(h, w, 4, 4, 8, 8)
    gt = make_gt([(1, h, w, 1)], [1, 2], [{"video_id": 1, "category_id": 1, "masks": [a]}])
    s = run(impl, gt, [pred(1, 1, 0.9, [a]), pred(1, 2, 0.99, [b]), pred(1, 2, 0.98, [a])])
    assert s["AP"] == approx(1.0)  # category 2 has only FPs but no GT: -1, excluded


@both
def test_oracle_results_give_ap_one(impl):
    rng = np.random.default_rng(5)
    gt, _ = random_case(rng, num_videos=5, crowd=0.0)
    gt["annotations"] = [a for a in gt["annotations"] if any(s is not None for s in a["segmentations"])]
    oracle = [{"video_id": a["video_id"], "category_id": a["category_id"], "score": 1.0,
               "segmentations": a["segmentations"]} for a in gt["annotations"]]
    s = run(impl, gt, oracle)
    assert s["AP"] == approx(1.0) and s["AP75"] == approx(1.0) and s["AR10"] == approx(1.0)
    assert all(s[k] == approx(1.0) or s[k] == -1.0 for k in STAT_NAMES if k != "AR1")


def test_shuffled_results_give_the_same_stats():
    rng = np.random.default_rng(11)
    gt, results = random_case(rng, num_videos=6, tie_scores=False)
    first = evaluate(gt, results)
    order = rng.permutation(len(results))
    assert evaluate(gt, [results[i] for i in order]) == first
    assert first["AP"] > 0


def test_lenient_zips_short_predictions_like_the_official_code():
    h, w = 10, 10
    m = box(h, w, 2, 2, 6, 7)
    gt = make_gt([(1, h, w, 2)], [1], [{"video_id": 1, "category_id": 1, "masks": [m, m]}])
    short = [pred(1, 1, 0.9, [m])]  # one frame for a two-frame video
    with pytest.raises(WsovvisError, match=r"result\[0\] has 1 frames, video 1 has 2.*--lenient"):
        evaluate(gt, short)
    # zip() stops after frame 0 for both tracks: IoU 20/20 = 1 (a full-length copy with frame 1
    # absent would have IoU 0.5)
    assert evaluate(gt, short, lenient=True)["AP"] == approx(1.0)
    assert reference_evaluate(gt, short)["AP"] == approx(1.0)


def test_empty_results_give_zero_with_a_warning(caplog):
    h, w = 8, 8
    gt = make_gt([(1, h, w, 1)], [1], [{"video_id": 1, "category_id": 1, "masks": [box(h, w, 0, 0, 3, 3)]}])
    with caplog.at_level(logging.WARNING, logger="wsovvis"):
        s = evaluate(gt, [])
    assert "results list is empty" in caplog.text
    assert s["AP"] == approx(0.0) and s["AR100"] == approx(0.0) and s["APs"] == approx(0.0)
    assert s["APl"] == -1.0  # no large GT: undefined, as with any results


def test_precision_and_recall_arrays_have_the_official_layout():
    rng = np.random.default_rng(2)
    gt, results = random_case(rng, num_cats=4)
    res = evaluate_full(gt, results, progress=False)
    assert res.precision.shape == (10, 101, 4, 4, 3)
    assert res.recall.shape == (10, 4, 4, 3)
    assert res.cat_ids == [1, 2, 3, 4]
    # AP is the mean of the valid entries of the all-area, 100-detection slice
    s = res.precision[:, :, :, 0, 2]
    assert res.stats["AP"] == float(s[s > -1].mean())
    rows = res.per_category()
    with_gt = [r for r in rows if r["num_gt"] > 0]
    assert with_gt and all(r["AP"] is not None for r in with_gt)
    assert all(r["AP"] is None for r in rows if r["num_gt"] == 0)
