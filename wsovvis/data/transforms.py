"""Clip-level augmentation: one crop, one resize and one flip shared by every frame of a clip.

`ClipAugmentation.sample` draws the parameters once per clip (`ClipTransform`); `apply_image`
and `apply_masks` then apply the same geometry to each frame and each instance mask, so frames
and masks stay aligned. Sizes follow detectron2's ``ResizeShortestEdge``: the shorter side
becomes the chosen size unless the longer side would exceed ``max_size``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def resized_hw(h: int, w: int, short: int, max_size: int) -> tuple[int, int]:
    """Output ``(h, w)`` of resizing the shorter side of ``h x w`` to ``short``, longer side <= ``max_size``.

    detectron2's ResizeShortestEdge rule (the shorter side is exactly ``short`` unless the cap applies;
    rounding ``int(x + 0.5)``); used for training clips and, by `wsovvis.modeling.seqformer.inference`,
    for test frames."""
    scale = short / min(h, w)
    nh, nw = (short, scale * w) if h < w else (scale * h, short)
    if max(nh, nw) > max_size:
        s = max_size / max(nh, nw)
        nh, nw = nh * s, nw * s
    return max(1, int(nh + 0.5)), max(1, int(nw + 0.5))


@dataclass(frozen=True)
class ClipTransform:
    """Geometry of one clip: source size, crop box ``(y0, x0, h, w)`` in source pixels (or None), output size, flip."""

    src_hw: tuple[int, int]
    out_hw: tuple[int, int]
    crop: tuple[int, int, int, int] | None = None
    flip: bool = False

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        """RGB ``uint8 [H, W, 3]`` -> ``uint8 [h, w, 3]`` (bilinear)."""
        if self.crop is not None:
            y0, x0, ch, cw = self.crop
            img = img[y0:y0 + ch, x0:x0 + cw]
        h, w = self.out_hw
        if img.shape[:2] != (h, w):
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
        if self.flip:
            img = img[:, ::-1]
        return np.ascontiguousarray(img)

    def apply_masks(self, masks: np.ndarray) -> np.ndarray:
        """Binary masks ``[N, H, W]`` -> bool ``[N, h, w]`` (nearest neighbour)."""
        if self.crop is not None:
            y0, x0, ch, cw = self.crop
            masks = masks[:, y0:y0 + ch, x0:x0 + cw]
        h, w = self.out_hw
        out = np.zeros((masks.shape[0], h, w), dtype=bool)
        # cv2 resizes at most 512 channels at once; chunk the instances.
        for s in range(0, masks.shape[0], 256):
            chunk = masks[s:s + 256].astype(np.uint8).transpose(1, 2, 0)
            if chunk.shape[:2] != (h, w):
                chunk = cv2.resize(chunk, (w, h), interpolation=cv2.INTER_NEAREST)
            out[s:s + 256] = chunk.reshape(h, w, -1).transpose(2, 0, 1).astype(bool)
        if self.flip:
            out = out[:, :, ::-1]
        return np.ascontiguousarray(out)


@dataclass
class ClipAugmentation:
    """Training augmentation; ``min_sizes`` is the list the shorter side is drawn from (one per clip)."""

    min_sizes: list[int]
    max_size: int
    flip_prob: float = 0.5
    crop_prob: float = 0.0
    crop_size: tuple[int, int] = (384, 600)

    def sample(self, h: int, w: int, rng: np.random.Generator) -> ClipTransform:
        src_hw = (h, w)
        crop = None
        if self.crop_prob > 0 and rng.random() < self.crop_prob:
            lo, hi = self.crop_size
            ch = int(rng.integers(min(lo, h), min(hi, h) + 1))
            cw = int(rng.integers(min(lo, w), min(hi, w) + 1))
            y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            crop = (y0, x0, ch, cw)
            h, w = ch, cw
        short = int(self.min_sizes[int(rng.integers(len(self.min_sizes)))])
        out_hw = resized_hw(h, w, short, self.max_size)
        flip = bool(self.flip_prob > 0 and rng.random() < self.flip_prob)
        return ClipTransform(src_hw=src_hw, out_hw=out_hw, crop=crop, flip=flip)

