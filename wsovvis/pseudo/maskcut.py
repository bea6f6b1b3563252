"""The training-free ``maskcut`` engine: features -> per-frame cuts -> refinement -> tracks -> tubes.

With a ViT checkpoint the features are the last-layer keys of DINO/DINOv2 (MaskCut); without one,
the weight-free classic features (motion, colour) drive the same cut. Per frame the masks become
`Detection`s scored by their cut (``1 - ncut`` for ViT features, mean objectness for the weight-free
ones) times a boundary term (how well the mask's outline follows image edges), are linked over
time and cleaned up offline (`wsovvis.pseudo.cleanup`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from wsovvis.pseudo.cleanup import CleanupParams, Tube, cleanup, finalize, score_tube
from wsovvis.pseudo.cliplink import ClipLinkParams, link_clip
from wsovvis.pseudo.cut import CutParams, PatchMask, cut_frame
from wsovvis.pseudo.features import FeatureExtractor, VideoFeatures
from wsovvis.pseudo.frames import Video
from wsovvis.pseudo.linking import Detection, LinkParams, Track, Tracker
from wsovvis.pseudo.motion import FlowEstimator, warp_mask
from wsovvis.pseudo.refine import fill_moving_holes, refine_mask, snap_to_prior

LINKERS = ("clip", "online")


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


def touches_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def moves_with_camera(tube: Tube, motion: np.ndarray, still_px: float, border_frac: float) -> bool:
    """True when the tube's median residual motion (``motion [T, H, W]``, px) is below ``still_px`` and
    it touches the image border in more than ``border_frac`` of its frames: static background
    (sky, walls, grass) that the colour model let through."""
    frames = [t for t in tube.frames if t not in tube.filled] or tube.frames
    res = float(np.median([motion[t][tube.masks[t]].mean() for t in frames]))
    border = np.mean([touches_border(tube.masks[t]) for t in frames])
    return res < still_px and border > border_frac


class MaskCutEngine:
    """Per-video pseudo tubes from a `FeatureExtractor` and the normalized-cut procedure.

    ``linker``: ``clip`` (default; `wsovvis.pseudo.cliplink`, whole-clip grouping along the flow)
    or ``online`` (the frame-by-frame Hungarian tracker of `wsovvis.pseudo.linking` + `cleanup`).
    ``hole_px``: holes moving within this many pixels (at 480p) of their mask are filled
    (negative: off); ``still_px`` / ``border_frac``: tubes moving with the camera and on the
    border are dropped (``still_px`` 0: off); both need the features' flow / motion.
    ``min_keep``: a tube frame left with less than this fraction of its mask after better tubes
    took their pixels is dropped (clip linker only). ``snap_px``: each mask's outline is redrawn
    within this many pixels (at 480p) from the features' pixel prior (`refine.snap_to_prior`; 0: off,
    and nothing happens for features without a pixel prior).
    """

    name = "maskcut"

    def __init__(self, features: FeatureExtractor, cut: CutParams, link: LinkParams | None = None,
                 clean: CleanupParams | None = None, refine: str = "guided", warp: bool = True,
                 edge_ref: float = 3.0, prior_weight: float = 0.4, linker: str = "clip",
                 clip: ClipLinkParams | None = None, hole_px: float = 1.0, still_px: float = 0.6,
                 border_frac: float = 0.5, min_keep: float = 0.5, snap_px: float = 8.0):
        if linker not in LINKERS:
            raise ValueError(f"unknown linker {linker!r}; choose from {LINKERS}")
        self.linker = linker
        self.clip = clip or ClipLinkParams()
        self.hole_px = hole_px
        self.still_px = still_px
        self.border_frac = border_frac
        self.min_keep = min_keep
        self.snap_px = snap_px
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
            if m is not None and prior is not None and self.snap_px > 0:
                scale = min(m.shape) / 480.0
                m = snap_to_prior(m, prior, video.frames[t], max(1, round(self.snap_px * scale)),
                                  radius=max(1, round(4 * scale)))
            if m is None or not m.any():
                continue
            score = detection_score(pm, self.cut.fg_rule)
            if grad is not None:
                # Boundary quality: full credit at edge_ref times the frame's mean gradient.
                score *= min(1.0, edge_alignment(m, grad) / self.edge_ref) ** 0.5
            dets.append(Detection(mask=m, embedding=describe(feats, t, pm.mask), score=score))
        return dets

    def video_flow(self, video: Video) -> np.ndarray:
        """Forward DIS flows ``[T, H, W, 2]`` of the whole video (the last frame repeats the previous step reversed)."""
        import cv2

        gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in video.frames]
        flow = np.zeros(video.frames.shape[:3] + (2,), np.float32)
        for t in range(len(gray) - 1):
            flow[t] = self._flow(gray[t], gray[t + 1])
        if len(gray) > 1:
            flow[-1] = -self._flow(gray[-1], gray[-2])
        return flow

    def __call__(self, video: Video) -> EngineResult:
        feats = self.features(video.frames)
        if self.linker == "online":
            return self._online(video, feats)
        dets, flow = self.detect_all(video, feats)
        return self.link_all(video, feats, dets, flow)

    def detect_all(self, video: Video, feats: VideoFeatures) -> tuple[dict[int, list[Detection]], np.ndarray]:
        """Every frame's detections (holes that move with their mask filled) and the forward flows ``[T, H, W, 2]``."""
        flow = feats.flow if feats.flow is not None else self.video_flow(video)
        scale = min(video.frames.shape[1:3]) / 480.0
        dets: dict[int, list[Detection]] = {}
        for t in range(len(video)):
            dets[t] = self.detect(video, feats, t)
            if self.hole_px >= 0:
                for d in dets[t]:
                    d.mask = fill_moving_holes(d.mask, flow[t], self.hole_px * scale)
        return dets, flow

    def link_all(self, video: Video, feats: VideoFeatures, dets: dict[int, list[Detection]], flow: np.ndarray
                 ) -> EngineResult:
        """Clip-level linking, camera-tube removal, scoring (the detections are not modified)."""
        scale = min(video.frames.shape[1:3]) / 480.0
        pairs = link_clip(dets, flow, len(video), self.clip)
        min_len = min(len(video), max(self.clean.min_len, math.ceil(self.clean.min_len_frac * len(video))))
        tubes, camera = [], 0
        for tube, cons in pairs:
            if len(tube.masks) - len(tube.filled) < min_len:  # observed frames, not propagated ones
                continue
            if feats.motion is not None and self.still_px > 0 and moves_with_camera(
                    tube, feats.motion, self.still_px * scale, self.border_frac):
                camera += 1
                continue
            # Consistency along the flow calibrates the score: a tube whose masks jump scores low.
            tube.score = score_tube(tube, len(video), self.clean.persistence_power) * cons
            tubes.append(tube)
        # A frame where a better tube claims over half of this tube's mask holds a leftover sliver of
        # another object, not an observation of this one.
        tubes = finalize(tubes, min_keep=self.min_keep)
        return EngineResult(tubes=tubes, num_frames=len(video),
                            stats={"detections": sum(len(v) for v in dets.values()), "groups": len(pairs),
                                   "camera_tubes_dropped": camera, "tubes": len(tubes)})

    def _online(self, video: Video, feats: VideoFeatures) -> EngineResult:
        """The frame-by-frame tracker + offline clean-up (``linker='online'``)."""
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
