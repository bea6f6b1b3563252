"""Offline clean-up of linked tracks into final tubes, and painting tubes into id maps.

Order: merge time-disjoint fragments of one object (prototype cosine), fill short gaps with the
nearest mask, drop tubes that are still short, score, give overlapping pixels to the
higher-scoring tube, renumber ``1..K`` by first appearance.

Tube score = mean per-frame detection score x (frames present / T) ** ``persistence_power``: an
object seen throughout the video with confident masks ranks above a flicker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from wsovvis.pseudo.linking import Track


@dataclass(frozen=True)
class CleanupParams:
    min_len: int = 3
    min_len_frac: float = 0.05
    merge_cos: float = 0.85
    max_gap: int = 2
    persistence_power: float = 0.5


@dataclass
class Tube:
    """``masks``: frame index -> bool ``[h, w]``; ``scores``: frame index -> detection score;
    ``embedding``: unit prototype ``[E]``; ``score``: tube score; ``tube_id``: final id (0 = unset).
    """

    masks: dict[int, np.ndarray]
    scores: dict[int, float]
    embedding: np.ndarray
    score: float = 0.0
    tube_id: int = 0
    filled: set[int] = field(default_factory=set)

    @property
    def frames(self) -> list[int]:
        return sorted(self.masks)

    def first(self) -> int:
        return min(self.masks)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def tubes_from_tracks(tracks: list[Track]) -> list[Tube]:
    out = []
    for tr in tracks:
        emb = _unit(np.mean([d.embedding for d in tr.dets.values()], axis=0))
        out.append(Tube(masks={t: d.mask for t, d in tr.dets.items()},
                        scores={t: d.score for t, d in tr.dets.items()}, embedding=emb))
    return out


def merge_disjoint(tubes: list[Tube], merge_cos: float) -> list[Tube]:
    """Greedily merge the most similar pair of tubes that never share a frame, while its prototype
    cosine is at least ``merge_cos`` (occupancy and cosine kept as matrices: O(n^2) per merge)."""
    tubes = list(tubes)
    if len(tubes) < 2:
        return tubes
    frames = sorted({t for tb in tubes for t in tb.masks})
    col = {t: i for i, t in enumerate(frames)}
    occ = np.zeros((len(tubes), len(frames)), np.float32)
    for i, tb in enumerate(tubes):
        occ[i, [col[t] for t in tb.masks]] = 1
    emb = np.stack([tb.embedding for tb in tubes])
    alive = np.ones(len(tubes), bool)
    while True:
        sim = emb @ emb.T
        ok = (occ @ occ.T == 0) & alive[:, None] & alive[None, :]
        np.fill_diagonal(ok, False)
        sim = np.where(ok, sim, -np.inf)
        i, j = np.unravel_index(int(np.argmax(sim)), sim.shape)
        if not np.isfinite(sim[i, j]) or sim[i, j] < merge_cos:
            return [tb for tb, keep in zip(tubes, alive) if keep]
        a, b = tubes[i], tubes[j]
        na, nb = len(a.masks), len(b.masks)
        a.masks.update(b.masks)
        a.scores.update(b.scores)
        a.embedding = _unit(na * a.embedding + nb * b.embedding)
        emb[i], occ[i] = a.embedding, np.maximum(occ[i], occ[j])
        alive[j] = False


def fill_gaps(tube: Tube, max_gap: int) -> None:
    """Frames missing between two present frames, in runs of at most ``max_gap``, get the nearest mask."""
    fr = tube.frames
    for a, b in zip(fr, fr[1:]):
        gap = b - a - 1
        if 0 < gap <= max_gap:
            for t in range(a + 1, b):
                src = a if t - a <= b - t else b
                tube.masks[t] = tube.masks[src]
                tube.scores[t] = tube.scores[src]
                tube.filled.add(t)


def score_tube(tube: Tube, num_frames: int, power: float) -> float:
    observed = [s for t, s in tube.scores.items() if t not in tube.filled]
    mean = float(np.mean(observed)) if observed else 0.0
    return mean * (len(tube.masks) / max(num_frames, 1)) ** power


def resolve_overlaps(tubes: list[Tube], min_keep: float = 0.0) -> None:
    """Each pixel goes to the highest-scoring tube that claims it; frames left empty, or keeping less
    than ``min_keep`` of their mask (a sliver a better tube left over), are removed."""
    order = sorted(tubes, key=lambda tb: -tb.score)
    frames = {t for tb in tubes for t in tb.masks}
    for t in frames:
        taken = None
        for tb in order:
            m = tb.masks.get(t)
            if m is None:
                continue
            if taken is None:
                taken = m.copy()
                continue
            full = m
            m = m & ~taken
            if m.any() and (min_keep <= 0 or m.sum() >= min_keep * full.sum()):
                taken |= m  # a dropped sliver leaves its pixels to lower-scoring tubes
                tb.masks[t] = m
            else:
                del tb.masks[t]
                tb.scores.pop(t, None)


def cleanup(tracks: list[Track], num_frames: int, params: CleanupParams | None = None) -> list[Tube]:
    """Tracks -> final tubes with ids ``1..K`` (by first appearance) and scores."""
    params = params or CleanupParams()
    tubes = merge_disjoint(tubes_from_tracks(tracks), params.merge_cos)
    for tb in tubes:
        fill_gaps(tb, params.max_gap)
    min_len = min(num_frames, max(params.min_len, math.ceil(params.min_len_frac * num_frames)))
    tubes = [tb for tb in tubes if len(tb.masks) >= min_len]
    for tb in tubes:
        tb.score = score_tube(tb, num_frames, params.persistence_power)
    return finalize(tubes)


def finalize(tubes: list[Tube], min_keep: float = 0.0) -> list[Tube]:
    """Scored tubes -> overlaps resolved (higher score wins, see `resolve_overlaps`), empty ones dropped,
    ids ``1..K`` by first appearance."""
    resolve_overlaps(tubes, min_keep)
    tubes = [tb for tb in tubes if tb.masks]
    tubes.sort(key=lambda tb: (tb.first(), -tb.score))
    for k, tb in enumerate(tubes, 1):
        tb.tube_id = k
    return tubes


def paint_ids(tubes: list[Tube], t: int, size: tuple[int, int]) -> np.ndarray:
    """Id map ``uint16 [H, W]`` of frame ``t`` at ``size``; masks of another size are resized
    (linear, threshold 0.5); lower scores are painted first so the highest score wins."""
    h, w = size
    ids = np.zeros((h, w), np.uint16)
    for tb in sorted(tubes, key=lambda x: x.score):
        m = tb.masks.get(t)
        if m is None:
            continue
        if m.shape != (h, w):
            m = cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) > 0.5
        ids[m] = tb.tube_id
    return ids
