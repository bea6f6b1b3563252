"""Inference presets (``model.inference.preset``): which evaluation procedure surrounds the network.

=========  =====================================================================================
preset     procedure
=========  =====================================================================================
default    ours, memory bounded: clips of ``clip_length`` frames overlapping by ``clip_overlap``,
           stitched by soft mask IoU (`inference.ClipStitcher`); shortest side ``test_size``,
           longest at most ``max_size``; /32 padding; ``top_k`` queries per clip by max class
           probability; multi-class outputs above ``cls_threshold``. Holds at most
           ``clip_length`` frames, whatever the video length.
vnext      VNext ``SeqFormer.forward`` at test time: the WHOLE video in one forward pass;
           detectron2 ResizeShortestEdge(``test_size``, max ``max_size``); /32 padding; top-10
           queries by max class probability; masks x4 bilinear -> sigmoid -> crop to the resized
           size -> nearest to the original size -> > 0.5; MULTI_CLS_ON (every class > 0.05).
original   the original SeqFormer repo's ``inference.py``: the whole video in one pass;
           torchvision ``Resize(test_size)`` (shortest side, NO max size, long side truncated);
           NO /32 padding; top-10 over the flattened query x class scores (each pair one output);
           stride-4 mask logits bilinearly resized straight to the original size, ``> 0.5``;
           outputs whose mask is empty in every frame are skipped; scores below 0.001 get
           ``None`` segmentations.
=========  =====================================================================================

``vnext`` and ``original`` keep every resized frame and the network's activations for the whole
video, so memory grows with the video length (see DEVELOPING.md for measured numbers);
``default`` does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from wsovvis.errors import WsovvisError

PRESETS = ("default", "vnext", "original")


@dataclass(frozen=True)
class ResolvedInference:
    """The inference options after applying a preset (what the postprocessor and the model use)."""

    preset: str
    test_size: int
    max_size: float  # math.inf: no limit
    top_k: int
    multi_cls: bool
    cls_threshold: float
    mask_threshold: float
    clip_length: int  # 0: whole video in one pass
    clip_overlap: int
    max_tracks: int
    match_threshold: float
    size_divisibility: int


def inference_preset(ic: Any) -> ResolvedInference:
    """``model.inference`` (an `InferenceConfig`) -> `ResolvedInference` for its ``preset``.

    ``vnext`` / ``original`` keep ``test_size`` (360 for R50, 480 for Swin-L in VNext), the
    thresholds and ``top_k`` from the config, and fix the procedure (whole video, padding, max size).
    """
    preset = getattr(ic, "preset", "default")
    if preset not in PRESETS:
        raise WsovvisError(f"model.inference.preset: {preset!r} is not one of {', '.join(PRESETS)}")
    base = ResolvedInference(
        preset="default", test_size=ic.test_size, max_size=ic.max_size, top_k=ic.top_k, multi_cls=ic.multi_cls,
        cls_threshold=ic.cls_threshold, mask_threshold=ic.mask_threshold, clip_length=ic.clip_length,
        clip_overlap=ic.clip_overlap, max_tracks=ic.max_tracks, match_threshold=ic.match_threshold,
        size_divisibility=32,
    )
    if preset == "vnext":
        return replace(base, preset="vnext", clip_length=0, clip_overlap=0)
    if preset == "original":
        return replace(base, preset="original", max_size=math.inf, clip_length=0, clip_overlap=0,
                       size_divisibility=1)
    return base


def torchvision_resized_shape(h: int, w: int, short: int) -> tuple[int, int]:
    """torchvision ``Resize(short)`` on an ``h x w`` image: shortest side ``short``, long side truncated."""
    if h <= w:
        return short, int(short * w / h)
    return int(short * h / w), short
