"""Optical flow (OpenCV DIS), camera-motion compensation and a motion-saliency map.

The camera motion between two frames is a homography fitted with RANSAC to a grid of flow
vectors; what remains after subtracting it (the residual flow) is the motion of independently
moving things. The saliency of a pixel is the smaller of its forward and backward residual
magnitudes, which suppresses the background that an object uncovers or covers (it moves in only
one of the two directions).
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


def video_motion(gray: np.ndarray, estimator: FlowEstimator, ransac_px: float = 1.0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flows and residual motion of a whole video.

    Args:
        gray: ``uint8 [T, h, w]``.
    Returns:
        ``forward [T, h, w, 2]`` flow t -> t+1 (the last frame repeats t-1 -> t),
        ``residual [T, h, w, 2]`` camera-compensated forward motion (for direction features),
        ``saliency [T, h, w]`` min(|forward residual|, |backward residual|) in pixels.
        A one-frame video has zero motion.
    """
    t_len, h, w = gray.shape
    fwd = np.zeros((t_len, h, w, 2), np.float32)
    res = np.zeros_like(fwd)
    sal = np.zeros((t_len, h, w), np.float32)
    if t_len < 2:
        return fwd, res, sal
    res_b = np.zeros_like(fwd)
    for t in range(t_len - 1):
        f = estimator(gray[t], gray[t + 1])
        b = estimator(gray[t + 1], gray[t])
        fwd[t] = f
        res[t] = f - camera_flow(f, ransac_px=ransac_px)
        res_b[t + 1] = b - camera_flow(b, ransac_px=ransac_px)
    # End frames have one direction only; reuse it (t = T-1 moves like t-1 -> t, reversed).
    fwd[-1] = -estimator(gray[-1], gray[-2]) if t_len > 1 else fwd[-1]
    res[-1] = -res_b[-1]
    res_b[0] = -res[0]
    sal[:] = np.minimum(np.linalg.norm(res, axis=-1), np.linalg.norm(res_b, axis=-1))
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
