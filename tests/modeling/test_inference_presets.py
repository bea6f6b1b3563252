"""Inference presets (``model.inference.preset``): default (clip-wise, bounded), vnext, original."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.modeling.helpers import build
from wsovvis.data import rle as rle_utils
from wsovvis.errors import WsovvisError
from wsovvis.modeling.config import InferenceConfig
from wsovvis.modeling.seqformer.inference import predict_video, prepare_frame
from wsovvis.modeling.seqformer.mask_head import dynamic_mask_logits
from wsovvis.modeling.seqformer.presets import inference_preset, torchvision_resized_shape


def _video(T: int, h: int = 50, w: int = 75, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    frames = []
    for t in range(T):
        f = base.copy()
        f[10 + t : 30 + t, 20:45] = (230, 40, 40)
        frames.append(f)
    return frames


class _Recorder:
    """Wraps a model's forward to record the input shapes."""

    def __init__(self, model):
        self.shapes = []
        self.model = model
        self._forward = model.forward
        model.forward = self

    def __call__(self, images, sizes):
        self.shapes.append((tuple(images.shape), sizes.tolist()))
        return self._forward(images, sizes)


def test_preset_resolution_and_config_errors():
    ic = InferenceConfig(test_size=360, max_size=1333, clip_length=20, clip_overlap=5, top_k=10)
    d = inference_preset(ic)
    assert (d.preset, d.clip_length, d.size_divisibility, d.max_size) == ("default", 20, 32, 1333)
    v = inference_preset(InferenceConfig(preset="vnext"))
    assert (v.clip_length, v.size_divisibility, v.max_size, v.test_size, v.top_k) == (0, 32, 1333, 360, 10)
    o = inference_preset(InferenceConfig(preset="original"))
    assert (o.clip_length, o.size_divisibility, o.max_size) == (0, 1, math.inf)
    with pytest.raises(WsovvisError, match="model.inference.preset: 'fast' is not one of default, vnext, original"):
        inference_preset(InferenceConfig(preset="fast"))
    # torchvision Resize(360): shortest side 360, the long side truncated, no max size
    assert torchvision_resized_shape(720, 1280, 360) == (360, 640)
    assert torchvision_resized_shape(181, 263, 360) == (360, 523)
    assert torchvision_resized_shape(1000, 100, 360) == (3600, 360)
    model, _, post = build("seqformer_tiny", **{"inference.preset": "original"})
    assert model.size_divisibility == 1 and post.preset == "original"


def test_vnext_runs_the_whole_video_in_one_padded_pass():
    # an untrained model scores about 0.01: threshold 0 keeps every (query, class) pair
    model, _, post = build("seqformer_tiny", **{"inference.preset": "vnext", "inference.test_size": 60,
                                                "inference.cls_threshold": 0.0})
    rec = _Recorder(model)
    frames = _video(7)  # longer than the tiny config's clip_length 4
    preds = predict_video(model, post, frames)
    assert len(rec.shapes) == 1
    (shape, sizes), = rec.shapes
    assert shape == (1, 7, 3, 64, 96) and sizes == [[60, 90]]  # 60 x 90 padded to /32
    assert len(preds) == 5 * 5 and all(len(p["segmentations"]) == 7 for p in preds)  # top_k 5 x 5 classes
    assert all(r["size"] == [50, 75] for p in preds for r in p["segmentations"])
    # the default preset on a video that fits one clip is the same procedure: same predictions
    model2, _, post2 = build("seqformer_tiny", **{"inference.test_size": 60, "inference.clip_length": 8,
                                                  "inference.clip_overlap": 2, "inference.cls_threshold": 0.0})
    default = predict_video(model2, post2, frames)
    assert [(round(p["score"], 5), p["category_index"]) for p in default] == \
        [(round(p["score"], 5), p["category_index"]) for p in preds]
    assert [p["segmentations"] for p in default] == [p["segmentations"] for p in preds]


def test_original_no_padding_flat_topk_straight_resize():
    model, _, post = build("seqformer_tiny", **{"inference.preset": "original", "inference.test_size": 60,
                                                "inference.top_k": 10})
    rec = _Recorder(model)
    frames = _video(5)
    preds = predict_video(model, post, frames)
    (shape, sizes), = rec.shapes
    assert shape == (1, 5, 3, 60, 90) and sizes == [[60, 90]]  # NOT padded to /32
    # recompute by hand: flattened top-10 (query, class) pairs, stride-4 logits resized straight to 50 x 75
    model.forward = rec._forward
    model.eval()
    with torch.no_grad():
        x = torch.stack([prepare_frame(f, (60, 90), t) for t, f in enumerate(frames)])[None]
        out = model(x, torch.tensor([[60, 90]]))
    probs = out["pred_logits"][0].sigmoid()
    K = probs.shape[1]
    scores, flat = probs.flatten().topk(10)
    expected = []
    for s, i in zip(scores.tolist(), flat.tolist()):
        q, c = i // K, i % K
        logits = dynamic_mask_logits(out["mask_feats"][0], out["mask_params"][0, [q]], out["mask_refs"][0, [q]],
                                     out["image_sizes"][0])[0]  # [T, 15, 23]
        m = F.interpolate(logits[:, None], size=(50, 75), mode="bilinear", align_corners=False)[:, 0].sigmoid() > 0.5
        if m.any():
            expected.append((round(s, 5), c, m.numpy()))
    assert len(preds) == len(expected) > 0
    got = sorted(((round(p["score"], 5), p["category_index"], p) for p in preds), key=lambda r: (-r[0], r[1]))
    for (s, c, m), (gs, gc, p) in zip(sorted(expected, key=lambda r: (-r[0], r[1])), got):
        assert (s, c) == (gs, gc)
        dec = np.stack([rle_utils.decode(r) for r in p["segmentations"]])
        assert np.array_equal(dec, m)
    # scores below 0.001: None segmentations (the original repo's rule); empty-mask outputs still skipped
    with torch.no_grad():
        model.class_embed[-1].bias.fill_(-9.0)
    low = predict_video(model, post, frames)
    assert low and all(p["score"] < 0.001 and p["segmentations"] == [None] * 5 for p in low)
