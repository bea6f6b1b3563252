"""Mask branch: stride-8 mask features from the encoder memory, CondInst dynamic convolution.

Per instance the controller predicts 169 parameters of three 1x1 convs (10 -> 8 -> 8 -> 1) that run
on ``[rel_x, rel_y, F]``: the pixel offsets from the instance's reference centre and the 8 mask
feature channels. Logits at stride 8 are upsampled x2 with `aligned_bilinear` to stride 4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MASK_DIM = 8
# (out, in) of the three dynamic 1x1 convs; the 2 extra inputs are the relative coordinates
DYNAMIC_LAYERS = ((MASK_DIM, MASK_DIM + 2), (MASK_DIM, MASK_DIM), (1, MASK_DIM))
NUM_DYNAMIC_PARAMS = sum(o * i for o, i in DYNAMIC_LAYERS) + sum(o for o, _ in DYNAMIC_LAYERS)  # 169


class MaskHead(nn.Module):
    """Top-down fusion of encoder levels (strides 8/16/32) -> ``[B, 8, H/8, W/8]`` mask features."""

    def __init__(self, d_model: int = 256):
        super().__init__()
        self.lay3 = nn.Conv2d(d_model, d_model, 3, padding=1)
        self.lay4 = nn.Conv2d(d_model, d_model, 3, padding=1)
        self.dcn = nn.Conv2d(d_model, d_model, 3, padding=1)  # a plain conv despite the name (checkpoint key)
        self.lay1 = nn.Conv2d(d_model, d_model // 4, 3, padding=1)
        self.lay2 = nn.Conv2d(d_model // 4, MASK_DIM, 3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.constant_(m.bias, 0)

    def forward(self, m8: torch.Tensor, m16: torch.Tensor, m32: torch.Tensor) -> torch.Tensor:
        """Encoder maps ``[B, C, h_l, w_l]`` at strides 8/16/32 -> ``[B, 8, h_8, w_8]``."""
        x = F.relu(self.lay3(m32))
        x = F.relu(self.lay4(m16 + F.interpolate(x, size=m16.shape[-2:], mode="nearest")))
        x = F.relu(self.dcn(m8 + F.interpolate(x, size=m8.shape[-2:], mode="nearest")))
        x = F.relu(self.lay1(x))
        return F.relu(self.lay2(x))


def aligned_bilinear(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Upsample ``[B, C, h, w]`` -> ``[B, C, h*factor, w*factor]`` keeping the half-stride alignment.

    Replicate-pad right/bottom by 1, bilinear with ``align_corners=True`` to ``factor*h+1``, shift by
    ``factor // 2`` (replicate-pad left/top) and crop, so output pixel centres sit where the
    stride-``s/factor`` grid expects them (CondInst's rule).
    """
    if factor == 1:
        return x
    h, w = x.shape[-2:]
    x = F.pad(x, (0, 1, 0, 1), mode="replicate")
    oh, ow = factor * h + 1, factor * w + 1
    x = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=True)
    x = F.pad(x, (factor // 2, 0, factor // 2, 0), mode="replicate")
    return x[..., : oh - 1, : ow - 1]


def split_dynamic_params(params: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``[n, 169]`` -> weights ``[n, out, in]`` x3 and biases ``[n, out]`` x3 (all weights, then biases)."""
    sizes = [o * i for o, i in DYNAMIC_LAYERS] + [o for o, _ in DYNAMIC_LAYERS]
    parts = params.split(sizes, dim=1)
    n = params.shape[0]
    weights = [p.reshape(n, o, i) for p, (o, i) in zip(parts[:3], DYNAMIC_LAYERS)]
    return weights, list(parts[3:])


def dynamic_mask_logits(
    mask_feats: torch.Tensor, params: torch.Tensor, ref_points: torch.Tensor, image_size: torch.Tensor, stride: int = 8
) -> torch.Tensor:
    """Mask logits of n instances over the frames of one clip (parameter-free).

    Args:
        mask_feats: ``[T, 8, h, w]`` mask features at ``stride``.
        params: ``[n, 169]`` controller outputs.
        ref_points: ``[n, T, 2]`` (x, y) reference centres normalised by the valid image size.
        image_size: ``[2]`` (h, w) of the valid (unpadded) image.

    Returns:
        ``[n, T, 2h, 2w]`` logits at stride ``stride / 2``.
    """
    T, _, h, w = mask_feats.shape
    n = params.shape[0]
    dtype, dev = mask_feats.dtype, mask_feats.device
    locs_y = torch.arange(h, device=dev, dtype=dtype) * stride + stride // 2
    locs_x = torch.arange(w, device=dev, dtype=dtype) * stride + stride // 2
    size_xy = torch.stack([image_size[1], image_size[0]]).to(dtype)
    centre = ref_points.to(dtype) * size_xy  # [n, T, 2] in pixels, not normalised (SeqFormer's rule)
    rel_x = centre[..., 0, None, None] - locs_x.view(1, 1, 1, w)
    rel_y = centre[..., 1, None, None] - locs_y.view(1, 1, h, 1)
    rel = torch.stack([rel_x.expand(n, T, h, w), rel_y.expand(n, T, h, w)], dim=2)  # [n, T, 2, h, w]
    x = torch.cat([rel, mask_feats[None].expand(n, -1, -1, -1, -1)], dim=2)  # [n, T, 10, h, w]
    weights, biases = split_dynamic_params(params)
    for i, (wgt, b) in enumerate(zip(weights, biases)):
        x = torch.einsum("noc,ntchw->ntohw", wgt, x) + b[:, None, :, None, None]
        if i < len(weights) - 1:
            x = F.relu(x)
    logits = x[:, :, 0]  # [n, T, h, w]
    if n == 0:
        return logits.new_zeros(0, T, 2 * h, 2 * w)
    return aligned_bilinear(logits.reshape(n * T, 1, h, w), 2).view(n, T, 2 * h, 2 * w)
