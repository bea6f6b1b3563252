"""Online linking of per-frame masks into tracks: Hungarian matching on mask IoU + appearance.

Per frame, each live track predicts its mask (its last mask, moved along the optical flow when
there is one) and is matched to the frame's detections with ``linear_sum_assignment`` on

    cost = 1 - [w_iou * IoU(predicted, detection) + (1 - w_iou) * cos(e_track, e_detection)]

where ``e_track`` is an exponential moving average of the track's appearance. A match needs
``IoU >= match_iou`` or ``cos >= match_cos``. A track missed for ``max_age`` frames ends; until
then it can be re-identified by appearance alone (``cos >= reid_cos``), which carries ids
through short occlusions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass
class Detection:
    """One mask of one frame: ``mask`` bool ``[h, w]``, unit ``embedding [E]``, ``score`` in 0..1."""

    mask: np.ndarray
    embedding: np.ndarray
    score: float


@dataclass
class Track:
    """A growing tube: ``dets`` maps frame index -> `Detection`; ``embedding`` is the EMA appearance."""

    track_id: int
    embedding: np.ndarray
    last_t: int
    last_mask: np.ndarray
    dets: dict[int, Detection] = field(default_factory=dict)

    def age(self, t: int) -> int:
        return t - self.last_t


@dataclass(frozen=True)
class LinkParams:
    w_iou: float = 0.5
    match_iou: float = 0.3
    match_cos: float = 0.75
    reid_cos: float = 0.8
    max_age: int = 5
    momentum: float = 0.8


def mask_iou_matrix(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    """IoU ``[len(a), len(b)]`` between two lists of same-sized bool masks."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    fa = np.stack([m.ravel() for m in a]).astype(np.float32)
    fb = np.stack([m.ravel() for m in b]).astype(np.float32)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


class Tracker:
    """Feed frames in order with `step`; `tracks` holds every track ever started."""

    def __init__(self, params: LinkParams | None = None):
        self.p = params or LinkParams()
        self.tracks: list[Track] = []
        self._next_id = 1

    def live(self, t: int) -> list[Track]:
        return [tr for tr in self.tracks if 0 < tr.age(t) <= self.p.max_age]

    def step(self, t: int, dets: list[Detection], predict: Callable[[Track], np.ndarray] | None = None) -> None:
        """Assign frame ``t``'s detections to live tracks or start new ones.

        ``predict(track)`` returns the track's expected mask at ``t`` (default: its last mask).
        """
        live = self.live(t)
        matched_det: set[int] = set()
        if live and dets:
            pred = [predict(tr) if predict is not None else tr.last_mask for tr in live]
            iou = mask_iou_matrix(pred, [d.mask for d in dets])
            cos = np.array([[float(tr.embedding @ d.embedding) for d in dets] for tr in live])
            # Tracks missed in the previous frame have a stale position: rely on appearance.
            recent = np.array([tr.age(t) == 1 for tr in live])[:, None]
            cost = 1.0 - (self.p.w_iou * iou + (1.0 - self.p.w_iou) * cos)
            ok = np.where(recent, (iou >= self.p.match_iou) | (cos >= self.p.match_cos), cos >= self.p.reid_cos)
            cost = np.where(ok, cost, 1e6)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols):
                if not ok[r, c]:
                    continue
                self._extend(live[r], t, dets[c])
                matched_det.add(c)
        for j, d in enumerate(dets):
            if j not in matched_det:
                tr = Track(track_id=self._next_id, embedding=_unit(d.embedding), last_t=t, last_mask=d.mask)
                tr.dets[t] = d
                self.tracks.append(tr)
                self._next_id += 1

    def _extend(self, tr: Track, t: int, d: Detection) -> None:
        tr.dets[t] = d
        tr.embedding = _unit(self.p.momentum * tr.embedding + (1.0 - self.p.momentum) * d.embedding)
        tr.last_t = t
        tr.last_mask = d.mask
