"""Clip-level linking: identity through a crossing, hole filling, camera tubes, and the quality measures."""

from __future__ import annotations

import numpy as np
import pytest

from wsovvis.pseudo.cleanup import Tube
from wsovvis.pseudo.cliplink import ClipLinkParams, agglomerate, drop_outliers, fill_between, link_clip, propagate
from wsovvis.pseudo.linking import Detection
from wsovvis.pseudo.maskcut import moves_with_camera
from wsovvis.pseudo.quality import identity_switches, leave_one_out, region_similarity, spearman, tube_iou
from wsovvis.pseudo.refine import fill_moving_holes


def _crossing(t_len: int = 14, h: int = 40, w: int = 96, v: int = 6):
    """Two identical-looking 12x12 squares crossing: A (id 1) moves right in front, B (id 2) moves left behind.

    Returns the GT id maps ``[T, H, W]`` (visible parts), the forward flows ``[T, H, W, 2]`` and the
    per-frame detections (visible part of each square, the same embedding for both).
    """
    ids = np.zeros((t_len, h, w), np.int64)
    flow = np.zeros((t_len, h, w, 2), np.float32)
    for t in range(t_len):
        ax, bx = 4 + v * t, w - 16 - v * t
        ids[t, 12:24, bx:bx + 12] = 2
        ids[t, 16:28, ax:ax + 12] = 1  # A occludes B where they overlap
        flow[t][ids[t] == 1] = (v, 0)
        flow[t][ids[t] == 2] = (-v, 0)
    emb = np.ones(4) / 2.0
    dets = {t: [Detection(mask=ids[t] == k, embedding=emb, score=0.9) for k in (1, 2) if (ids[t] == k).sum() > 8]
            for t in range(t_len)}
    return ids, flow, dets


def test_crossing_objects_keep_their_identity():
    ids, flow, dets = _crossing()
    pairs = link_clip(dets, flow, len(ids), ClipLinkParams(link_iou=0.5, window=4, scale=2, extend=2))
    tubes = [tb.masks for tb, _ in pairs]
    assert len(tubes) == 2
    assert all(len(tb) == len(ids) for tb in tubes)
    assert identity_switches(tubes, ids) == 0
    # Each tube is one object throughout: spatio-temporal IoU with its GT object is high.
    gt = [{t: ids[t] == k for t in range(len(ids))} for k in (1, 2)]
    best = sorted(max(tube_iou(tb, g) for tb in tubes) for g in gt)
    assert best[0] > 0.8
    assert all(0.5 < c <= 1.0 for _, c in pairs)


def test_propagation_moves_masks_both_ways():
    flow = np.zeros((3, 10, 20, 2), np.float32)
    flow[..., 0] = 2.0
    m = np.zeros((10, 20), bool)
    m[3:6, 4:8] = True
    fwd = propagate(m, 0, 2, flow)
    np.testing.assert_array_equal(fwd, np.roll(m, 4, axis=1))
    np.testing.assert_array_equal(propagate(fwd, 2, 0, flow), m)


def test_a_gap_keeps_what_both_sides_agree_on():
    # A 4-wide object moves +2 px/frame, but the flow says +1 (an occluder's flow at the target):
    # pushed forward from frame 0 the fill lags to the left, pulled back from frame 4 it lags to
    # the right; the gap keeps their intersection. Past the ends one side only is available.
    t_len, h, w = 6, 4, 30
    flow = np.zeros((t_len, h, w, 2), np.float32)
    flow[..., 0] = 1.0

    def box(x0: int) -> np.ndarray:
        m = np.zeros((h, w), bool)
        m[:, x0:x0 + 4] = True
        return m

    own = {1: box(2), 4: box(8)}
    masks = fill_between(own, flow, t_len, extend=1)
    assert sorted(masks) == [0, 1, 2, 3, 4, 5]
    np.testing.assert_array_equal(masks[1], own[1])
    np.testing.assert_array_equal(masks[4], own[4])
    # Frame 2: pushed from 1 -> columns 3..6; pulled from 4 (two steps back) -> 6..9; agree on column 6.
    np.testing.assert_array_equal(masks[2], box(3) & box(6))
    assert masks[2].sum() == h
    # Frame 3: pushed twice -> 4..7; pulled once -> 7..10; agree on column 7.
    np.testing.assert_array_equal(masks[3], box(4) & box(7))
    np.testing.assert_array_equal(masks[0], box(1))  # before the first observation: pulled back
    np.testing.assert_array_equal(masks[5], box(9))  # after the last: pushed on


def test_members_that_look_unlike_their_tube_are_dropped():
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    emb = np.stack([a, a, (a + 0.1 * b) / np.linalg.norm(a + 0.1 * b), b])
    # Member 3 has cosine 0.03 with the mean of the others (< 0.85): it covers something else.
    assert drop_outliers([0, 1, 2, 3], emb, 0.85) == [0, 1, 2]
    # Groups of two cannot tell which member is the odd one.
    assert drop_outliers([0, 3], emb, 0.85) == [0, 3]
    assert drop_outliers([0, 1, 2, 3], emb, 1.01) == [0, 1, 2, 3]  # all would go: the group is kept


def test_agglomeration_never_joins_two_detections_of_one_frame():
    frames = [0, 0, 1]
    a = np.array([[0, 0.9, 0.9], [0.9, 0, 0.8], [0.9, 0.8, 0]])
    defined = np.array([[0, 0, 1], [0, 0, 1], [1, 1, 0]], bool)  # same-frame pairs are not defined
    groups = agglomerate(frames, a, defined, 0.5)
    assert sorted(map(sorted, groups)) == [[0, 2], [1]]


def test_holes_that_move_with_the_object_are_filled_others_stay_open():
    mask = np.zeros((30, 30), bool)
    mask[5:25, 5:25] = True
    mask[10:14, 10:14] = False  # a patch of another colour on the object
    mask[16:20, 16:20] = False  # background seen through the object
    flow = np.zeros((30, 30, 2), np.float32)
    flow[mask] = (3.0, 1.0)
    flow[10:14, 10:14] = (3.2, 1.0)
    out = fill_moving_holes(mask, flow, tol_px=1.0)
    assert out[10:14, 10:14].all()
    assert not out[16:20, 16:20].any()
    np.testing.assert_array_equal(out & mask, mask)
    assert fill_moving_holes(mask, None, 1.0)[16:20, 16:20].all()


def test_a_still_tube_on_the_border_moves_with_the_camera():
    t_len, h, w = 4, 20, 30
    motion = np.zeros((t_len, h, w), np.float32)
    motion[:, 8:14, 10:20] = 3.0  # an object moving against the camera
    sky = Tube(masks={t: np.pad(np.ones((4, w), bool), ((0, h - 4), (0, 0))) for t in range(t_len)},
               scores={t: 0.5 for t in range(t_len)}, embedding=np.ones(2))
    obj = Tube(masks={t: motion[t] > 0 for t in range(t_len)}, scores={t: 0.5 for t in range(t_len)},
               embedding=np.ones(2))
    assert moves_with_camera(sky, motion, still_px=0.6, border_frac=0.5)
    assert not moves_with_camera(obj, motion, still_px=0.6, border_frac=0.5)
    # A still object away from the border (a paused animal) is kept.
    still_obj = Tube(masks=dict(obj.masks), scores=dict(obj.scores), embedding=np.ones(2))
    assert not moves_with_camera(still_obj, np.zeros_like(motion), still_px=0.6, border_frac=0.5)


def test_quality_measures_by_hand():
    gt = np.zeros((2, 4, 4), np.int64)
    gt[:, :2, :2] = 1
    pred = np.zeros((2, 4, 4), bool)
    pred[0, :2, :2] = True  # frame 0: IoU 1
    pred[1, :2, :1] = True  # frame 1: IoU 2/4
    assert region_similarity(pred, gt == 1) == pytest.approx(0.75)
    assert region_similarity(np.zeros((1, 2, 2), bool), np.zeros((1, 2, 2), bool)) == 1.0
    # A tube on object 1 in frame 0 and on the background in frame 1 switches once.
    bg = np.zeros((4, 4), bool)
    bg[3, :] = True
    assert identity_switches([{0: gt[0] == 1, 1: bg}], gt) == 1
    # A sliver half on the object and half off is undecided, not a switch.
    sliver = np.zeros((4, 4), bool)
    sliver[1, 1:3] = True
    assert identity_switches([{0: gt[0] == 1, 1: sliver}], gt) == 0
    a = {0: gt[0] == 1, 1: gt[1] == 1}
    b = {0: gt[0] == 1}
    assert tube_iou(a, b) == pytest.approx(4 / 8)
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    scipy_stats = pytest.importorskip("scipy.stats")
    x, y = [0.1, 0.5, 0.5, 0.9, 0.3], [1, 3, 2, 5, 2]
    assert spearman(x, y) == pytest.approx(scipy_stats.spearmanr(x, y).statistic)


def test_leave_one_out_never_looks_at_the_held_out_sequence():
    # Config "a" is best on s1, s2; "b" only on s3. Selection by the mean over the other sequences.
    per = {"a": {"s1": 0.9, "s2": 0.8, "s3": 0.1}, "b": {"s1": 0.5, "s2": 0.5, "s3": 1.0}}
    folds = leave_one_out(per, lambda sub: float(np.mean(list(sub.values()))))
    chosen = {f["held_out"]: f["chosen"] for f in folds}
    # Held out s1: a scores (0.8+0.1)/2=0.45, b (0.5+1)/2=0.75 -> b; s2: a 0.5, b 0.75 -> b; s3: a 0.85 -> a.
    assert chosen == {"s1": "b", "s2": "b", "s3": "a"}
    assert folds[2]["train_score"] == pytest.approx(0.85)


def test_slivers_left_by_a_better_tube_are_dropped():
    from wsovvis.pseudo.cleanup import resolve_overlaps

    big = np.zeros((10, 10), bool)
    big[:, :6] = True
    small = np.zeros((10, 10), bool)
    small[:, 4:8] = True  # half of it is claimed by the better tube
    other = np.zeros((10, 10), bool)
    other[:, 5:10] = True  # 1/5 claimed
    hi = Tube(masks={0: big}, scores={0: 1.0}, embedding=np.ones(2), score=0.9)
    lo = Tube(masks={0: small.copy(), 1: small.copy()}, scores={0: 0.5, 1: 0.5}, embedding=np.ones(2), score=0.5)
    lo2 = Tube(masks={0: other.copy()}, scores={0: 0.5}, embedding=np.ones(2), score=0.1)
    resolve_overlaps([hi, lo, lo2], min_keep=0.6)
    assert 0 not in lo.masks and 1 in lo.masks  # kept 1/2 < 0.6 of frame 0; frame 1 untouched
    assert lo2.masks[0].sum() == 40  # kept 4/5 of its mask (lo no longer claims frame 0)


def test_loo_report_scores_the_held_out_sequence_with_the_config_chosen_on_the_others():
    from wsovvis.data import rle
    from wsovvis.pseudo.tuning import ap50, loo_report

    h, w, t_len = 8, 8, 2
    obj = np.zeros((h, w), bool)
    obj[2:6, 2:6] = True
    off = np.zeros((h, w), bool)
    off[0:2, 6:8] = True
    vids = [{"id": i + 1, "name": f"s{i}", "length": t_len, "height": h, "width": w,
             "file_names": [f"s{i}/{k}.jpg" for k in range(t_len)]} for i in range(3)]
    anns = [{"id": i + 1, "video_id": i + 1, "category_id": 1, "iscrowd": 0,
             "segmentations": [rle.encode(obj)] * t_len, "areas": [16.0] * t_len,
             "bboxes": [[2.0, 2.0, 4.0, 4.0]] * t_len} for i in range(3)]
    gt = {"videos": vids, "annotations": anns, "categories": [{"id": 1, "name": "object"}]}

    def out(mask, j):
        return {"results": [{"category_id": 1, "score": 0.9, "segmentations": [rle.encode(mask)] * t_len}],
                "J": j, "id_switches": 0}

    # "good" hits the object on s0 and s1 only; "other" hits it on s2 only.
    per = {"good": {"s0": out(obj, 1.0), "s1": out(obj, 1.0), "s2": out(off, 0.0)},
           "other": {"s0": out(off, 0.0), "s1": out(off, 0.0), "s2": out(obj, 1.0)}}
    assert ap50(gt, per["good"]) == pytest.approx(2 / 3, abs=0.02)
    rep = loo_report(gt, per, default="good")
    chosen = {f["held_out"]: f["chosen"] for f in rep["folds"]}
    assert chosen == {"s0": "good", "s1": "good", "s2": "good"}  # s2 held out: good wins 2-0 on s0, s1
    held = {f["held_out"]: f["held_out_ap50"] for f in rep["folds"]}
    assert held["s0"] == pytest.approx(1.0) and held["s2"] == pytest.approx(0.0)
    assert rep["held_out_J_mean"] == pytest.approx(2 / 3)
    assert rep["in_sample_best"] == "good"
    # Equal AP50 on the training sequences: their mean J decides, not the default.
    per = {"plain": {s: out(obj, 0.6) for s in ("s0", "s1", "s2")},
           "sharp": {s: out(obj, 0.9) for s in ("s0", "s1", "s2")}}
    rep = loo_report(gt, per, default="plain")
    assert {f["chosen"] for f in rep["folds"]} == {"sharp"} and rep["in_sample_best"] == "sharp"
    assert rep["held_out_J_mean"] == pytest.approx(0.9)
    # Equal in both: the default keeps it.
    per["twin"] = per["sharp"]
    assert loo_report(gt, per, default="twin")["in_sample_best"] == "twin"
