"""YouTube-VIS / LV-VIS video mask AP: `evaluate` (the 12 stats) and `evaluate_full` (arrays and tables).

Semantics are those of the official youtubevos ``ytvoseval.py`` and LV-VIS ``lvviseval.py`` (see
``shared/reference/ytvis_eval.md``). The video IoUs follow from integer sums of per-frame areas and
intersections, computed by one of two backends with bit-identical results:

* ``kernel`` (`batched` on the compiled `kernel`): flat arrays for the whole file; every RLE parsed and
  checked once in C, co-present frames of a group intersected in C, greedy matching in C.
* ``pycocotools`` (this module, the fallback when the kernel is not built): per video, every RLE is checked
  (its runs must add up to the frame size, or pycocotools would loop forever), co-present frames of the
  same category are intersected in a few batched ``pycocotools.mask.iou`` calls (`rle_batch`), then greedy
  matching per (video, category) (`matching`).

Both end in COCO accumulation (`accumulate`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wsovvis.evaluation import batched, kernel
from wsovvis.evaluation.accumulate import Records, accumulate, per_category_ap, summarize
from wsovvis.evaluation.inputs import EvalInputs, GtTrack, Video, bad_rle_error, check_inputs
from wsovvis.evaluation.matching import match_group
from wsovvis.evaluation.params import AREA_RNG, BASE_PARTITIONS, IOU_THRS, MAX_DETS, NOVEL_PARTITIONS, STAT_NAMES
from wsovvis.evaluation.progress import progress_bar
from wsovvis.evaluation.rle_batch import check_rles, frame_intersections
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)


@dataclass
class EvalResult:
    """Everything an evaluation computed.

    ``stats``: the 12 stats by name (0..1, -1 = undefined: no GT in that area range);
    ``base`` / ``novel``: the same for the LV-VIS splits (None for ytvis);
    ``precision`` [T=10, R=101, K, A=4, M=3] and ``recall`` [T, K, A, M] as in the official ``eval`` dict
    (K = number of GT categories in sorted id order, or 1 when class-agnostic); ``cat_ids`` / ``cat_names``
    label the K axis; ``num_gt`` / ``num_results`` [K] count GT tracks and evaluated results per category.
    """

    stats: dict[str, float]
    precision: np.ndarray
    recall: np.ndarray
    cat_ids: list[int]
    cat_names: list[str]
    num_gt: np.ndarray
    num_results: np.ndarray
    flavor: str = "ytvis"
    class_agnostic: bool = False
    base: dict[str, float] | None = None
    novel: dict[str, float] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        """The contract dict: the 12 stat names (plus ``base`` / ``novel`` dicts for lvvis)."""
        out: dict[str, Any] = {name: self.stats[name] for name in STAT_NAMES}
        if self.flavor == "lvvis":
            out["base"] = dict(self.base or {})
            out["novel"] = dict(self.novel or {})
        return out

    def per_category(self) -> list[dict[str, Any]]:
        """One row per category: id, name, num_gt, num_results, AP, AP50, AP75 (None when it has no GT)."""
        rows = []
        for k, (cid, name) in enumerate(zip(self.cat_ids, self.cat_names)):
            vals = [per_category_ap(self.precision, k, thr) for thr in (None, 0.5, 0.75)]
            ap, ap50, ap75 = (None if v < 0 else v for v in vals)
            rows.append(
                {"id": cid, "name": name, "num_gt": int(self.num_gt[k]), "num_results": int(self.num_results[k]),
                 "AP": ap, "AP50": ap50, "AP75": ap75}
            )
        return rows


def evaluate(gt: Any, results: Any, flavor: str = "ytvis", class_agnostic: bool = False,
             lenient: bool = False, backend: str | None = None, allow_drops: bool = False) -> dict[str, Any]:
    """Video mask AP of ``results`` against ``gt``.

    Args:
        gt: path, dict or `wsovvis.data.ytvis.YTVIS` with ``annotations``.
        results: path or list of ``{video_id, category_id, score, segmentations: [RLE | None] * length}``, or a
            YouTube-VIS tube JSON (each track one result; videos and categories matched to the GT by name).
        flavor: ``"ytvis"`` (crowd ignored) or ``"lvvis"`` (crowd positive, int areas, base/novel splits).
        class_agnostic: the official ``useCats=0`` protocol (unsupervised VIS).
        lenient: accept segmentation lists of the wrong length and zip-truncate them like the official code.
        backend: ``"kernel"`` (compiled, file-wide batches), ``"pycocotools"`` (per-video batches) or ``"auto"``
            (the kernel when it is built); None: ``$WSOVVIS_EVAL_BACKEND`` or auto. Same numbers either way.
        allow_drops: drop results of categories the GT lacks even when they are more than a small share
            (otherwise an error: such a share usually means the category ids are mapped wrongly).
    Returns:
        ``{AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl}`` (0..1, -1 if undefined),
        plus ``base`` and ``novel`` dicts of the same keys for lvvis.
    """
    return evaluate_full(gt, results, flavor, class_agnostic, lenient, backend=backend,
                         allow_drops=allow_drops).metrics()


def evaluate_full(gt: Any, results: Any, flavor: str = "ytvis", class_agnostic: bool = False,
                  lenient: bool = False, progress: bool | None = None, backend: str | None = None,
                  allow_drops: bool = False) -> EvalResult:
    """Like `evaluate` but returns the `EvalResult` (precision/recall arrays, per-category table)."""
    t0 = time.perf_counter()
    mod = kernel.resolve(backend)
    inp = check_inputs(gt, results, flavor, lenient, use_kernel=mod is not None, class_agnostic=class_agnostic,
                       allow_drops=allow_drops)
    if mod is not None and any(v.height * v.width > 0xFFFFFFFF for v in inp.videos):
        log.warning("frames of more than 2^32 pixels: the kernel counts in 32 bits, using the pycocotools path")
        mod = None
    if mod is not None:
        try:
            rec, num_gt, num_res = batched.match_all(inp, class_agnostic, mod, progress)
        finally:
            mod.release()
    else:
        rec, num_gt, num_res = _match_all(inp, class_agnostic, progress)
    precision, recall = accumulate(rec)
    stats = summarize(precision, recall)
    if class_agnostic:
        cat_ids, cat_names = [-1], ["(class-agnostic)"]
    else:
        cat_ids, cat_names = list(inp.cat_ids), [inp.cat_names[c] for c in inp.cat_ids]
    base = novel = None
    if flavor == "lvvis":
        if class_agnostic:  # one pooled slot: there is no per-category axis to split
            base = dict.fromkeys(STAT_NAMES, -1.0)
            novel = dict.fromkeys(STAT_NAMES, -1.0)
        else:
            # The official code indexes the category axis with id-1; map ids to axis positions instead.
            k_of = {c: k for k, c in enumerate(inp.cat_ids)}
            base_k = np.array([k_of[c] for c, p in inp.partitions.items() if p in BASE_PARTITIONS], dtype=np.int64)
            novel_k = np.array([k_of[c] for c, p in inp.partitions.items() if p in NOVEL_PARTITIONS], dtype=np.int64)
            base = summarize(precision, recall, base_k)
            novel = summarize(precision, recall, novel_k)
    info = {
        "gt": inp.gt_source, "results": inp.results_source, "num_videos": len(inp.videos),
        "num_results": len(inp.results), "num_dropped": inp.num_dropped, "warnings": list(inp.warnings),
        "num_videos_with_results": len(inp.dts_by_video),
        "seconds": time.perf_counter() - t0, "backend": "pycocotools" if mod is None else "kernel",
    }
    log.info(
        "evaluated %d results (%d dropped) on %d videos, %d categories%s in %.2fs (%s backend)", len(inp.results),
        inp.num_dropped, len(inp.videos), len(inp.cat_ids), " (class-agnostic)" if class_agnostic else "",
        info["seconds"], info["backend"],
    )
    return EvalResult(stats, precision, recall, cat_ids, cat_names, num_gt, num_res, flavor, class_agnostic,
                      base, novel, info)


class _RecordBuffer:
    def __init__(self, num_k: int):
        self.parts: list[tuple] = []
        self.npig = np.zeros((num_k, len(AREA_RNG)), dtype=np.int64)
        self.has_entry = np.zeros(num_k, dtype=bool)

    def add(self, k: int, scores: np.ndarray, matched: np.ndarray, ignored: np.ndarray, npig: np.ndarray) -> None:
        self.has_entry[k] = True
        self.npig[k] += npig
        if len(scores):
            n = len(scores)
            self.parts.append((np.full(n, k, dtype=np.int64), scores, np.arange(n), matched, ignored))

    def records(self) -> Records:
        num_t = len(IOU_THRS)
        if not self.parts:
            z = np.zeros(0, dtype=np.int64)
            empty = np.zeros((0, len(AREA_RNG), num_t), dtype=bool)
            return Records(z, np.zeros(0), z, empty, empty, self.npig, self.has_entry)
        cols = list(zip(*self.parts))
        return Records(*(np.concatenate(c) for c in cols), self.npig, self.has_entry)


def _match_all(inp: EvalInputs, class_agnostic: bool, progress: bool | None) -> tuple[Records, np.ndarray, np.ndarray]:
    num_k = 1 if class_agnostic else len(inp.cat_ids)
    k_of = {c: (0 if class_agnostic else k) for k, c in enumerate(inp.cat_ids)}
    cat_rank = {c: k for k, c in enumerate(inp.cat_ids)}
    buf = _RecordBuffer(num_k)
    num_gt = np.zeros(num_k, dtype=np.int64)
    num_res = np.zeros(num_k, dtype=np.int64)
    crowd_ignored = inp.flavor == "ytvis"
    videos = [v for v in inp.videos if v.id in inp.gts_by_video or v.id in inp.dts_by_video]
    for video in progress_bar(videos, progress, desc="eval", unit="video"):
        gts = inp.gts_by_video.get(video.id, [])
        dts = inp.dts_by_video.get(video.id, [])
        _match_video(inp, video, gts, dts, class_agnostic, k_of, cat_rank, crowd_ignored, buf, num_gt, num_res)
    return buf.records(), num_gt, num_res


def _match_video(inp: EvalInputs, video: Video, gts: list[GtTrack], dts: list[int], class_agnostic: bool,
                 k_of: dict[int, int], cat_rank: dict[int, int], crowd_ignored: bool, buf: _RecordBuffer,
                 num_gt: np.ndarray, num_res: np.ndarray) -> None:
    """Check every RLE of one video, intersect co-present frames in bulk, match each (video, category)."""
    results = inp.results
    num_frames = video.length
    dt_cat = np.array([results[i]["category_id"] for i in dts], dtype=np.int64)
    dt_score = np.array([results[i]["score"] for i in dts], dtype=np.float64)
    gt_cat = np.array([g.category_id for g in gts], dtype=np.int64)
    # Pools: per category in file order, or (class-agnostic) concatenated over sorted category ids.
    if class_agnostic:
        keys = [-1] if (len(gts) or len(dts)) else []
        gt_groups = {-1: np.argsort([cat_rank[c] for c in gt_cat.tolist()], kind="mergesort").astype(np.int64)}
        dt_groups = {-1: np.argsort([cat_rank[c] for c in dt_cat.tolist()], kind="mergesort").astype(np.int64)}
    else:
        keys = sorted(set(gt_cat.tolist()) | set(dt_cat.tolist()))
        gt_groups = {c: np.flatnonzero(gt_cat == c) for c in keys}
        dt_groups = {c: np.flatnonzero(dt_cat == c) for c in keys}
    groups = []
    for c in keys:
        d_idx = dt_groups[c]
        d_idx = d_idx[np.argsort(-dt_score[d_idx], kind="mergesort")][: MAX_DETS[-1]]
        groups.append((c, gt_groups[c], d_idx))
    used = np.zeros(len(dts), dtype=bool)
    for _, _, d_idx in groups:
        used[d_idx] = True

    frames: list[dict] = []  # every present GT frame, then every present frame of a kept prediction
    g_track: list[int] = []
    g_t: list[int] = []
    for gi, g in enumerate(gts):
        idx = [t for t, s in enumerate(g.segs) if s is not None]
        frames += [g.segs[t] for t in idx]
        g_t += idx
        g_track += [gi] * len(idx)
    num_g_strings = len(frames)
    d_track: list[int] = []
    d_t: list[int] = []
    dt_len = np.zeros(len(dts), dtype=np.int64)
    for d in np.flatnonzero(used).tolist():
        segs = results[dts[d]]["segmentations"]
        dt_len[d] = len(segs)
        idx = [t for t, s in enumerate(segs) if s is not None]
        frames += [segs[t] for t in idx]
        d_t += idx
        d_track += [d] * len(idx)
    strings, areas, bad = check_rles(frames, video.height * video.width)
    if bad.any():
        _raise_bad_rle(inp, video, gts, dts, g_track, g_t, d_track, d_t, int(np.flatnonzero(bad)[0]), num_g_strings)
    g_track, g_t = np.array(g_track, dtype=np.int64), np.array(g_t, dtype=np.int64)
    d_track, d_t = np.array(d_track, dtype=np.int64), np.array(d_t, dtype=np.int64)
    g_area, d_area = areas[:num_g_strings], areas[num_g_strings:]
    # Prediction track area: mean of its truthy frame areas (an empty-but-present mask does not count).
    truthy = d_area > 0
    area_sum = np.bincount(d_track[truthy], weights=d_area[truthy], minlength=len(dts))
    area_cnt = np.bincount(d_track[truthy], minlength=len(dts))
    dt_avg = np.divide(area_sum, area_cnt, out=np.zeros(len(dts)), where=area_cnt > 0)
    # The IoU runs over zip(prediction, GT): frames past the shorter list count for neither.
    eff = np.minimum(dt_len, num_frames)
    in_zip = d_t < eff[d_track]
    dt_zip_area = np.bincount(d_track[in_zip], weights=d_area[in_zip], minlength=len(dts))
    g_cum = np.zeros((len(gts), num_frames + 1))
    if len(gts):
        np.add.at(g_cum, (g_track, g_t + 1), g_area)
        g_cum = np.cumsum(g_cum, axis=1)

    # Intersections for groups with both predictions and GT, keyed by group so nothing else is walked.
    d_key = np.full(len(dts), -1, dtype=np.int64)
    g_key = np.full(len(gts), -1, dtype=np.int64)
    for n, (_, g_idx, d_idx) in enumerate(groups):
        if len(g_idx) and len(d_idx):
            d_key[d_idx] = n
            g_key[g_idx] = n
    rsel = np.flatnonzero(in_zip & (d_key[d_track] >= 0) & (d_area > 0))
    csel = np.flatnonzero((g_key[g_track] >= 0) & (g_area > 0))
    inter = frame_intersections(
        [strings[num_g_strings + r] for r in rsel.tolist()], d_track[rsel], d_t[rsel], d_key[d_track[rsel]],
        d_area[rsel], [strings[c] for c in csel.tolist()], g_track[csel], g_t[csel], g_key[g_track[csel]],
        (len(dts), len(gts)), video.height, video.width,
    )
    gt_area = np.array([g.avg_area for g in gts], dtype=np.float64)
    gt_crowd = np.array([g.crowd for g in gts], dtype=bool)
    for c, g_idx, d_idx in groups:
        k = k_of[c] if c != -1 else 0
        iou = np.zeros((len(d_idx), len(g_idx)))
        if len(d_idx) and len(g_idx):
            i = inter[np.ix_(d_idx, g_idx)]
            union = dt_zip_area[d_idx, None] + g_cum[g_idx][:, eff[d_idx]].T - i
            np.divide(i, union, out=iou, where=union > 0)
        matched, ignored, npig = match_group(iou, gt_crowd[g_idx], gt_area[g_idx], dt_avg[d_idx], crowd_ignored)
        buf.add(k, dt_score[d_idx], matched, ignored, npig)
        num_gt[k] += len(g_idx)
        num_res[k] += len(dt_groups[c])


def _raise_bad_rle(inp: EvalInputs, video: Video, gts, dts, g_track, g_t, d_track, d_t, bad: int,
                   num_g_strings: int):
    if bad < num_g_strings:
        raise bad_rle_error(inp, video, gts[g_track[bad]], None, int(g_t[bad]))
    b = bad - num_g_strings
    raise bad_rle_error(inp, video, None, dts[d_track[b]], int(d_t[b]))
