"""Temporal linking and offline clean-up: ids through occlusion, merges, gaps, overlaps, scores."""

from __future__ import annotations

import numpy as np
import pytest

from wsovvis.pseudo.cleanup import CleanupParams, Tube, cleanup, fill_gaps, merge_disjoint, paint_ids, resolve_overlaps
from wsovvis.pseudo.linking import Detection, LinkParams, Tracker, mask_iou_matrix

H, W = 24, 40


def _box(y: int, x: int, h: int = 6, w: int = 6) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y:y + h, x:x + w] = True
    return m


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


RED, BLUE = _unit([1, 0.1, 0]), _unit([0, 0.1, 1])


def test_mask_iou_matrix_by_hand():
    a, b = _box(0, 0, 4, 4), _box(2, 2, 4, 4)  # overlap 2x2 = 4, union 16 + 16 - 4 = 28
    iou = mask_iou_matrix([a, b], [b, np.zeros((H, W), bool)])
    np.testing.assert_allclose(iou, [[4 / 28, 0], [1, 0]])


def test_ids_survive_a_short_occlusion():
    """Object A moves right and vanishes for 2 frames behind an occluder; B stays put.

    A comes back displaced (no IoU with its last mask) and must be re-identified by appearance;
    after clean-up A and B keep one id each over the 8 frames, and the gap is filled.
    """
    tracker = Tracker(LinkParams(max_age=5, reid_cos=0.8))
    for t in range(8):
        dets = [Detection(_box(14, 30), BLUE, 0.6)]
        if t not in (3, 4):  # occluded in frames 3 and 4
            dets.append(Detection(_box(2, 2 + 3 * t), RED, 0.9))
        tracker.step(t, dets)
    assert len(tracker.tracks) == 2
    tubes = cleanup(tracker.tracks, 8, CleanupParams(min_len=3, max_gap=2))
    assert len(tubes) == 2
    a = next(tb for tb in tubes if tb.masks[0][2, 2])
    assert a.frames == list(range(8)) and a.filled == {3, 4}  # filled from the nearest frames 2 and 5
    np.testing.assert_array_equal(a.masks[3], _box(2, 8))
    np.testing.assert_array_equal(a.masks[4], _box(2, 17))
    ids = [paint_ids(tubes, t, (H, W)) for t in range(8)]
    # One id for A at its box centre before and after the occlusion, another one for B.
    assert {int(ids[t][5, 2 + 3 * t + 3]) for t in (0, 1, 2, 5, 6, 7)} == {a.tube_id}
    assert {int(i[17, 33]) for i in ids} == {3 - a.tube_id}
    # Both tubes are present in all frames: score = mean detection score (observed frames only).
    assert a.score == pytest.approx(0.9)


def test_a_track_dies_after_max_age_and_a_new_id_starts():
    tracker = Tracker(LinkParams(max_age=2))
    for t in (0, 1, 5, 6):  # 3 missing frames > max_age
        tracker.step(t, [Detection(_box(2, 2), RED, 0.9)])
    assert len(tracker.tracks) == 2
    # Time-disjoint fragments with the same appearance are merged offline.
    tubes = cleanup(tracker.tracks, 7, CleanupParams(min_len=3, merge_cos=0.85, max_gap=2))
    assert len(tubes) == 1 and tubes[0].frames == [0, 1, 5, 6]


def test_merge_only_disjoint_similar_tubes():
    t1 = Tube(masks={0: _box(0, 0), 1: _box(0, 0)}, scores={0: 1, 1: 1}, embedding=RED)
    t2 = Tube(masks={2: _box(0, 0)}, scores={2: 1}, embedding=RED)
    t3 = Tube(masks={1: _box(9, 9)}, scores={1: 1}, embedding=RED)  # shares frame 1 with t1
    t4 = Tube(masks={3: _box(9, 9)}, scores={3: 1}, embedding=BLUE)  # different appearance
    out = merge_disjoint([t1, t2, t3, t4], 0.85)
    # t1 + t2 merge (first best pair); t3 then overlaps the merged tube, t4 looks different.
    assert sorted(sorted(tb.masks) for tb in out) == [[0, 1, 2], [1], [3]]


def test_fill_gaps_only_short_ones():
    tb = Tube(masks={0: _box(0, 0), 2: _box(0, 5), 6: _box(0, 9)}, scores={0: 1, 2: 1, 6: 1}, embedding=RED)
    fill_gaps(tb, max_gap=2)
    assert tb.frames == [0, 1, 2, 6]  # gap of 1 filled, gap of 3 left open
    np.testing.assert_array_equal(tb.masks[1], _box(0, 0))  # tie -> the earlier neighbour


def test_overlaps_go_to_the_higher_score_and_ids_renumber_by_first_appearance():
    hi = Tube(masks={1: _box(0, 0, 6, 6)}, scores={1: 0.9}, embedding=RED, score=0.9)
    lo = Tube(masks={0: _box(0, 3, 6, 6), 1: _box(0, 3, 6, 6)}, scores={0: 0.2, 1: 0.2}, embedding=BLUE, score=0.2)
    resolve_overlaps([hi, lo])
    assert hi.masks[1].sum() == 36 and lo.masks[1].sum() == 18  # lo lost the 3 shared columns
    from wsovvis.pseudo.linking import Track

    tracks = []
    for k, (frames, x) in enumerate([((2, 3, 4), 20), ((0, 1, 2), 0)]):
        tr = Track(track_id=k + 1, embedding=RED if k else BLUE, last_t=frames[-1], last_mask=_box(0, x))
        tr.dets = {t: Detection(_box(0, x), RED if k else BLUE, 0.5) for t in frames}
        tracks.append(tr)
    tubes = cleanup(tracks, 5, CleanupParams(min_len=3, merge_cos=0.99))
    assert [tb.first() for tb in tubes] == [0, 2] and [tb.tube_id for tb in tubes] == [1, 2]
    # 3 of 5 frames: score = 0.5 * (3/5) ** 0.5
    assert tubes[0].score == pytest.approx(0.5 * 0.6 ** 0.5)


def test_short_tubes_are_dropped_and_paint_resizes():
    tracker = Tracker()
    tracker.step(0, [Detection(_box(0, 0), RED, 0.9)])
    tracker.step(1, [Detection(_box(0, 0), RED, 0.9), Detection(_box(12, 20), BLUE, 0.5)])
    tracker.step(2, [Detection(_box(0, 0), RED, 0.9)])
    tubes = cleanup(tracker.tracks, 3, CleanupParams(min_len=2))
    assert len(tubes) == 1
    ids = paint_ids(tubes, 0, (2 * H, 2 * W))  # painted at twice the working size
    assert ids.shape == (2 * H, 2 * W) and ids[:12, :12].all() and not ids[12:].any()
