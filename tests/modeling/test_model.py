"""SeqFormer: output shapes, preprocessing, parameter naming, the VNext key table, every config."""

from __future__ import annotations

import pytest
import torch

from tests.modeling.helpers import CONFIG_DIR, build, model_cfg
from wsovvis.modeling.seqformer.checkpoint import export_state_dict


def test_tiny_output_shapes_train_and_eval():
    model, _, _ = build()
    B, T, H, W = 2, 3, 64, 96
    images = torch.rand(B, T, 3, H, W) * 255
    sizes = torch.tensor([[64, 96], [50, 70]])
    model.train()
    out = model(images, sizes)
    Q, K = 10, 5
    assert out["pred_logits"].shape == (B, Q, K)
    assert out["pred_boxes"].shape == (B, Q, T, 4)
    assert out["mask_params"].shape == (B, Q, 169)
    assert out["mask_refs"].shape == (B, Q, T, 2)
    assert out["mask_feats"].shape == (B, T, 8, H // 8, W // 8)
    assert len(out["aux_outputs"]) == 1  # 2 decoder layers
    assert out["aux_outputs"][0]["pred_boxes"].shape == (B, Q, T, 4)
    assert ((out["pred_boxes"] > 0) & (out["pred_boxes"] < 1)).all()
    # layer 0 samples around the initial 2-d reference: the same centre for every frame
    refs0 = out["aux_outputs"][0]["mask_refs"]
    assert torch.equal(refs0[:, :, 0], refs0[:, :, 1])
    masks = model.mask_logits(out, 1, torch.tensor([0, 3]))
    assert masks.shape == (2, T, H // 4, W // 4)
    model.eval()
    with torch.no_grad():
        out = model(images, sizes)
    assert "aux_outputs" not in out and out["pred_logits"].shape == (B, Q, K)


def test_preprocess_pads_to_32_and_zeroes_padding():
    model, _, _ = build()
    images = torch.full((1, 2, 3, 40, 50), 200.0)
    x, mask = model.preprocess(images, torch.tensor([[30, 45]]))
    assert x.shape == (2, 3, 64, 64) and mask.shape == (2, 64, 64)
    assert mask[:, 30:].all() and mask[:, :, 45:].all() and not mask[:, :30, :45].any()
    assert torch.all(x[:, :, 30:] == 0) and torch.all(x[:, :, :, 45:] == 0)
    expect = (200.0 - 123.675) / 58.395
    assert abs(float(x[0, 0, 0, 0]) - expect) < 1e-5
    with torch.no_grad():
        out = model.eval()(images, torch.tensor([[30, 45]]))
    assert out["mask_feats"].shape[-2:] == (8, 8)


def test_backbone_parameters_carry_backbone_in_their_name():
    model, _, _ = build()
    names = [n for n, _ in model.named_parameters()]
    backbone = {f"backbone.{n}" for n, _ in model.backbone.named_parameters()}
    assert backbone and backbone <= set(names)
    assert all(n in backbone for n in names if "backbone" in n)
    assert not any("backbone" in n for n in names if n not in backbone)


def _msda(prefix: str, t: dict) -> None:
    t[prefix + "sampling_offsets.weight"] = (256, 256)
    t[prefix + "sampling_offsets.bias"] = (256,)
    t[prefix + "attention_weights.weight"] = (128, 256)
    t[prefix + "attention_weights.bias"] = (128,)
    for p in ("value_proj", "output_proj", "output_proj_box"):
        t[f"{prefix}{p}.weight"] = (256, 256)
        t[f"{prefix}{p}.bias"] = (256,)


def _linear(t: dict, name: str, out: int, inp: int) -> None:
    t[name + ".weight"] = (out, inp)
    t[name + ".bias"] = (out,)


def vnext_reference_table(K: int = 40) -> dict[str, tuple]:
    """The VNext SeqFormer R50 state dict, written out from the reference key table."""
    t: dict[str, tuple] = {}
    D, T = "detr.detr.", "detr.detr.transformer."
    t[T + "level_embed"] = (4, 256)
    _linear(t, T + "reference_points", 2, 256)
    for l in range(6):
        e = f"{T}encoder.layers.{l}."
        _msda(e + "self_attn.", t)
        for n in ("norm1", "norm2"):
            t[f"{e}{n}.weight"] = t[f"{e}{n}.bias"] = (256,)
        _linear(t, e + "linear1", 1024, 256)
        _linear(t, e + "linear2", 256, 1024)
        d = f"{T}decoder.layers.{l}."
        _msda(d + "cross_attn.", t)
        for a in ("self_attn", "self_attn_box"):
            t[f"{d}{a}.in_proj_weight"] = (768, 256)
            t[f"{d}{a}.in_proj_bias"] = (768,)
            _linear(t, f"{d}{a}.out_proj", 256, 256)
        for n in ("norm1", "norm1_box", "norm2", "norm2_box", "norm3", "norm3_box"):
            t[f"{d}{n}.weight"] = t[f"{d}{n}.bias"] = (256,)
        for s in ("", "_box"):
            _linear(t, f"{d}linear1{s}", 1024, 256)
            _linear(t, f"{d}linear2{s}", 256, 1024)
        _linear(t, d + "time_attention_weights", 1, 256)
        for prefix in (f"{T}decoder.bbox_embed.{l}.", f"{D}bbox_embed.{l}."):
            _linear(t, prefix + "layers.0", 256, 256)
            _linear(t, prefix + "layers.1", 256, 256)
            _linear(t, prefix + "layers.2", 4, 256)
        _linear(t, f"{D}class_embed.{l}", K, 256)
    t[D + "query_embed.weight"] = (300, 512)
    for i, c in enumerate((512, 1024, 2048)):
        t[f"{D}input_proj.{i}.0.weight"] = (256, c, 1, 1)
    t[D + "input_proj.3.0.weight"] = (256, 2048, 3, 3)
    for i in range(4):
        t[f"{D}input_proj.{i}.0.bias"] = t[f"{D}input_proj.{i}.1.weight"] = t[f"{D}input_proj.{i}.1.bias"] = (256,)
    _linear(t, "detr.controller.layers.0", 256, 256)
    _linear(t, "detr.controller.layers.1", 256, 256)
    _linear(t, "detr.controller.layers.2", 169, 256)
    for name, shape in (("lay1", (64, 256)), ("lay2", (8, 64)), ("lay3", (256, 256)), ("lay4", (256, 256)),
                        ("dcn", (256, 256))):
        t[f"detr.mask_head.{name}.weight"] = (*shape, 3, 3)
        t[f"detr.mask_head.{name}.bias"] = (shape[0],)
    nonbackbone = len(t)
    B = "detr.detr.backbone.0.backbone."

    def norm(prefix: str, c: int) -> None:
        for b in ("weight", "bias", "running_mean", "running_var"):
            t[f"{prefix}.norm.{b}"] = (c,)

    t[B + "stem.conv1.weight"] = (64, 3, 7, 7)
    norm(B + "stem.conv1", 64)
    cin = 64
    for stage, blocks in zip(range(2, 6), (3, 4, 6, 3)):
        mid = 64 * 2 ** (stage - 2)
        out = mid * 4
        for b in range(blocks):
            p = f"{B}res{stage}.{b}."
            inp = cin if b == 0 else out
            t[p + "conv1.weight"] = (mid, inp, 1, 1)
            t[p + "conv2.weight"] = (mid, mid, 3, 3)
            t[p + "conv3.weight"] = (out, mid, 1, 1)
            norm(p + "conv1", mid)
            norm(p + "conv2", mid)
            norm(p + "conv3", out)
            if b == 0:
                t[p + "shortcut.weight"] = (out, inp, 1, 1)
                norm(p + "shortcut", out)
        cin = out
    return t, nonbackbone


def test_r50_exported_with_vnext_keys_matches_reference_table():
    model, _, _ = build("seqformer_r50")
    table, nonbackbone = vnext_reference_table(40)
    assert nonbackbone == 468  # the reference's count, incl. the 36 aliased box-head entries
    exported = export_state_dict(model, "vnext")
    assert set(exported) == set(table), (sorted(set(exported) - set(table))[:5], sorted(set(table) - set(exported))[:5])
    bad = [k for k, v in exported.items() if tuple(v.shape) != table[k]]
    assert not bad, bad[:5]
    total = sum(v.numel() for v in exported.values())
    unique = sum(p.numel() for p in model.parameters())
    non_bb = sum(v.numel() for k, v in exported.items() if ".backbone." not in k)
    non_bb_unique = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("backbone."))
    assert round(total / 1e6, 1) == 49.3  # the paper's number: aliases and FrozenBN buffers included
    assert round(unique / 1e6, 1) == 48.4
    assert round(non_bb_unique / 1e6, 2) == 24.95
    assert non_bb - non_bb_unique == 6 * (2 * (256 * 256 + 256) + 4 * 256 + 4)  # the aliased box heads


ALL_CONFIGS = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
CONFIGS = [n for n in ALL_CONFIGS if model_cfg(n)["name"] == "seqformer"]
MASKRCNN_CONFIGS = [n for n in ALL_CONFIGS if n not in CONFIGS]


def test_every_backbone_is_run_somewhere():
    from tests.modeling.test_backbones import BUILT_BY_CONFIG_TEST

    by_config = {model_cfg(name)["backbone"]["name"] for name in ALL_CONFIGS}
    assert BUILT_BY_CONFIG_TEST <= by_config
    assert set(CONFIGS) >= {
        "seqformer_r50", "seqformer_tiny", *(f"seqformer_dinov2_vit{s}14" for s in "sblg")
    }


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_builds_and_runs(name):
    model, criterion, post = build(name)
    cfg = model_cfg(name)
    T, H, W = 2, 64, 64
    images = torch.rand(1, T, 3, H, W) * 255
    model.eval()
    with torch.no_grad():
        out = model(images, torch.tensor([[60, 64]]))
    Q, K = cfg["transformer"]["num_queries"], cfg["num_classes"]
    assert out["pred_logits"].shape == (1, Q, K) and out["pred_boxes"].shape == (1, Q, T, 4)
    assert torch.isfinite(out["pred_logits"]).all() and torch.isfinite(out["mask_feats"]).all()
    preds = post(out, [(30, 32)])[0]
    assert all(p["masks"].shape == (T, 30, 32) and p["masks"].dtype == torch.bool for p in preds)
    assert len(model.transformer.encoder.layers) == cfg["transformer"]["enc_layers"]
    assert len(criterion.weight_dict) == 5 * cfg["transformer"]["dec_layers"]


def test_every_config_file_is_tested():
    assert MASKRCNN_CONFIGS == ["maskrcnn_r50", "maskrcnn_r50_v2"], "a new model family needs its own config test"


@pytest.mark.parametrize("name", MASKRCNN_CONFIGS)
def test_every_maskrcnn_config_builds_and_detects(name):
    """The shipped R50-FPN configs as they are (full-size network), run at a small test size on CPU."""
    from wsovvis.modeling import build_model

    cfg = model_cfg(name, **{"inference.test_size": 64, "inference.max_size": 64})
    torch.manual_seed(0)
    model, criterion, post = build_model({"model": cfg})
    n_params = sum(p.numel() for p in model.parameters())
    assert 40e6 < n_params < 50e6, n_params  # R50-FPN Mask R-CNN: ~44-46 M parameters
    assert criterion.weight_dict and hasattr(post, "predict_video")
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(1, 2, 3, 64, 64) * 255, torch.tensor([[60, 64]]))
    assert len(out) == 2  # one torchvision detection dict per frame, in the frame's valid (60 x 64) size
    for det in out:
        n = det["boxes"].shape[0]
        assert det["boxes"].shape == (n, 4) and det["scores"].shape == (n,) and det["masks"].shape[1:] == (1, 60, 64)
