"""Hungarian matcher on hand-computed costs."""

from __future__ import annotations

import math

import torch

from wsovvis.modeling.seqformer.matcher import HungarianMatcher, matching_cost


def focal_cost(logit: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    pos = 0.25 * (1 - p) ** 2 * -math.log(p + 1e-8)
    neg = 0.75 * p**2 * -math.log(1 - p + 1e-8)
    return pos - neg


def test_cost_terms_by_hand():
    logits = torch.tensor([[0.0, 0.0], [2.0, -1.0]])
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2]], [[0.3, 0.3, 0.2, 0.2]]])  # [Q=2, T=1, 4]
    tgt_boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2]]])
    cost = matching_cost(logits, boxes, torch.tensor([0]), tgt_boxes)
    # q0: same box (L2 0, GIoU 1); q1: shifted by (0.2, 0.2): L2 = 0.2*sqrt(2), boxes touch at a corner:
    # inter 0, union 0.08, hull 0.4x0.4 -> GIoU = -(0.16 - 0.08) / 0.16 = -0.5
    expect_q0 = 2 * focal_cost(0.0) - 2 * 1.0
    expect_q1 = 5 * 0.2 * math.sqrt(2) + 2 * focal_cost(2.0) + 2 * 0.5
    torch.testing.assert_close(cost, torch.tensor([[expect_q0], [expect_q1]]), atol=1e-5, rtol=0)


def test_box_cost_is_euclidean_over_all_frames_and_giou_is_averaged():
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2]]])  # [1, T=2, 4]
    tgt = torch.tensor([[[0.6, 0.5, 0.2, 0.2], [0.5, 0.7, 0.2, 0.2]]])
    cost = matching_cost(torch.zeros(1, 1), boxes, torch.tensor([0]), tgt, cost_class=0, cost_giou=0, cost_bbox=1)
    assert abs(float(cost) - math.sqrt(0.1**2 + 0.2**2)) < 1e-6  # not the L1 0.3
    # GIoU per frame: frame 0 overlap 0.1x0.2 = 0.02, union 0.06, hull 0.3x0.2 = 0.06 -> 1/3; frame 1 boxes
    # touch along an edge: inter 0, union 0.08, hull 0.2x0.4 = 0.08 -> 0
    cost = matching_cost(torch.zeros(1, 1), boxes, torch.tensor([0]), tgt, cost_class=0, cost_giou=1, cost_bbox=0)
    assert abs(float(cost) + (1 / 3 + 0) / 2) < 1e-5


def test_absent_frames_count_with_zero_boxes():
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.0, 0.0, 0.0, 0.0]], [[0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2]]])
    tgt = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.0, 0.0, 0.0, 0.0]]])  # absent in frame 1
    cost = matching_cost(torch.zeros(2, 1), boxes, torch.tensor([0]), tgt, cost_class=0)
    assert cost[0, 0] < cost[1, 0]  # the query predicting "absent" wins


def test_hungarian_is_optimal_where_greedy_is_not():
    # 1-d centres: q0 = 0.5, q1 = 0.75; t0 = 0.6, t1 = 0.3. Costs [[.1, .2], [.15, .45]]:
    # greedy takes (q0, t0) then (q1, t1) = 0.55; the optimum is (q0, t1) + (q1, t0) = 0.35.
    def box(cx):
        return [[cx, 0.5, 0.1, 0.1]]

    outputs = {
        "pred_logits": torch.zeros(1, 2, 3),
        "pred_boxes": torch.tensor([[box(0.5), box(0.75)]]),
    }
    targets = [{"labels": torch.tensor([1, 2]), "boxes": torch.tensor([box(0.6), box(0.3)])}]
    matcher = HungarianMatcher(cost_class=0, cost_bbox=1, cost_giou=0)
    (rows, cols), = matcher(outputs, targets)
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]


def test_empty_targets_give_empty_matches():
    outputs = {"pred_logits": torch.zeros(2, 4, 3), "pred_boxes": torch.rand(2, 4, 2, 4)}
    targets = [
        {"labels": torch.zeros(0, dtype=torch.long), "boxes": torch.zeros(0, 2, 4)},
        {"labels": torch.tensor([2]), "boxes": torch.rand(1, 2, 4)},
    ]
    (r0, c0), (r1, c1) = HungarianMatcher()(outputs, targets)
    assert r0.numel() == 0 and c0.numel() == 0 and r0.dtype == torch.long
    assert r1.numel() == 1 and c1.tolist() == [0]
