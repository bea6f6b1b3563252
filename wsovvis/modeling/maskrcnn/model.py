"""`VideoMaskRCNN`: torchvision's Mask R-CNN behind the engine's clip contract (DEVELOPING.md, "Model").

Training: ``model(images [B, T, 3, Hp, Wp] 0..255, image_sizes [B, 2], targets)`` runs every frame of
every clip as one image (its valid region, no resizing: the data pipeline already chose the
multi-scale size) and returns ``{"losses": {loss_classifier, loss_box_reg, loss_mask, loss_objectness,
loss_rpn_box_reg}}``; `MaskRCNNCriterion` hands those to the trainer. An instance enters a frame's
targets where ``valid[i, t]`` and its box is at least one pixel wide and high; labels shift by one
(torchvision's class 0 is background).

Inference: ``model(images, image_sizes)`` in eval mode returns torchvision's per-frame detections
(``boxes [N, 4]``, ``labels [N]`` 1-based, ``scores [N]``, ``masks [N, 1, h, w]`` probabilities), frame
``b * T + t``; the transform resizes each frame to ``test_size`` / ``max_size`` and pastes back.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from wsovvis.modeling.box_ops import box_cxcywh_to_xyxy

LOSS_NAMES = ("loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg")


class ClipTransform(GeneralizedRCNNTransform):
    """Normalise and batch; resize only at inference (training frames come at their augmented size)."""

    def resize(self, image, target=None):
        if self.training:
            return image, target
        return super().resize(image, target)


def frame_targets(target: dict, t: int, h: int, w: int) -> dict[str, torch.Tensor]:
    """One frame of an engine target (cxcywh boxes normalised by (w, h)) -> torchvision's target."""
    boxes = box_cxcywh_to_xyxy(target["boxes"][:, t].float()) * target["boxes"].new_tensor([w, h, w, h])
    keep = target["valid"][:, t] & (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
    return {
        "boxes": boxes[keep],
        "labels": target["labels"][keep] + 1,
        "masks": target["masks"][keep, t, :h, :w].to(torch.uint8),
    }


class VideoMaskRCNN(nn.Module):
    needs_targets = True  # the trainer passes targets to forward (torchvision computes losses inside)

    def __init__(self, detector: MaskRCNN) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor, image_sizes: torch.Tensor, targets: list[dict] | None = None):
        B, T = images.shape[:2]
        frames, frame_tgts = [], []
        for b in range(B):
            h, w = int(image_sizes[b, 0]), int(image_sizes[b, 1])
            for t in range(T):
                frames.append(images[b, t, :, :h, :w])
                if targets is not None:
                    frame_tgts.append(frame_targets(targets[b], t, h, w))
        if self.training:
            if targets is None:
                raise ValueError("VideoMaskRCNN needs targets in training mode")
            return {"losses": self.detector(frames, frame_tgts)}
        return self.detector(frames)


class MaskRCNNCriterion(nn.Module):
    """The losses torchvision computed in the forward pass, with a weight per term."""

    def __init__(self, weight_dict: dict[str, float] | None = None) -> None:
        super().__init__()
        self.weight_dict = dict(weight_dict or {n: 1.0 for n in LOSS_NAMES})

    def forward(self, outputs: dict, targets: list[dict] | None = None) -> dict[str, torch.Tensor]:
        return dict(outputs["losses"])
