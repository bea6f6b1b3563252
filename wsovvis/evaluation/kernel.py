"""The optional compiled kernel (``_rle_kernel.c``) behind typed numpy wrappers, and the choice of backend.

``pip install --no-build-isolation --no-deps -e .`` (what ``make`` runs) compiles it; when it is missing
(no compiler at install time, a source checkout never installed) or stale, the evaluator falls back to
the pycocotools path with one logged warning. Both backends give bit-identical numbers. The module also
holds the results-file parser behind `flat_results` (``parse_results``, ``flat_item``).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from wsovvis.errors import WsovvisError
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

ABI = 2  # must equal KERNEL_ABI in _rle_kernel.c: a stale build is not used
BACKENDS = ("auto", "kernel", "pycocotools")
BUILD_HINT = "build it with `pip install --no-build-isolation --no-deps -e .` (needs a C compiler)"
ENV_VAR = "WSOVVIS_EVAL_BACKEND"

_state: dict[str, Any] = {}


def load() -> tuple[ModuleType | None, str]:
    """(the compiled module or None, why it is unavailable); imported once per process."""
    if "module" not in _state:
        try:
            mod = importlib.import_module("wsovvis.evaluation._rle_kernel")
        except ImportError as e:
            _state["module"], _state["why"] = None, f"wsovvis.evaluation._rle_kernel is not built ({e})"
        else:
            if getattr(mod, "ABI", None) != ABI:
                _state["module"], _state["why"] = None, (
                    f"wsovvis.evaluation._rle_kernel is stale (ABI {getattr(mod, 'ABI', None)}, expected {ABI})"
                )
            else:
                _state["module"], _state["why"] = mod, ""
    return _state["module"], _state["why"]


def resolve(backend: str | None) -> ModuleType | None:
    """The kernel module for ``backend`` (``None``: env ``WSOVVIS_EVAL_BACKEND`` or ``"auto"``), or None for the
    pycocotools path. ``"auto"`` falls back with one warning per process; ``"kernel"`` insists."""
    backend = backend or os.environ.get(ENV_VAR) or "auto"
    if backend not in BACKENDS:
        raise WsovvisError(f"unknown evaluation backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if backend == "pycocotools":
        return None
    mod, why = load()
    if mod is None:
        if backend == "kernel":
            raise WsovvisError(f"evaluation backend 'kernel' requested but {why}; {BUILD_HINT}")
        if not _state.get("warned"):
            _state["warned"] = True
            log.warning("%s; using the slower pycocotools path (same numbers); %s", why, BUILD_HINT)
    return mod


@dataclass
class Scan:
    """Parsed frames of a list of tracks. ``frames``: opaque handle for `intersect`; per valid frame F:
    ``track`` / ``t`` int64 [F] (track position in the scanned list, frame index), ``area`` int64 [F];
    ``bad`` int64 [B, 2]: (track, t) of frames that are not valid compressed RLE of the track's size."""

    frames: Any
    track: np.ndarray
    t: np.ndarray
    area: np.ndarray
    bad: np.ndarray


def scan(mod: ModuleType, tracks: list, heights: np.ndarray, widths: np.ndarray,
         need: np.ndarray | None = None, flat: Any = None) -> Scan:
    """Parse every non-None frame of ``tracks`` (lists of ``{counts: str | bytes}`` or None; or, with ``flat``
    (a `flat_results.FlatResults` handle), an int k: the frames of result k) once.
    ``need`` bool [n]: False for tracks never passed to `intersect` (their runs are not kept)."""
    h = np.ascontiguousarray(heights, dtype=np.int64)
    w = np.ascontiguousarray(widths, dtype=np.int64)
    need = None if need is None else np.ascontiguousarray(need, dtype=np.uint8)
    frames, track, t, area, bad = mod.scan(tracks, h, w, need, flat)
    return Scan(
        frames,
        np.frombuffer(track, dtype=np.int32).astype(np.int64),
        np.frombuffer(t, dtype=np.int32).astype(np.int64),
        np.frombuffer(area, dtype=np.int64),
        np.frombuffer(bad, dtype=np.int64).reshape(-1, 2),
    )


def intersect(mod: ModuleType, sc: Scan, a_frame: np.ndarray, a_bucket: np.ndarray, a_slot: np.ndarray,
              b_frame: np.ndarray, b_bucket: np.ndarray, b_slot: np.ndarray, out: np.ndarray) -> int:
    """``out[a_slot[i] + b_slot[j]] += |a_frame[i] ∩ b_frame[j]|`` for every pair of equal bucket (int64 [Na] /
    [Nb], any order; ``out`` int64, updated in place). Returns the number of pairs merged after the box test."""
    oa = np.argsort(a_bucket, kind="stable")
    ob = np.argsort(b_bucket, kind="stable")

    def c(x, o):
        return np.ascontiguousarray(np.asarray(x, dtype=np.int64)[o])

    return mod.intersect(sc.frames, c(a_frame, oa), c(a_bucket, oa), c(a_slot, oa), c(b_frame, ob),
                         c(b_bucket, ob), c(b_slot, ob), out)


def greedy(mod: ModuleType, iou: np.ndarray, groups: np.ndarray, gt_ignore: np.ndarray, gt_crowd: np.ndarray,
           dt_out: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of every group (see ``_rle_kernel.greedy``): matched, ignored bool [N, A, T].

    ``groups`` int64 [NG, 5] (D, G, pair_base, d_row, g_start); ``iou`` float64 [P]; ``gt_ignore`` bool
    [Gtot, A]; ``gt_crowd`` bool [Gtot]; ``dt_out`` bool [N, A]; ``thresholds`` [T].
    """
    num_d, num_a = dt_out.shape
    num_t = len(thresholds)
    matched = np.zeros((num_d, num_a, num_t), dtype=np.uint8)
    ignored = np.zeros((num_d, num_a, num_t), dtype=np.uint8)
    mod.greedy(
        np.ascontiguousarray(iou, dtype=np.float64), np.ascontiguousarray(groups, dtype=np.int64),
        np.ascontiguousarray(gt_ignore, dtype=np.uint8), np.ascontiguousarray(gt_crowd, dtype=np.uint8),
        np.ascontiguousarray(dt_out, dtype=np.uint8), np.ascontiguousarray(thresholds, dtype=np.float64),
        matched, ignored, num_a,
    )
    return matched.view(bool), ignored.view(bool)
