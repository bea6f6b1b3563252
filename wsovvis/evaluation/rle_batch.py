"""Batched RLE work for the video IoU: decode many compressed RLEs at once and join frames into one mask.

The video IoU of the official evaluator is Σ_t|d_t ∩ g_t| / Σ_t|d_t ∪ g_t| over the zipped frames, with an
absent frame adding nothing of its own. That is exactly the plain IoU of two "tall" masks made by laying a
track's frames side by side (column-major RLE order), with absent frames as empty frames. So one
``pycocotools.mask.iou`` call per video replaces the per-(prediction, GT, frame) merges of the official
code, and the sums stay integers, so the IoU is the same float division.

Compressed RLE strings are parsed here with numpy (the LEB128-like format of ``rleFrString``: 5 bits per
char offset by 48, 0x20 = more chunks follow, 0x10 = sign of the last chunk, and from the 4th value on a
delta against the value two places back).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

# pycocotools counts pixels in 32-bit unsigned ints; stay well inside when joining frames.
MAX_TALL_PIXELS = 2**31 - 1
# A count below 2^32 (or a delta of two such counts) needs at most 7 chunks of 5 bits.
_MAX_CHUNKS = 7


@dataclass
class DecodedRLEs:
    """Run lengths of ``n`` compressed RLEs of one frame size.

    ``counts`` int64 [N] run lengths (zeros first, alternating), ``parity`` int64 [N] 0 for background
    runs and 1 for foreground runs, ``offsets`` int64 [n + 1] into ``counts``, ``areas`` int64 [n]
    foreground pixels, ``bad`` bool [n]: the string is malformed or its runs do not add up to the frame
    size (the caller turns this into an error that names the item).
    """

    counts: np.ndarray
    parity: np.ndarray
    offsets: np.ndarray
    areas: np.ndarray
    bad: np.ndarray

    @classmethod
    def empty(cls, bad: np.ndarray) -> DecodedRLEs:
        n = bad.size
        z = np.zeros(0, np.int64)
        return cls(z, z, np.zeros(n + 1, np.int64), np.zeros(n, np.int64), bad)


def decode_counts(strings: list[str], pixels: int) -> DecodedRLEs:
    """Parse compressed RLE ``counts`` strings (all of frames with ``pixels`` = H*W) in one numpy pass."""
    n = len(strings)
    lens = np.fromiter(map(len, strings), dtype=np.int64, count=n)
    try:
        raw = "".join(strings).encode("ascii")
    except UnicodeEncodeError:
        return DecodedRLEs.empty(np.array([not s.isascii() for s in strings], dtype=bool))
    if len(raw) == 0:
        return DecodedRLEs.empty(np.ones(n, dtype=bool))
    c = np.frombuffer(raw, dtype=np.uint8).astype(np.int64) - 48
    str_end = np.cumsum(lens)  # exclusive end of each string in the joined buffer
    char_sid = np.repeat(np.arange(n), lens)
    bad_char = (c < 0) | (c > 63)
    more = (c & 0x20) != 0
    is_end = ~more
    # A value never spans two strings: a string whose last char says "more" is malformed.
    last = str_end[lens > 0] - 1
    unterminated = np.zeros(n, dtype=bool)
    unterminated[char_sid[last[more[last]]]] = True
    is_end[last] = True
    ends = np.flatnonzero(is_end)
    starts = np.empty_like(ends)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    nchunks = ends - starts + 1
    k = np.arange(c.size) - np.repeat(starts, nchunks)
    too_long = nchunks > _MAX_CHUNKS
    k = np.minimum(k, _MAX_CHUNKS)
    x = np.add.reduceat((c & 0x1F) << (5 * k), starts)
    neg = (c[ends] & 0x10) != 0
    x = x - (neg.astype(np.int64) << (5 * np.minimum(nchunks, _MAX_CHUNKS)))
    # Value -> string and its index j inside the string; counts[j] = x[j] + counts[j-2] for j >= 3.
    vsid = char_sid[ends]
    m = np.bincount(vsid, minlength=n).astype(np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(m, out=offsets[1:])
    j = np.arange(x.size) - offsets[vsid]
    odd = (j & 1) == 1
    counts = x.copy()
    for chain in (odd, (~odd) & (j >= 2)):
        cs = np.zeros(x.size + 1, dtype=np.int64)
        np.cumsum(np.where(chain, x, 0), out=cs[1:])
        counts[chain] = (cs[1:] - cs[offsets[vsid]])[chain]
    bad_val = (counts < 0) | (counts >= 2**32) | too_long
    cs = np.zeros(x.size + 1, dtype=np.int64)
    np.cumsum(counts, out=cs[1:])
    total = cs[offsets[1:]] - cs[offsets[:-1]]
    cs_fg = np.zeros(x.size + 1, dtype=np.int64)
    np.cumsum(np.where(odd, counts, 0), out=cs_fg[1:])
    areas = cs_fg[offsets[1:]] - cs_fg[offsets[:-1]]
    bad = (total != pixels) | unterminated | (lens == 0)
    bad |= np.bincount(char_sid[bad_char], minlength=n) > 0
    bad |= np.bincount(vsid[bad_val], minlength=n) > 0
    return DecodedRLEs(counts, (j & 1), offsets, areas, bad)


def join_frames(dec: DecodedRLEs, slots: np.ndarray, pixels: int) -> list[np.ndarray]:
    """Uncompressed counts of "tall" masks: each row of ``slots`` [n, L] lists one track's frames.

    ``slots[i, t]`` is an index into ``dec`` or -1 for an absent frame (an empty frame). Returns n uint32
    count arrays of masks of ``L * pixels`` pixels, with adjacent runs of equal value merged.
    """
    n, length = slots.shape
    if n == 0:
        return []
    nvals = dec.counts.size
    counts_ext = np.append(dec.counts, pixels)  # the virtual absent frame: one background run
    parity_ext = np.append(dec.parity, 0)
    flat = slots.reshape(-1)
    present = flat >= 0
    safe = np.where(present, flat, 0)
    slot_start = np.where(present, dec.offsets[safe], nvals)
    slot_m = np.where(present, dec.offsets[safe + 1] - dec.offsets[safe], 1)
    before = np.cumsum(slot_m) - slot_m
    run_idx = np.repeat(slot_start - before, slot_m) + np.arange(int(slot_m.sum()))
    run_len = counts_ext[run_idx]
    run_val = parity_ext[run_idx]
    run_trk = np.repeat(np.repeat(np.arange(n), length), slot_m)
    keep = run_len > 0
    run_len, run_val, run_trk = run_len[keep], run_val[keep], run_trk[keep]
    new_group = np.ones(run_len.size, dtype=bool)
    new_group[1:] = (run_trk[1:] != run_trk[:-1]) | (run_val[1:] != run_val[:-1])
    gstart = np.flatnonzero(new_group)
    glen = np.add.reduceat(run_len, gstart)
    gval = run_val[gstart]
    gtrk = run_trk[gstart]
    first = np.ones(gstart.size, dtype=bool)
    first[1:] = gtrk[1:] != gtrk[:-1]
    # RLE counts start with a background run; a track starting with foreground gets a 0 first.
    lead = np.flatnonzero(first & (gval == 1))
    glen = np.insert(glen, lead, 0)
    gtrk = np.insert(gtrk, lead, gtrk[lead])
    per_track = np.bincount(gtrk, minlength=n)
    return np.split(glen.astype(np.uint32), np.cumsum(per_track)[:-1])


def video_ious(dec: DecodedRLEs, dt_slots: np.ndarray, gt_slots: np.ndarray, height: int, width: int) -> np.ndarray:
    """Official video IoU [D, G] between predictions and GT tracks over the same zipped frames.

    ``dt_slots`` [D, L] / ``gt_slots`` [G, L]: indices into ``dec`` (frames of ``height`` x ``width``) or -1.
    Returns Σ|d∩g| / Σ|d∪g| (0 where the union is empty) as float64, bit-identical to the official sums.
    """
    num_d, num_g = dt_slots.shape[0], gt_slots.shape[0]
    length = dt_slots.shape[1]
    if num_d == 0 or num_g == 0 or length == 0:
        return np.zeros((num_d, num_g))
    pixels = height * width
    area_ext = np.append(dec.areas, 0)
    area_d = area_ext[dt_slots].sum(axis=1)
    area_g = area_ext[gt_slots].sum(axis=1)
    inter = np.zeros((num_d, num_g), dtype=np.int64)
    chunk = max(1, MAX_TALL_PIXELS // pixels)
    for t0 in range(0, length, chunk):
        d_sl, g_sl = dt_slots[:, t0 : t0 + chunk], gt_slots[:, t0 : t0 + chunk]
        d_area = area_ext[d_sl].sum(axis=1)
        rows = np.flatnonzero(d_area > 0)
        cols = np.flatnonzero(area_ext[g_sl].sum(axis=1) > 0)
        if rows.size == 0 or cols.size == 0:
            continue
        tall_w = width * d_sl.shape[1]
        d_rle = _to_rles(join_frames(dec, d_sl[rows], pixels), height, tall_w)
        g_rle = _to_rles(join_frames(dec, g_sl[cols], pixels), height, tall_w)
        # iscrowd=1 gives |d∩g| / |d| exactly; |d| is an integer we know, so the product rounds back.
        frac = np.asarray(mask_utils.iou(d_rle, g_rle, [1] * len(g_rle)), dtype=np.float64)
        inter[np.ix_(rows, cols)] += np.rint(frac * d_area[rows, None]).astype(np.int64)
    union = area_d[:, None] + area_g[None, :] - inter
    out = np.zeros((num_d, num_g))
    np.divide(inter, union, out=out, where=union > 0)
    return out


def _to_rles(counts: list[np.ndarray], height: int, width: int) -> list[dict]:
    return mask_utils.frPyObjects([{"size": [height, width], "counts": c} for c in counts], height, width)
