"""Tiny Mask R-CNN configs for CPU tests."""

from __future__ import annotations

from tests.modeling.helpers import model_cfg

TINY = {
    "backbone.name": "tiny_cnn", "backbone.width": 8, "maskrcnn.fpn_channels": 32,
    "maskrcnn.representation_size": 64, "maskrcnn.anchor_sizes": [8, 16, 32, 64, 128],
    "maskrcnn.rpn_post_nms_top_n_train": 200, "maskrcnn.box_batch_size_per_image": 64,
    "inference.test_size": 64, "inference.max_size": 128,
}


def tiny_cfg(name: str = "maskrcnn_r50", **overrides) -> dict:
    return model_cfg(name, **{**TINY, **overrides})
