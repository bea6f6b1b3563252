"""``--preset maskcut_paper``: the published MaskCut procedure per frame, kept apart from the tuned default.

As in CutLER's ``maskcut.py`` (README run; see ``maskcut_videocutler.md`` in the shared reference):

* each frame is resized to a ``size x size`` square (480, Lanczos; the aspect is not kept), and the
  keys of the last attention layer of DINO ViT-B/8 give a 60 x 60 patch graph;
* ``A = (cos > tau) + eps`` with tau 0.15, eps 1e-5, N = 3 cuts;
* cut i > 0 runs on features whose painted patches (the union of the accepted masks) are set to
  zero, so they join the graph only through eps edges (not removed, as the tuned default does);
* bipartition at the mean of the second eigenvector; the seed (max ``|x|``) must be foreground,
  3+ foreground corners flip; the mask is the 4-connected component holding the seed;
* a mask is emptied when its IoU with the immediately previous mask exceeds 0.5 or it covers
  <= 1 % of the patches; an empty mask does not grow the painting (so the next cut solves the same
  graph again: the published quirk is kept);
* pixels of earlier masks are removed, then DenseCRF (when ``pydensecrf`` / ``pydensecrf2`` is
  importable; otherwise the guided filter, with one logged note), hole filling, and the mask is
  dropped when IoU(raw, CRF) < 0.5; finally resized to the frame.

The eigenvector comes from `wsovvis.pseudo.ncut.second_eigenvector` (the same vector as the
dense generalized ``eigh`` of the paper, tested in ``tests/pseudo/test_ncut.py``), and per-frame
masks are linked by the default clip-level linker: MaskCut itself is an image method.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from wsovvis.pseudo.cut import PatchMask, _component, bipartition
from wsovvis.pseudo.linking import Detection
from wsovvis.pseudo.maskcut import MaskCutEngine, describe
from wsovvis.pseudo.ncut import cosine_affinity, ncut_value, second_eigenvector
from wsovvis.pseudo.refine import refine_mask

PAPER = {"tau": 0.15, "num_cuts": 3, "size": 480, "eps": 1e-5, "arch": "dino_vitb8", "refine": "crf"}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def paper_cut(feats: np.ndarray, tau: float = 0.15, num_cuts: int = 3, eps: float = 1e-5) -> list[PatchMask]:
    """MaskCut's N cuts of one frame's patch features ``[h, w, D]`` (painting by zeroing features).

    Returns the non-empty masks in cut order, disjoint (earlier masks win), each with its ncut value.
    """
    h, w, d = feats.shape
    flat = np.asarray(feats, np.float32).reshape(h * w, d)
    active = np.ones((h, w), bool)
    painting = np.zeros((h, w), bool)
    prev = np.zeros((h, w), bool)
    out: list[PatchMask] = []
    for _ in range(num_cuts):
        f = flat.copy()
        f[painting.ravel()] = 0.0  # zero rows have cosine 0 with everything: eps edges only
        graph = cosine_affinity(f, tau)
        x, lam = second_eigenvector(graph, eps)
        fg, seed = bipartition(x, active, "maskcut", None)
        mask = _component(fg, seed, None)
        if _iou(mask, prev) > 0.5 or mask.sum() <= 0.01 * h * w:
            mask = np.zeros((h, w), bool)
        prev = mask
        if not mask.any():
            continue  # the painting does not grow: the next cut sees the same graph
        nc = ncut_value(graph, eps, mask.ravel())
        own = mask & ~painting
        painting |= mask
        if own.any():
            out.append(PatchMask(mask=own, ncut=nc, eigenvalue=lam))
    return out


class MaskCutPaperEngine(MaskCutEngine):
    """`MaskCutEngine` whose per-frame step is `paper_cut` on ``size x size`` frames (see the module docstring).

    ``features`` must be a `wsovvis.pseudo.vit_features.ViTFeatures` (its ``keys`` method is used).
    """

    name = "maskcut_paper"

    def __init__(self, features, tau: float = 0.15, num_cuts: int = 3, size: int = 480, eps: float = 1e-5,
                 refine: str = "crf", **kwargs):
        from wsovvis.pseudo.cut import CutParams

        super().__init__(features, CutParams(tau=tau, num_cuts=num_cuts, eps=eps, fg_rule="maskcut"),
                         refine=refine, edge_ref=0.0, hole_px=-1.0, still_px=0.0, **kwargs)
        p = features.multiple
        self.size = max(p, (size // p) * p)

    def detect(self, video, feats, t: int) -> list[Detection]:
        frame = video.frames[t]
        h, w = frame.shape[:2]
        square = cv2.resize(frame, (self.size, self.size), interpolation=cv2.INTER_LANCZOS4)
        keys = self.features.keys(square[None])[0]
        dets = []
        for pm in paper_cut(keys, self.cut.tau, self.cut.num_cuts, self.cut.eps):
            m = refine_mask(square, pm.mask, self.refine)
            if m is None:
                continue
            m = ndimage.binary_fill_holes(m)
            m = cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) >= 0.5
            if not m.any():
                continue
            emb = describe(_Keys(keys), 0, pm.mask)
            dets.append(Detection(mask=m, embedding=emb, score=float(np.clip(1.0 - pm.ncut, 0.0, 1.0))))
        return dets


class _Keys:
    """Adapter so `describe` reads one frame's keys as ``link[0]``."""

    link_is_histogram = False

    def __init__(self, keys: np.ndarray):
        self.link = keys[None]
