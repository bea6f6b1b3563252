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
    """Returns ``precision`` [T, R, K, A, M] and ``recall`` [T, K, A, M]; -1 where a cell has no GT.

    All categories of one (maxDet, area range) at once: each category is a segment of a flat array (its
    rows stably sorted by score), cumulative TP/FP counts are integers per segment, and the recall-grid
    lookup ``searchsorted(rc, REC_THRS, "left")`` becomes a search over integer TP counts (rc = tp / npig is
    monotone in tp, so rc < thr exactly when tp is below the smallest count whose rc reaches thr).
    """
    num_t, num_r = len(IOU_THRS), len(REC_THRS)
    num_k, num_a = rec.npig.shape
    num_m = len(MAX_DETS)
    precision = np.full((num_t, num_r, num_k, num_a, num_m), -1.0)
    recall = np.full((num_t, num_k, num_a, num_m), -1.0)
    for m, max_det in enumerate(MAX_DETS):
        sel = np.flatnonzero(rec.rank < max_det)
        # per category, a stable sort by score of its rows in (video, rank) order
        order = sel[np.lexsort((-rec.score[sel], rec.cat[sel]))]
        cat = rec.cat[order]
        nd = np.bincount(cat, minlength=num_k)
        for a in range(num_a):
            npig = rec.npig[:, a]
            live = rec.has_entry & (npig > 0)
            empty = live & (nd == 0)
            recall[:, empty, a, m] = 0
            precision[:, :, empty, a, m] = 0
            ks = np.flatnonzero(live & (nd > 0))
            if len(ks):
                keep = live[cat]
                _fill(precision[:, :, :, a, m], recall[:, :, a, m], rec.matched[order[keep], a, :],
                      rec.ignored[order[keep], a, :], ks, nd[ks], npig[ks])
    return precision, recall


def _fill(precision: np.ndarray, recall: np.ndarray, dtm: np.ndarray, dtig: np.ndarray, ks: np.ndarray,
          counts: np.ndarray, npig: np.ndarray) -> None:
    """Fill ``precision`` [T, R, K] / ``recall`` [T, K] (views of one area range and maxDet) for categories
    ``ks`` [S]: ``dtm`` / ``dtig`` bool [n, T] hold their rows, ``counts`` [S] rows each, in segments."""
    num_s, n = len(ks), len(dtm)
    start = np.zeros(num_s + 1, dtype=np.int64)
    np.cumsum(counts, out=start[1:])
    seg = np.repeat(np.arange(num_s), counts)
    tps = dtm & ~dtig
    tp = np.cumsum(tps, axis=0, dtype=np.int64)
    fp = np.cumsum(~dtm & ~dtig, axis=0, dtype=np.int64)
    if num_s > 1:  # cumulative counts restart at every segment
        tp -= np.concatenate([np.zeros((1, tp.shape[1]), np.int64), tp[start[1:-1] - 1]])[seg]
        fp -= np.concatenate([np.zeros((1, fp.shape[1]), np.int64), fp[start[1:-1] - 1]])[seg]
    tp_sum = tp.T.astype(np.float64)  # [T, n]
    fp_sum = fp.T.astype(np.float64)
    rc = tp_sum / npig[seg]
    pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    recall[:, ks] = rc[:, start[1:] - 1]
    # precision envelope: running max from the right inside each segment (max is exact)
    for s in range(num_s):
        part = pr[:, start[s] : start[s + 1]]
        part[:] = np.maximum.accumulate(part[:, ::-1], axis=1)[:, ::-1]
    # c[s, r]: the smallest TP count whose float rc = c / npig reaches REC_THRS[r]. The searchsorted index
    # is the first row whose TP count reaches c: the row of the c-th TP (0 when c = 0, none past the last TP).
    den = npig.astype(np.float64)[:, None]
    c = np.ceil(REC_THRS[None, :] * den)
    while True:  # correct the float rounding of the product (at most a step or two)
        down = (c > 0) & ((c - 1) / den >= REC_THRS[None, :])
        up = c / den < REC_THRS[None, :]
        if not (down.any() or up.any()):
            break
        c += up.astype(np.float64) - down
    c = np.minimum(c, n + 1).astype(np.int64)  # [S, R]
    num_t = len(tp_sum)
    q = np.zeros((num_t, num_s, len(REC_THRS)))
    last = start[1:] - 1
    for t in range(num_t):
        tp_rows = np.flatnonzero(tps[:, t])  # global rows of the TPs, segment by segment
        n_tp = tp[last, t]  # TPs per segment
        first_tp = np.zeros(num_s + 1, dtype=np.int64)
        np.cumsum(n_tp, out=first_tp[1:])
        found = (c >= 1) & (c <= n_tp[:, None])
        k = np.where(found, first_tp[:-1, None] + c - 1, 0)
        row = np.where(c == 0, start[:-1, None], tp_rows[k] if len(tp_rows) else 0)
        q[t] = np.where(found | (c == 0), pr[t, row], 0.0)
    precision[:, :, ks] = q.transpose(0, 2, 1)


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
