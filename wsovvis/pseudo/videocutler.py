"""The ``videocutler`` engine: the real VideoCutLER model behind a small clip-predictor interface.

A `ClipPredictor` maps a clip of frames to class-agnostic tubes (scores + ``[K, T, H, W]`` masks).
The engine runs it on overlapping windows (memory stays bounded on long videos), keeps tubes
with ``score >= threshold``, and stitches windows by Hungarian matching on the mean mask IoU over
the overlap frames (IoU >= ``link_iou`` continues a tube). Painting goes lowest score first, so
the highest score wins on overlap. A video where nothing passes the threshold yields zero tubes,
which the runner writes as all-zero PNGs with a manifest entry (VideoCutLER's own ``save_masks``
crashes there).

`CutLERPredictor` is the model-specific part: it needs a CutLER checkout (``videocutler/``),
detectron2, Mask2Former's dependencies and the ``videocutler_m2f_rn50.pth`` weights, and reports
every missing piece in one message.
"""

from __future__ import annotations

import os
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy.optimize import linear_sum_assignment

from wsovvis.errors import WsovvisError
from wsovvis.pseudo.cleanup import Tube
from wsovvis.pseudo.frames import Video
from wsovvis.pseudo.maskcut import EngineResult
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

DEFAULT_CUTLER = "third_party/CutLER"
CONFIG_REL = "videocutler/configs/imagenet_video/video_mask2former_R50_cls_agnostic.yaml"
WEIGHTS_URL = "https://drive.google.com/file/d/1ozeh3U3uxZImjabKVae8kNZSoNuvFx49/view"


class ClipPredictor(Protocol):
    """``frames uint8 [T, H, W, 3]`` RGB -> (``scores float [K]``, ``masks bool [K, T, H, W]``)."""

    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def windows(num_frames: int, clip_len: int, overlap: int) -> list[tuple[int, int]]:
    """``[start, end)`` windows of ``clip_len`` frames, consecutive ones sharing ``overlap`` frames;
    the last window is shifted back to end at ``num_frames`` (never shorter than needed)."""
    if clip_len < 1 or not 0 <= overlap < clip_len:
        raise ValueError(f"need clip_len >= 1 and 0 <= overlap < clip_len, got {clip_len}, {overlap}")
    if num_frames <= clip_len:
        return [(0, num_frames)]
    step = clip_len - overlap
    out, s = [], 0
    while True:
        e = s + clip_len
        if e >= num_frames:
            out.append((max(0, num_frames - clip_len), num_frames))
            break
        out.append((s, e))
        s += step
    return out


@dataclass
class _Global:
    masks: dict[int, np.ndarray]
    scores: list[float]


def _overlap_iou(a: dict[int, np.ndarray], b: dict[int, np.ndarray], frames: range) -> float:
    """Mean per-frame mask IoU over ``frames`` (frames where both are empty are skipped)."""
    vals = []
    for t in frames:
        ma, mb = a.get(t), b.get(t)
        if ma is None and mb is None:
            continue
        if ma is None or mb is None:
            vals.append(0.0)
            continue
        u = np.logical_or(ma, mb).sum()
        vals.append(float(np.logical_and(ma, mb).sum() / u) if u else 0.0)
    return float(np.mean(vals)) if vals else 0.0


class VideoCutLEREngine:
    """Clip-wise inference with stitching (see the module docstring)."""

    name = "videocutler"

    def __init__(self, predictor: ClipPredictor, threshold: float = 0.8, clip_len: int = 64,
                 overlap: int = 8, link_iou: float = 0.5, short_side: int = 0):
        self.predictor = predictor
        self.threshold = threshold
        self.clip_len = clip_len
        self.overlap = overlap
        self.link_iou = link_iou
        self.short_side = short_side  # 0 = frames at their original size (the predictor resizes)

    @property
    def frame_spec(self) -> tuple[int, int, int]:
        return (self.short_side or 1_000_000), 1, 0

    def __call__(self, video: Video) -> EngineResult:
        tubes: list[_Global] = []
        prev_end = 0
        kept = 0
        for s, e in windows(len(video), self.clip_len, self.overlap):
            scores, masks = self.predictor(video.frames[s:e])
            scores = np.asarray(scores, dtype=np.float64).reshape(-1)
            masks = np.asarray(masks).astype(bool)
            if len(scores) and masks.shape[:2] != (len(scores), e - s):
                raise WsovvisError(f"{video.name}: predictor returned masks {masks.shape} for {len(scores)} scores "
                                   f"and a {e - s}-frame clip")
            order = [i for i in np.argsort(-scores) if scores[i] >= self.threshold]
            kept += len(order)
            local = [{s + j: masks[i, j] for j in range(e - s) if masks[i, j].any()} for i in order]
            shared = range(s, min(prev_end, e))
            matched: dict[int, int] = {}
            if tubes and local and len(shared):
                iou = np.array([[_overlap_iou(g.masks, lm, shared) for lm in local] for g in tubes])
                rows, cols = linear_sum_assignment(-iou)
                matched = {c: r for r, c in zip(rows, cols) if iou[r, c] >= self.link_iou}
            for j, i in enumerate(order):
                if j in matched:
                    g = tubes[matched[j]]
                    for t, m in local[j].items():
                        # Inside the overlap the earlier window already has a mask; keep the union.
                        g.masks[t] = (g.masks[t] | m) if t in g.masks else m
                    g.scores.append(float(scores[i]))
                else:
                    tubes.append(_Global(masks=dict(local[j]), scores=[float(scores[i])]))
            prev_end = e
        out = []
        for g in tubes:
            if not g.masks:
                continue
            out.append(Tube(masks=g.masks, scores=dict.fromkeys(g.masks, float(np.mean(g.scores))),
                            embedding=np.zeros(1), score=float(np.mean(g.scores))))
        out.sort(key=lambda tb: (tb.first(), -tb.score))
        for k, tb in enumerate(out, 1):
            tb.tube_id = k
        notes = [] if out else [f"no instance reached the confidence threshold {self.threshold}"]
        return EngineResult(tubes=out, num_frames=len(video), notes=notes,
                            stats={"kept_clip_instances": kept, "tubes": len(out)})


def missing_pieces(cutler_root: Path, weights: str | None) -> list[str]:
    """Everything the real model needs that is absent, each with what to do about it."""
    miss = []
    if not (cutler_root / "videocutler").is_dir():
        miss.append(f"CutLER checkout: {cutler_root}/videocutler not found -> "
                    f"git clone --recursive https://github.com/facebookresearch/CutLER {cutler_root} "
                    "(or pass --cutler_root)")
    elif not (cutler_root / CONFIG_REL).is_file():
        miss.append(f"config: {cutler_root / CONFIG_REL} not found (is the checkout complete?)")
    if not weights:
        miss.append(f"weights: pass --weights videocutler_m2f_rn50.pth (download by hand from {WEIGHTS_URL})")
    elif not Path(weights).is_file():
        miss.append(f"weights: {weights} does not exist (videocutler_m2f_rn50.pth from {WEIGHTS_URL})")
    try:
        import detectron2  # noqa: F401
    except ImportError:
        miss.append("detectron2: not importable -> build it from source "
                    "(pip install 'git+https://github.com/facebookresearch/detectron2.git'); it is not on PyPI")
    return miss


class CutLERPredictor:
    """The user's VideoCutLER (detectron2 + CutLER's ``videocutler`` code + weights) as a `ClipPredictor`.

    Follows ``demo_video/predictor.py``: RGB frames resized so the short side is
    ``INPUT.MIN_SIZE_TEST``, one forward pass per clip, masks returned at the input size.
    """

    def __init__(self, cutler_root: str | os.PathLike = DEFAULT_CUTLER, weights: str | None = None,
                 device: str | None = None, stub_msda: bool = True):
        root = Path(cutler_root)
        miss = missing_pieces(root, weights)
        if miss:
            raise WsovvisError("the videocutler engine cannot start; missing:\n  - " + "\n  - ".join(miss))
        import torch

        vc = root / "videocutler"
        for p in (str(vc / "demo_video"), str(vc)):
            if p not in sys.path:
                sys.path.insert(0, p)
        if stub_msda and "MultiScaleDeformableAttention" not in sys.modules:
            try:
                import MultiScaleDeformableAttention  # noqa: F401
            except ImportError:
                # Without the compiled op, mask2former's ms_deform_attn falls back to its PyTorch path.
                sys.modules["MultiScaleDeformableAttention"] = types.ModuleType("MultiScaleDeformableAttention")
                log.info("MultiScaleDeformableAttention op not compiled; using the PyTorch fallback")
        try:
            from detectron2.checkpoint import DetectionCheckpointer
            from detectron2.config import get_cfg
            from detectron2.modeling import build_model
            from detectron2.projects.deeplab import add_deeplab_config
            from mask2former import add_maskformer2_config
            from mask2former_video import add_maskformer2_video_config
        except ImportError as e:
            raise WsovvisError(f"the videocutler engine cannot import CutLER's code from {vc}: {e} "
                               f"(install {vc}/requirements.txt and build detectron2)") from e
        cfg = get_cfg()
        add_deeplab_config(cfg)
        add_maskformer2_config(cfg)
        add_maskformer2_video_config(cfg)
        cfg.merge_from_file(str(root / CONFIG_REL))
        cfg.MODEL.WEIGHTS = str(weights)
        cfg.MODEL.DEVICE = device or ("cuda" if torch.cuda.is_available() else "cpu")
        cfg.freeze()
        self.cfg = cfg
        self.model = build_model(cfg).eval()
        DetectionCheckpointer(self.model).load(cfg.MODEL.WEIGHTS)
        self.min_size = int(cfg.INPUT.MIN_SIZE_TEST)
        self.max_size = int(cfg.INPUT.MAX_SIZE_TEST)
        self.device = cfg.MODEL.DEVICE

    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import cv2
        import torch

        t_len, h, w, _ = frames.shape
        scale = min(self.min_size / min(h, w), self.max_size / max(h, w))
        nh, nw = int(round(h * scale)), int(round(w * scale))
        images = []
        for f in frames:
            # detectron2 models take BGR by default (cfg.INPUT.FORMAT), the demo converts likewise.
            img = f[..., ::-1] if self.cfg.INPUT.FORMAT == "BGR" else f
            img = cv2.resize(np.ascontiguousarray(img), (nw, nh), interpolation=cv2.INTER_LINEAR)
            images.append(torch.as_tensor(img.transpose(2, 0, 1).copy()))
        with torch.inference_mode(), torch.autocast(self.device.split(":")[0], enabled=self.device != "cpu"):
            out = self.model([{"image": images, "height": h, "width": w}])
        scores = np.asarray([float(s) for s in out.get("pred_scores", [])])
        masks = out.get("pred_masks", [])
        if len(scores) == 0:
            return np.zeros(0), np.zeros((0, t_len, h, w), bool)
        masks = np.stack([m.cpu().numpy() if hasattr(m, "cpu") else np.asarray(m) for m in masks]).astype(bool)
        return scores, masks
