"""Video IoU and greedy matching for a whole results file at once, on the compiled kernel (`kernel`).

Same numbers as the per-video pycocotools path in `evaluator` (tests compare both on random cases), but
with flat arrays built once for the file instead of Python work per (video, category):

1. Tracks. GT tracks and predictions become arrays (video, category, score, file position); a *group* is a
   (video, category) pair, or a video when class-agnostic, whose pools follow the official order (per
   category: file order; class-agnostic: sorted category id, then file order). One lexsort ranks the
   predictions of every group by score (stable) and keeps the top 100.
2. Frames. Videos are scanned in chunks of at most `CHUNK_SLOTS` frame slots (bounded memory): the kernel
   parses each present RLE once (validity, area, box, foreground intervals), then intersects every
   co-present (prediction frame, GT frame) pair of the same group and frame. A pair's bucket is
   ``group * max_len + t``; its sum lands in ``inter[pair_base[group] + rank * G + gt_position]``. Chunks run in
   up to `MAX_THREADS` threads (the kernel releases the GIL; a chunk's ``inter`` slots are its own) and their
   sums are added up in chunk order. Results read by `flat_results` are scanned straight from its tables.
3. IoU = Σ|d∩g| / (Σ|d| + Σ|g| - Σ|d∩g|) over the zipped frames, from integer sums: prediction areas inside
   the zip and prefix sums of GT frame areas (a lenient short prediction cuts the GT's sum too).
4. The kernel's greedy matching runs over every group, area range and threshold in one call.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

import numpy as np

from wsovvis.evaluation import kernel
from wsovvis.evaluation.accumulate import Records
from wsovvis.evaluation.flat_results import FlatResults
from wsovvis.evaluation.inputs import EvalInputs, GtTrack, bad_rle_error
from wsovvis.evaluation.matching import out_of_range
from wsovvis.evaluation.params import AREA_RNG, MATCH_THRS, MAX_DETS
from wsovvis.evaluation.progress import progress_bar
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

# Frame slots (Σ list lengths) per kernel scan. The scan keeps the foreground intervals of one chunk (8 bytes per
# run, so at most ~8 bytes per RLE char with buffer growth): ~10 MB for 360x640 object masks. Smaller chunks
# were not measurably slower.
CHUNK_SLOTS = 1 << 14
# Chunks scanned and intersected at once, in threads (the kernel releases the GIL); each holds its intervals.
MAX_THREADS = 4


def num_workers(num_chunks: int) -> int:
    """Threads for ``num_chunks`` chunks: at most `MAX_THREADS`, the usable cores, the chunks."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_THREADS, cores, num_chunks))


def _exclusive_cumsum(x: np.ndarray) -> np.ndarray:
    out = np.zeros(len(x) + 1, dtype=np.int64)
    np.cumsum(x, out=out[1:])
    return out


def match_all(inp: EvalInputs, class_agnostic: bool, mod: ModuleType,
              progress: bool | None = None) -> tuple[Records, np.ndarray, np.ndarray]:
    """Records (rows in (video, category, rank) order), num_gt [K] and num_results [K], like the per-video path."""
    results = inp.results
    videos = inp.videos
    num_k = 1 if class_agnostic else len(inp.cat_ids)
    cat_rank = {c: k for k, c in enumerate(inp.cat_ids)}
    v_len = np.array([v.length for v in videos], dtype=np.int64)
    v_h = np.array([v.height for v in videos], dtype=np.int64)
    v_w = np.array([v.width for v in videos], dtype=np.int64)

    # 1. Tracks, video-major, file order inside a video.
    gts: list[GtTrack] = [g for v in videos for g in inp.gts_by_video.get(v.id, ())]
    g_vid = np.repeat(np.arange(len(videos)), [len(inp.gts_by_video.get(v.id, ())) for v in videos])
    g_cat = np.array([cat_rank[g.category_id] for g in gts], dtype=np.int64)
    g_index = np.array([g.index for g in gts], dtype=np.int64)
    d_file = np.array([i for v in videos for i in inp.dts_by_video.get(v.id, ())], dtype=np.int64)
    d_vid = np.repeat(np.arange(len(videos)), [len(inp.dts_by_video.get(v.id, ())) for v in videos])
    flat = results if isinstance(results, FlatResults) else None
    if flat is not None:  # arrays already; every category id is a GT category (checked)
        d_cat = np.searchsorted(np.array(inp.cat_ids, dtype=np.int64), flat.category_id[d_file])
        d_score = flat.score[d_file]
    else:
        d_res = [results[i] for i in d_file.tolist()]
        d_cat = np.array([cat_rank[r["category_id"]] for r in d_res], dtype=np.int64)
        d_score = np.array([r["score"] for r in d_res], dtype=np.float64)

    slot_of = (lambda c: np.zeros_like(c)) if class_agnostic else (lambda c: c)
    width = 1 if class_agnostic else num_k
    keys, inv = np.unique(np.concatenate([g_vid * width + slot_of(g_cat), d_vid * width + slot_of(d_cat)]),
                          return_inverse=True)
    num_groups = len(keys)
    grp_k = keys % width
    g_grp, d_grp = inv[: len(gts)], inv[len(gts):]
    pool_cat = (lambda c: c) if class_agnostic else np.zeros_like

    # Predictions: stable score sort inside each group's pool, top 100.
    order = np.lexsort((d_file, pool_cat(d_cat), -d_score, d_grp))
    sorted_grp = d_grp[order]
    rank = np.arange(len(order)) - np.searchsorted(sorted_grp, sorted_grp)
    keep = rank < MAX_DETS[-1]
    rows = order[keep]  # prediction index (into d_*) of each Records row
    row_grp, row_rank = sorted_grp[keep], rank[keep]
    num_d = np.bincount(row_grp, minlength=num_groups)
    row_of = np.full(len(d_file), -1, dtype=np.int64)
    row_of[rows] = np.arange(len(rows))
    d_len = np.zeros(len(d_file), dtype=np.int64)
    kept = np.flatnonzero(row_of >= 0)  # video-major, file order
    if flat is not None:  # the scan reads result k's frames from the flat tables
        d_lists = d_file[kept].tolist()
        d_len[kept] = flat.length[d_file[kept]]
    else:
        d_lists = [d_res[i]["segmentations"] for i in kept.tolist()]  # per kept prediction, in `kept` order
        d_len[kept] = [len(x) for x in d_lists]
    # GTs: pool order inside each group.
    g_order = np.lexsort((g_index, pool_cat(g_cat), g_grp))
    num_g = np.bincount(g_grp, minlength=num_groups)
    g_start = _exclusive_cumsum(num_g)[:-1]
    g_pos = np.empty(len(gts), dtype=np.int64)
    g_pos[g_order] = np.arange(len(gts)) - g_start[g_grp[g_order]]

    paired = (num_d > 0) & (num_g > 0)
    pair_base = _exclusive_cumsum(np.where(paired, num_d * num_g, 0))
    inter = np.zeros(int(pair_base[-1]), dtype=np.int64)

    # 2. Frames, chunk by chunk. Scan order: per video its GTs, then its kept predictions (file order), so the
    # first bad RLE reported is the one the per-video path reports.
    g_off = _exclusive_cumsum(v_len[g_vid] + 1)  # prefix sums of GT frame areas: g_off[g] + t + 1
    g_frame_area = np.zeros(int(g_off[-1]), dtype=np.int64)
    n_rows = len(rows)
    area_sum = np.zeros(n_rows, dtype=np.int64)
    area_cnt = np.zeros(n_rows, dtype=np.int64)
    zip_area = np.zeros(n_rows, dtype=np.int64)
    s_vid = np.concatenate([g_vid, d_vid[kept]])
    s_is_dt = np.concatenate([np.zeros(len(gts), dtype=bool), np.ones(len(kept), dtype=bool)])
    s_idx = np.concatenate([np.arange(len(gts)), kept])
    s_order = np.lexsort((s_idx, s_is_dt, s_vid))
    s_vid, s_is_dt, s_idx = s_vid[s_order], s_is_dt[s_order], s_idx[s_order]
    s_lists = [*(g.segs for g in gts), *d_lists]  # concatenation order of s_vid above, before s_order
    s_lists = [s_lists[i] for i in s_order.tolist()]
    s_need = np.zeros(len(s_idx), dtype=bool)  # tracks of groups with both sides: their runs are kept
    dt_pos, gt_pos = np.flatnonzero(s_is_dt), np.flatnonzero(~s_is_dt)
    s_need[dt_pos] = paired[row_grp[row_of[s_idx[dt_pos]]]]
    s_need[gt_pos] = paired[g_grp[s_idx[gt_pos]]]
    s_slots = v_len[s_vid]
    s_slots[s_is_dt] = d_len[s_idx[s_is_dt]]
    v_first = np.searchsorted(s_vid, np.arange(len(videos) + 1))
    v_chunk = _exclusive_cumsum(np.bincount(s_vid, weights=s_slots, minlength=len(videos)).astype(np.int64))
    chunk_of_video = v_chunk[:-1] // CHUNK_SLOTS
    bounds = v_first[np.r_[np.flatnonzero(np.diff(chunk_of_video)) + 1, len(videos)]] if len(videos) else []
    t_span = int(max(v_len.max(initial=0), d_len.max(initial=0))) + 1
    handle = flat.handle if flat is not None else None

    def scan_chunk(sel: slice) -> tuple:
        """Scan and intersect one chunk (runs in a worker thread: the kernel calls release the GIL, and the
        chunk's ``inter`` slots are its own); -> what the caller adds up, in chunk order."""
        is_dt, idx = s_is_dt[sel], s_idx[sel]
        sc = kernel.scan(mod, s_lists[sel], v_h[s_vid[sel]], v_w[s_vid[sel]], s_need[sel], handle)
        if len(sc.bad):
            track, t = (int(x) for x in sc.bad[0])
            return ("bad", bool(is_dt[track]), int(idx[track]), int(s_vid[sel][track]), t)
        f_dt = is_dt[sc.track]
        f_idx = idx[sc.track]
        gf = np.flatnonzero(~f_dt)
        gi = f_idx[gf]
        df = np.flatnonzero(f_dt)
        dr = row_of[f_idx[df]]
        d_area, d_t = sc.area[df], sc.t[df]
        in_zip = d_t < v_len[d_vid[rows[dr]]]  # zip(prediction, GT): frames past the video count for neither
        a = np.flatnonzero(in_zip & (d_area > 0) & paired[row_grp[dr]])
        b = np.flatnonzero((sc.area[gf] > 0) & paired[g_grp[gi]])
        walks = 0
        if len(a) and len(b):
            ag, bg = row_grp[dr[a]], gi[b]
            walks = kernel.intersect(
                mod, sc, df[a], ag * t_span + d_t[a], pair_base[ag] + row_rank[dr[a]] * num_g[ag],
                gf[b], g_grp[bg] * t_span + sc.t[gf][b], g_pos[bg], inter,
            )
        return ("ok", g_off[gi] + sc.t[gf] + 1, sc.area[gf], dr, d_area, in_zip, walks)

    chunks = []
    start = 0
    for end in bounds:
        if int(end) > start:
            chunks.append(slice(start, int(end)))
        start = int(end)
    walks = 0
    workers = num_workers(len(chunks))
    pool = ThreadPoolExecutor(workers, thread_name_prefix="wsovvis-eval") if workers > 1 else None
    try:
        outs = pool.map(scan_chunk, chunks) if pool is not None else map(scan_chunk, chunks)
        for out in progress_bar(outs, progress, total=len(chunks), desc="eval", unit="chunk"):
            if out[0] == "bad":  # the first bad frame in scan order: the one the per-video path reports
                _, is_dt, i, v, t = out
                if is_dt:
                    raise bad_rle_error(inp, videos[v], None, int(d_file[i]), t)
                raise bad_rle_error(inp, videos[v], gts[i], None, t)
            _, g_slot, g_area, dr, d_area, in_zip, w = out
            g_frame_area[g_slot] = g_area
            area_sum += np.bincount(dr, weights=d_area, minlength=n_rows).astype(np.int64)
            area_cnt += np.bincount(dr[d_area > 0], minlength=n_rows)
            zip_area += np.bincount(dr, weights=np.where(in_zip, d_area, 0), minlength=n_rows).astype(np.int64)
            walks += w
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    # 3. Video IoU of every (prediction, GT) pair of every group.
    g_cum = np.cumsum(g_frame_area)
    pair_grp = np.repeat(np.arange(num_groups), np.diff(pair_base))
    local = np.arange(len(inter)) - pair_base[pair_grp]
    p_row = _exclusive_cumsum(num_d)[pair_grp] + local // np.maximum(num_g[pair_grp], 1)
    p_gt = g_order[g_start[pair_grp] + local % np.maximum(num_g[pair_grp], 1)]
    eff = np.minimum(d_len[rows[p_row]], v_len[d_vid[rows[p_row]]])
    g_sum = g_cum[g_off[p_gt] + eff] - g_cum[g_off[p_gt]]
    union = zip_area[p_row] + g_sum - inter
    iou = np.zeros(len(inter))
    np.divide(inter, union, out=iou, where=union > 0)

    # 4. Greedy matching of all groups; GT arrays in pool order.
    gt_area = np.array([g.avg_area for g in gts], dtype=np.float64)[g_order]
    gt_crowd = np.array([g.crowd for g in gts], dtype=bool)[g_order]
    gt_ignore = out_of_range(gt_area).T  # [G, A]
    if inp.flavor == "ytvis":
        gt_ignore = gt_ignore | gt_crowd[:, None]
    dt_avg = np.zeros(n_rows)
    np.divide(area_sum, area_cnt, out=dt_avg, where=area_cnt > 0)
    groups = np.stack([num_d, num_g, pair_base[:-1], _exclusive_cumsum(num_d)[:-1], g_start], axis=1)
    matched, ignored = kernel.greedy(mod, iou, groups, gt_ignore, gt_crowd, out_of_range(dt_avg).T,
                                     np.array(MATCH_THRS))
    log.debug("kernel path: %d groups, %d prediction rows, %d GT tracks, %d frame pairs merged", num_groups,
              n_rows, len(gts), walks)

    gk = grp_k[g_grp[g_order]]
    npig = np.stack([np.bincount(gk, weights=~gt_ignore[:, a], minlength=num_k) for a in range(len(AREA_RNG))],
                    axis=1).astype(np.int64)
    has_entry = np.zeros(num_k, dtype=bool)
    has_entry[grp_k] = True
    rec = Records(grp_k[row_grp], d_score[rows], row_rank, matched, ignored, npig, has_entry)
    num_gt = np.bincount(grp_k[g_grp], minlength=num_k).astype(np.int64)
    num_res = np.bincount(grp_k[d_grp], minlength=num_k).astype(np.int64)
    return rec, num_gt, num_res
