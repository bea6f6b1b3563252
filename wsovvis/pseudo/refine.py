"""From patch masks to pixel masks: upsampling plus an edge-aware refinement.

``guided``: the colour guided filter (He et al.) of the bilinearly upsampled patch mask, with the
frame as guide, thresholded at 0.5. It snaps the blocky patch boundary to image edges with box
filters only, so it is cheap and needs nothing beyond OpenCV.

``crf``: MaskCut's DenseCRF (pydensecrf / pydensecrf2, optional). When the module cannot be
imported the request is downgraded to ``guided`` with one logged note. As in MaskCut, a CRF mask
whose IoU with its input is below 0.5 is dropped.

``none``: nearest-neighbour upsampling.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

REFINERS = ("none", "guided", "crf")
_crf_note_logged = False


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Colour guided filter: ``guide float32 [H, W, 3]`` in 0..1, ``src float32 [H, W]`` -> ``[H, W]``."""
    k = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, k, borderType=cv2.BORDER_REFLECT)

    mi = box(guide)
    mp = box(src)
    cov = box(guide * src[..., None]) - mi * mp[..., None]
    var = np.empty(guide.shape[:2] + (3, 3), np.float32)
    for i in range(3):
        for j in range(i, 3):
            var[..., i, j] = var[..., j, i] = box(guide[..., i] * guide[..., j]) - mi[..., i] * mi[..., j]
    var += eps * np.eye(3, dtype=np.float32)
    a = np.linalg.solve(var, cov[..., None])[..., 0]
    b = mp - (a * mi).sum(-1)
    return (box(a) * guide).sum(-1) + box(b)


def crf_available() -> bool:
    try:
        import pydensecrf.densecrf  # noqa: F401
    except ImportError:
        return False
    return True


def _crf(image: np.ndarray, soft: np.ndarray) -> np.ndarray:
    """MaskCut's DenseCRF settings on ``uint8 [H, W, 3]`` with a soft foreground ``[H, W]`` in 0..1."""
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_softmax

    h, w = soft.shape
    prob = np.stack([1.0 - soft, soft]).clip(1e-5, 1.0).astype(np.float32)
    d = dcrf.DenseCRF2D(w, h, 2)
    d.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(prob)))
    d.addPairwiseGaussian(sxy=3, compat=7)
    d.addPairwiseBilateral(sxy=50, srgb=5, rgbim=np.ascontiguousarray(image), compat=10)
    q = np.array(d.inference(10)).reshape(2, h, w)
    return q[1] > q[0]


def refine_mask(image: np.ndarray, patch_mask: np.ndarray, mode: str = "guided",
                prior: np.ndarray | None = None, prior_weight: float = 0.5) -> np.ndarray | None:
    """Patch mask ``bool [h, w]`` -> pixel mask ``bool [H, W]`` of ``image uint8 [H, W, 3]``.

    ``prior``: optional ``[H, W]`` 0..1 map (pixel saliency); the soft mask is scaled by
    ``1 - prior_weight + prior_weight * prior`` before the filter, so pixels of the patch mask
    without pixel-level evidence can fall out. Returns None when the CRF drops the mask.
    """
    if mode not in REFINERS:
        raise ValueError(f"unknown refinement {mode!r}; choose from {REFINERS}")
    h, w = image.shape[:2]
    if mode == "none":
        return cv2.resize(patch_mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    soft = cv2.resize(patch_mask.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    if prior is not None and prior_weight > 0:  # weight 0 would scale by exactly 1
        soft = soft * (1.0 - prior_weight + prior_weight * np.clip(prior, 0.0, 1.0))
    if mode == "crf":
        global _crf_note_logged
        if crf_available():
            raw = soft > 0.5
            out = ndimage.binary_fill_holes(_crf(image, soft))
            inter, union = np.logical_and(raw, out).sum(), np.logical_or(raw, out).sum()
            return out if union and inter / union >= 0.5 else None
        if not _crf_note_logged:
            log.info("CRF requested but pydensecrf is not importable (pip install pydensecrf2); "
                     "using the guided filter instead")
            _crf_note_logged = True
    radius = max(2, int(round(min(h, w) / 60)))
    out = np.zeros((h, w), bool)
    box = support_box(soft > 0, 4 * radius + 1)
    if box is not None:
        out[box] = guided_filter(image[box].astype(np.float32) / 255.0, soft[box].astype(np.float32), radius,
                                 1e-3) > 0.5
    return out


def support_box(mask: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """Bounding box of ``mask [H, W]`` grown by ``margin`` px (clipped to the frame); None when it is empty.

    A guided filter of radius ``r`` is 0 farther than ``2 r`` from the support of its input and
    sees ``2 r`` around each pixel, so filtering the crop grown by ``4 r + 1`` gives the same mask as
    filtering the whole frame, at the cost of the crop.
    """
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not len(rows):
        return None
    h, w = mask.shape
    return (slice(max(0, rows[0] - margin), min(h, rows[-1] + margin + 1)),
            slice(max(0, cols[0] - margin), min(w, cols[-1] + margin + 1)))


def fill_moving_holes(mask: np.ndarray, flow: np.ndarray | None, tol_px: float) -> np.ndarray:
    """Fill the holes of ``mask bool [H, W]`` (regions it encloses) that move with it.

    A hole whose mean flow (``flow [H, W, 2]``) is within ``tol_px`` of the mask's mean flow is a
    part of the object the cut missed (a cow's white patch); one that moves otherwise is
    background seen through the object and stays out. Without flow every hole is filled.
    """
    # Holes lie inside the bounding box (a region touching its edge is open in the frame too).
    box = support_box(mask, 0)
    if box is None:
        return mask
    sub = mask[box]
    holes = ndimage.binary_fill_holes(sub) & ~sub
    if not holes.any():
        return mask
    out = mask.copy()
    if flow is None:
        out[box] |= holes
        return out
    lab, n = ndimage.label(holes)
    fl = flow[box]
    obj = fl[sub].mean(axis=0)
    idx = np.arange(1, n + 1)
    fx = np.asarray(ndimage.mean(fl[..., 0], lab, idx))
    fy = np.asarray(ndimage.mean(fl[..., 1], lab, idx))
    keep = idx[np.hypot(fx - obj[0], fy - obj[1]) <= tol_px]
    if len(keep):
        out[box] |= np.isin(lab, keep)
    return out


def snap_to_prior(mask: np.ndarray, prior: np.ndarray, image: np.ndarray, band_px: int,
                  min_contrast: float = 0.15, radius: int = 4) -> np.ndarray:
    """Redraw the outline of ``mask bool [H, W]`` within ``band_px`` of it from a pixel-level ``prior [H, W]``.

    A cut on a patch grid places its outline to within a cell. The pixel prior (objectness) is
    sharper but its level differs from object to object, so it is rescaled per mask: the median
    prior of a ring just inside the band maps to 1, that of a ring just outside to 0. Band pixels
    whose rescaled prior, edge-aware smoothed by a guided filter with ``image uint8 [H, W, 3]`` as
    guide, exceeds 0.5 are the object; pixels outside the band keep their state. Masks whose inside
    and outside priors differ by less than ``min_contrast`` are returned unchanged (the prior does
    not tell object from background there).
    """
    box = support_box(mask, 2 * band_px + 4 * radius + 1) if band_px > 0 else None
    if box is None:
        return mask
    out = mask.copy()
    out[box] = _snap(mask[box], prior[box], image[box], band_px, min_contrast, radius)
    return out


def _snap(mask: np.ndarray, prior: np.ndarray, image: np.ndarray, band_px: int, min_contrast: float,
          radius: int) -> np.ndarray:
    m8 = mask.astype(np.uint8)

    def grown(r: int) -> np.ndarray:
        return cv2.dilate(m8, np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0

    def shrunk(r: int) -> np.ndarray:
        return cv2.erode(m8, np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0

    outside, inside = grown(band_px), shrunk(band_px)
    inner_ring = inside & ~shrunk(2 * band_px)
    outer_ring = grown(2 * band_px) & ~outside
    # A mask thinner than the band, or one filling the frame, has no ring to measure levels on.
    if inner_ring.sum() < 20 or outer_ring.sum() < 20:
        return mask
    p_in, p_out = float(np.median(prior[inner_ring])), float(np.median(prior[outer_ring]))
    if p_in - p_out < min_contrast:
        return mask
    level = np.clip((prior.astype(np.float32) - p_out) / (p_in - p_out), 0.0, 1.0)
    level = guided_filter(image.astype(np.float32) / 255.0, level, radius, 1e-2)
    band = outside & ~inside
    return np.where(band, level > 0.5, mask)
