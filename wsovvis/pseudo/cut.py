"""MaskCut on one frame: up to N normalized cuts over the patch grid, earlier masks painted out.

Differences from the published MaskCut (all listed in the reference as fixes worth making):

* the grid is ``h x w`` (any aspect), painting is an ``h x w`` map;
* painted patches are removed from the graph instead of having their features zeroed, so the
  masks are disjoint by construction and the "IoU with the previous mask" test is moot;
* the first rejected mask stops the loop (MaskCut retries the same graph and may accept the
  mask it has just rejected);
* masks that cover most of the grid or touch 3+ image corners are rejected (fg/bg flips);
* the kept component joins 4-neighbours only where the affinity graph links them, so touching
  but dissimilar objects on the same side of the cut come out as separate masks;
* with a ``saliency`` map (the weight-free features) the foreground is the side with the higher
  mean saliency and the kept component is the one with the largest saliency mass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy import ndimage
from scipy.sparse.csgraph import connected_components

from wsovvis.pseudo.ncut import cosine_affinity, ncut_value, second_eigenvector

FOREGROUND_RULES = ("maskcut", "saliency")


@dataclass(frozen=True)
class CutParams:
    """Per-frame cut settings.

    ``tau``: cosine threshold of the binary affinity; ``num_cuts``: N; ``min_frac`` /
    ``max_frac``: accepted mask size as a fraction of the grid's patches; ``max_corners``: a mask
    touching more grid corners is a flipped background; ``min_saliency``: with the saliency rule,
    stop once the next mask's mean saliency falls below it; ``max_ncut``: a cut with a larger
    normalized-cut value splits a structureless graph (no object left) and ends the loop (MaskCut
    rule only: with saliency, ``min_saliency`` decides, as weak-affinity graphs cut near 1);
    ``split_ncut``: a mask whose own subgraph splits with a normalized cut below this value holds
    several objects and is split (recursive 2-way cut); 0 disables.
    """

    tau: float = 0.15
    num_cuts: int = 3
    eps: float = 1e-5
    min_frac: float = 0.01
    max_frac: float = 0.6
    max_corners: int = 2
    fg_rule: str = "maskcut"
    min_saliency: float = 0.0
    max_ncut: float = 0.8
    split_ncut: float = 0.3


@dataclass
class PatchMask:
    """One accepted cut: ``mask`` bool ``[h, w]``; ``ncut`` in 0..2; ``saliency`` its mean saliency (or -1)."""

    mask: np.ndarray
    ncut: float
    eigenvalue: float
    saliency: float = -1.0


def _corners(m: np.ndarray) -> int:
    return int(m[0, 0]) + int(m[0, -1]) + int(m[-1, 0]) + int(m[-1, -1])


def _label_through_edges(fg: np.ndarray, idx: np.ndarray, graph) -> tuple[np.ndarray, int]:
    """Components of ``fg [h, w]`` where 4-neighbours join only if the graph links them.

    Pixel connectivity alone merges touching objects that the cut put on the same side although
    they do not resemble each other (a green ring against a blue triangle).
    """
    h, w = fg.shape
    pos = np.full(h * w, -1)
    pos[idx] = np.arange(len(idx))
    flat = fg.ravel()
    rows, cols = [], []
    for a, b in ((np.arange(h * w).reshape(h, w)[:, :-1].ravel(), np.arange(h * w).reshape(h, w)[:, 1:].ravel()),
                 (np.arange(h * w).reshape(h, w)[:-1].ravel(), np.arange(h * w).reshape(h, w)[1:].ravel())):
        keep = flat[a] & flat[b]
        a, b = a[keep], b[keep]
        linked = np.asarray(graph[pos[a], pos[b]]).ravel() > 0
        rows.append(a[linked])
        cols.append(b[linked])
    r, c = np.concatenate(rows), np.concatenate(cols)
    adj = sp.coo_matrix((np.ones(len(r)), (r, c)), shape=(h * w, h * w))
    n, lab = connected_components(adj, directed=False)
    lab = lab.reshape(h, w) + 1
    lab[~fg] = 0
    # Renumber 1..k over foreground components only.
    uniq, inv = np.unique(lab, return_inverse=True)
    lab = inv.reshape(h, w) if uniq[0] == 0 else inv.reshape(h, w) + 1
    return lab, int(lab.max())


def _component(fg: np.ndarray, seed: tuple[int, int] | None, weight: np.ndarray | None,
               labels: tuple[np.ndarray, int] | None = None) -> np.ndarray:
    """The component of ``fg`` holding ``seed``, else the one with the largest ``weight`` mass.

    ``labels``: precomputed ``(label map, count)``; default 4-connectivity of ``fg``.
    """
    lbl, n = labels if labels is not None else ndimage.label(fg)
    if n <= 1:
        return lbl > 0 if n == 1 else fg
    if seed is not None and lbl[seed]:
        return lbl == lbl[seed]
    mass = ndimage.sum(weight if weight is not None else fg, lbl, index=np.arange(1, n + 1))
    return lbl == (1 + int(np.argmax(mass)))


def bipartition(x: np.ndarray, active: np.ndarray, rule: str, saliency: np.ndarray | None
                ) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Foreground side of the eigenvector ``x`` (values of the active patches) on the ``[h, w]`` grid.

    Returns the foreground map ``[h, w]`` and the seed patch (None for the saliency rule).
    """
    h, w = active.shape
    idx = np.flatnonzero(active)
    part = x > x.mean()
    fg = np.zeros(h * w, dtype=bool)
    fg[idx] = part
    fg = fg.reshape(h, w)
    if rule == "saliency" and saliency is not None:
        s = saliency.ravel()[idx]
        inside = s[part].mean() if part.any() else -np.inf
        outside = s[~part].mean() if (~part).any() else -np.inf
        if outside > inside:
            fg = active & ~fg
        return fg, None
    # MaskCut: the seed (largest |x|) must be foreground, and the object rarely owns 3+ corners.
    seed_i = int(np.argmax(np.abs(x)))
    flip = _corners(fg) >= 3 or not part[seed_i]
    if flip:
        fg = active & ~fg
        seed_i = int(np.argmax(-x))
    else:
        seed_i = int(np.argmax(x))
    return fg, tuple(int(v) for v in np.unravel_index(idx[seed_i], (h, w)))


def _split(mask: np.ndarray, flat: np.ndarray, params: CutParams, saliency: np.ndarray | None,
           seed: tuple[int, int] | None) -> np.ndarray:
    """Recursive 2-way cut: while the mask's own graph splits cleanly (ncut < ``split_ncut``), keep
    the part holding the seed (or the larger saliency mass); the rest stays for later cuts."""
    if params.split_ncut <= 0:
        return mask
    n_all = mask.size
    while mask.sum() >= 8:
        idx = np.flatnonzero(mask)
        sub = cosine_affinity(flat[idx], params.tau)
        x, _ = second_eigenvector(sub, params.eps)
        part = x > x.mean()
        if min(part.sum(), (~part).sum()) <= params.min_frac * n_all:
            break
        if ncut_value(sub, params.eps, part) >= params.split_ncut:
            break
        a = np.zeros(n_all, bool)
        a[idx[part]] = True
        a = a.reshape(mask.shape)
        if seed is not None:
            keep = a if a[seed] else mask & ~a
        else:
            w = saliency if saliency is not None else np.ones(mask.shape)
            keep = a if w[a].sum() >= w[mask & ~a].sum() else mask & ~a
        mask = _component(keep, seed if seed is not None and keep[seed] else None, saliency)
    return mask


# lambda_2 within this of 1: the graph has no cluster structure left to cut (see `cut_frame`).
DEGENERATE = 1e-9


def cut_frame(feats: np.ndarray, params: CutParams, saliency: np.ndarray | None = None) -> list[PatchMask]:
    """Up to ``params.num_cuts`` disjoint object masks of one frame.

    Args:
        feats: patch features ``[h, w, D]``.
        saliency: optional ``[h, w]`` map in 0..1 (needed by ``fg_rule='saliency'``).
    Returns:
        accepted masks in cut order (the first is the most separable object).
    """
    if params.fg_rule not in FOREGROUND_RULES:
        raise ValueError(f"unknown foreground rule {params.fg_rule!r}; choose from {FOREGROUND_RULES}")
    h, w, _ = feats.shape
    n_all = h * w
    flat = feats.reshape(n_all, -1)
    active = np.ones((h, w), dtype=bool)
    out: list[PatchMask] = []
    for _ in range(params.num_cuts):
        idx = np.flatnonzero(active)
        if len(idx) < 4:
            break
        graph = cosine_affinity(flat[idx], params.tau)
        x, lam = second_eigenvector(graph, params.eps)
        if lam > 1.0 - DEGENERATE:
            # Every active patch is joined to every other (mu_2 = 0 = mu_3 = ...): there is no second
            # cluster, and the "second eigenvector" is an arbitrary vector of a degenerate eigenspace
            # that floating-point noise picks (outputs then changed from run to run).
            break
        fg, seed = bipartition(x, active, params.fg_rule, saliency)
        mask = _component(fg, seed, saliency, _label_through_edges(fg, idx, graph))
        mask = _split(mask, flat, params, saliency, seed)
        area = int(mask.sum())
        if area <= params.min_frac * n_all or area > params.max_frac * n_all:
            break
        if _corners(mask) > params.max_corners:
            break
        sal = float(saliency[mask].mean()) if saliency is not None else -1.0
        if saliency is not None and sal < params.min_saliency:
            break
        nc = ncut_value(graph, params.eps, mask.ravel()[idx])
        if saliency is None and nc > params.max_ncut:
            break
        out.append(PatchMask(mask=mask, ncut=nc, eigenvalue=lam, saliency=sal))
        active &= ~mask
    return out
