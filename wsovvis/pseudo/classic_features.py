"""Weight-free features: motion saliency, a video-level colour model, colour and motion direction.

Nothing is downloaded. Per video:

1. DIS optical flow, camera motion removed by a RANSAC homography (`wsovvis.pseudo.motion`);
   the motion saliency of a pixel is its residual motion, normalised per frame against the
   video's typical motion, so a frame where nothing moves stays dark.
2. A colour model learnt from the video itself: Lab histograms of clearly moving pixels
   (foreground) and of still pixels (background) give ``P(foreground | colour)``, which dims moving
   background (water, shadows) and keeps objects that pause: colours (nearly) exclusive to moving
   things count as objectness even without motion in that frame.
3. Objectness ``o`` = max(saliency x colour probability, exclusive-colour term). For the cut it is
   gated by the flow's local coherence (`flow_coherence`): an object moves smoothly, while water,
   spray, wakes and reflections of rippling water move with a flow that varies from pixel to
   pixel, so their objectness is dimmed before it is pooled into cells. The ungated map is kept as
   the pixel prior that places outlines (thin, blurred parts such as legs and wheels have noisy
   flow too, and the cut has already decided which object they border).
4. The cut features are objectness-gated: ``[k(1-o), w_o o, w_c o c, w_m o m]`` with ``c`` the
   colour direction (centred Lab plus a constant) and ``m`` the residual-motion direction. Their
   cosine makes all background cells alike, foreground unlike background, and foreground cells
   alike only when colour and motion agree, so touching objects of different colour or motion
   separate while a single object stays whole.
5. The link features are soft Lab colour histograms (4x4x4 bins) per cell: averaged inside a mask
   they describe its colours, which tells objects apart over time.
"""

from __future__ import annotations

import cv2
import numpy as np

from wsovvis.pseudo.features import FeatureExtractor, VideoFeatures, patch_pool, register_features
from wsovvis.pseudo.motion import FlowEstimator, video_motion
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)


def _lab(frames: np.ndarray) -> np.ndarray:
    """``uint8 [T, H, W, 3]`` RGB -> ``float32`` Lab with L in 0..100 and a, b in about -128..127."""
    out = np.empty(frames.shape, np.float32)
    for t, f in enumerate(frames):
        out[t] = cv2.cvtColor(f.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    return out


def _quantise(lab: np.ndarray, bins: int) -> np.ndarray:
    """Lab -> bin index in ``0..bins**3-1`` (L over 0..100, a/b over -100..100)."""
    lq = np.clip(lab[..., 0] / 100.0 * bins, 0, bins - 1).astype(np.int32)
    aq = np.clip((lab[..., 1] + 100.0) / 200.0 * bins, 0, bins - 1).astype(np.int32)
    bq = np.clip((lab[..., 2] + 100.0) / 200.0 * bins, 0, bins - 1).astype(np.int32)
    return (lq * bins + aq) * bins + bq


def normalise_saliency(sal: np.ndarray, floor_px: float) -> np.ndarray:
    """Residual motion ``[T, H, W]`` (px) -> 0..1: each frame against max(its own top, half the video's, floor)."""
    tops = np.percentile(sal.reshape(len(sal), -1), 99.5, axis=1)
    ref = max(float(np.median(tops)), floor_px)
    scale = np.maximum(tops, 0.5 * ref)
    scale = np.maximum(scale, floor_px)
    return np.clip(sal / scale[:, None, None], 0.0, 1.0)


def colour_probability(quant: np.ndarray, sal: np.ndarray, bins: int, fg_thr: float = 0.5,
                       bg_thr: float = 0.1, min_fg: int = 50) -> np.ndarray:
    """``P(fg | colour)`` per pixel from histograms of salient (fg) and still (bg) pixels of the video.

    Returns 0.5 everywhere when too few pixels move to learn a foreground model.
    """
    fg_sel = sal > fg_thr
    if fg_sel.sum() < min_fg:
        return np.full(sal.shape, 0.5, np.float32)
    n = bins ** 3
    quant = quant.astype(np.int64, copy=False)
    hf = np.bincount(quant[fg_sel], minlength=n).astype(np.float64) + 1.0
    hb = np.bincount(quant[sal < bg_thr], minlength=n).astype(np.float64) + 1.0
    hf /= hf.sum()
    hb /= hb.sum()
    return (hf / (hf + hb)).astype(np.float32)[quant]


def colour_rarity(quant: np.ndarray, bins: int, q: float) -> np.ndarray:
    """1 for colours covering less than a fraction ``q`` of the video's pixels, falling to 0 at
    ``4 q`` (log scale): backgrounds are made of few, widespread colours."""
    n = bins ** 3
    p = np.bincount(quant.ravel().astype(np.int64), minlength=n).astype(np.float64) / quant.size
    # Spread each bin's mass over its 3x3x3 neighbourhood so a colour split across bins is not rare.
    cube = p.reshape(bins, bins, bins)
    from scipy.ndimage import uniform_filter

    cube = uniform_filter(cube, size=3, mode="nearest")
    r = np.clip(1.0 - np.log(np.maximum(cube.ravel(), 1e-12) / q) / np.log(4.0), 0.0, 1.0)
    return r.astype(np.float32)[quant]


def _sample(x: np.ndarray, flow: np.ndarray, sign: float) -> np.ndarray:
    """``x [H, W]`` read at ``p + sign * flow(p)`` (bilinear, edges clamped)."""
    h, w = x.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(x, xx + sign * flow[..., 0], yy + sign * flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def flow_coherence(flow: np.ndarray, sigma_px: float, win: int) -> np.ndarray:
    """How smooth the flow is around each pixel: ``flow [T, H, W, 2]`` -> ``float32 [T, H, W]`` in 0..1.

    ``1 / (1 + v / sigma_px^2)`` with ``v`` the variance of the flow vectors (summed over x and y)
    in the smoothest of the four ``win x win`` windows that have the pixel as a corner (Kuwahara's
    choice of window): next to an object's outline one of them lies on the object alone, so a
    motion boundary does not count as incoherent, while inside spray or ripples every window varies.
    """
    r = win // 2
    out = np.empty(flow.shape[:3], np.float32)
    h, w = flow.shape[1:3]
    for t, f in enumerate(flow):
        f = f.astype(np.float32, copy=False)
        mean = cv2.blur(f, (2 * r + 1, 2 * r + 1))
        var = np.maximum(cv2.blur(f * f, (2 * r + 1, 2 * r + 1)) - mean * mean, 0.0).sum(-1)
        pad = np.pad(var, r, mode="edge")
        # The window centred r px up-left of the pixel has it as its bottom-right corner, and so on.
        var = np.minimum.reduce([pad[dy:dy + h, dx:dx + w] for dy in (0, 2 * r) for dx in (0, 2 * r)])
        out[t] = 1.0 / (1.0 + var / (sigma_px * sigma_px))
    return out


def temporal_smooth(obj: np.ndarray, fwd: np.ndarray, weight: float) -> np.ndarray:
    """Average each frame's map ``[T, H, W]`` with its neighbours moved onto it along the flow.

    Frame t+1 is read at ``p + F_t(p)`` (exact for the forward flow of t); frame t-1 at
    ``p - F_{t-1}(p)`` (the forward flow of t-1 stands in for the backward flow of t).
    """
    if weight <= 0 or len(obj) < 2:
        return obj
    out = obj.copy()
    norm = np.ones(len(obj), np.float32)
    for t in range(len(obj)):
        if t + 1 < len(obj):
            out[t] += weight * _sample(obj[t + 1], fwd[t], 1.0)
            norm[t] += weight
        if t > 0:
            out[t] += weight * _sample(obj[t - 1], fwd[t - 1], -1.0)
            norm[t] += weight
    return out / norm[:, None, None]


class ClassicFeatures(FeatureExtractor):
    """Weight-free features (see the module docstring).

    Args:
        patch: cell size in pixels at the working resolution; 0 = about ``grid_short`` cells along
            the short side (16 px at 480p, 4 px at 96 px).
        short_side / max_long: working size of the frames.
        k_obj, w_obj, w_col, w_mot: weights of the background component, the common foreground
            component, the foreground colour direction and the foreground motion direction.
        col_scale: Lab distance from the frame mean that counts as a distinct colour;
            mot_scale: likewise for motion, in units of the frame's normalising motion.
        colour_bins: bins per Lab axis of the colour model.
        floor_px: residual motion (px at 480p) below which nothing is called moving.
        still_weight / still_min_p: colour evidence without motion counts (up to ``still_weight``)
            for colours whose ``P(fg | colour)`` exceeds ``still_min_p``, so objects that pause keep
            their objectness while colours shared with the background do not.
        fb_check: motion saliency only from flow that passes the forward-backward check
            (`wsovvis.pseudo.motion.consistent`): rippling water and spray are not objects.
        coherence_px / coherence_win: the cut's objectness is gated by `flow_coherence` with
            ``sigma_px = coherence_px`` and ``win = coherence_win`` (at 480p; the window scales
            with the frame, sigma only grows above 480p); ``coherence_px`` 0 turns the gate off.
    """

    name = "classic"

    def __init__(self, patch: int = 0, grid_short: int = 30, short_side: int = 480, max_long: int = 1024,
                 k_obj: float = 1.0, w_obj: float = 0.5, w_col: float = 1.0, w_mot: float = 0.7,
                 col_scale: float = 20.0, mot_scale: float = 0.5, colour_bins: int = 16, floor_px: float = 0.6,
                 still_weight: float = 1.0, still_min_p: float = 0.9, flow_preset: str = "medium",
                 sal_gamma: float = 0.7, temporal: float = 0.0, w_rare: float = 0.0, rare_q: float = 0.02,
                 fb_check: bool = True, coherence_px: float = 0.15, coherence_win: int = 9):
        self.patch = patch
        self.grid_short = grid_short
        self.multiple = 1
        self.short_side = short_side
        self.max_long = max_long
        self.k_obj, self.w_obj, self.w_col, self.w_mot = k_obj, w_obj, w_col, w_mot
        self.col_scale = col_scale
        self.mot_scale = mot_scale
        self.colour_bins = colour_bins
        self.floor_px = floor_px
        self.still_weight = still_weight
        self.still_min_p = still_min_p
        self.sal_gamma = sal_gamma
        self.temporal = temporal
        self.w_rare = w_rare
        self.rare_q = rare_q
        self.fb_check = fb_check
        self.coherence_px = coherence_px
        self.coherence_win = coherence_win
        self.flow = FlowEstimator(flow_preset)

    def cell_size(self, h: int, w: int) -> int:
        return self.patch or max(2, int(round(min(h, w) / self.grid_short)))

    def _objectness(self, p_col: np.ndarray, sal: np.ndarray, quant: np.ndarray, fwd: np.ndarray) -> np.ndarray:
        """``[T, H, W]`` objectness in 0..1 from ``P(fg | colour)`` and motion saliency (module docstring, 2-3)."""
        # Colour alone (no motion in this frame) counts only for colours (nearly) exclusive to
        # moving things: P above still_min_p, stretched to 0..1.
        excl = np.clip((p_col - self.still_min_p) / max(1.0 - self.still_min_p, 1e-6), 0.0, 1.0)
        obj = np.maximum(p_col * sal, self.still_weight * excl)
        if self.w_rare > 0:
            obj = np.maximum(obj, self.w_rare * colour_rarity(quant, self.colour_bins, self.rare_q))
        obj = temporal_smooth(obj.astype(np.float32), fwd, self.temporal)
        top = float(np.percentile(obj, 99.5)) if obj.size else 0.0
        return np.clip(obj / max(top, 1e-3), 0.0, 1.0)

    def motion(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The flow stage alone (`wsovvis.pseudo.motion.video_motion` of ``uint8 [T, H, W, 3]`` frames): the
        costly part, which settings that only change what follows can share."""
        scale = min(frames.shape[1:3]) / 480.0
        gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
        return video_motion(gray, self.flow, ransac_px=max(0.5, scale), fb_check=self.fb_check)

    def __call__(self, frames: np.ndarray, motion: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                 ) -> VideoFeatures:
        """``uint8 [T, H, W, 3]`` RGB -> `VideoFeatures` on the ``H//p x W//p`` grid (``p`` = `cell_size`).

        ``motion``: the output of `motion` for these frames, if already computed.
        """
        t_len, h, w, _ = frames.shape
        scale = min(h, w) / 480.0
        fwd, res, sal_px = motion if motion is not None else self.motion(frames)
        sal = normalise_saliency(sal_px, self.floor_px * scale) ** self.sal_gamma
        if self.coherence_px > 0:
            win = max(3, int(round(self.coherence_win * scale)) | 1)
            # Below 480p sigma stays at its 480p value: the flow's own noise does not shrink with
            # the frame (the same rule as the forward-backward check's tolerance).
            sigma = self.coherence_px * max(scale, 1.0)
            sal_cut = normalise_saliency(sal_px * flow_coherence(fwd, sigma, win),
                                         self.floor_px * scale) ** self.sal_gamma
        else:
            sal_cut = sal
        # Per frame: Lab means per cell, colour-model bins and soft colour histograms (the
        # linking descriptor, 4 bins per Lab axis); nothing of size [T, H, W, C] is kept.
        p = self.cell_size(h, w)
        gh, gw = h // p, w // p
        cell = ((np.arange(gh * p)[:, None] // p) * gw + np.arange(gw * p)[None, :] // p).ravel()
        quant = np.empty((t_len, h, w), np.int16)
        lab_p = np.empty((t_len, gh, gw, 3), np.float32)
        link = np.empty((t_len, gh, gw, 64), np.float32)
        for t in range(t_len):
            lab = _lab(frames[t:t + 1])
            quant[t] = _quantise(lab, self.colour_bins)[0]
            lab_p[t] = patch_pool(lab, p)[0]
            q4 = _quantise(lab[:, :gh * p, :gw * p], 4)[0].ravel()
            hist = np.bincount(cell * 64 + q4, minlength=gh * gw * 64).astype(np.float32)
            link[t] = hist.reshape(gh, gw, 64) / (p * p)
        # The colour model learns from coherently moving pixels (sal_cut), so that spray and
        # ripples do not teach it their colours.
        p_col = colour_probability(quant, sal_cut, self.colour_bins)
        obj = self._objectness(p_col, sal_cut, quant, fwd)
        # The outline prior: the same objectness without the coherence gate.
        pixel_obj = obj if sal_cut is sal else self._objectness(p_col, sal, quant, fwd)

        o = patch_pool(obj[..., None], p)
        mot_norm = np.percentile(np.linalg.norm(res, axis=-1).reshape(t_len, -1), 99.5, axis=1)
        mot_norm = np.maximum(mot_norm, self.floor_px * scale)[:, None, None, None]
        mot_p = patch_pool(res / mot_norm, p)
        ones = np.ones_like(o)
        # Objectness-gated groups: background patches (o = 0) all look alike whatever their
        # colour; foreground patches (o = 1) agree when their colour and motion agree.
        centred = (lab_p - lab_p.reshape(t_len, -1, 3).mean(1)[:, None, None, :]) / self.col_scale
        # The constant keeps colours near the frame mean similar to each other instead of
        # giving them the random direction of a near-zero vector.
        col = np.concatenate([centred, ones], -1)
        col_dir = col / np.linalg.norm(col, axis=-1, keepdims=True)
        mot = np.concatenate([mot_p / self.mot_scale, ones], -1)
        mot_dir = mot / np.linalg.norm(mot, axis=-1, keepdims=True)
        patch_feats = np.concatenate(
            [self.k_obj * (1.0 - o), self.w_obj * o, self.w_col * o * col_dir, self.w_mot * o * mot_dir], -1
        ).astype(np.float32)
        return VideoFeatures(patch=patch_feats, link=link, saliency=o[..., 0].astype(np.float32),
                             pixel_saliency=pixel_obj.astype(np.float32), flow=fwd, motion=sal_px, fg_rule="saliency",
                             link_is_histogram=True)


@register_features("classic")
def _build_classic(**kwargs) -> ClassicFeatures:
    kwargs.pop("weights", None)
    return ClassicFeatures(**kwargs)
