"""A results file read straight into arrays by the compiled kernel: no Python object per frame or per result.

Parsing a 100 MB results file into Python objects (about 600k frame dicts and their strings) takes longer than
the evaluation itself, and the objects are only read once. ``_rle_kernel.parse_results`` reads the common shape
(a list of ``{video_id, category_id, score, segmentations: [null | {size, counts}]}``) into flat tables that the
kernel's scan reads the counts from; it declines anything else, and then the general reader (`read_json`) and
the general checks (`inputs.check_results`) run exactly as before. `check_flat` accepts only what
`check_results` accepts without a problem, and gives the same indices, drop count and warnings; anything it
does not accept goes to the general path too, whose message is the one the user sees.

The file is read and parsed in a thread while the GT loads (the parser runs without the GIL).
"""

from __future__ import annotations

import mmap
import os
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from wsovvis.evaluation import kernel
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)


class FlatResults(Sequence):
    """A parsed results file. Arrays per result i (file order): ``video_id`` / ``category_id`` int64 [N],
    ``score`` float64 [N], ``length`` int64 [N] (segmentation list length), ``height`` / ``width`` int64 [N]
    (size of its frames, -1 when all are null); ``handle``: the kernel's tables for `kernel.scan`.
    ``results[i]`` builds the dict the general reader would give (for the paths that want objects)."""

    def __init__(self, mod: ModuleType, parsed: tuple):
        handle, vid, cat, score, seg_start, height, width = parsed
        self._mod = mod
        self.handle = handle
        self.video_id = np.frombuffer(vid, dtype=np.int64)
        self.category_id = np.frombuffer(cat, dtype=np.int64)
        self.score = np.frombuffer(score, dtype=np.float64)
        self.length = np.diff(np.frombuffer(seg_start, dtype=np.int64))
        self.height = np.frombuffer(height, dtype=np.int64)
        self.width = np.frombuffer(width, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.video_id)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = range(len(self))[i]
        return {"video_id": int(self.video_id[i]), "category_id": int(self.category_id[i]),
                "score": float(self.score[i]), "segmentations": self._mod.flat_item(self.handle, i)}


def read_flat(mod: ModuleType, path: str | os.PathLike) -> FlatResults | None:
    """The file at ``path`` parsed by the kernel, or None when it is not of the common shape (or unreadable:
    the general reader then reports why)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return None
        buf = _writable_buffer(size)
        if f.readinto(buf) != size or f.read(1):  # changed while being read: let the general reader see it
            return None
    parsed = mod.parse_results(buf)
    return None if parsed is None else FlatResults(mod, parsed)


def _writable_buffer(size: int) -> Any:
    """``size`` writable bytes: anonymous memory faulted in by one call where the platform has MAP_POPULATE
    (a fresh bytearray takes one page fault per 4 KiB as the file is copied in: 25 ms per 100 MB measured)."""
    populate = getattr(mmap, "MAP_POPULATE", 0)
    if populate and hasattr(mmap, "MAP_ANONYMOUS"):
        return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate)
    return bytearray(size)


def start_reading(results: Any) -> Callable[[], FlatResults | None] | None:
    """Start `read_flat` of ``results`` in a thread; -> a function that waits for it. None when ``results``
    is not a path or the kernel is not built."""
    mod = kernel.load()[0]
    if mod is None or not isinstance(results, (str, os.PathLike)):
        return None
    box: dict[str, FlatResults | None] = {}

    def work() -> None:
        try:
            box["flat"] = read_flat(mod, results)
        except Exception as e:  # noqa: BLE001 -- the general reader reads the file again and reports the problem
            log.debug("flat read of %s failed (%s); using the general reader", results, e)

    thread = threading.Thread(target=work, name="wsovvis-read-results", daemon=True)
    thread.start()

    def wait() -> FlatResults | None:
        thread.join()
        flat = box.get("flat")
        if flat is None:
            log.debug("%s: not of the common results shape; using the general reader", results)
        return flat

    return wait


def check_flat(flat: FlatResults, source: str, video_ids: np.ndarray, video_dims: np.ndarray, cat_ids: np.ndarray,
               dropped_warning: Callable[[str, dict], str]) -> tuple[dict[int, list[int]], int, list[str]] | None:
    """`inputs.check_results` for flat results that have no problem: (kept indices by video in file order,
    number dropped, warnings), or None when there is any problem (unknown video ids, a list length that is not
    the video's, frames of another size): the general path then reports it (or, with ``lenient``, accepts it).

    ``video_ids`` int64 [V] sorted; ``video_dims`` int64 [V, 3] (length, height, width); ``cat_ids`` int64 [K]
    sorted; ``dropped_warning(source, {category: count})``: the general path's warning text.
    """
    v = np.searchsorted(video_ids, flat.video_id)
    v_ok = v < len(video_ids)
    v_ok[v_ok] = video_ids[v[v_ok]] == flat.video_id[v_ok]
    if not v_ok.all():
        return None
    c = np.searchsorted(cat_ids, flat.category_id)
    c_ok = c < len(cat_ids)
    c_ok[c_ok] = cat_ids[c[c_ok]] == flat.category_id[c_ok]
    dims = video_dims[v]
    kept = np.flatnonzero(c_ok)
    d = dims[kept]
    all_null = flat.height[kept] < 0
    size_ok = all_null | ((flat.height[kept] == d[:, 1]) & (flat.width[kept] == d[:, 2]))
    if not ((flat.length[kept] == d[:, 0]) & size_ok).all():
        return None
    by_video: dict[int, list[int]] = {}
    order = kept[np.argsort(flat.video_id[kept], kind="stable")]
    vids = flat.video_id[order]
    cuts = np.flatnonzero(np.diff(vids)) + 1
    for vid, part in zip(np.split(vids, cuts), np.split(order, cuts)):
        if len(part):
            by_video[int(vid[0])] = part.tolist()
    warnings = []
    num_dropped = len(flat) - len(kept)
    if num_dropped:
        cats, counts = np.unique(flat.category_id[~c_ok], return_counts=True)
        warnings.append(dropped_warning(source, dict(zip(cats.tolist(), counts.tolist()))))
    return by_video, num_dropped, warnings
