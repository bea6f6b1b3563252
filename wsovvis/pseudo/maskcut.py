"""The training-free ``maskcut`` engine: features -> per-frame cuts -> refinement -> tracks -> tubes.

With a ViT checkpoint the features are the last-layer keys of DINO/DINOv2 (MaskCut); without one,
the weight-free classic features (motion, colour) drive the same cut. Per frame the masks become
`Detection`s scored by their cut (``1 - ncut`` for ViT features, mean objectness for the weight-free
ones) times a boundary term (how well the mask's outline follows image edges), are linked over
time and cleaned up offline (`wsovvis.pseudo.cleanup`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wsovvis.pseudo.cleanup import CleanupParams, Tube, cleanup
from wsovvis.pseudo.cut import CutParams, PatchMask, cut_frame
from wsovvis.pseudo.features import FeatureExtractor, VideoFeatures
from wsovvis.pseudo.frames import Video
from wsovvis.pseudo.linking import Detection, LinkParams, Track, Tracker
from wsovvis.pseudo.motion import FlowEstimator, warp_mask
from wsovvis.pseudo.refine import refine_mask


@dataclass
class EngineResult:
    """``tubes`` with masks at the frames' working size (painted at the original size by the runner)."""

    tubes: list[Tube]
    num_frames: int
    notes: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)


def describe(feats: VideoFeatures, t: int, mask: np.ndarray) -> np.ndarray:
    """Unit appearance vector of a patch mask ``[h, w]`` in frame ``t`` (mean link feature)."""
    v = feats.link[t][mask].mean(axis=0)
    if feats.link_is_histogram:
        v = np.sqrt(np.maximum(v, 0.0))  # Hellinger: cosine of square roots compares histograms
    return v / max(float(np.linalg.norm(v)), 1e-12)


def detection_score(pm: PatchMask, fg_rule: str) -> float:
    """Cut confidence: mean objectness (saliency rule) or ``1 - ncut`` (MaskCut rule), in 0..1."""
    if fg_rule == "saliency":
        return float(np.clip(pm.saliency, 0.0, 1.0))
    return float(np.clip(1.0 - pm.ncut, 0.0, 1.0))


def gradient_magnitude(rgb: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude ``float32 [H, W]`` of the grey frame."""
    import cv2

    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))


def edge_alignment(mask: np.ndarray, grad: np.ndarray) -> float:
    """Mean gradient on the mask's boundary / mean gradient of the frame (1 = no better than chance).

    Object boundaries follow image edges; a mask that leaks into water or shadow does not.
    """
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    boundary = mask & ~inner
    if not boundary.any():
        return 0.0
    return float(grad[boundary].mean() / max(float(grad.mean()), 1e-6))


class MaskCutEngine:
    """Per-video pseudo tubes from a `FeatureExtractor` and the normalized-cut procedure."""

    name = "maskcut"

    def __init__(self, features: FeatureExtractor, cut: CutParams, link: LinkParams | None = None,
                 clean: CleanupParams | None = None, refine: str = "guided", warp: bool = True,
                 edge_ref: float = 3.0, prior_weight: float = 0.4):
        self.features = features
        self.edge_ref = edge_ref
        self.prior_weight = prior_weight
        self.warp = warp
        self._flow = FlowEstimator("fast")
        self.cut = cut
        self.link = link or LinkParams()
        self.clean = clean or CleanupParams()
        self.refine = refine

    @property
    def frame_spec(self) -> tuple[int, int, int]:
        """(short_side, multiple, max_long) of the working frame size this engine wants."""
        return self.features.short_side, self.features.multiple, self.features.max_long

    def detect(self, video: Video, feats: VideoFeatures, t: int) -> list[Detection]:
        sal = feats.saliency[t] if feats.saliency is not None else None
        prior = feats.pixel_saliency[t] if feats.pixel_saliency is not None else None
        dets = []
        grad = gradient_magnitude(video.frames[t]) if self.edge_ref > 0 else None
        for pm in cut_frame(feats.patch[t], self.cut, sal):
            m = refine_mask(video.frames[t], pm.mask, self.refine, prior, self.prior_weight)
            if m is None or not m.any():
                continue
            score = detection_score(pm, self.cut.fg_rule)
            if grad is not None:
                # Boundary quality: full credit at edge_ref times the frame's mean gradient.
                score *= min(1.0, edge_alignment(m, grad) / self.edge_ref) ** 0.5
            dets.append(Detection(mask=m, embedding=describe(feats, t, pm.mask), score=score))
        return dets

    def __call__(self, video: Video) -> EngineResult:
        feats = self.features(video.frames)
        tracker = Tracker(self.link)
        num_dets = 0
        flows: dict[int, np.ndarray] = {}

        def flow_from(t: int) -> np.ndarray:
            """Forward flow t -> t+1 (from the features, else DIS on demand)."""
            if feats.flow is not None:
                return feats.flow[t]
            if t not in flows:
                import cv2

                flows.clear()
                g0 = cv2.cvtColor(video.frames[t], cv2.COLOR_RGB2GRAY)
                g1 = cv2.cvtColor(video.frames[t + 1], cv2.COLOR_RGB2GRAY)
                flows[t] = self._flow(g0, g1)
            return flows[t]

        def predict(tr: Track, t: int) -> np.ndarray:
            # Only a track seen in the previous frame is moved; older ones match on appearance.
            if self.warp and tr.last_t == t - 1:
                return warp_mask(tr.last_mask, flow_from(t - 1))
            return tr.last_mask

        for t in range(len(video)):
            dets = self.detect(video, feats, t)
            num_dets += len(dets)
            tracker.step(t, dets, lambda tr, t=t: predict(tr, t))
        tubes = cleanup(tracker.tracks, len(video), self.clean)
        return EngineResult(tubes=tubes, num_frames=len(video),
                            stats={"detections": num_dets, "tracks": len(tracker.tracks), "tubes": len(tubes)})
