"""Per-patch video features for the cut, and the registry of extractors.

An extractor turns a `Video` (frames at its working size) into `VideoFeatures`. Registered
names (``FEATURES``): ``classic`` (weight-free: motion, colour, position; no downloads) and the
self-supervised ViTs of `wsovvis.pseudo.vit_features` (``dino_vits8``, ``dino_vitb8``,
``dinov2_vitb14``, ...), which need a local checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from wsovvis.errors import WsovvisError

FEATURES: dict[str, Callable[..., FeatureExtractor]] = {}


def register_features(name: str):
    """Decorator: ``@register_features("classic")`` on a factory ``(**kwargs) -> FeatureExtractor``."""

    def deco(fn):
        if name in FEATURES:
            raise ValueError(f"feature extractor {name!r} registered twice")
        FEATURES[name] = fn
        return fn

    return deco


@dataclass
class VideoFeatures:
    """What the cut and the linker consume for one video.

    * ``patch``: ``float32 [T, h, w, D]`` features of the cut graph (cosine affinity).
    * ``link``: ``float32 [T, h, w, E]`` features averaged inside a mask to describe it for linking.
    * ``saliency``: ``float32 [T, h, w]`` in 0..1, or None (then the MaskCut foreground rules apply).
    * ``pixel_saliency``: ``float32 [T, H, W]`` at the frames' working size, or None.
    * ``flow``: ``float32 [T, H, W, 2]`` forward flow at the working size (to predict track masks), or None.
    * ``motion``: ``float32 [T, H, W]`` camera-compensated motion magnitude in pixels at the working
      size, or None (tubes that move with the camera are recognised by it).
    * ``fg_rule``: ``"maskcut"`` or ``"saliency"``.
    * ``link_is_histogram``: ``link`` holds per-cell histograms (compared after a square root).
    """

    patch: np.ndarray
    link: np.ndarray
    saliency: np.ndarray | None = None
    pixel_saliency: np.ndarray | None = None
    flow: np.ndarray | None = None
    motion: np.ndarray | None = None
    fg_rule: str = "maskcut"
    link_is_histogram: bool = False

    @property
    def grid(self) -> tuple[int, int]:
        return self.patch.shape[1], self.patch.shape[2]


class FeatureExtractor:
    """Interface: ``multiple`` (frame sides must be multiples of it), ``short_side`` (working size),
    ``max_long`` (cap of the long side, 0 = none) and ``__call__(frames uint8 [T, H, W, 3]) -> VideoFeatures``.
    """

    name: str = "base"
    multiple: int = 1
    short_side: int = 480
    max_long: int = 0

    def __call__(self, frames: np.ndarray) -> VideoFeatures:  # pragma: no cover - interface
        raise NotImplementedError


def available_features() -> list[str]:
    """Every registered extractor name (importing the modules that register them)."""
    from wsovvis.pseudo import classic_features, vit_features  # noqa: F401

    return sorted(FEATURES)


def build_features(name: str, **kwargs) -> FeatureExtractor:
    """Instantiate a registered extractor (ViT names need ``weights=<local checkpoint>``)."""
    if name not in available_features():
        raise WsovvisError(f"unknown feature extractor {name!r}; choose from {', '.join(sorted(FEATURES))}")
    return FEATURES[name](**kwargs)


def patch_pool(x: np.ndarray, patch: int) -> np.ndarray:
    """Mean over non-overlapping ``patch x patch`` cells: ``[T, H, W, C] -> [T, H//p, W//p, C]`` (edges cropped)."""
    t, h, w, c = x.shape
    gh, gw = h // patch, w // patch
    x = x[:, :gh * patch, :gw * patch]
    return x.reshape(t, gh, patch, gw, patch, c).mean(axis=(2, 4))
