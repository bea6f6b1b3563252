"""Backbone registry: every entry built and run; ResNet/DINOv2 weight loading; freezing; padding."""

from __future__ import annotations

import pickle

import pytest
import timm
import torch
import torchvision

from wsovvis.errors import WsovvisError
from wsovvis.modeling.backbone import build_backbone, list_backbones
from wsovvis.modeling.backbone.dinov2 import default_layers, resample_to_stride, timm_name
from wsovvis.modeling.backbone.registry import downsample_mask
from wsovvis.modeling.backbone.weights import torchvision_to_d2

# ViT-g (1.1B parameters, 4.5 GB; 10-20 s just to allocate and fill on this machine) runs on real
# tensors once, as dinov2_vitg14 through configs/model/seqformer_dinov2_vitg14.yaml in test_model.py;
# dinov2_vitg14_reg runs here on the meta device (construction and shapes, no memory).
BUILT_BY_CONFIG_TEST = {"dinov2_vitg14"}
META_ONLY = {"dinov2_vitg14_reg"}
NAMES = [n for n in list_backbones() if n not in BUILT_BY_CONFIG_TEST | META_ONLY]


def test_registry_names():
    expected = {"resnet50", "tiny_cnn"} | {f"dinov2_vit{s}14{r}" for s in "sblg" for r in ("", "_reg")}
    assert set(list_backbones()) == expected
    with pytest.raises(WsovvisError, match="unknown backbone 'resnet18'"):
        build_backbone("resnet18")


@pytest.mark.parametrize("name", NAMES)
def test_build_and_run(name):
    torch.manual_seed(0)
    bb = build_backbone(name, return_res2=True)
    H, W = 30, 45  # multiple of neither 14 nor 32
    x = torch.randn(1, 3, H, W)
    mask = torch.zeros(1, H, W, dtype=torch.bool)
    mask[:, 20:, :] = True
    mask[:, :, 30:] = True
    bb.train()
    out = bb(x, mask)
    assert list(out) == ["res2", "res3", "res4", "res5"] == bb.out_features
    for stage, (feat, m) in out.items():
        s = bb.out_strides[stage]
        size = (-(-H // s), -(-W // s))
        assert feat.shape == (1, bb.out_channels[stage], *size), stage
        assert torch.equal(m, downsample_mask(mask, size))
        assert torch.isfinite(feat).all()
    if name.startswith("dinov2"):
        assert not bb.vit.training  # stays in eval mode while the model trains
        assert not any(p.requires_grad for p in bb.vit.parameters())
        assert all(p.requires_grad for p in bb.fpn.parameters())
        out["res3"][0].sum().backward()
        assert bb.fpn[1]["proj"][0].weight.grad is not None
        assert all(p.grad is None for p in bb.vit.parameters())
        assert bb.out_channels["res5"] == 256


@pytest.mark.parametrize("name", sorted(META_ONLY))
def test_build_and_run_on_meta_device(name):
    with torch.device("meta"):
        bb = build_backbone(name, return_res2=True)
        out = bb(torch.empty(2, 3, 30, 45), torch.zeros(2, 30, 45, dtype=torch.bool))
    assert bb.vit.embed_dim == 1536 and len(bb.vit.blocks) == 40 and bb.vit.reg_token.shape == (1, 4, 1536)
    assert bb.layers == [9, 19, 29, 39]
    for stage, s in bb.out_strides.items():
        assert out[stage][0].shape == (2, 256, -(-30 // s), -(-45 // s))


def test_default_dinov2_layers_and_names():
    assert default_layers(12) == [2, 5, 8, 11]
    assert default_layers(24) == [5, 11, 17, 23]
    assert default_layers(40) == [9, 19, 29, 39]
    assert timm_name("g", True) == "vit_giant_patch14_reg4_dinov2"
    with pytest.raises(WsovvisError, match="4 block indices"):
        build_backbone("dinov2_vits14", layers=[1, 2, 12, 3])


def test_resample_to_stride_keeps_pixel_geometry():
    h, w = 3, 5
    xs = (torch.arange(w) + 0.5) * 14  # every patch cell holds its centre's x in pixels
    feat = xs.view(1, 1, 1, w).expand(1, 1, h, w).contiguous()
    out = resample_to_stride(feat, (6, 9), stride=8)
    expect = (torch.arange(9) + 0.5) * 8
    interior = (expect > 7) & (expect < 14 * w - 7)
    torch.testing.assert_close(out[0, 0, 2][interior], expect[interior])


def test_resnet_freezing_and_frozen_bn():
    bb = build_backbone("resnet50")
    assert not bb.body.conv1.weight.requires_grad
    assert not any(p.requires_grad for p in bb.body.layer1.parameters())
    assert all(p.requires_grad for p in bb.body.layer2.parameters())
    keys = bb.state_dict().keys()
    assert "body.bn1.running_var" in keys and not any("num_batches_tracked" in k for k in keys)
    assert not any("fc." in k for k in keys)
    assert all(p.requires_grad for p in build_backbone("resnet50", freeze_at=0).parameters())


@pytest.fixture(scope="module")
def tv_resnet(tmp_path_factory):
    torch.manual_seed(1)
    net = torchvision.models.resnet50(weights=None)
    with torch.no_grad():
        net.bn1.running_mean.uniform_()
    path = tmp_path_factory.mktemp("r50") / "resnet50_tv.pth"
    torch.save(net.state_dict(), path)
    return net.state_dict(), path


def test_resnet_weights_from_torchvision_file(tv_resnet):
    sd, path = tv_resnet
    bb = build_backbone("resnet50", weights=str(path))
    own = bb.body.state_dict()
    for k in ("conv1.weight", "bn1.running_mean", "layer3.2.conv2.weight", "layer4.0.downsample.1.bias"):
        assert torch.equal(own[k], sd[k]), k


def test_resnet_weights_from_detectron2_pickle(tv_resnet, tmp_path):
    sd, _ = tv_resnet
    d2 = {torchvision_to_d2(k): v.numpy() for k, v in sd.items() if not k.startswith("fc.")
          and not k.endswith("num_batches_tracked")}
    assert "res2.0.conv1.norm.running_mean" in d2 and "res5.0.shortcut.weight" in d2 and "stem.conv1.weight" in d2
    path = tmp_path / "R-50.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": d2, "__author__": "torchvision", "matching_heuristics": True}, f)
    bb = build_backbone("resnet50", weights=str(path))
    own = bb.body.state_dict()
    for k in ("conv1.weight", "bn1.running_mean", "layer1.0.downsample.0.weight", "layer4.2.bn3.weight"):
        assert torch.equal(own[k], sd[k]), k


def test_resnet_weight_errors_name_the_file(tmp_path):
    missing = tmp_path / "none.pth"
    with pytest.raises(WsovvisError, match="none.pth: backbone weights file does not exist"):
        build_backbone("resnet50", weights=str(missing))
    c2 = tmp_path / "msra.pkl"
    with open(c2, "wb") as f:
        pickle.dump({"model": {"conv1_w": 0, "res2_0_branch2a_w": 0}}, f)
    with pytest.raises(WsovvisError, match="msra.pkl: this is a Caffe2-named MSRA ResNet"):
        build_backbone("resnet50", weights=str(c2))
    partial = tmp_path / "partial.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, partial)
    with pytest.raises(WsovvisError, match="partial.pth: ResNet weights lack"):
        build_backbone("resnet50", weights=str(partial))


def _official_dinov2(name: str, registers: bool, seed: int):
    """A random timm DINOv2 and the same weights written in the official facebookresearch layout."""
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, num_classes=0, dynamic_img_size=True)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    official = dict(sd)
    official["mask_token"] = torch.zeros(1, model.embed_dim)
    if registers:
        # official: cls and register tokens separate, pos_embed includes the cls position
        cls_pos = torch.randn(1, 1, model.embed_dim)
        official["register_tokens"] = official.pop("reg_token")
        official["pos_embed"] = torch.cat([cls_pos, sd["pos_embed"]], 1)
        official["cls_token"] = sd["cls_token"] - cls_pos
    return sd, official


@pytest.mark.parametrize("registers", [False, True])
def test_dinov2_official_checkpoint_loads_through_timm_converter(tmp_path, registers):
    name = "vit_small_patch14_reg4_dinov2" if registers else "vit_small_patch14_dinov2"
    sd, official = _official_dinov2(name, registers, seed=2)
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(official, path)
    bb = build_backbone("dinov2_vits14_reg" if registers else "dinov2_vits14", weights=str(path))
    own = bb.vit.state_dict()
    assert set(own) == set(sd)
    for k in sd:
        torch.testing.assert_close(own[k], sd[k], msg=k)
    out = bb(torch.randn(1, 3, 28, 40), torch.zeros(1, 28, 40, dtype=torch.bool))
    assert out["res5"][0].shape == (1, 256, 1, 2) and torch.isfinite(out["res3"][0]).all()


def test_dinov2_checkpoint_mismatch_names_both(tmp_path):
    _, official = _official_dinov2("vit_small_patch14_dinov2", False, seed=3)
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(official, path)
    with pytest.raises(WsovvisError) as e:
        build_backbone("dinov2_vitb14", weights=str(path))
    msg = str(e.value)
    assert "dinov2_vits14_pretrain.pth" in msg and "384" in msg and "768" in msg and "dinov2_vitb14" in msg
    with pytest.raises(WsovvisError, match="register tokens"):
        build_backbone("dinov2_vits14_reg", weights=str(path))
