"""Which frames of a video form one training clip (VNext YTVIS mapper, seqformer.md §5.2).

A reference frame is drawn uniformly from the video; the other ``num_frames - 1`` frames are drawn
with replacement from the frames within ``frame_range`` of it (the reference itself excluded), and
the indices are returned sorted, so duplicates are possible. A one-frame video (or
``frame_range=0``) has an empty pool: the clip then repeats the reference frame instead of failing.
"""

from __future__ import annotations

import numpy as np


def frame_pool(length: int, ref: int, frame_range: int) -> np.ndarray:
    """Indices within ``frame_range`` of ``ref``, clipped to ``[0, length)``, without ``ref``."""
    lo, hi = max(0, ref - frame_range), min(length, ref + frame_range + 1)
    idx = np.arange(lo, hi)
    return idx[idx != ref]


def sample_clip_indices(
    length: int,
    num_frames: int,
    frame_range: int,
    rng: np.random.Generator,
    ref: int | None = None,
) -> list[int]:
    """``num_frames`` sorted frame indices of a video with ``length`` frames."""
    if length < 1:
        raise ValueError(f"cannot sample a clip from a video with {length} frames")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if ref is None:
        ref = int(rng.integers(length))
    pool = frame_pool(length, ref, frame_range)
    if num_frames == 1:
        others: list[int] = []
    elif pool.size == 0:
        others = [ref] * (num_frames - 1)
    else:
        others = rng.choice(pool, size=num_frames - 1, replace=True).tolist()
    return sorted([ref, *[int(i) for i in others]])
