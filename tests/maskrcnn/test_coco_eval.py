"""Image evaluation: COCO results from the detector and COCOeval mask / box AP."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from wsovvis.modeling.maskrcnn.coco_eval import coco_ap, predict_images
from wsovvis.modeling.maskrcnn.inference import MaskRCNNPostProcessor


class OracleDetector(nn.Module):
    """Returns the square of each image (red pixels) as one detection, plus a low-scoring miss."""

    def __init__(self):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(1))

    def forward(self, images):
        (x,) = images
        red = (x[0] > 200) & (x[1] < 100)
        ys, xs = torch.nonzero(red, as_tuple=True)
        box = torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32)
        miss = torch.zeros_like(red)
        miss[:3, :3] = True
        masks = torch.stack([red, miss]).float()[:, None]
        return [{"boxes": torch.cat([box, torch.tensor([[0.0, 0, 3, 3]])]), "scores": torch.tensor([0.9, 0.2]),
                 "labels": torch.tensor([1, 1]), "masks": masks}]


def test_oracle_detections_score_ap_one_and_missing_images_are_skipped(tmp_path):
    images, anns = [], []
    for k, (y0, x0) in enumerate([(5, 5), (20, 30), (10, 40)], start=1):
        img = np.full((48, 64, 3), 30, dtype=np.uint8)
        img[y0:y0 + 12, x0:x0 + 16] = (230, 30, 30)
        if k != 3:  # image 3 is missing on disk
            Image.fromarray(img).save(tmp_path / f"{k}.png")
        images.append({"id": k, "file_name": f"{k}.png", "height": 48, "width": 64})
        poly = [x0, y0, x0 + 16, y0, x0 + 16, y0 + 12, x0, y0 + 12]
        anns.append({"id": k, "image_id": k, "category_id": 7, "iscrowd": 0, "segmentation": [poly],
                     "bbox": [x0, y0, 16, 12], "area": 192})
    gt = {"images": images, "annotations": anns, "categories": [{"id": 7, "name": "thing"}]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    model = nn.Module()
    model.detector = OracleDetector()
    results, done = predict_images(model, MaskRCNNPostProcessor(score_threshold=0.05), tmp_path / "gt.json",
                                   tmp_path, progress=False)
    assert done == [1, 2] and len(results) == 4
    assert results[0]["category_id"] == 7 and results[0]["bbox"] == [5.0, 5.0, 16.0, 12.0]
    stats = coco_ap(tmp_path / "gt.json", results, image_ids=done)
    assert stats["segm"]["AP"] == pytest.approx(1.0) and stats["bbox"]["AP50"] == pytest.approx(1.0)
    worse = coco_ap(tmp_path / "gt.json", [r for r in results if r["score"] < 0.5], image_ids=done)
    assert worse["segm"]["AP"] == pytest.approx(0.0)
