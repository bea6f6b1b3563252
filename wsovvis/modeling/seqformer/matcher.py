"""Per-video Hungarian matching of queries to ground-truth instances (one assignment per clip)."""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from wsovvis.modeling.box_ops import box_cxcywh_to_xyxy, generalized_box_iou


def matching_cost(
    logits: torch.Tensor,
    boxes: torch.Tensor,
    tgt_labels: torch.Tensor,
    tgt_boxes: torch.Tensor,
    cost_class: float = 2.0,
    cost_bbox: float = 5.0,
    cost_giou: float = 2.0,
    alpha: float = 0.25,
    gamma: float = 2.0,
) -> torch.Tensor:
    """Cost matrix ``[Q, n]`` of one clip.

    Args:
        logits: ``[Q, K]``; boxes: ``[Q, T, 4]`` cxcywh; tgt_labels: ``[n]``; tgt_boxes: ``[n, T, 4]``
            (all-zero where the instance is absent; those frames count like any other).

    ``cost_bbox`` is the Euclidean distance between the ``T*4`` box vectors, ``cost_giou`` minus
    the mean GIoU over frames (GT clamped to [1e-7, 1]), ``cost_class`` the focal cost
    ``alpha (1-p)^gamma (-log p) - (1-alpha) p^gamma (-log(1-p))`` at the GT class.
    """
    Q, T = boxes.shape[:2]
    n = tgt_labels.shape[0]
    if n == 0:
        return boxes.new_zeros(Q, 0)
    prob = logits.float().sigmoid()
    neg = (1 - alpha) * prob**gamma * -(1 - prob + 1e-8).log()
    pos = alpha * (1 - prob) ** gamma * -(prob + 1e-8).log()
    c_class = (pos - neg)[:, tgt_labels]
    boxes = boxes.float()
    tgt_boxes = tgt_boxes.float()
    c_bbox = torch.cdist(boxes.reshape(Q, T * 4), tgt_boxes.reshape(n, T * 4), p=2)
    pred_xyxy = box_cxcywh_to_xyxy(boxes).transpose(0, 1)  # [T, Q, 4]
    tgt_xyxy = box_cxcywh_to_xyxy(tgt_boxes.clamp(1e-7, 1)).transpose(0, 1)  # [T, n, 4]
    c_giou = -generalized_box_iou(pred_xyxy[:, :, None], tgt_xyxy[:, None]).mean(0)
    return cost_bbox * c_bbox + cost_class * c_class + cost_giou * c_giou


class HungarianMatcher(nn.Module):
    """Matches each clip's queries to its GT instances with scipy's ``linear_sum_assignment``."""

    def __init__(
        self,
        cost_class: float = 2.0,
        cost_bbox: float = 5.0,
        cost_giou: float = 2.0,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
    ):
        super().__init__()
        self.cost_class, self.cost_bbox, self.cost_giou = cost_class, cost_bbox, cost_giou
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma

    @torch.no_grad()
    def forward(self, outputs: dict, targets: list[dict]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """outputs: ``pred_logits [B, Q, K]``, ``pred_boxes [B, Q, T, 4]``; targets: B dicts with
        ``labels [n]``, ``boxes [n, T, 4]``. Returns B pairs ``(query_idx [m], target_idx [m])``,
        ``m = min(Q, n)``, sorted by query index."""
        result = []
        for b, tgt in enumerate(targets):
            cost = matching_cost(
                outputs["pred_logits"][b],
                outputs["pred_boxes"][b],
                tgt["labels"].to(outputs["pred_logits"].device),
                tgt["boxes"].to(outputs["pred_boxes"].device),
                self.cost_class,
                self.cost_bbox,
                self.cost_giou,
                self.focal_alpha,
                self.focal_gamma,
            )
            if cost.shape[1] == 0:
                empty = torch.zeros(0, dtype=torch.long)
                result.append((empty, empty.clone()))
                continue
            if not torch.isfinite(cost).all():
                raise FloatingPointError(f"matching cost of clip {b} is not finite (did training diverge?)")
            rows, cols = linear_sum_assignment(cost.cpu().numpy())
            result.append((torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)))
        return result
