"""CutLER's DropLoss for torchvision's RoI heads.

CutLER (``roi_heads.py`` / ``fast_rcnn.py``): decode each sampled RoI's *predicted* box, take its
maximum IoU with the image's pseudo boxes, and drop the RoI's classification loss when that IoU is
``<= drop_iou`` (0.01): a region that overlaps no pseudo mask may be an object the pseudo labels
missed, so it is not taught to be background. ``loss_cls = mean(w * CE)`` over all sampled RoIs
with ``w`` in {0, 1}; box and mask losses are unchanged.

`DropLossRoIHeads` keeps torchvision's forward and replaces only ``loss_classifier``: it records
the sampled RoIs (``select_training_samples``) and the box predictor's outputs (a forward hook),
then recomputes the classification loss with the weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import box_iou


def keep_weights(pred_boxes: list[torch.Tensor], gt_boxes: list[torch.Tensor], drop_iou: float) -> torch.Tensor:
    """Per image ``pred_boxes [n_i, 4]`` and ``gt_boxes [g_i, 4]`` (xyxy) -> float ``[sum n_i]``:
    1 where the predicted box's max IoU with the image's GT boxes is ``> drop_iou``, else 0."""
    out = []
    for p, g in zip(pred_boxes, gt_boxes):
        if g.numel() == 0 or p.numel() == 0:
            out.append(torch.zeros(p.shape[0], device=p.device))
            continue
        best = box_iou(p.float(), g.float()).max(dim=1).values
        out.append((best > drop_iou).float())
    return torch.cat(out) if out else torch.zeros(0)


def dropped_classification_loss(class_logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor
                                ) -> torch.Tensor:
    """``mean(weights * CE(class_logits [N, K+1], labels [N]))`` (the mean runs over all N RoIs)."""
    ce = F.cross_entropy(class_logits.float(), labels, reduction="none")
    return (ce * weights.to(ce.dtype)).sum() / max(ce.numel(), 1)


class DropLossRoIHeads(RoIHeads):
    """torchvision `RoIHeads` whose classification loss is CutLER's DropLoss while ``droploss`` is True."""

    def __init__(self, *args, drop_iou: float = 0.01, droploss: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.drop_iou = drop_iou
        self.droploss = droploss
        self._sampled = None
        self._predicted = None
        self.box_predictor.register_forward_hook(self._keep_predictions)
        self.dropped_fraction = 0.0  # last training step's share of RoIs without class loss (for logs/tests)

    def _keep_predictions(self, _module, _inputs, output) -> None:
        if self.training and self.droploss:
            self._predicted = output

    def select_training_samples(self, proposals, targets):
        out = super().select_training_samples(proposals, targets)
        if self.droploss:
            sampled, _, labels, _ = out
            self._sampled = (sampled, labels, [t["boxes"] for t in targets])
        return out

    def forward(self, features, proposals, image_shapes, targets=None):
        self._sampled = self._predicted = None
        result, losses = super().forward(features, proposals, image_shapes, targets)
        if self.training and self.droploss and self._sampled is not None and self._predicted is not None:
            sampled, labels, gt = self._sampled
            class_logits, box_regression = self._predicted
            with torch.no_grad():
                decoded = self.box_coder.decode(box_regression.detach().float(), sampled)  # [N, K+1, 4]
                # the box of the most likely foreground class (the only one when class-agnostic)
                k = class_logits.detach()[:, 1:].argmax(dim=1) + 1
                pred = decoded[torch.arange(decoded.shape[0], device=decoded.device), k]
                w = keep_weights(list(pred.split([len(s) for s in sampled])), gt, self.drop_iou)
            losses["loss_classifier"] = dropped_classification_loss(class_logits, torch.cat(labels), w)
            self.dropped_fraction = float(1.0 - w.mean()) if w.numel() else 0.0
        self._sampled = self._predicted = None
        return result, losses
