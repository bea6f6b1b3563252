"""Optical flow (OpenCV DIS), camera-motion compensation and a motion-saliency map.

The camera motion between two frames is a homography fitted with RANSAC to a grid of flow
vectors; what remains after subtracting it (the residual flow) is the motion of independently
moving things. The saliency of a pixel is the smaller of its forward and backward residual
magnitudes, which suppresses the background that an object uncovers or covers (it moves in only
one of the two directions). A direction counts only where its flow passes the forward-backward
check (`consistent`): flow that does not come back to where it started is not trustworthy, which
is what it does on rippling water, spray and occluded pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}


class FlowEstimator:
    """Dense flow between two grayscale ``uint8 [h, w]`` frames -> ``float32 [h, w, 2]`` (dx, dy)."""

    def __init__(self, preset: str = "medium"):
        if preset not in _PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}; choose from {', '.join(_PRESETS)}")
        self.preset = preset
        self._dis = cv2.DISOpticalFlow_create(_PRESETS[preset])

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self._dis.calc(a, b, None)


def camera_flow(flow: np.ndarray, step: int = 8, ransac_px: float = 1.0) -> np.ndarray:
    """Flow ``[h, w, 2]`` explained by one homography (the camera), fitted by RANSAC on a grid.

    Falls back to the median translation when the fit fails (e.g. a blank frame).
    """
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[step // 2:h:step, step // 2:w:step]
    p0 = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
    p1 = p0 + flow[ys.ravel(), xs.ravel()]
    hom = None
    if len(p0) >= 8:
        hom, _ = cv2.findHomography(p0, p1, cv2.RANSAC, ransac_px)
    if hom is None or not np.all(np.isfinite(hom)):
        med = np.median(flow.reshape(-1, 2), axis=0)
        return np.broadcast_to(med, flow.shape).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    pts = np.stack([xx, yy, np.ones_like(xx)], axis=-1) @ hom.T.astype(np.float32)
    z = pts[..., 2:3]
    z = np.where(np.abs(z) < 1e-6, 1e-6, z)
    return (pts[..., :2] / z - np.stack([xx, yy], axis=-1)).astype(np.float32)


def _read_at(x: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``x [h, w, C]`` read at ``p + flow(p)`` (bilinear, edges clamped)."""
    h, w = flow.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(x, xx + flow[..., 0], yy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def consistent(flow: np.ndarray, back: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Forward-backward check of Sundaram, Brox and Keutzer (ECCV 2010), with their constants.

    ``flow`` (t -> t+1) and ``back`` (t+1 -> t), ``float32 [h, w, 2]`` -> ``bool [h, w]``, True where
    ``|f + b'|^2 <= 0.01 (|f|^2 + |b'|^2) + 0.5 s^2`` with ``b'`` = ``back`` read at ``p + f(p)`` and
    ``s = max(scale, 1)`` (``scale``: frame short side / 480; below 480p the tolerance stays 0.5 px^2
    because the flow's own error does not shrink with the frame). Where it fails the motion cannot be
    trusted: the pixel is hidden in the other frame, or its texture changes too fast to be matched
    (ripples, spray).
    """
    b = _read_at(back, flow)
    err = np.square(flow + b).sum(-1)
    return err <= 0.01 * (np.square(flow).sum(-1) + np.square(b).sum(-1)) + 0.5 * max(scale, 1.0) ** 2


def video_motion(gray: np.ndarray, estimator: FlowEstimator, ransac_px: float = 1.0, fb_check: bool = True
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flows and residual motion of a whole video.

    Args:
        gray: ``uint8 [T, h, w]``.
        fb_check: a direction's motion counts only where it passes the forward-backward check
            (`consistent`); a pixel with no consistent direction has saliency 0.
    Returns:
        ``forward [T, h, w, 2]`` flow t -> t+1 (the last frame repeats t-1 -> t),
        ``residual [T, h, w, 2]`` camera-compensated forward motion (for direction features),
        ``saliency [T, h, w]`` min(|forward residual|, |backward residual|) in pixels over the
        consistent directions. A one-frame video has zero motion.
    """
    t_len, h, w = gray.shape
    fwd = np.zeros((t_len, h, w, 2), np.float32)
    res = np.zeros_like(fwd)
    sal = np.zeros((t_len, h, w), np.float32)
    if t_len < 2:
        return fwd, res, sal
    res_b = np.zeros_like(fwd)
    ok_f = np.ones((t_len, h, w), bool)
    ok_b = np.ones((t_len, h, w), bool)
    scale = min(h, w) / 480.0
    for t in range(t_len - 1):
        f = estimator(gray[t], gray[t + 1])
        b = estimator(gray[t + 1], gray[t])
        fwd[t] = f
        res[t] = f - camera_flow(f, ransac_px=ransac_px)
        res_b[t + 1] = b - camera_flow(b, ransac_px=ransac_px)
        if fb_check:
            ok_f[t] = consistent(f, b, scale)
            ok_b[t + 1] = consistent(b, f, scale)
    # End frames have one direction only; reuse it (t = T-1 moves like t-1 -> t, reversed).
    fwd[-1] = -estimator(gray[-1], gray[-2]) if t_len > 1 else fwd[-1]
    res[-1] = -res_b[-1]
    res_b[0] = -res[0]
    ok_f[-1] = ok_b[-1]
    ok_b[0] = ok_f[0]
    mag_f = np.where(ok_f, np.linalg.norm(res, axis=-1), np.inf)
    mag_b = np.where(ok_b, np.linalg.norm(res_b, axis=-1), np.inf)
    sal[:] = np.minimum(mag_f, mag_b)
    sal[~np.isfinite(sal)] = 0.0  # consistent in neither direction
    return fwd, res, sal


def warp_mask(mask: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Move a bool mask ``[h, w]`` of frame t to frame t+1 along the forward flow ``[h, w, 2]`` of t.

    Backward warping with the forward flow sampled at the target is an approximation that holds
    for the smooth flow inside objects; it is only used to predict where a track will be.
    """
    h, w = mask.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    m = cv2.remap(mask.astype(np.float32), xx - flow[..., 0], yy - flow[..., 1], cv2.INTER_LINEAR,
                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return m > 0.5
