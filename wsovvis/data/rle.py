"""COCO run-length encoding of binary masks, always in the compressed (string counts) form.

YouTube-VIS files store one RLE per frame; results files must use compressed RLE, so
every writer in wsovvis produces ``{"size": [H, W], "counts": str}``.
"""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

RLE = dict[str, Any]

ENCODE_ABI = 1  # must equal ENCODE_ABI in csrc/rle_encode.c: a stale build is not used
ENCODER_ENV = "WSOVVIS_RLE_ENCODER"  # "numpy" forces the fallback (tests compare the two)
_encoder: dict[str, ModuleType | None] = {}


def encode(mask: np.ndarray) -> RLE:
    """Binary mask ``[H, W]`` (bool or 0/1) -> compressed RLE with ``counts`` as ``str``."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8, copy=False)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def encode_stack(masks: np.ndarray) -> list[RLE]:
    """Binary masks ``[N, H, W]`` -> N compressed RLEs (one pycocotools call)."""
    if masks.shape[0] == 0:
        return []
    arr = np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8, copy=False))
    rles = mask_utils.encode(arr)
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return rles


def _runs(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Maximal runs of equal ids of ``stack [T, H, W]``, each frame read in column-major (COCO) order.

    Returns ``starts``, ``ends`` (indices into the frames' column-major pixels laid end to end),
    ``vals`` and ``frame`` of every run. Run starts are found in the C-order array (vertical
    neighbours are consecutive in column-major order; the last row meets the next column's first
    row) and then sorted: sorting a few thousand starts costs less than a transposed copy of
    every pixel.
    """
    t_len, h, w = stack.shape
    hw = h * w
    k = np.flatnonzero(stack[:, 1:, :] != stack[:, :-1, :])
    t_in, r = np.divmod(k, (h - 1) * w)
    y, x = np.divmod(r, w)
    k2 = np.flatnonzero(stack[:, 0, 1:] != stack[:, -1, :-1])
    t_across, x2 = np.divmod(k2, w - 1)
    t_first = np.arange(t_len)
    col_major = np.concatenate((t_first * hw, t_in * hw + x * h + y + 1, t_across * hw + (x2 + 1) * h))
    c_order = np.concatenate((t_first * hw, k + (t_in + 1) * w, t_across * hw + x2 + 1))
    frame = np.concatenate((t_first, t_in, t_across))
    order = np.argsort(col_major, kind="stable")
    starts = col_major[order]
    ends = np.append(starts[1:], t_len * hw)
    return starts, ends, stack.reshape(-1)[c_order[order]], frame[order]


def encode_id_map(ids: np.ndarray, track_ids: list[int] | np.ndarray | None = None) -> tuple[list[int], list[RLE]]:
    """Instance-id map ``[H, W]`` -> (track ids, one compressed RLE per id) in one pass over the pixels.

    ``track_ids=None`` encodes every non-zero id present (ascending). Requested ids that are absent
    get an empty-mask RLE. The run boundaries of the whole map are found once, so the cost does
    not grow with the number of ids the way per-id binary masks would.
    """
    h, w = ids.shape
    n = h * w
    starts, ends, vals, _ = _runs(ids[None])
    order = np.argsort(vals, kind="stable")
    present, first = np.unique(vals[order], return_index=True)
    bounds = dict(zip(present.tolist(), zip(first.tolist(), [*first[1:].tolist(), len(order)])))
    wanted = [int(v) for v in present if v != 0] if track_ids is None else [int(v) for v in track_ids]
    objs = []
    for tid in wanted:
        if tid not in bounds:
            objs.append({"size": [h, w], "counts": [n]})
            continue
        lo, hi = bounds[tid]
        sel = order[lo:hi]
        edges = np.empty(2 * len(sel) + 2, dtype=np.int64)
        edges[0], edges[-1] = 0, n
        edges[1:-1:2], edges[2:-1:2] = starts[sel], ends[sel]
        counts = np.diff(edges).tolist()
        if counts[-1] == 0:  # pycocotools ends on the last run of ones; keep strings identical to its encoder
            counts.pop()
        objs.append({"size": [h, w], "counts": counts})
    if not objs:
        return [], []
    rles = mask_utils.frPyObjects(objs, h, w)
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return wanted, rles


def _compress_counts(counts: np.ndarray, first: np.ndarray) -> list[str]:
    """COCO's string form of many count lists at once (``rleToString``, vectorised).

    counts: all lists laid end to end; first: index of each list's first count.
    Each count (from the 4th on, minus the count two places back) is written as 5-bit groups,
    low bits first, with 0x20 as the continuation flag and 48 added to every character.
    """
    n = len(counts)
    idx = np.arange(n)
    within = idx - np.repeat(first, np.diff(np.append(first, n)))
    x = counts.copy()
    delta = np.flatnonzero(within > 2)
    x[delta] -= counts[delta - 2]
    n_chars = np.ones(n, dtype=np.int64)
    rounds = []  # (which counts, their characters) per 5-bit group
    who = idx
    while len(who):  # at most 7 groups for any count of a 2^31-pixel frame
        c = x & 0x1F
        x = x >> 5
        more = x != -((c >> 4) & 1)  # sign-extended rest still carries information
        rounds.append((who, (c + 48 + 32 * more).astype(np.uint8)))
        keep = np.flatnonzero(more)
        who, x = who[keep], x[keep]
        n_chars[who] += 1
    offsets = np.cumsum(n_chars) - n_chars
    text = np.empty(int(n_chars.sum()), dtype=np.uint8)
    for r, (who, chars) in enumerate(rounds):
        text[offsets[who] + r] = chars
    ends = np.cumsum(np.add.reduceat(n_chars, first)).tolist()
    s = text.tobytes().decode("ascii")
    return [s[a:b] for a, b in zip([0, *ends[:-1]], ends)]


def encode_id_stack(stack: np.ndarray) -> list[list[tuple[int, RLE, int, list[float]]]]:
    """Id maps ``[T, H, W]`` -> per frame ``[(track_id, RLE, area, [x, y, w, h]), ...]`` (ids ascending, 0 skipped).

    All frames go through the same few array operations (runs, grouping by (frame, id), counts,
    their string form, areas and boxes by ``reduceat``), so neither small frames nor many ids pay
    Python overhead per pixel run. Strings, areas and boxes equal pycocotools' ``encode``,
    ``area`` and ``toBbox``.
    """
    t_len, h, w = stack.shape
    hw = h * w
    result: list[list] = [[] for _ in range(t_len)]
    if stack.size == 0:
        return result
    starts, ends, vals, frame = _runs(stack)
    keep = vals != 0
    if not keep.any():
        return result
    starts, ends, vals, frame = starts[keep], ends[keep], vals[keep].astype(np.int64), frame[keep]
    top = int(vals.max())
    present = np.flatnonzero(np.bincount(vals)) if top < 1 << 20 else np.unique(vals)
    if len(present) <= 32:  # group by id with a few comparisons; runs keep pixel order
        order = np.concatenate([np.flatnonzero(vals == v) for v in present])
        key = vals[order] * t_len + frame[order]
    else:
        key = frame * (top + 1) + vals
        order = np.argsort(key, kind="stable")
        key = key[order]
    frame, vals = frame[order], vals[order]
    s, e = starts[order] - frame * hw, ends[order] - frame * hw
    new_group = np.empty(len(key), dtype=bool)
    new_group[0] = True
    new_group[1:] = key[1:] != key[:-1]
    first = np.flatnonzero(new_group)
    last = np.append(first[1:], len(key)) - 1
    prev_end = np.empty_like(e)
    prev_end[0] = 0
    prev_end[1:] = e[:-1]
    prev_end[new_group] = 0
    # counts of one group: gap, run, gap, run, ..., trailing zeros (dropped when 0, as pycocotools does)
    group_of_run = np.cumsum(new_group) - 1
    pos = 2 * np.arange(len(key)) + group_of_run
    counts = np.empty(2 * len(key) + len(first), dtype=np.int64)
    counts[pos] = s - prev_end
    counts[pos + 1] = e - s
    counts[pos[last] + 2] = hw - e[last]
    kept = np.ones(len(counts), dtype=bool)
    kept[pos[last] + 2] = counts[pos[last] + 2] != 0
    group_start = pos[first] - np.cumsum(np.concatenate(([0], ~kept[pos[last][:-1] + 2])))
    strings = _compress_counts(counts[kept], group_start)
    areas = np.add.reduceat(e - s, first)
    c0, c1 = s // h, (e - 1) // h
    wraps = c1 > c0  # a run over a column break covers the top and the bottom rows
    y0 = np.minimum.reduceat(np.where(wraps, 0, s % h), first)
    y1 = np.maximum.reduceat(np.where(wraps, h - 1, (e - 1) % h), first)
    x0, x1 = np.minimum.reduceat(c0, first), np.maximum.reduceat(c1, first)
    boxes = np.stack([x0, y0, x1 - x0 + 1, y1 - y0 + 1], axis=1).astype(float).tolist()
    for text, f, v, a, b in zip(strings, frame[first].tolist(), vals[first].tolist(), areas.tolist(), boxes):
        result[f].append((v, {"size": [h, w], "counts": text}, a, b))
    return result


def _compiled_encoder() -> ModuleType | None:
    """``wsovvis.data._rle_encode`` when built and current, else None (the numpy encoder gives the same output)."""
    if os.environ.get(ENCODER_ENV) == "numpy":
        return None
    if "mod" not in _encoder:
        try:
            mod = importlib.import_module("wsovvis.data._rle_encode")
        except ImportError:
            mod = None
        _encoder["mod"] = mod if getattr(mod, "ABI", None) == ENCODE_ABI else None
    return _encoder["mod"]


def has_compiled_encoder() -> bool:
    return _compiled_encoder() is not None


_NATIVE_INTS = {np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64,
                                      np.int64)}


def encode_id_maps(maps: list[np.ndarray]) -> list[list[tuple[int, RLE, int, list[float]]]]:
    """Id maps of one size, each ``[H, W]`` -> per map ``[(track_id, RLE, area, [x, y, w, h]), ...]``.

    Same output as `encode_id_stack`. The compiled encoder reads each map in place (one pass in
    column-major order, padded rows welcome); without it the maps are stacked and encoded with numpy.
    """
    mod = _compiled_encoder()
    if mod is None:
        return encode_id_stack(maps[0][None] if len(maps) == 1 else np.stack(maps)) if maps else []
    out = []
    for m in maps:
        if m.dtype not in _NATIVE_INTS:
            m = m.astype(np.int64)
        elif m.ndim == 2 and m.shape[1] > 1 and m.strides[1] != m.itemsize:
            m = np.ascontiguousarray(m)
        out.append(mod.encode_frame(m))
    return out


def encode_ids(ids: np.ndarray, track_ids: list[int] | np.ndarray) -> list[RLE]:
    """Instance-id map ``[H, W]`` -> one RLE per requested id (mask = ``ids == id``)."""
    if len(track_ids) == 0:
        return []
    return encode_id_map(ids, track_ids)[1]


def areas_and_boxes(rles: list[RLE]) -> tuple[list[int], list[list[float]]]:
    """Pixel counts and ``[x, y, w, h]`` boxes of compressed RLEs (two batched pycocotools calls)."""
    if not rles:
        return [], []
    as_bytes = [_as_bytes_rle(r) for r in rles]
    areas = [int(a) for a in mask_utils.area(as_bytes)]
    boxes = [[float(v) for v in b] for b in mask_utils.toBbox(as_bytes)]
    return areas, boxes


def _as_bytes_rle(rle: RLE) -> RLE:
    counts = rle["counts"]
    if isinstance(counts, str):
        return {"size": rle["size"], "counts": counts.encode("ascii")}
    return rle


def decode(rle: RLE) -> np.ndarray:
    """Compressed or uncompressed RLE -> bool mask ``[H, W]``."""
    if isinstance(rle["counts"], list):
        rle = mask_utils.frPyObjects(rle, *rle["size"])
    with warnings.catch_warnings():
        # pycocotools 2.0.11 on numpy 2 warns about the __array__ copy keyword.
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(_as_bytes_rle(rle)).astype(bool)


def area(rle: RLE) -> int:
    """Pixel count of a (compressed or uncompressed) RLE."""
    if isinstance(rle["counts"], list):
        return int(sum(rle["counts"][1::2]))
    return int(mask_utils.area(_as_bytes_rle(rle)))


def bbox(rle: RLE) -> list[float]:
    """``[x, y, w, h]`` of the mask (zeros for an empty mask)."""
    if isinstance(rle["counts"], list):
        rle = mask_utils.frPyObjects(rle, *rle["size"])
    return [float(v) for v in mask_utils.toBbox(_as_bytes_rle(rle))]


def mask_bbox(mask: np.ndarray) -> list[float]:
    """``[x, y, w, h]`` of a binary mask ``[H, W]``, matching ``pycocotools.toBbox``."""
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    xs = np.flatnonzero(mask.any(axis=0))
    return [float(xs[0]), float(ys[0]), float(xs[-1] - xs[0] + 1), float(ys[-1] - ys[0] + 1)]


def is_compressed(rle: Any) -> bool:
    return isinstance(rle, dict) and isinstance(rle.get("counts"), str) and _valid_size(rle.get("size"))


def is_rle(rle: Any) -> bool:
    """Compressed (str counts) or uncompressed (list of ints) RLE with a ``[H, W]`` size."""
    return (
        isinstance(rle, dict)
        and _valid_size(rle.get("size"))
        and (isinstance(rle.get("counts"), str) or isinstance(rle.get("counts"), list))
    )


def _valid_size(size: Any) -> bool:
    return (
        isinstance(size, (list, tuple))
        and len(size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in size)
    )
