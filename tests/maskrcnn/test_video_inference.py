"""Clip targets -> per-frame torchvision targets; per-frame detections -> linked YouTube-VIS tubes."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from wsovvis.data import rle
from wsovvis.modeling.maskrcnn.inference import MaskRCNNPostProcessor
from wsovvis.modeling.maskrcnn.model import frame_targets


def test_frame_targets_boxes_labels_and_absent_instances():
    h, w = 40, 80
    masks = torch.zeros(3, 2, 64, 96, dtype=torch.bool)
    masks[0, 0, 10:20, 8:40] = True
    masks[1, 1, 0:40, 0:80] = True
    masks[2, 0, 5:6, 5:5] = True  # empty: zero-area box
    target = {
        "labels": torch.tensor([0, 2, 1]),
        "boxes": torch.tensor([[[24 / 80, 15 / 40, 32 / 80, 10 / 40], [0, 0, 0, 0]],
                               [[0, 0, 0, 0], [0.5, 0.5, 1.0, 1.0]],
                               [[5 / 80, 5 / 40, 0.0, 0.0], [0, 0, 0, 0]]]),
        "valid": torch.tensor([[True, False], [False, True], [True, False]]),
        "masks": masks,
    }
    f0 = frame_targets(target, 0, h, w)
    assert torch.allclose(f0["boxes"], torch.tensor([[8.0, 10.0, 40.0, 20.0]]), atol=1e-4)  # zero-area box skipped
    assert f0["labels"].tolist() == [1]  # 1-based: 0 is torchvision's background
    assert f0["masks"].shape == (1, h, w) and f0["masks"].dtype == torch.uint8
    assert int(f0["masks"].sum()) == 10 * 32
    f1 = frame_targets(target, 1, h, w)
    assert torch.allclose(f1["boxes"], torch.tensor([[0.0, 0.0, 80.0, 40.0]])) and f1["labels"].tolist() == [3]


class ScriptedDetector(nn.Module):
    """Returns pre-set detections frame after frame (like torchvision's eval output)."""

    def __init__(self, per_frame: list[list[tuple[np.ndarray, float, int]]]):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(1))
        self.per_frame = per_frame
        self.calls = 0

    def forward(self, images):
        (x,) = images
        assert x.dtype == torch.float32 and x.shape[0] == 3
        dets = self.per_frame[self.calls]
        self.calls += 1
        h, w = x.shape[-2:]
        masks = torch.zeros(len(dets), 1, h, w)
        for i, (m, _, _) in enumerate(dets):
            masks[i, 0] = torch.from_numpy(m).float() * 0.9
        return [{"boxes": torch.zeros(len(dets), 4), "scores": torch.tensor([s for _, s, _ in dets]),
                 "labels": torch.tensor([c for _, _, c in dets], dtype=torch.long), "masks": masks}]


def _box(y0, x0, y1, x1, h=32, w=48):
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def test_predict_video_links_detections_into_tubes():
    # object A moves right in frames 0..2; object B appears in frame 1 only; a weak detection is filtered
    a = [_box(4, 4 + 2 * t, 14, 14 + 2 * t) for t in range(3)]
    b = _box(20, 30, 30, 44)
    per_frame = [
        [(a[0], 0.9, 1), (_box(0, 40, 2, 48), 0.01, 1)],
        [(b, 0.6, 2), (a[1], 0.8, 1)],
        [(a[2], 0.7, 2)],
    ]
    model = nn.Module()
    model.detector = ScriptedDetector(per_frame)
    post = MaskRCNNPostProcessor(score_threshold=0.05, link_iou=0.3)
    frames = [np.zeros((32, 48, 3), dtype=np.uint8) for _ in range(3)]
    preds = post.predict_video(model, iter(frames))
    assert len(preds) == 2
    tube_a, tube_b = preds  # sorted by score: A 0.8, B 0.6
    assert abs(tube_a["score"] - 0.8) < 1e-6
    assert tube_a["category_index"] == 0  # labels 1,1,2 weighted 0.9+0.8 vs 0.7 -> class 1 -> index 0
    for t in range(3):
        assert np.array_equal(rle.decode(tube_a["segmentations"][t]), a[t])
    assert tube_b["segmentations"][0] is None and tube_b["segmentations"][2] is None
    assert np.array_equal(rle.decode(tube_b["segmentations"][1]), b)
    assert tube_b["category_index"] == 1
    assert tube_b["segmentations"][1]["size"] == [32, 48]
