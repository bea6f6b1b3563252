"""DropLoss: weights from hand-made predicted boxes, the weighted loss, and the RoI heads using it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.maskrcnn.helpers import tiny_cfg
from tests.modeling.helpers import square_clip
from wsovvis.modeling import build_model
from wsovvis.modeling.maskrcnn.droploss import dropped_classification_loss, keep_weights


def test_keep_weights_hand_made_boxes():
    gt = [torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([[20.0, 20, 40, 40], [0, 0, 4, 4]])]
    pred = [
        torch.tensor([[0.0, 0, 10, 10],     # IoU 1
                      [50, 50, 60, 60],     # IoU 0: dropped
                      [0, 0, 5, 5],         # IoU 0.25
                      [0, 0, 1, 1]]),       # IoU exactly 0.01: dropped (<= threshold)
        torch.tensor([[39.0, 39, 45, 45],   # IoU 1/435 with the first, 0 with the second: dropped
                      [0, 0, 2, 2]]),       # IoU 0.25 with the second
    ]
    w = keep_weights(pred, gt, 0.01)
    assert w.tolist() == [1.0, 0.0, 1.0, 0.0, 0.0, 1.0]


def test_keep_weights_image_without_pseudo_masks_drops_everything():
    w = keep_weights([torch.tensor([[0.0, 0, 5, 5]])], [torch.zeros(0, 4)], 0.01)
    assert w.tolist() == [0.0]


def test_dropped_loss_is_mean_over_all_rois_of_kept_terms():
    logits = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    ce = F.cross_entropy(logits, labels, reduction="none")
    got = dropped_classification_loss(logits, labels, torch.tensor([1.0, 0.0, 1.0]))
    assert got.item() == pytest.approx(float(ce[0] + ce[2]) / 3)
    assert dropped_classification_loss(logits, labels, torch.ones(3)).item() == pytest.approx(float(ce.mean()))


def _losses(droploss: bool):
    torch.manual_seed(0)
    model, criterion, _ = build_model({"model": tiny_cfg(num_classes=5, **{"maskrcnn.droploss": droploss})})
    img, target = square_clip(0, T=2, H=64, W=64, n=2)
    model.train()
    torch.manual_seed(1)  # same RoI sampling for both models
    out = model(img[None], torch.tensor([[64, 64]]), [target])
    return criterion(out, [target]), model.detector.roi_heads


def test_roi_heads_drop_class_loss_only():
    plain, _ = _losses(False)
    dropped, heads = _losses(True)
    # an untrained model predicts many boxes far from both squares
    assert 0.0 < heads.dropped_fraction < 1.0
    assert dropped["loss_classifier"] < plain["loss_classifier"]
    for k in ("loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"):
        assert torch.allclose(dropped[k], plain[k]), k
    dropped["loss_classifier"].backward()  # the replacement loss carries gradients
    assert heads.box_predictor.cls_score.weight.grad.abs().sum() > 0
