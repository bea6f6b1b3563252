"""Clip-level linking: per-frame masks grouped into tubes by how well they follow each other along the flow.

The online tracker (`wsovvis.pseudo.linking`) decides frame by frame, so one bad match (a cut
that holds the wall in one frame and the runner in the next) hands a track to another object
for good. Here every decision looks at the whole clip:

1. Each detection is propagated along the optical flow ``window`` frames forward and backward
   (at ``1/scale`` resolution; backward steps read the later frame at ``p + F_t(p)``, exact for
   the forward flow ``F_t``; forward steps move the mask by the flow sampled at the target).
2. The affinity of detections ``i`` (frame t) and ``j`` (frame s, ``0 < |s - t| <= window``) is
   the better of IoU(i moved to s, j) and IoU(j moved to t, i).
3. Average-linkage agglomeration with a cannot-link constraint: two groups merge when the mean
   affinity over all their defined cross pairs is at least ``link_iou`` and they never share a
   frame. A group that switches objects would average the low affinity of the switch with every
   pair across it, so it does not form; merging stops on its own (no tuned number of tubes).
4. Each group is a tube, less the members that look unlike the rest of it. Frames between its
   detections are filled from both sides along the flow, keeping what the two propagations agree
   on; up to ``extend`` frames past its ends, from the one side there is (full resolution).
5. Tube consistency = the group's own mean affinity (1 = every mask is where the flow says the
   previous one went). It enters the tube score, so that a higher score means a better tube.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from wsovvis.pseudo.cleanup import Tube
from wsovvis.pseudo.linking import Detection


@dataclass(frozen=True)
class ClipLinkParams:
    """``link_iou``: average-linkage threshold; ``window``: frames a detection is compared over;
    ``scale``: affinity computed at ``1/scale`` resolution; ``extend``: frames a tube is
    propagated past its first/last detection; ``overlap``: ``min`` (intersection over the smaller
    mask: a partly occluded object still matches its whole self) or ``iou``; ``merge_cos``: groups
    that never share a frame and whose mean appearance has at least this cosine are one object
    seen again after an occlusion (flow cannot bridge it); above 1 disables; ``member_cos``: a
    member whose embedding has a lower cosine with the mean of its group's other members is
    dropped from the group (the same "same object" threshold, applied the other way round; above 1
    disables)."""

    link_iou: float = 0.5
    window: int = 4
    scale: int = 4
    extend: int = 4
    overlap: str = "min"
    merge_cos: float = 0.85
    member_cos: float = 0.85


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return xx, yy


def push(mask: np.ndarray, flow: np.ndarray, grid=None) -> np.ndarray:
    """Mask ``[h, w]`` of frame t moved to t+1 with the forward flow ``[h, w, 2]`` of t (sampled at the target)."""
    xx, yy = grid if grid is not None else _grid(*mask.shape)
    m = cv2.remap(mask.astype(np.float32), xx - flow[..., 0], yy - flow[..., 1], cv2.INTER_LINEAR,
                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return m > 0.5


def pull(mask: np.ndarray, flow: np.ndarray, grid=None) -> np.ndarray:
    """Mask ``[h, w]`` of frame t+1 moved back to t: read at ``p + F_t(p)`` (``flow`` = forward flow of t)."""
    xx, yy = grid if grid is not None else _grid(*mask.shape)
    m = cv2.remap(mask.astype(np.float32), xx + flow[..., 0], yy + flow[..., 1], cv2.INTER_LINEAR,
                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return m > 0.5


def propagate(mask: np.ndarray, t: int, s: int, flow: np.ndarray, grid=None) -> np.ndarray:
    """Mask of frame ``t`` moved to frame ``s`` step by step along the forward flows ``[T, h, w, 2]``."""
    m = mask
    if s > t:
        for k in range(t, s):
            m = push(m, flow[k], grid)
    else:
        for k in range(t - 1, s - 1, -1):
            m = pull(m, flow[k], grid)
    return m


def _iou(a: np.ndarray, b: np.ndarray, mode: str = "iou") -> float:
    if mode == "min":
        den = min(a.sum(), b.sum())
    else:
        den = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / den) if den else 0.0


def affinities(frames: list[int], masks: list[np.ndarray], flow: np.ndarray, window: int, mode: str = "iou"
               ) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise propagated IoU of detections (``frames[i]``, ``masks[i]`` bool ``[h, w]``) -> (``A [N, N]``,
    ``defined [N, N]`` bool: the pair is within ``window`` frames and in different frames)."""
    n = len(masks)
    a = np.zeros((n, n))
    defined = np.zeros((n, n), bool)
    if n == 0:
        return a, defined
    grid = _grid(*masks[0].shape)
    t_len = flow.shape[0]
    by_frame: dict[int, list[int]] = {}
    for i, t in enumerate(frames):
        by_frame.setdefault(t, []).append(i)
    for i, (t, m) in enumerate(zip(frames, masks)):
        cur = m
        for s in range(t + 1, min(t + window, t_len - 1) + 1):
            cur = push(cur, flow[s - 1], grid)
            for j in by_frame.get(s, ()):
                a[i, j] = max(a[i, j], _iou(cur, masks[j], mode))
                defined[i, j] = True
        cur = m
        for s in range(t - 1, max(t - window, 0) - 1, -1):
            cur = pull(cur, flow[s], grid)
            for j in by_frame.get(s, ()):
                a[i, j] = max(a[i, j], _iou(cur, masks[j], mode))
                defined[i, j] = True
    a = np.maximum(a, a.T)
    defined |= defined.T
    return a, defined


def agglomerate(frames: list[int], a: np.ndarray, defined: np.ndarray, link_iou: float) -> list[list[int]]:
    """Average-linkage groups of detections; groups never share a frame. -> lists of detection indices."""
    n = len(frames)
    s = np.where(defined, a, 0.0)
    c = defined.astype(np.float64)
    t_len = (max(frames) + 1) if frames else 0
    occ = np.zeros((n, t_len), np.float64)
    occ[np.arange(n), frames] = 1
    alive = np.ones(n, bool)
    members = [[i] for i in range(n)]
    while True:
        with np.errstate(divide="ignore", invalid="ignore"):
            link = np.where(c > 0, s / np.maximum(c, 1e-12), -np.inf)
        ok = (occ @ occ.T == 0) & alive[:, None] & alive[None, :]
        np.fill_diagonal(ok, False)
        link = np.where(ok, link, -np.inf)
        if link.size == 0:
            break
        i, j = np.unravel_index(int(np.argmax(link)), link.shape)
        if not np.isfinite(link[i, j]) or link[i, j] < link_iou:
            break
        s[i] += s[j]
        s[:, i] += s[:, j]
        c[i] += c[j]
        c[:, i] += c[:, j]
        s[j] = s[:, j] = 0
        c[j] = c[:, j] = 0
        occ[i] += occ[j]
        alive[j] = False
        members[i] += members[j]
        members[j] = []
    return [sorted(m, key=lambda k: frames[k]) for m in members if m]


def merge_by_appearance(groups: list[list[int]], frames: list[int], emb: np.ndarray, merge_cos: float
                        ) -> list[list[int]]:
    """Greedily join the most similar pair of groups that share no frame while their mean unit
    embeddings (``emb [N, E]``) have cosine >= ``merge_cos``."""
    groups = [list(g) for g in groups]
    while len(groups) > 1:
        protos = np.stack([emb[g].mean(0) / max(float(np.linalg.norm(emb[g].mean(0))), 1e-12) for g in groups])
        sim = protos @ protos.T
        fr = [{frames[k] for k in g} for g in groups]
        best, pair = merge_cos, None
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                if sim[i, j] >= best and not (fr[i] & fr[j]):
                    best, pair = sim[i, j], (i, j)
        if pair is None:
            break
        i, j = pair
        groups[i] = sorted(groups[i] + groups[j], key=lambda k: frames[k])
        del groups[j]
    return groups


def drop_outliers(group: list[int], emb: np.ndarray, min_cos: float) -> list[int]:
    """The group without the members whose unit embedding (``emb [N, E]``) has cosine below
    ``min_cos`` with the mean of the group's other members: a mask that looks unlike the rest of its
    tube covers something else in that frame (the tree an occluded rider passes behind)."""
    if len(group) < 3:
        return group
    e = emb[group]
    total = e.sum(0)
    keep = []
    for k, i in enumerate(group):
        rest = total - e[k]
        cos = float(e[k] @ rest / max(float(np.linalg.norm(rest)), 1e-12))
        if cos >= min_cos:
            keep.append(i)
    return keep or group


def consistency(group: list[int], a: np.ndarray, defined: np.ndarray) -> float:
    """Mean affinity over the group's defined pairs (0 when it has none)."""
    g = np.asarray(group)
    d = defined[np.ix_(g, g)]
    return float(a[np.ix_(g, g)][d].mean()) if d.any() else 0.0


def _downsample(mask: np.ndarray, scale: int) -> np.ndarray:
    h, w = mask.shape
    return cv2.resize(mask.astype(np.float32), (max(1, w // scale), max(1, h // scale)),
                      interpolation=cv2.INTER_AREA) >= 0.5


def downsample_flow(flow: np.ndarray, scale: int) -> np.ndarray:
    """Forward flows ``[T, H, W, 2]`` -> ``[T, H//scale, W//scale, 2]`` in the small grid's pixels."""
    t_len, h, w, _ = flow.shape
    return np.stack([cv2.resize(f, (max(1, w // scale), max(1, h // scale)), interpolation=cv2.INTER_AREA)
                     for f in flow]) / float(scale)


def fill_between(own: dict[int, np.ndarray], flow: np.ndarray, num_frames: int, extend: int, grid=None
                 ) -> dict[int, np.ndarray]:
    """A tube's observed masks (frame -> bool ``[h, w]``) with the frames between them and up to ``extend``
    frames past its ends filled along the forward flows ``[T, h, w, 2]``.

    A gap is filled from both sides, the last observation pushed forward and the next one pulled
    back, and keeps what the two agree on: near an occluder the flow at the target is the
    occluder's, so a one-sided fill stays behind where the object was; the other side lags the
    other way and the intersection drops both lags. Past the ends there is one side only.
    """
    first, last = min(own), max(own)
    fwd: dict[int, np.ndarray] = {}
    for t in range(first, min(num_frames - 1, last + extend) + 1):
        fwd[t] = own[t] if t in own else push(fwd[t - 1], flow[t - 1], grid)
    bwd: dict[int, np.ndarray] = {}
    for t in range(last, max(0, first - extend) - 1, -1):
        bwd[t] = own[t] if t in own else pull(bwd[t + 1], flow[t], grid)
    masks = dict(own)
    for t in range(max(0, first - extend), min(num_frames - 1, last + extend) + 1):
        if t in own:
            continue
        if t < first:
            masks[t] = bwd[t]
        elif t > last:
            masks[t] = fwd[t]
        else:
            masks[t] = fwd[t] & bwd[t]
    return masks


def link_clip(dets: dict[int, list[Detection]], flow: np.ndarray, num_frames: int,
              params: ClipLinkParams | None = None) -> list[tuple[Tube, float]]:
    """Per-frame detections (frame -> list) + forward flows ``[T, H, W, 2]`` -> (tube, consistency) pairs.

    Tube masks are at the detections' size; filled frames are marked in ``tube.filled``.
    """
    p = params or ClipLinkParams()
    frames = [t for t in sorted(dets) for _ in dets[t]]
    flat = [d for t in sorted(dets) for d in dets[t]]
    if not flat:
        return []
    small_flow = downsample_flow(flow, p.scale)
    a, defined = affinities(frames, [_downsample(d.mask, p.scale) for d in flat], small_flow, p.window, p.overlap)
    groups = agglomerate(frames, a, defined, p.link_iou)
    emb = np.stack([d.embedding for d in flat])
    if p.merge_cos <= 1.0:
        groups = merge_by_appearance(groups, frames, emb, p.merge_cos)
    if p.member_cos <= 1.0:
        groups = [drop_outliers(g, emb, p.member_cos) for g in groups]
    grid = _grid(*flat[0].mask.shape)
    out = []
    for g in groups:
        own = {frames[k]: flat[k] for k in g}
        masks = fill_between({t: d.mask for t, d in own.items()}, flow, num_frames, p.extend, grid)
        filled = set(masks) - set(own)
        masks = {t: m for t, m in masks.items() if m.any()}
        proto = emb[g].mean(axis=0)
        proto = proto / max(float(np.linalg.norm(proto)), 1e-12)
        tube = Tube(masks=masks, scores={t: d.score for t, d in own.items()}, embedding=proto,
                    filled=filled & set(masks))
        out.append((tube, consistency(g, a, defined)))
    return out
