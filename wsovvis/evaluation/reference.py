"""A deliberately plain evaluator: the official algorithm written out per (prediction, GT, frame).

It exists as an oracle for tests and for ``bench/eval.py``: no batching, no shortcuts, the video IoU from
two ``pycocotools`` merges per frame, the greedy matching as nested loops over thresholds, predictions and
GTs, and the accumulation one threshold at a time with Python lists. It shares no code with the fast path
except the parameter constants. It does not validate its input (pass checked input) and it is slow.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from pycocotools import mask as mask_utils

from wsovvis.evaluation.params import (
    AREA_LBL,
    AREA_RNG,
    BASE_PARTITIONS,
    IOU_THRS,
    MAX_DETS,
    NOVEL_PARTITIONS,
    REC_THRS,
    STAT_SPECS,
)


def _frame_rle(seg, h, w):
    if isinstance(seg, list):
        return mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    if isinstance(seg["counts"], list):
        return mask_utils.frPyObjects(seg, *seg["size"])
    return seg


def _track_area(areas, lvvis):
    vals = [int(a) for a in areas if a] if lvvis else [a for a in areas if a]
    return np.array(vals).mean() if vals else 0


def _video_iou(d_seq, g_seq):
    inter = union = 0.0
    for d, g in zip(d_seq, g_seq):
        if d and g:
            inter += mask_utils.area(mask_utils.merge([d, g], True))
            union += mask_utils.area(mask_utils.merge([d, g], False))
        elif g:
            union += mask_utils.area(g)
        elif d:
            union += mask_utils.area(d)
    return inter / union if union > 0 else 0.0


def reference_evaluate(gt: dict, results: list, flavor: str = "ytvis", class_agnostic: bool = False) -> dict:
    """Stats dict (12 names, plus base/novel for lvvis) and ``precision`` / ``recall`` arrays."""
    lvvis = flavor == "lvvis"
    videos = {v["id"]: v for v in gt["videos"]}
    vid_ids = sorted(videos)
    cat_ids = sorted(c["id"] for c in gt["categories"])
    cat_set = set(cat_ids)
    gts, dts = defaultdict(list), defaultdict(list)
    for a in gt["annotations"]:
        v = videos[a["video_id"]]
        segs = [_frame_rle(s, v["height"], v["width"]) if s else None for s in a["segmentations"]]
        crowd = bool(a.get("iscrowd", 0))
        gts[a["video_id"], a["category_id"]].append(
            {"id": a["id"], "segs": segs, "crowd": crowd, "area": _track_area(a["areas"], lvvis)}
        )
    for i, r in enumerate(results):
        if r["category_id"] not in cat_set:
            continue
        segs = r["segmentations"]
        areas = [mask_utils.area(s) if s else None for s in segs]
        dts[r["video_id"], r["category_id"]].append(
            {"id": i + 1, "segs": segs, "score": r["score"], "area": _track_area(areas, lvvis)}
        )

    def pool(store, vid, cat):
        if class_agnostic:
            return [x for c in cat_ids for x in store[vid, c]]
        return store[vid, cat]

    slots = [-1] if class_agnostic else cat_ids
    ious = {}
    for vid in vid_ids:
        for cat in slots:
            g, d = pool(gts, vid, cat), pool(dts, vid, cat)
            if not g and not d:
                continue
            order = np.argsort([-x["score"] for x in d], kind="mergesort")
            d = [d[i] for i in order][: MAX_DETS[-1]]
            m = np.zeros((len(d), len(g)))
            for i in range(len(d)):
                for j in range(len(g)):
                    m[i, j] = _video_iou(d[i]["segs"], g[j]["segs"])
            ious[vid, cat] = m

    evals = {}
    for cat in slots:
        for a, (lo, hi) in enumerate(AREA_RNG):
            for vid in vid_ids:
                g, d = pool(gts, vid, cat), pool(dts, vid, cat)
                if not g and not d:
                    continue
                ig = [int((g_["crowd"] and not lvvis) or g_["area"] < lo or g_["area"] > hi) for g_ in g]
                gorder = np.argsort(ig, kind="mergesort")
                g = [g[i] for i in gorder]
                ig = [ig[i] for i in gorder]
                dorder = np.argsort([-x["score"] for x in d], kind="mergesort")
                d = [d[i] for i in dorder][: MAX_DETS[-1]]
                iou = ious[vid, cat][:, gorder] if len(d) else ious[vid, cat]
                T = len(IOU_THRS)
                gtm = np.zeros((T, len(g)))
                dtm = np.zeros((T, len(d)))
                dtig = np.zeros((T, len(d)))
                for ti, t in enumerate(IOU_THRS):
                    for di, det in enumerate(d):
                        best, m = min(t, 1 - 1e-10), -1
                        for gi in range(len(g)):
                            if gtm[ti, gi] > 0 and not g[gi]["crowd"]:
                                continue
                            if m > -1 and ig[m] == 0 and ig[gi] == 1:
                                break
                            if iou[di, gi] < best:
                                continue
                            best, m = iou[di, gi], gi
                        if m == -1:
                            continue
                        dtig[ti, di] = ig[m]
                        dtm[ti, di] = g[m]["id"]
                        gtm[ti, m] = det["id"]
                out = np.array([x["area"] < lo or x["area"] > hi for x in d]).reshape(1, len(d))
                dtig = np.logical_or(dtig, np.logical_and(dtm == 0, np.repeat(out, T, 0)))
                evals[cat, a, vid] = (np.array([x["score"] for x in d]), dtm, dtig, np.array(ig))

    T, R, K, A, M = len(IOU_THRS), len(REC_THRS), len(slots), len(AREA_RNG), len(MAX_DETS)
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    for k, cat in enumerate(slots):
        for a in range(A):
            for mi, md in enumerate(MAX_DETS):
                E = [evals[cat, a, vid] for vid in vid_ids if (cat, a, vid) in evals]
                if not E:
                    continue
                sc = np.concatenate([e[0][:md] for e in E])
                inds = np.argsort(-sc, kind="mergesort")
                dtm = np.concatenate([e[1][:, :md] for e in E], axis=1)[:, inds]
                dtig = np.concatenate([e[2][:, :md] for e in E], axis=1)[:, inds]
                npig = np.count_nonzero(np.concatenate([e[3] for e in E]) == 0)
                if npig == 0:
                    continue
                tps = np.logical_and(dtm, np.logical_not(dtig))
                fps = np.logical_and(np.logical_not(dtm), np.logical_not(dtig))
                tp_sum = np.cumsum(tps, axis=1).astype(float)
                fp_sum = np.cumsum(fps, axis=1).astype(float)
                for t in range(T):
                    tp, fp = tp_sum[t], fp_sum[t]
                    nd = len(tp)
                    rc = tp / npig
                    pr = (tp / (fp + tp + np.spacing(1))).tolist()
                    recall[t, k, a, mi] = rc[-1] if nd else 0
                    for i in range(nd - 1, 0, -1):
                        if pr[i] > pr[i - 1]:
                            pr[i - 1] = pr[i]
                    q = [0.0] * R
                    for ri, pi in enumerate(np.searchsorted(rc, REC_THRS, side="left")):
                        if pi >= nd:
                            break
                        q[ri] = pr[pi]
                    precision[t, :, k, a, mi] = q

    def stats(k_sel=None):
        out = {}
        for name, is_ap, thr, area, md in STAT_SPECS:
            ai, mi = AREA_LBL.index(area), MAX_DETS.index(md)
            s = precision if is_ap else recall
            if thr is not None:
                s = s[np.where(thr == IOU_THRS)[0]]
            s = s[:, :, :, [ai], [mi]] if is_ap else s[:, :, [ai], [mi]]
            if k_sel is not None:
                if not k_sel:
                    out[name] = -1.0
                    continue
                s = s[:, :, k_sel] if is_ap else s[:, k_sel]
            v = s[s > -1]
            out[name] = float(np.mean(v)) if len(v) else -1.0
        return out

    res = stats()
    if lvvis:
        if class_agnostic:
            res["base"] = dict.fromkeys(res, -1.0)
            res["novel"] = dict.fromkeys(res, -1.0)
        else:
            k_of = {c: k for k, c in enumerate(cat_ids)}
            parts = [(k_of[c["id"]], c["partition"]) for c in gt["categories"]]
            res["base"] = stats([k for k, p in parts if p in BASE_PARTITIONS])
            res["novel"] = stats([k for k, p in parts if p in NOVEL_PARTITIONS])
    res["precision"] = precision
    res["recall"] = recall
    return res
