"""SetCriterion on a 2-query toy with hand-computed values; mask target alignment rules."""

from __future__ import annotations

import logging
import math

import pytest
import torch
import torch.nn.functional as F

from wsovvis.errors import WsovvisError
from wsovvis.modeling.box_ops import box_cxcywh_to_xyxy, generalized_box_iou
from wsovvis.modeling.seqformer.criterion import BASE_LOSSES, SetCriterion, build_weight_dict, mask_targets
from wsovvis.modeling.seqformer.mask_head import NUM_DYNAMIC_PARAMS
from wsovvis.modeling.seqformer.matcher import HungarianMatcher


def focal(x: float, t: float) -> float:
    p = 1 / (1 + math.exp(-x))
    ce = -(t * math.log(p) + (1 - t) * math.log(1 - p))
    p_t = p * t + (1 - p) * (1 - t)
    return ce * (1 - p_t) ** 2 * (0.25 * t + 0.75 * (1 - t))


C_MASK = 0.7  # constant mask logit of the matched query


def toy(with_aux: bool = False):
    T = 2
    params = torch.zeros(1, 2, NUM_DYNAMIC_PARAMS)
    params[0, 1, -1] = C_MASK  # last bias (b2): all weights 0 -> logit C_MASK everywhere
    layer = {
        "pred_logits": torch.tensor([[[-1.0, 0.5], [1.5, -2.0]]], requires_grad=True),
        "pred_boxes": torch.tensor([[[[0.3, 0.3, 0.2, 0.2]] * T, [[0.5, 0.5, 0.4, 0.4]] * T]], requires_grad=True),
        "mask_params": params.requires_grad_(),
        "mask_refs": torch.full((1, 2, T, 2), 0.5),
    }
    outputs = dict(layer)
    outputs["mask_feats"] = torch.zeros(1, T, 8, 4, 4)  # canvas 32x32 at stride 8
    outputs["image_sizes"] = torch.tensor([[32, 32]])
    if with_aux:
        outputs["aux_outputs"] = [dict(layer)]
    masks = torch.zeros(1, T, 32, 32, dtype=torch.bool)
    masks[0, 0, 8:24, 8:24] = True  # frame 1: absent
    targets = [
        {
            "labels": torch.tensor([0]),
            "boxes": torch.tensor([[[0.5, 0.5, 0.4, 0.4], [0.0, 0.0, 0.0, 0.0]]]),
            "masks": masks,
            "valid": torch.tensor([[True, False]]),
            "size": torch.tensor([32, 32]),
        }
    ]
    return outputs, targets


def criterion(aux=True):
    weights = {"loss_ce": 2, "loss_bbox": 5, "loss_giou": 2, "loss_mask": 2, "loss_dice": 5}
    return SetCriterion(2, HungarianMatcher(), build_weight_dict(weights, 2, aux), aux_loss=aux)


def test_losses_match_hand_computation():
    outputs, targets = toy()
    losses = criterion()(outputs, targets)
    # q1 matches the GT (class 0, box equal in frame 0); num_boxes = 1
    ce = focal(-1.0, 0) + focal(0.5, 0) + focal(1.5, 1) + focal(-2.0, 0)
    assert abs(losses["loss_ce"].item() - ce) < 1e-6
    # frame 0 exact, frame 1 vs the zero box: |0.5|+|0.5|+|0.4|+|0.4| = 1.8, divided by T = 2
    assert abs(losses["loss_bbox"].item() - 0.9) < 1e-6
    # frame 1: pred [0.3, 0.3, 0.7, 0.7] vs a point at the origin: GIoU = -(0.49 - 0.16) / 0.49
    giou1 = -(0.49 - 0.16) / 0.49
    assert abs(losses["loss_giou"].item() - (0 + 1 - giou1) / 2) < 1e-5
    # GT sampled at [2::4, 2::4] of the 32x32 canvas: rows/cols 10, 14, 18, 22 inside -> 16 of 2*64 positive
    n_pos, n_all = 16, 128
    mask = (n_pos * focal(C_MASK, 1) + (n_all - n_pos) * focal(C_MASK, 0)) / n_all
    assert abs(losses["loss_mask"].item() - mask) < 1e-6
    p = 1 / (1 + math.exp(-C_MASK))
    dice = 1 - (2 * n_pos * p + 1) / (n_all * p + n_pos + 1)
    assert abs(losses["loss_dice"].item() - dice) < 1e-6
    assert losses["class_error"].item() == 0.0


def test_aux_losses_have_suffixes_and_weights():
    outputs, targets = toy(with_aux=True)
    crit = criterion()
    losses = crit(outputs, targets)
    for name in BASE_LOSSES:
        assert torch.allclose(losses[name], losses[f"{name}_0"])
        assert crit.weight_dict[f"{name}_0"] == crit.weight_dict[name]
    assert "loss_ce_1" not in crit.weight_dict  # 2 decoder layers -> one aux layer
    no_aux = criterion(aux=False)
    assert "loss_ce_0" not in no_aux(outputs, targets) and "loss_ce_0" not in no_aux.weight_dict
    total = sum(losses[k] * crit.weight_dict[k] for k in losses if k in crit.weight_dict)
    total.backward()
    assert outputs["mask_params"].grad is not None and outputs["pred_boxes"].grad.abs().sum() > 0


def test_batch_without_instances_gives_finite_losses_and_gradients():
    outputs, targets = toy()
    targets[0].update(
        labels=torch.zeros(0, dtype=torch.long),
        boxes=torch.zeros(0, 2, 4),
        masks=torch.zeros(0, 2, 32, 32, dtype=torch.bool),
        valid=torch.zeros(0, 2, dtype=torch.bool),
    )
    losses = criterion()(outputs, targets)
    ce = focal(-1.0, 0) + focal(0.5, 0) + focal(1.5, 0) + focal(-2.0, 0)  # num_boxes clamps to 1
    assert abs(losses["loss_ce"].item() - ce) < 1e-6
    for name in ("loss_bbox", "loss_giou", "loss_mask", "loss_dice"):
        assert losses[name].item() == 0.0
    sum(losses[k] for k in BASE_LOSSES).backward()
    assert outputs["mask_params"].grad is not None  # still in the graph (DDP needs it)


def test_mask_targets_on_shared_canvas_subsample_at_offset_2():
    gt = torch.zeros(1, 1, 16, 16)
    gt[0, 0, 2, 6] = 1  # lands on stride-4 cell (0, 1)
    gt[0, 0, 3, 3] = 1  # between sample points: dropped
    pred = torch.zeros(1, 1, 4, 4)
    p, t = mask_targets(gt, pred, torch.tensor([16, 16]))
    assert p is pred and t.shape == (1, 1, 4, 4)
    assert t[0, 0].nonzero().tolist() == [[0, 1]]


def test_mask_targets_fallback_crops_then_resizes(monkeypatch, caplog):
    # canvas 32x32 -> predictions 8x8; valid image 20x20; GT given unpadded (20x20) so shapes disagree
    pred = torch.zeros(1, 2, 8, 8)
    pred[..., :5, :5] = 3.0
    pred[..., 5:, :] = -50.0  # padded area: must not be stretched onto the image
    pred[..., :, 5:] = -50.0
    gt = torch.zeros(1, 2, 20, 20)
    monkeypatch.setattr(logging.getLogger("wsovvis"), "propagate", True)
    with caplog.at_level(logging.WARNING, logger="wsovvis"):
        p, t = mask_targets(gt, pred, torch.tensor([20, 20]))
    assert "do not share" in caplog.text
    assert p.shape == t.shape == (1, 2, 20, 20)
    # identical to upsampling the whole padded map x4 and cropping (inference's rule) ...
    full = F.interpolate(pred.flatten(0, 1)[:, None], scale_factor=4, mode="bilinear", align_corners=False)
    torch.testing.assert_close(p, full.view(1, 2, 32, 32)[..., :20, :20])
    assert torch.all(p[..., :16, :16] == 3.0)
    # ... and unlike stretching the padded 8x8 map onto 20x20
    stretched = F.interpolate(pred.flatten(0, 1)[:, None], size=(20, 20), mode="bilinear", align_corners=False)
    assert (stretched.view(1, 2, 20, 20) - p).abs().max() > 10
    with pytest.raises(WsovvisError, match="smaller than the valid image size"):
        mask_targets(torch.zeros(1, 2, 10, 10), pred, torch.tensor([20, 20]))


def test_giou_loss_matches_box_ops():
    outputs, targets = toy()
    crit = criterion()
    src = outputs["pred_boxes"][0, 1]
    tgt = targets[0]["boxes"][0]
    expect = (1 - generalized_box_iou(box_cxcywh_to_xyxy(src), box_cxcywh_to_xyxy(tgt))).sum() / 2
    indices = [(torch.tensor([1]), torch.tensor([0]))]
    got = crit.loss_giou(outputs, targets, indices, torch.tensor(1.0), {})["loss_giou"]
    torch.testing.assert_close(got, expect)


def test_num_boxes_is_averaged_over_ranks():
    import socket

    import torch.multiprocessing as mp

    from tests.modeling.ddp_worker import num_boxes_worker

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=num_boxes_worker, args=(r, port, [1, 4], queue)) for r in range(2)]
    for p in procs:
        p.start()
    values = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert values == [2.5, 2.5]  # (1 + 4) / world size 2 on both ranks
