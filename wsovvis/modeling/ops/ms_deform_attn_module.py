"""``MSDeformAttn``: the multi-scale deformable attention module of Deformable DETR / SeqFormer."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from wsovvis.errors import WsovvisError
from wsovvis.modeling.ops.ms_deform_attn_func import IMPLS, ms_deform_attn


class MSDeformAttn(nn.Module):
    """Each query samples ``n_points`` locations per head and level around its reference point.

    ``output_proj_box`` is SeqFormer's second output projection of the same sampled features
    (used by the decoder's box queries). It is created for every instance so that checkpoints keep
    their keys; a module built with ``box_output=False`` freezes it (``requires_grad=False``) so it
    never shows up as an unused parameter under DDP.
    """

    def __init__(
        self,
        d_model: int = 256,
        n_levels: int = 4,
        n_heads: int = 8,
        n_points: int = 4,
        box_output: bool = True,
        impl: str = "auto",
    ):
        super().__init__()
        if d_model % n_heads != 0:
            raise WsovvisError(f"MSDeformAttn: d_model {d_model} is not divisible by n_heads {n_heads}")
        if impl not in IMPLS:
            raise WsovvisError(f"msda_impl: unknown implementation {impl!r}; choose from {', '.join(IMPLS)}")
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points
        self.impl = impl
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self.output_proj_box = nn.Linear(d_model, d_model)
        self.box_output = box_output
        self._reset_parameters()
        if not box_output:
            self.output_proj_box.requires_grad_(False)

    def _reset_parameters(self) -> None:
        nn.init.constant_(self.sampling_offsets.weight, 0.0)
        # head h starts on the unit square's border in direction 2*pi*h/M, point p at distance p+1
        thetas = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True)[0]
        grid = grid.view(self.n_heads, 1, 1, 2).repeat(1, self.n_levels, self.n_points, 1)
        grid = grid * torch.arange(1, self.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.view(-1))
        nn.init.constant_(self.attention_weights.weight, 0.0)
        nn.init.constant_(self.attention_weights.bias, 0.0)
        for lin in (self.value_proj, self.output_proj, self.output_proj_box):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.constant_(lin.bias, 0.0)

    def forward(
        self,
        query: torch.Tensor,
        reference_points: torch.Tensor,
        input_flatten: torch.Tensor,
        spatial_shapes: torch.Tensor,
        level_start_index: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Attend from ``query`` to the multi-scale ``input_flatten``.

        Args:
            query: ``[N, Lq, C]`` (content + position).
            reference_points: ``[N, Lq, L, 2]`` (x, y) or ``[N, Lq, L, 4]`` (cx, cy, w, h), normalised
                to each level's padded map (already multiplied by the valid ratios).
            input_flatten: ``[N, S, C]`` values of all levels, ``S = sum(h_l * w_l)``.
            spatial_shapes: long ``[L, 2]`` (h, w); level_start_index: long ``[L]``.
            padding_mask: bool ``[N, S]``, True at padded positions (their values are zeroed).

        Returns:
            ``output_proj(s)`` ``[N, Lq, C]``; with ``box_output`` also ``output_proj_box(s)``.
        """
        N, Lq, _ = query.shape
        _, S, _ = input_flatten.shape
        M, L, P = self.n_heads, self.n_levels, self.n_points
        if int((spatial_shapes[:, 0] * spatial_shapes[:, 1]).sum()) != S:
            raise WsovvisError(f"MSDeformAttn: spatial shapes {spatial_shapes.tolist()} do not add up to {S} values")
        value = self.value_proj(input_flatten)
        if padding_mask is not None:
            value = value.masked_fill(padding_mask[..., None], 0.0)
        value = value.view(N, S, M, self.d_model // M)
        offsets = self.sampling_offsets(query).view(N, Lq, M, L, P, 2)
        weights = F.softmax(self.attention_weights(query).view(N, Lq, M, L * P), -1).view(N, Lq, M, L, P)
        if reference_points.shape[-1] == 2:
            normaliser = torch.stack([spatial_shapes[..., 1], spatial_shapes[..., 0]], -1).to(offsets.dtype)
            locations = reference_points[:, :, None, :, None, :] + offsets / normaliser[None, None, None, :, None, :]
        elif reference_points.shape[-1] == 4:
            locations = (
                reference_points[:, :, None, :, None, :2]
                + offsets / P * reference_points[:, :, None, :, None, 2:] * 0.5
            )
        else:
            raise WsovvisError(
                f"MSDeformAttn: reference points must end in 2 or 4 values, got shape {tuple(reference_points.shape)}"
            )
        sampled = ms_deform_attn(value, spatial_shapes, level_start_index, locations, weights, impl=self.impl)
        if self.box_output:
            return self.output_proj(sampled), self.output_proj_box(sampled)
        return self.output_proj(sampled)
