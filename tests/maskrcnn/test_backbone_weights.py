"""Mask R-CNN's ResNet-50 FPN from local files (torchvision .pth, detectron2 .pkl, DINO .pth): weights
land in the trunk, FrozenBN and frozen stages when pretrained; the training transform keeps sizes."""

from __future__ import annotations

import pickle

import pytest
import torch
import torchvision
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from tests.maskrcnn.helpers import tiny_cfg
from wsovvis.errors import WsovvisError
from wsovvis.modeling import build_model
from wsovvis.modeling.backbone.weights import torchvision_to_d2
from wsovvis.modeling.maskrcnn.backbone import resnet50_fpn


@pytest.fixture(scope="module")
def r50_state():
    torch.manual_seed(3)
    sd = torchvision.models.resnet50(weights=None).state_dict()
    return {k: (torch.randn_like(v) if v.is_floating_point() else v) for k, v in sd.items()}


def _check_loaded(fpn, sd):
    body = fpn.body
    assert torch.equal(body.conv1.weight, sd["conv1.weight"])
    assert torch.equal(body.layer3[2].bn2.running_var, sd["layer3.2.bn2.running_var"])
    assert isinstance(body.bn1, FrozenBatchNorm2d)
    assert not body.conv1.weight.requires_grad and not body.layer1[0].conv1.weight.requires_grad
    assert body.layer2[0].conv1.weight.requires_grad  # freeze_at 2: stem + res2 frozen only


def test_torchvision_pth(tmp_path, r50_state):
    torch.save(r50_state, tmp_path / "r50.pth")  # with fc.*: ignored
    _check_loaded(resnet50_fpn(str(tmp_path / "r50.pth"), 2, 256, fpn_norm=False), r50_state)


def test_dino_resnet50_pth(tmp_path, r50_state):
    dino = {k: v for k, v in r50_state.items() if not k.startswith("fc.")}  # dino_resnet50_pretrain.pth layout
    torch.save(dino, tmp_path / "dino_resnet50_pretrain.pth")
    _check_loaded(resnet50_fpn(str(tmp_path / "dino_resnet50_pretrain.pth"), 2, 256, fpn_norm=True), r50_state)


def test_detectron2_pkl(tmp_path, r50_state):
    d2 = {torchvision_to_d2(k): v.numpy() for k, v in r50_state.items()
          if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    with open(tmp_path / "R-50.pkl", "wb") as f:
        pickle.dump({"model": d2, "__author__": "test"}, f)
    _check_loaded(resnet50_fpn(str(tmp_path / "R-50.pkl"), 2, 256, fpn_norm=False), r50_state)


def test_no_weights_trains_everything_with_batchnorm():
    fpn = resnet50_fpn(None, 2, 256, fpn_norm=False)
    assert isinstance(fpn.body.bn1, nn.BatchNorm2d) and fpn.body.conv1.weight.requires_grad


def test_missing_weights_file_names_it(tmp_path):
    with pytest.raises(WsovvisError, match="nope.pth"):
        build_model({"model": tiny_cfg(**{"backbone.name": "resnet50",
                                          "backbone.weights": str(tmp_path / "nope.pth")})})


def test_training_keeps_the_augmented_size_inference_resizes():
    model, _, _ = build_model({"model": tiny_cfg(**{"inference.test_size": 96, "inference.max_size": 96})})
    tr = model.detector.transform
    x = torch.rand(3, 40, 60) * 255
    tr.train()
    assert tr.resize(x)[0].shape[-2:] == (40, 60)  # multi-scale sizes come from input.min_size_train
    tr.eval()
    assert tr.resize(x)[0].shape[-2:] == (64, 96)


def test_a_pickle_that_runs_code_is_refused_unless_trusted(tmp_path, r50_state):
    """model.trust_pickle reaches Mask R-CNN's backbone loader: refused by default, loaded when trusted."""
    from tests.reliability.helpers import MarkerPayload

    marker = tmp_path / "ran"
    d2 = {torchvision_to_d2(k): v.numpy() for k, v in r50_state.items()
          if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    with open(tmp_path / "R-50.pkl", "wb") as f:
        pickle.dump({"model": d2, "extra": MarkerPayload(marker)}, f)
    cfg = tiny_cfg(**{"backbone.name": "resnet50", "backbone.weights": str(tmp_path / "R-50.pkl"),
                      "maskrcnn.fpn_channels": 256})
    with pytest.raises(WsovvisError, match=r"R-50\.pkl.*(system|refus)") as e:
        build_model({"model": cfg})
    assert "trust_pickle" in str(e.value)
    assert not marker.exists()
    model, _, _ = build_model({"model": {**cfg, "trust_pickle": True}})
    assert marker.exists()  # the opt-in really reads the file fully, payload included
    _check_loaded(model.detector.backbone, r50_state)
