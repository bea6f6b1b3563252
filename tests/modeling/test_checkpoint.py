"""Checkpoint loading: synthetic VNext / original checkpoints from the published key table, our round trip."""

from __future__ import annotations

import pytest
import torch

from tests.modeling.helpers import build
from tests.modeling.test_model import vnext_reference_table
from wsovvis.errors import WsovvisError
from wsovvis.modeling.seqformer.checkpoint import export_state_dict, external_to_ours, load_checkpoint


@pytest.fixture(scope="module")
def r50():
    model, _, _ = build("seqformer_r50", seed=5)
    return model


def synthetic_vnext(K: int = 40, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    table, _ = vnext_reference_table(K)
    sd = {k: torch.randn(shape, generator=g) for k, shape in table.items()}
    for k in [k for k in sd if k.startswith("detr.detr.transformer.decoder.bbox_embed.")]:
        sd[k] = sd["detr.detr.bbox_embed." + k[len("detr.detr.transformer.decoder.bbox_embed.") :]]
    return sd


def to_original(vnext: dict[str, torch.Tensor], rows42: bool = True) -> dict[str, torch.Tensor]:
    """VNext keys -> original SeqFormer keys (the reference's rule + torchvision backbone names)."""
    from wsovvis.modeling.backbone.weights import d2_to_torchvision

    out = {}
    for k, v in vnext.items():
        if k.startswith("detr.detr.backbone.0.backbone."):
            out["detr.backbone.0.body." + d2_to_torchvision(k[len("detr.detr.backbone.0.backbone.") :])] = v
        elif k.startswith("detr.detr."):
            out[k[len("detr.") :]] = v
        else:
            out[k[len("detr.") :]] = v
    if rows42:  # the original head indexes raw YTVIS ids 1..40 in 42 rows
        for k in [k for k in out if k.startswith("detr.class_embed.")]:
            out[k] = torch.cat([torch.full_like(out[k][:1], 99.0), out[k], torch.full_like(out[k][:1], 99.0)])
    return out


def test_vnext_checkpoint_loads_every_key(r50, tmp_path):
    sd = synthetic_vnext(seed=1)
    path = tmp_path / "seqformer_vnext.pth"
    torch.save({"model": sd, "iteration": 12000}, path)
    report = load_checkpoint(r50, path, strict=True)
    assert report.format == "vnext" and not report.missing and not report.unexpected and not report.shape_mismatch
    assert report.loaded == len(r50.state_dict())
    own = r50.state_dict()
    assert torch.equal(own["backbone.body.layer2.0.downsample.1.running_var"],
                       sd["detr.detr.backbone.0.backbone.res3.0.shortcut.norm.running_var"])
    assert torch.equal(own["transformer.decoder.layers.5.cross_attn.output_proj_box.weight"],
                       sd["detr.detr.transformer.decoder.layers.5.cross_attn.output_proj_box.weight"])
    assert torch.equal(own["controller.layers.2.bias"], sd["detr.controller.layers.2.bias"])
    assert torch.equal(own["mask_head.dcn.weight"], sd["detr.mask_head.dcn.weight"])
    assert r50.transformer.decoder.bbox_embed[3] is r50.bbox_embed[3]


def test_original_checkpoint_maps_keys_and_takes_class_rows_1_to_40(r50, tmp_path):
    vnext = synthetic_vnext(seed=2)
    path = tmp_path / "r50_original.pth"
    orig = to_original(vnext)
    assert "detr.backbone.0.body.layer1.0.bn1.weight" in orig and "controller.layers.0.weight" in orig
    torch.save({"model": orig, "optimizer": {}, "epoch": 11}, path)
    report = load_checkpoint(r50, path, strict=True)
    assert report.format == "original" and report.class_rows == "class head rows 1..40 of 42 taken"
    assert torch.equal(r50.class_embed[2].weight, vnext["detr.detr.class_embed.2.weight"])
    assert torch.equal(r50.class_embed[2].bias, vnext["detr.detr.class_embed.2.bias"])
    assert torch.equal(r50.backbone.body.conv1.weight, vnext["detr.detr.backbone.0.backbone.stem.conv1.weight"])


def test_a_checkpoint_with_one_alias_fills_both(r50):
    sd = {k: v for k, v in synthetic_vnext(seed=3).items() if ".transformer.decoder.bbox_embed." not in k}
    report = load_checkpoint(r50, sd, strict=True)
    assert not report.missing
    alias = r50.transformer.decoder.bbox_embed[1].layers[2].weight
    assert torch.equal(alias, sd["detr.detr.bbox_embed.1.layers.2.weight"])


def test_mismatches_are_reported_and_strict_raises(r50, tmp_path):
    sd = synthetic_vnext(seed=4)
    for l in range(6):  # a head trained on 7 classes cannot be loaded into 40
        sd[f"detr.detr.class_embed.{l}.weight"] = torch.zeros(7, 256)
    sd["detr.detr.some_new_module.weight"] = torch.zeros(3)
    del sd["detr.mask_head.lay1.bias"]
    report = load_checkpoint(r50, sd, strict=False)
    assert any(m.startswith("class_embed.0.weight (7, 256) vs (40, 256)") for m in report.shape_mismatch)
    assert "detr.detr.some_new_module.weight" in report.unexpected  # no rule applies: kept as is
    assert "mask_head.lay1.bias" in report.missing and "class_embed.0.weight" in report.missing
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(WsovvisError, match=r"(?s)bad.pth: vnext checkpoint does not fit.*missing.*unexpected.*shape"):
        load_checkpoint(r50, path, strict=True)


def test_export_round_trips_through_both_external_formats(r50):
    model, _, _ = build("seqformer_r50", seed=9)
    for fmt in ("vnext", "original"):
        exported = export_state_dict(r50, fmt)
        report = load_checkpoint(model, exported, strict=True)
        assert report.format == fmt
        own = model.state_dict()
        for k, v in r50.state_dict().items():
            assert torch.equal(own[k], v), (fmt, k)
    assert external_to_ours("detr.detr.backbone.0.backbone.res2.0.conv1.norm.running_mean.num_batches_tracked",
                            "vnext") is None


def test_our_checkpoint_round_trips_through_build_model(tmp_path):
    model, _, _ = build("seqformer_tiny", seed=11)
    path = tmp_path / "model_final.pth"
    torch.save({"model": {f"module.{k}": v for k, v in model.state_dict().items()}, "iteration": 7}, path)
    loaded, _, _ = build("seqformer_tiny", seed=12, weights=str(path))
    images = torch.rand(1, 2, 3, 64, 64) * 255
    sizes = torch.tensor([[64, 64]])
    model.eval()
    loaded.eval()
    with torch.no_grad():
        a, b = model(images, sizes), loaded(images, sizes)
    for k in ("pred_logits", "pred_boxes", "mask_params", "mask_feats"):
        assert torch.equal(a[k], b[k]), k


def test_unreadable_checkpoints_name_the_file(r50, tmp_path):
    with pytest.raises(WsovvisError, match="nothere.pth: model checkpoint does not exist"):
        load_checkpoint(r50, tmp_path / "nothere.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WsovvisError, match="junk.pth: unreadable model checkpoint"):
        load_checkpoint(r50, junk)
    lst = tmp_path / "list.pth"
    torch.save([1, 2], lst)
    with pytest.raises(WsovvisError, match="list.pth: not a model checkpoint"):
        load_checkpoint(r50, lst)


def test_original_container_with_pickled_args_loads(tmp_path):
    import argparse

    model, _, _ = build("seqformer_tiny", seed=13)
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": model.state_dict(), "args": argparse.Namespace(lr=2e-4), "epoch": 11}, path)
    other, _, _ = build("seqformer_tiny", seed=14)
    report = load_checkpoint(other, path, strict=True)
    assert report.loaded == len(model.state_dict())
    assert torch.equal(other.query_embed.weight, model.query_embed.weight)
