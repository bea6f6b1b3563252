"""Every registered model builds from a tiny config and runs a forward pass + loss (timm-style)."""

from __future__ import annotations

import pytest
import torch

from tests.modeling.helpers import model_cfg, square_clip
from wsovvis.errors import WsovvisError
from wsovvis.modeling import build_model
from wsovvis.modeling.registry import list_models, register_model

# name -> (config file, overrides) small enough for a CPU forward
MASKRCNN_TINY = {
    "num_classes": 5, "backbone.name": "tiny_cnn", "backbone.width": 8, "maskrcnn.fpn_channels": 32,
    "maskrcnn.representation_size": 64, "maskrcnn.anchor_sizes": [8, 16, 32, 64, 128],
    "maskrcnn.rpn_post_nms_top_n_train": 200, "maskrcnn.box_batch_size_per_image": 64,
    "inference.test_size": 64, "inference.max_size": 128,
}
TINY = {
    "seqformer": ("seqformer_tiny", {}),
    "maskrcnn": ("maskrcnn_r50", MASKRCNN_TINY),
    "maskrcnn_v2": ("maskrcnn_r50_v2", MASKRCNN_TINY),
}


def test_every_registered_model_has_a_tiny_config():
    assert set(list_models()) == set(TINY), "add a tiny config for each new registered model to TINY"


@pytest.mark.parametrize("name", sorted(TINY))
def test_build_and_forward(name):
    file, overrides = TINY[name]
    cfg = model_cfg(file, **overrides)
    assert cfg["name"] == name
    torch.manual_seed(0)
    model, criterion, post = build_model({"model": cfg})
    img, target = square_clip(0, T=2, H=64, W=64, n=2)
    images, sizes = img[None], torch.tensor([[64, 64]])
    model.train()
    if getattr(model, "needs_targets", False):
        outputs = model(images, sizes, [target])
    else:
        outputs = model(images, sizes)
    losses = criterion(outputs, [target])
    weighted = [losses[k] * criterion.weight_dict[k] for k in losses if k in criterion.weight_dict]
    assert weighted, f"{name}: no weighted loss term"
    total = sum(weighted)
    assert torch.isfinite(total) and total > 0
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)
    assert post is not None


def test_unknown_name_lists_the_choices():
    with pytest.raises(WsovvisError, match="unknown model 'nope'.*seqformer"):
        build_model({"model": {**model_cfg("seqformer_tiny"), "name": "nope"}})


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_model("seqformer")(lambda mc: None)
