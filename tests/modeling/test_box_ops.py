"""Box utilities on hand-computed values."""

from __future__ import annotations

import math

import torch

from wsovvis.modeling.box_ops import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh, generalized_box_iou, inverse_sigmoid


def test_conversions_round_trip():
    b = torch.tensor([[0.5, 0.4, 0.2, 0.6]])
    xyxy = box_cxcywh_to_xyxy(b)
    torch.testing.assert_close(xyxy, torch.tensor([[0.4, 0.1, 0.6, 0.7]]))
    torch.testing.assert_close(box_xyxy_to_cxcywh(xyxy), b)


def test_giou_hand_values():
    a = torch.tensor([0.0, 0.0, 2.0, 2.0])
    same = generalized_box_iou(a, a)
    assert abs(float(same) - 1.0) < 1e-6
    # overlap 1x1: inter 1, union 4 + 4 - 1 = 7, hull 3x3 = 9 -> 1/7 - 2/9
    b = torch.tensor([1.0, 1.0, 3.0, 3.0])
    assert abs(float(generalized_box_iou(a, b)) - (1 / 7 - 2 / 9)) < 1e-6
    # disjoint: inter 0, union 2, hull 4x1 -> 0 - (4 - 2) / 4 = -0.5
    c, d = torch.tensor([0.0, 0.0, 1.0, 1.0]), torch.tensor([3.0, 0.0, 4.0, 1.0])
    assert abs(float(generalized_box_iou(c, d)) + 0.5) < 1e-6
    # pairwise by broadcasting
    pw = generalized_box_iou(torch.stack([a, c])[:, None], torch.stack([a, b, d])[None])
    assert pw.shape == (2, 3)
    assert abs(float(pw[1, 2]) + 0.5) < 1e-6


def test_giou_with_all_zero_box_is_finite():
    zero = torch.zeros(4)
    pred = torch.tensor([0.2, 0.2, 0.4, 0.4])
    g = generalized_box_iou(pred, zero)
    # union = 0.04, hull from the origin to (0.4, 0.4) = 0.16 -> -(0.16 - 0.04) / 0.16
    assert abs(float(g) + 0.75) < 1e-5
    assert torch.isfinite(generalized_box_iou(zero, zero))


def test_inverse_sigmoid():
    x = torch.tensor([0.5, 0.8, 0.0, 1.0])
    out = inverse_sigmoid(x)
    assert abs(float(out[0])) < 1e-7
    assert abs(float(out[1]) - math.log(4.0)) < 1e-6
    assert abs(float(out[2]) - math.log(1e-5)) < 1e-4  # clamped, not -inf
    assert abs(float(out[3]) + math.log(1e-5)) < 1e-4
