"""The valid (unpadded) region of stride-4 mask logits: one helper for the criterion and the post-processor.

Frames are zero-padded bottom/right to a multiple of 32, so a stride-4 map of a clip whose valid
image is ``h x w`` covers it with ``ceil(h / 4)`` rows and ``ceil(w / 4)`` columns; one extra cell is
kept so that the x4 bilinear upsampling interpolates the border from real neighbours.
"""

from __future__ import annotations

import torch


def valid_stride4(hw: tuple[int, int], canvas: tuple[int, int]) -> tuple[int, int]:
    """Rows/cols of a stride-4 map needed to cover a valid ``h x w`` (one extra cell for interpolation),
    capped by the map's own ``canvas`` size."""
    return min(-(-int(hw[0]) // 4) + 1, int(canvas[0])), min(-(-int(hw[1]) // 4) + 1, int(canvas[1]))


def crop_valid_stride4(logits: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """``[..., hp, wp]`` stride-4 logits -> ``[..., ch, cw]`` covering the valid ``h x w`` (a view)."""
    ch, cw = valid_stride4(hw, logits.shape[-2:])
    return logits[..., :ch, :cw]
