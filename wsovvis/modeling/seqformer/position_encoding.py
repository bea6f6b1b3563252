"""DETR sine position encoding over the non-padded pixels of each map."""

from __future__ import annotations

import math

import torch
from torch import nn


class PositionEmbeddingSine(nn.Module):
    """``mask [B, H, W]`` (True = pad) -> ``pos [B, 2 * num_pos_feats, H, W]``, channels ``[pos_y, pos_x]``.

    Coordinates are cumulative counts of valid pixels, shifted by -0.5 and normalised to
    ``(0, scale]`` by the valid extent (Deformable DETR's variant).
    """

    def __init__(self, num_pos_feats: int = 128, temperature: float = 10000.0, scale: float = 2 * math.pi):
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.scale = scale

    def forward(self, mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``dtype`` is that of the result only: the angles are computed in float32 because in fp16 a
        fully padded column's ``-0.5 / eps`` overflows to -inf and its sine is NaN."""
        not_mask = (~mask).float()
        y = not_mask.cumsum(1)
        x = not_mask.cumsum(2)
        eps = 1e-6
        y = (y - 0.5) / (y[:, -1:, :] + eps) * self.scale
        x = (x - 0.5) / (x[:, :, -1:] + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=mask.device)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.num_pos_feats)
        pos_x = x[..., None] / dim_t
        pos_y = y[..., None] / dim_t
        pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2).to(dtype)
