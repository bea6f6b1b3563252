"""Greedy prediction-to-GT matching of one (video, category) for all IoU thresholds and area ranges.

Same rules as the official ``evaluateVid``: GTs are stably sorted with non-ignored first; each prediction,
in score order, scans them: a matched non-crowd GT is skipped, the scan stops at the first ignored GT once
a non-ignored match is held, and a GT is taken if its IoU is ``>=`` the best so far (so among equal IoUs
the later GT wins). A prediction matched to an ignored GT is ignored; an unmatched prediction whose own
area is out of range is ignored.

The only thing that differs between area ranges is which GTs are ignored, so ranges with the same
ignore pattern share one greedy run.
"""

from __future__ import annotations

import numpy as np

from wsovvis.evaluation.params import AREA_RNG, MATCH_THRS

_LO = np.array([r[0] for r in AREA_RNG])
_HI = np.array([r[1] for r in AREA_RNG])


def out_of_range(areas: np.ndarray) -> np.ndarray:
    """avg_area [N] -> bool [A, N]: outside each area range (both ends inclusive)."""
    areas = np.asarray(areas, dtype=np.float64)
    return (areas[None, :] < _LO[:, None]) | (areas[None, :] > _HI[:, None])


def greedy(ious: np.ndarray, gt_ignore: np.ndarray, gt_crowd: np.ndarray) -> np.ndarray:
    """Matched GT column per (threshold, prediction): int [T, D], -1 when unmatched.

    ``ious`` [D, G] with predictions in score order and GTs already sorted non-ignored first;
    ``gt_ignore`` / ``gt_crowd`` bool [G] in that same GT order.
    """
    num_d, num_g = ious.shape
    out = np.full((len(MATCH_THRS), num_d), -1, dtype=np.int64)
    if num_d == 0 or num_g == 0:
        return out
    row_max = ious.max(axis=1)
    rows = ious.tolist()
    ignore = gt_ignore.tolist()
    crowd = gt_crowd.tolist()
    for ti, thr in enumerate(MATCH_THRS):
        # A prediction whose best IoU is below the threshold cannot take any GT: skipping it changes nothing.
        cands = np.flatnonzero(row_max >= thr).tolist()
        if not cands:
            break  # thresholds only grow
        taken = [False] * num_g
        res = out[ti]
        for d in cands:
            row = rows[d]
            best = thr
            m = -1
            for g in range(num_g):
                if taken[g] and not crowd[g]:
                    continue
                if m > -1 and not ignore[m] and ignore[g]:
                    break
                if row[g] < best:
                    continue
                best = row[g]
                m = g
            if m > -1:
                res[d] = m
                taken[m] = True
    return out


def match_group(
    ious: np.ndarray,
    gt_crowd: np.ndarray,
    gt_area: np.ndarray,
    dt_area: np.ndarray,
    crowd_ignored: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate one (video, category) for every area range.

    Args:
        ious: [D, G] video IoUs, predictions already score-sorted and cut to 100, GTs in file/pool order.
        gt_crowd: bool [G]; gt_area / dt_area: avg_area [G] / [D].
        crowd_ignored: True for YouTube-VIS (crowd GTs are ignored), False for LV-VIS (they are positives).
    Returns:
        matched bool [D, A, T], ignored bool [D, A, T], npig int [A] (non-ignored GTs per area range).
    """
    num_d, num_g = ious.shape
    num_t = len(MATCH_THRS)
    gt_ig_all = out_of_range(gt_area)  # [A, G]
    if crowd_ignored:
        gt_ig_all |= gt_crowd[None, :]
    dt_out = out_of_range(dt_area)  # [A, D]
    npig = (~gt_ig_all).sum(axis=1)
    matched = np.zeros((num_d, len(AREA_RNG), num_t), dtype=bool)
    ignored = np.zeros_like(matched)
    if num_g == 0:  # nothing to match: every prediction is an FP unless its own area is out of range
        ignored[:] = dt_out.T[:, :, None]
        return matched, ignored, npig
    cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
    for a in range(len(AREA_RNG)):
        gt_ig = gt_ig_all[a]
        key = gt_ig.tobytes()
        if key not in cache:
            order = np.argsort(gt_ig, kind="mergesort")
            m_idx = greedy(ious[:, order], gt_ig[order], gt_crowd[order])  # [T, D]
            hit = m_idx >= 0
            cache[key] = (hit, hit & gt_ig[order][np.maximum(m_idx, 0)])
        hit, hit_ignored = cache[key]
        matched[:, a, :] = hit.T
        ignored[:, a, :] = (hit_ignored | (~hit & dt_out[a][None, :])).T
    return matched, ignored, npig
