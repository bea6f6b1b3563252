"""Mask branch: aligned upsampling, dynamic-parameter layout, relative coordinates in pixels."""

from __future__ import annotations

import math

import torch

from wsovvis.modeling.seqformer.mask_head import (
    NUM_DYNAMIC_PARAMS,
    MaskHead,
    aligned_bilinear,
    dynamic_mask_logits,
    split_dynamic_params,
)
from wsovvis.modeling.seqformer.position_encoding import PositionEmbeddingSine


def test_aligned_bilinear_hand_values():
    x = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    out = aligned_bilinear(x, 2)
    # output index k samples the input at (k - 1) / 2 (clamped): rows/cols [0, 0, 0.5, 1]
    r = torch.tensor([0.0, 0.0, 0.5, 1.0])
    torch.testing.assert_close(out[0, 0], 2 * r[:, None] + r[None, :])


def test_param_count_and_split_order():
    assert NUM_DYNAMIC_PARAMS == 169
    params = torch.arange(169.0)[None]
    (w0, w1, w2), (b0, b1, b2) = split_dynamic_params(params)
    assert w0.shape == (1, 8, 10) and w1.shape == (1, 8, 8) and w2.shape == (1, 1, 8)
    assert w0[0, 0, 0] == 0 and w0[0, 1, 0] == 10  # row-major [out, in]
    assert w1[0, 0, 0] == 80 and w2[0, 0, 0] == 144 and b0[0, 0] == 152 and b1[0, 0] == 160 and b2[0, 0] == 168


def _select(channel_in: int, sign: float = 1.0) -> torch.Tensor:
    """Params whose output is relu(sign * input channel ``channel_in``) (0 = rel_x, 1 = rel_y, 2.. features)."""
    params = torch.zeros(1, 169)
    params[0, 0 * 10 + channel_in] = sign  # w0[0, channel_in]
    params[0, 80] = 1.0  # w1[0, 0]
    params[0, 144] = 1.0  # w2[0, 0]
    return params


def test_relative_coordinates_are_raw_pixels():
    T, h, w = 2, 3, 8
    feats = torch.zeros(T, 8, h, w)
    refs = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])  # centre x = right edge, y = top
    size = torch.tensor([24, 64])  # (h, w): centre x = 64 px
    out = dynamic_mask_logits(feats, _select(0), refs, size)
    assert out.shape == (1, T, 2 * h, 2 * w)
    # output column 2j+1 carries stride-8 cell j whose location is 8j + 4: rel_x = 64 - (8j + 4)
    expect = torch.tensor([60.0 - 8 * j for j in range(w)])
    torch.testing.assert_close(out[0, 0, 1, 1::2], expect)
    # rel_y = 0 - (8i + 4) < 0 -> relu(-rel_y) = 8i + 4 on rows 2i+1
    out_y = dynamic_mask_logits(feats, _select(1, -1.0), refs, size)
    torch.testing.assert_close(out_y[0, 1, 1::2, 3], torch.tensor([4.0, 12.0, 20.0]))
    # feature channel k is input channel 2 + k
    feats[1, 3] = 5.0
    out_f = dynamic_mask_logits(feats, _select(2 + 3), refs, size)
    assert torch.all(out_f[0, 0] == 0) and torch.all(out_f[0, 1] == 5.0)


def test_no_instances_gives_empty_logits():
    size = torch.tensor([32, 40])
    out = dynamic_mask_logits(torch.zeros(3, 8, 4, 5), torch.zeros(0, 169), torch.zeros(0, 3, 2), size)
    assert out.shape == (0, 3, 8, 10)


def test_mask_head_shapes():
    head = MaskHead(64)
    out = head(torch.randn(2, 64, 8, 10), torch.randn(2, 64, 4, 5), torch.randn(2, 64, 2, 3))
    assert out.shape == (2, 8, 8, 10) and torch.all(out >= 0)
    assert head.lay1.weight.shape == (16, 64, 3, 3) and head.lay2.weight.shape == (8, 16, 3, 3)


def test_sine_position_encoding_hand_values():
    pe = PositionEmbeddingSine(num_pos_feats=2)  # dim_t = [1, 1]
    mask = torch.zeros(1, 2, 3, dtype=torch.bool)
    pos = pe(mask)
    assert pos.shape == (1, 4, 2, 3)
    y = (2 - 0.5) / (2 + 1e-6) * 2 * math.pi  # row 1: cumulative count 2 of 2
    x = (3 - 0.5) / (3 + 1e-6) * 2 * math.pi  # col 2: 3 of 3
    torch.testing.assert_close(pos[0, :, 1, 2], torch.tensor([math.sin(y), math.cos(y), math.sin(x), math.cos(x)]))
    mask[0, :, 2] = True  # last column padded: x is normalised by the 2 valid columns
    pos = pe(mask)
    x = (2 - 0.5) / (2 + 1e-6) * 2 * math.pi
    assert abs(float(pos[0, 2, 0, 1]) - math.sin(x)) < 1e-6


def test_sine_position_encoding_in_half_precision_stays_finite():
    # A batch's smaller clip leaves whole rows/columns padded: their -0.5 / eps angle overflows fp16.
    pe = PositionEmbeddingSine(num_pos_feats=8)
    mask = torch.zeros(2, 6, 7, dtype=torch.bool)
    mask[1, 4:] = True
    mask[1, :, 5:] = True
    ref = pe(mask)
    for dtype in (torch.float16, torch.bfloat16):
        pos = pe(mask, dtype=dtype)
        assert pos.dtype == dtype and torch.isfinite(pos).all()
        torch.testing.assert_close(pos.float(), ref, atol=1e-2, rtol=0)
