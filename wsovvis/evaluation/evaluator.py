"""YouTube-VIS / LV-VIS video mask AP: `evaluate` (the 12 stats) and `evaluate_full` (arrays and tables).

Semantics are those of the official youtubevos ``ytvoseval.py`` and LV-VIS ``lvviseval.py`` (see
``shared/reference/ytvis_eval.md``); the work is organised per video instead of per (prediction, GT,
frame): one numpy decode of every RLE of the video, one IoU call per (video, category) on frames laid side
by side (`wsovvis.evaluation.rle_batch`), then greedy matching and COCO accumulation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from wsovvis.errors import WsovvisError
from wsovvis.evaluation.accumulate import Records, accumulate, per_category_ap, summarize
from wsovvis.evaluation.inputs import EvalInputs, GtTrack, Video, check_inputs
from wsovvis.evaluation.matching import match_group
from wsovvis.evaluation.params import AREA_RNG, BASE_PARTITIONS, IOU_THRS, MAX_DETS, NOVEL_PARTITIONS, STAT_NAMES
from wsovvis.evaluation.rle_batch import decode_counts, video_ious
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
             lenient: bool = False) -> dict[str, Any]:
    """Video mask AP of ``results`` against ``gt``.

    Args:
        gt: path, dict or `wsovvis.data.ytvis.YTVIS` with ``annotations``.
        results: path or list of ``{video_id, category_id, score, segmentations: [RLE | None] * length}``.
        flavor: ``"ytvis"`` (crowd ignored) or ``"lvvis"`` (crowd positive, int areas, base/novel splits).
        class_agnostic: the official ``useCats=0`` protocol (unsupervised VIS).
        lenient: accept segmentation lists of the wrong length and zip-truncate them like the official code.
    Returns:
        ``{AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl}`` (0..1, -1 if undefined),
        plus ``base`` and ``novel`` dicts of the same keys for lvvis.
    """
    return evaluate_full(gt, results, flavor, class_agnostic, lenient).metrics()


def evaluate_full(gt: Any, results: Any, flavor: str = "ytvis", class_agnostic: bool = False,
                  lenient: bool = False, progress: bool | None = None) -> EvalResult:
    """Like `evaluate` but returns the `EvalResult` (precision/recall arrays, per-category table)."""
    t0 = time.perf_counter()
    inp = check_inputs(gt, results, flavor, lenient)
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
        "seconds": time.perf_counter() - t0,
    }
    log.info(
        "evaluated %d results (%d dropped) on %d videos, %d categories%s in %.2fs", len(inp.results),
        inp.num_dropped, len(inp.videos), len(inp.cat_ids), " (class-agnostic)" if class_agnostic else "",
        info["seconds"],
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
    for video in tqdm(videos, desc="eval", unit="video", disable=True if progress is False else None,
                      leave=False):
        gts = inp.gts_by_video.get(video.id, [])
        dts = inp.dts_by_video.get(video.id, [])
        _match_video(inp, video, gts, dts, class_agnostic, k_of, cat_rank, crowd_ignored, buf, num_gt, num_res)
    return buf.records(), num_gt, num_res


def _match_video(inp: EvalInputs, video: Video, gts: list[GtTrack], dts: list[int], class_agnostic: bool,
                 k_of: dict[int, int], cat_rank: dict[int, int], crowd_ignored: bool, buf: _RecordBuffer,
                 num_gt: np.ndarray, num_res: np.ndarray) -> None:
    """Decode every RLE of one video, compute the needed IoUs, match each (video, category), add records."""
    results = inp.results
    length = video.length
    strings: list[str] = []
    gt_slots = np.full((len(gts), length), -1, dtype=np.int64)
    for gi, g in enumerate(gts):
        for t, s in enumerate(g.segs):
            if s is not None:
                gt_slots[gi, t] = len(strings)
                strings.append(s)
    num_gt_strings = len(strings)
    dt_slots: list[list[int]] = []
    for i in dts:
        row = []
        for s in results[i]["segmentations"]:
            if s is None:
                row.append(-1)
            else:
                row.append(len(strings))
                c = s["counts"]
                strings.append(c if isinstance(c, str) else c.decode("ascii", errors="replace"))
        dt_slots.append(row)
    dec = decode_counts(strings, video.height * video.width)
    if dec.bad.any():
        _raise_bad_rle(inp, video, gts, dts, gt_slots, dt_slots, int(np.flatnonzero(dec.bad)[0]), num_gt_strings)
    area_ext = np.append(dec.areas, 0)
    dt_cat = np.array([results[i]["category_id"] for i in dts], dtype=np.int64)
    dt_score = np.array([results[i]["score"] for i in dts], dtype=np.float64)
    dt_area = np.zeros(len(dts))
    for d, row in enumerate(dt_slots):
        a = area_ext[np.asarray(row, dtype=np.int64)] if row else np.zeros(0, np.int64)
        a = a[a > 0]  # truthy areas only: an empty-but-present mask does not lower the mean
        dt_area[d] = a.sum() / a.size if a.size else 0.0
    gt_cat = np.array([g.category_id for g in gts], dtype=np.int64)
    gt_area = np.array([g.avg_area for g in gts], dtype=np.float64)
    gt_crowd = np.array([g.crowd for g in gts], dtype=bool)
    # Pools: per category in file order, or (class-agnostic) concatenated over sorted category ids.
    if class_agnostic:
        gt_pool = [np.argsort([cat_rank[c] for c in gt_cat], kind="mergesort")] if len(gts) else []
        dt_pool = [np.argsort([cat_rank[c] for c in dt_cat], kind="mergesort")] if len(dts) else []
        keys = [-1] if (gt_pool or dt_pool) else []
        gt_groups = {-1: gt_pool[0] if gt_pool else np.zeros(0, np.int64)}
        dt_groups = {-1: dt_pool[0] if dt_pool else np.zeros(0, np.int64)}
    else:
        keys = sorted(set(gt_cat.tolist()) | set(dt_cat.tolist()))
        gt_groups = {c: np.flatnonzero(gt_cat == c) for c in keys}
        dt_groups = {c: np.flatnonzero(dt_cat == c) for c in keys}
    groups = []
    for c in keys:
        g_idx, d_idx = gt_groups[c], dt_groups[c]
        d_idx = d_idx[np.argsort(-dt_score[d_idx], kind="mergesort")][: MAX_DETS[-1]]
        groups.append((c, g_idx, d_idx))
    ious = _group_ious(dec, video, gt_slots, dt_slots, groups)
    for (c, g_idx, d_idx), iou in zip(groups, ious):
        k = k_of[c] if c != -1 else 0
        matched, ignored, npig = match_group(iou, gt_crowd[g_idx], gt_area[g_idx], dt_area[d_idx], crowd_ignored)
        buf.add(k, dt_score[d_idx], matched, ignored, npig)
        num_gt[k] += len(g_idx)
        num_res[k] += len(dt_groups[c])


def _group_ious(dec, video: Video, gt_slots: np.ndarray, dt_slots: list[list[int]], groups: list) -> list[np.ndarray]:
    """IoU matrix [D, G] per group; predictions whose list length differs use the zipped (shorter) frames."""
    out = []
    length = video.length
    for _, g_idx, d_idx in groups:
        iou = np.zeros((len(d_idx), len(g_idx)))
        if len(d_idx) and len(g_idx):
            eff = np.array([min(len(dt_slots[d]), length) for d in d_idx])
            for n in np.unique(eff):
                rows = np.flatnonzero(eff == n)
                d_sl = np.array([dt_slots[d_idx[r]][:n] for r in rows], dtype=np.int64).reshape(len(rows), n)
                iou[rows] = video_ious(dec, d_sl, gt_slots[g_idx, :n], video.height, video.width)
        out.append(iou)
    return out


def _raise_bad_rle(inp: EvalInputs, video: Video, gts, dts, gt_slots, dt_slots, bad: int, num_gt_strings: int):
    if bad < num_gt_strings:
        gi, t = map(int, np.argwhere(gt_slots == bad)[0])
        raise WsovvisError(
            f"{inp.gt_source}: annotations[{gts[gi].index}].segmentations[{t}] (video {video.id}): malformed RLE "
            f"counts or runs that do not add up to {video.height}x{video.width} pixels"
        )
    for d, row in enumerate(dt_slots):
        if bad in row:
            raise WsovvisError(
                f"{inp.results_source}: result[{dts[d]}].segmentations[{row.index(bad)}] (video {video.id}): "
                f"malformed compressed RLE counts or runs that do not add up to {video.height}x{video.width} pixels"
            )
    raise AssertionError("bad RLE index not found")  # pragma: no cover
