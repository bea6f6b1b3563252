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


def encode_ids(ids: np.ndarray, track_ids: list[int] | np.ndarray) -> list[RLE]:
    """Instance-id map ``[H, W]`` -> one RLE per requested id (mask = ``ids == id``)."""
    if len(track_ids) == 0:
        return []
    masks = ids[None, :, :] == np.asarray(track_ids).reshape(-1, 1, 1)
    return encode_stack(masks)


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
