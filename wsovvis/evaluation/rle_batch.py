"""Batched RLE work for the video IoU: check many compressed RLEs at once, then intersect them in bulk.

Two facts make the video IoU cheap to batch:

* It is a ratio of integer sums, Σ_t|d_t ∩ g_t| / Σ_t(|d_t| + |g_t| - |d_t ∩ g_t|) over the zipped
  frames, so only per-frame areas and per-frame intersections of co-present frames are needed.
* ``pycocotools.mask.iou`` prefilters pairs by bounding box, then skips pairs whose RLE ``size`` differs.
  Declaring each frame's RLE with a width that encodes (frame, group) lets one call intersect a block of
  frames and categories at once: only same-frame, same-group pairs are walked. The declared width does
  not change the walk (it runs over the counts) and only widens the bounding box, which is safe.
  With ``iscrowd=1`` the call returns |d∩g| / |d|, and |d| is known, so the product rounds back to the
  exact integer intersection.

Before any RLE reaches a pycocotools pairwise walk its counts must add up to the frame size: a walk over
two RLEs of different totals never ends (the official evaluator hangs on such input, e.g. masks encoded
at another resolution than the ``size`` they claim). `check_rles` verifies that first.

Compressed counts (``rleFrString``): one value per run of chars, 5 bits per char offset by 48, 0x20 =
more chunks follow, 0x10 = sign of the last chunk; values from the 4th on are deltas against the value
two places back.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

# The first count (at most the frame size, < 2^29) never needs more than 6 chunks of 5 bits.
MAX_CHUNKS = 6
# Bound on (rows x columns) of one pycocotools iou call: its box prefilter is quadratic.
PAIR_BUDGET = 1 << 14


def check_rles(frames: list[dict], pixels: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Validity and areas of compressed RLEs ``{size, counts}`` of frames with ``pixels`` = H*W pixels.

    Returns the ``counts`` strings, ``areas`` int64 [n] (foreground pixels) and ``bad`` bool [n]: the
    string is not valid compressed RLE (non-ASCII or out-of-range chars, a value running past the end, a
    negative first run) or its runs do not add up to ``pixels``.

    The total is found with pycocotools' own parser, which sums only the odd (foreground) counts: parsed
    with one extra leading value (``"0" + s``) the old even counts land on odd positions. Because later
    values are deltas against the value two places back, the old counts 2, 4, ... come out shifted by
    counts[0], so Σ counts = area(s) + area("0" + s) - ⌊(m-1)/2⌋·counts[0] with m values in s. This is
    exact modulo 2^32, the width pycocotools counts in; a string whose counts sum to the frame size plus
    a multiple of 2^32 would pass, which takes a deliberately crafted string.
    """
    strings = [f["counts"] for f in frames]
    if any(type(c) is not str for c in strings):
        strings = [c.decode("ascii", errors="replace") if isinstance(c, bytes) else c for c in strings]
    n = len(strings)
    areas = np.zeros(n, dtype=np.int64)
    if n == 0:
        return strings, areas, np.zeros(0, dtype=bool)
    non_ascii = None
    try:
        raw = "".join(strings).encode("ascii")
    except UnicodeEncodeError:
        non_ascii = np.array([not s.isascii() for s in strings], dtype=bool)
        strings = ["" if b else s for s, b in zip(strings, non_ascii)]
        raw = "".join(strings).encode("ascii")
    lens = np.fromiter(map(len, strings), dtype=np.int64, count=n)
    end = np.cumsum(lens)
    start = end - lens
    bad = lens == 0
    if non_ascii is not None:
        bad |= non_ascii
    if len(raw) == 0:
        return strings, areas, bad
    c = np.frombuffer(raw, dtype=np.uint8) - np.uint8(48)
    if (c > 63).any():
        bad[np.searchsorted(end, np.flatnonzero(c > 63), side="right")] = True
    term = c < 32  # a char without the 0x20 "more" bit ends a value
    ok = np.flatnonzero(~bad)
    bad[ok[~term[end[ok] - 1]]] = True  # the last value runs past the end of the string
    nonempty = np.flatnonzero(lens > 0)  # their chars tile the buffer, so reduceat segments are exact
    m = np.zeros(n, dtype=np.int64)
    m[nonempty] = np.add.reduceat(term.view(np.uint8), start[nonempty], dtype=np.int64)
    # counts[0]: the first value, at most MAX_CHUNKS chars, stored raw.
    first = start[:, None] + np.arange(MAX_CHUNKS)[None, :]
    chars = c[np.minimum(first, np.maximum(end - 1, 0)[:, None])].astype(np.int64)
    is_term = (chars < 32) & (first < end[:, None])
    has_term = is_term.any(axis=1)
    bad |= ~has_term
    k0 = np.argmax(is_term, axis=1)
    rows = np.arange(n)
    c0 = (chars[rows, k0] ^ 16) - 16
    for k in range(MAX_CHUNKS - 2, -1, -1):
        use = k < k0
        c0 = np.where(use, (c0 << 5) + (chars[:, k] & 31), c0)
    bad |= c0 < 0
    ok = np.flatnonzero(~bad)  # only well-formed strings go to the C parser
    size = [1, 1]  # area() ignores the size; one shared list saves an allocation per string
    if ok.size == n and non_ascii is None:
        a1 = _areas(frames)
        a2 = _areas([{"size": size, "counts": "0" + c} for c in strings])
    else:
        a1 = _areas([{"size": size, "counts": strings[i]} for i in ok.tolist()])
        a2 = _areas([{"size": size, "counts": "0" + strings[i]} for i in ok.tolist()])
    total = (a1 + a2 - ((m[ok] - 1) // 2) * c0[ok]) % (1 << 32)
    bad[ok[total != pixels]] = True
    areas[ok] = a1
    return strings, areas, bad


def _areas(objs: list[dict]) -> np.ndarray:
    """pycocotools areas in chunks (its ``area`` fails on lists longer than 255 with numpy 2)."""
    parts = [mask_utils.area(objs[i : i + 255]) for i in range(0, len(objs), 255)]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def frame_intersections(
    rows: list[str], row_track: np.ndarray, row_t: np.ndarray, row_key: np.ndarray, row_area: np.ndarray,
    cols: list[str], col_track: np.ndarray, col_t: np.ndarray, col_key: np.ndarray,
    shape: tuple[int, int], height: int, width: int,
) -> np.ndarray:
    """Σ_t |d_t ∩ g_t| over same-frame, same-key (group) pairs: int64 ``shape`` = [D, G].

    ``rows`` / ``cols``: checked compressed counts of predicted / GT frames, with their track index, frame
    index ``t`` and group key (category slot); ``row_area``: |d_t| of each row. Frames of equal (t, key)
    are intersected; everything else is never walked.
    """
    inter = np.zeros(shape[0] * shape[1], dtype=np.float64)
    if not rows or not cols:
        return inter.reshape(shape).astype(np.int64)
    nkeys = int(max(row_key.max(), col_key.max())) + 1
    frames = np.union1d(np.unique(row_t), np.unique(col_t))
    r_per_t = np.bincount(np.searchsorted(frames, row_t), minlength=frames.size)
    c_per_t = np.bincount(np.searchsorted(frames, col_t), minlength=frames.size)
    r_cum, c_cum = np.cumsum(r_per_t), np.cumsum(c_per_t)
    i = 0
    while i < frames.size:
        # grow the chunk of frames while rows x cols stays within budget
        j = i + 1
        while j < frames.size:
            nr = r_cum[j] - (r_cum[i - 1] if i else 0)
            nc = c_cum[j] - (c_cum[i - 1] if i else 0)
            if nr * nc > PAIR_BUDGET:
                break
            j += 1
        t_lo, t_hi = frames[i], frames[j - 1]
        ri = np.flatnonzero((row_t >= t_lo) & (row_t <= t_hi))
        ci = np.flatnonzero((col_t >= t_lo) & (col_t <= t_hi))
        i = j
        if ri.size == 0 or ci.size == 0:
            continue
        r_code = (row_t[ri] - t_lo) * nkeys + row_key[ri]
        c_code = (col_t[ci] - t_lo) * nkeys + col_key[ci]
        # keep only rows and columns that have a partner of the same (frame, key)
        ri, r_code = ri[np.isin(r_code, c_code)], r_code[np.isin(r_code, c_code)]
        keep_c = np.isin(c_code, r_code)
        ci, c_code = ci[keep_c], c_code[keep_c]
        if ri.size == 0:
            continue
        sizes = {k: [height, width + k] for k in np.unique(r_code).tolist()}
        d_rles = [{"size": sizes[k], "counts": rows[r]} for r, k in zip(ri.tolist(), r_code.tolist())]
        g_rles = [{"size": sizes[k], "counts": cols[g]} for g, k in zip(ci.tolist(), c_code.tolist())]
        frac = np.asarray(mask_utils.iou(d_rles, g_rles, [1] * len(g_rles)), dtype=np.float64)
        # same-code pairs: for each row, the columns whose code equals the row's
        c_sort = np.argsort(c_code, kind="stable")
        c_sorted = c_code[c_sort]
        lo = np.searchsorted(c_sorted, r_code, side="left")
        hi = np.searchsorted(c_sorted, r_code, side="right")
        cnt = hi - lo
        pr = np.repeat(np.arange(ri.size), cnt)
        pc = c_sort[np.repeat(lo - np.cumsum(cnt) + cnt, cnt) + np.arange(int(cnt.sum()))]
        vals = np.rint(frac[pr, pc] * row_area[ri[pr]])
        flat = row_track[ri[pr]] * shape[1] + col_track[ci[pc]]
        inter += np.bincount(flat, weights=vals, minlength=inter.size)
    return inter.reshape(shape).astype(np.int64)
