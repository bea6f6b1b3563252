"""COCO run-length encoding of binary masks, always in the compressed (string counts) form.

YouTube-VIS files store one RLE per frame; results files must use compressed RLE, so
every writer in wsovvis produces ``{"size": [H, W], "counts": str}``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

RLE = dict[str, Any]


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


def _runs(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximal runs of equal values of ``ids [H, W]`` in column-major (COCO) order: starts, ends, values."""
    flat = np.ravel(ids, order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [flat.size]))
    return starts, ends, flat[starts]


def encode_id_map(ids: np.ndarray, track_ids: list[int] | np.ndarray | None = None) -> tuple[list[int], list[RLE]]:
    """Instance-id map ``[H, W]`` -> (track ids, one compressed RLE per id) in one pass over the pixels.

    ``track_ids=None`` encodes every non-zero id present (ascending). Requested ids that are absent
    get an empty-mask RLE. The run boundaries of the whole map are found once, so the cost does
    not grow with the number of ids the way per-id binary masks would.
    """
    h, w = ids.shape
    n = h * w
    starts, ends, vals = _runs(ids)
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
