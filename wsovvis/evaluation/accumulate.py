"""Precision/recall accumulation and the 12 summary stats, with the official COCO arithmetic.

Every float operation mirrors the official ``accumulate``/``summarize`` (same operands, same order, same
array layout for the final means), so the numbers are bit-identical, not just close.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wsovvis.evaluation.params import AREA_LBL, IOU_THRS, MAX_DETS, REC_THRS, STAT_SPECS


@dataclass
class Records:
    """Per-prediction matching outcome of every evaluated (video, category), in accumulation order.

    Rows are grouped by video (sorted id), then score rank inside the (video, category).
    ``cat`` int [N] category index k, ``score`` float64 [N], ``rank`` int [N] (0 = best in its
    (video, category)), ``matched`` / ``ignored`` bool [N, A, T].
    ``npig`` int [K, A] non-ignored GT tracks; ``has_entry`` bool [K]: some video has GT or predictions
    of category k (otherwise the category stays at -1, like the official ``E == []`` case).
    """

    cat: np.ndarray
    score: np.ndarray
    rank: np.ndarray
    matched: np.ndarray
    ignored: np.ndarray
    npig: np.ndarray
    has_entry: np.ndarray


def accumulate(rec: Records) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``precision`` [T, R, K, A, M] and ``recall`` [T, K, A, M]; -1 where a cell has no GT."""
    num_t, num_r = len(IOU_THRS), len(REC_THRS)
    num_k, num_a = rec.npig.shape
    num_m = len(MAX_DETS)
    precision = -np.ones((num_t, num_r, num_k, num_a, num_m))
    recall = -np.ones((num_t, num_k, num_a, num_m))
    order = np.argsort(rec.cat, kind="mergesort")  # keeps (video, rank) order inside each category
    bounds = np.searchsorted(rec.cat[order], np.arange(num_k + 1))
    for k in range(num_k):
        if not rec.has_entry[k]:
            continue
        rows = order[bounds[k] : bounds[k + 1]]
        for m, max_det in enumerate(MAX_DETS):
            sel = rows[rec.rank[rows] < max_det]
            scores = rec.score[sel]
            inds = np.argsort(-scores, kind="mergesort")
            for a in range(num_a):
                npig = int(rec.npig[k, a])
                if npig == 0:
                    continue
                dtm = rec.matched[sel, a, :].T[:, inds]  # [T, n]
                dtig = rec.ignored[sel, a, :].T[:, inds]
                tps = np.logical_and(dtm, np.logical_not(dtig))
                fps = np.logical_and(np.logical_not(dtm), np.logical_not(dtig))
                tp_sum = np.cumsum(tps, axis=1).astype(dtype=np.float64)
                fp_sum = np.cumsum(fps, axis=1).astype(dtype=np.float64)
                nd = tp_sum.shape[1]
                rc = tp_sum / npig
                pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
                if nd == 0:
                    recall[:, k, a, m] = 0
                    precision[:, :, k, a, m] = 0
                    continue
                recall[:, k, a, m] = rc[:, -1]
                # Precision envelope: running max from the right (max is exact, so same as the loop).
                pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
                for t in range(num_t):
                    pi = np.searchsorted(rc[t], REC_THRS, side="left")
                    q = np.zeros(num_r)
                    ok = pi < nd
                    q[ok] = pr[t, pi[ok]]
                    precision[t, :, k, a, m] = q
    return precision, recall


def _mean_valid(s: np.ndarray) -> float:
    valid = s[s > -1]
    return -1.0 if len(valid) == 0 else float(np.mean(valid))


def summarize(precision: np.ndarray, recall: np.ndarray, k_index: np.ndarray | None = None) -> dict[str, float]:
    """The 12 stats (means over entries > -1); ``k_index`` restricts to those categories (LV-VIS base/novel).

    An empty ``k_index`` gives -1 for every stat (the official LV-VIS code crashes there instead).
    """
    out: dict[str, float] = {}
    for name, is_ap, iou_thr, area, max_dets in STAT_SPECS:
        aind = [i for i, lbl in enumerate(AREA_LBL) if lbl == area]
        mind = [i for i, md in enumerate(MAX_DETS) if md == max_dets]
        s = precision if is_ap else recall
        if iou_thr is not None:
            s = s[np.where(iou_thr == IOU_THRS)[0]]
        s = s[:, :, :, aind, mind] if is_ap else s[:, :, aind, mind]
        if k_index is not None:
            if len(k_index) == 0:
                out[name] = -1.0
                continue
            s = s[:, :, k_index] if is_ap else s[:, k_index]
        out[name] = _mean_valid(s)
    return out


def per_category_ap(precision: np.ndarray, k: int, iou_thr: float | None = None) -> float:
    """AP of category index k (all areas, 100 detections); -1 when it has no GT."""
    s = precision[:, :, k, 0, -1]
    if iou_thr is not None:
        s = s[np.where(iou_thr == IOU_THRS)[0]]
    return _mean_valid(s)
