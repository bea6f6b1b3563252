"""``build_model(cfg) -> (model, criterion, postprocessor)``: the only place that reads the model config."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from wsovvis.errors import WsovvisError
from wsovvis.modeling.backbone import build_backbone
from wsovvis.modeling.backbone.registry import _BACKBONES, list_backbones
from wsovvis.modeling.config import BackboneConfig, ModelConfig, to_model_config
from wsovvis.modeling.ops import IMPLS
from wsovvis.modeling.registry import get_model_builder, register_model
from wsovvis.modeling.seqformer.checkpoint import load_checkpoint
from wsovvis.modeling.seqformer.criterion import DISTILL_TYPES, SetCriterion, build_weight_dict
from wsovvis.modeling.seqformer.matcher import HungarianMatcher
from wsovvis.modeling.seqformer.model import SeqFormer
from wsovvis.modeling.seqformer.postprocess import SeqFormerPostProcessor
from wsovvis.modeling.seqformer.presets import inference_preset
from wsovvis.modeling.seqformer.text_head import TextClassifier, load_text_vocab
from wsovvis.modeling.seqformer.transformer import DeformableTransformer
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)


def build_backbone_from_config(cfg: BackboneConfig, trust_pickle: bool = False) -> nn.Module:
    """Pass the options the chosen factory accepts; options set away from their default but unused are logged.

    ``trust_pickle`` (``model.trust_pickle``) goes to factories that read a weights file."""
    if cfg.name not in _BACKBONES:
        raise WsovvisError(
            f"model.backbone.name: unknown backbone {cfg.name!r}; choose from {', '.join(list_backbones())}"
        )
    accepted = set(inspect.signature(_BACKBONES[cfg.name]).parameters)
    defaults = BackboneConfig()
    kwargs, ignored = {}, []
    for key, value in vars(cfg).items():
        if key == "name":
            continue
        if key in accepted:
            kwargs[key] = value
        elif value != getattr(defaults, key):
            ignored.append(key)
    if ignored:
        log.warning("model.backbone: %s does not use %s", cfg.name, ", ".join(ignored))
    if trust_pickle and "trust_pickle" in accepted:
        kwargs["trust_pickle"] = True
    return build_backbone(cfg.name, **kwargs)


def build_model(cfg: Any) -> tuple[nn.Module, nn.Module, Any]:
    """Build model, criterion and postprocessor from ``cfg.model`` (see `wsovvis.modeling.config`):
    the builder registered under ``cfg.model.name`` (`wsovvis.modeling.registry`)."""
    mc: ModelConfig = to_model_config(cfg)
    return get_model_builder(mc.name)(mc)


def build_text_head(mc: ModelConfig) -> TextClassifier | None:
    """``model.class_head=text`` -> a `TextClassifier` over ``model.text_head.embeddings`` (None for linear)."""
    if mc.class_head == "linear":
        return None
    if mc.class_head != "text":
        raise WsovvisError(f"model.class_head: {mc.class_head!r} is not one of 'linear', 'text'")
    tc = mc.text_head
    vocab = load_text_vocab(tc.embeddings) if tc.embeddings else None
    dim = tc.embed_dim or (vocab.dim if vocab is not None else 0)
    if not dim:
        raise WsovvisError("model.class_head=text needs model.text_head.embeddings (a .npy [K, D] of vocabulary "
                           "text embeddings, e.g. <embeddings>/text/<hash>.npy from `wsovvis label`) or "
                           "model.text_head.embed_dim")
    if vocab is not None and tc.embed_dim and vocab.dim != tc.embed_dim:
        raise WsovvisError(f"{vocab.source}: text embeddings have dimension {vocab.dim} but "
                           f"model.text_head.embed_dim is {tc.embed_dim}")
    return TextClassifier(
        mc.transformer.d_model, dim, mc.transformer.dec_layers,
        text_embeddings=vocab.embeddings if vocab is not None else None,
        temperature=tc.temperature, learn_temperature=tc.learn_temperature,
        normalize_queries=tc.normalize_queries,
    )


@register_model("seqformer")
def build_seqformer(mc: ModelConfig) -> tuple[SeqFormer, SetCriterion, SeqFormerPostProcessor]:
    """SeqFormer, its set criterion and its clip-stitching postprocessor."""
    if mc.msda_impl not in IMPLS:
        raise WsovvisError(f"model.msda_impl: {mc.msda_impl!r} is not one of {', '.join(IMPLS)}")
    if mc.num_classes < 1:
        raise WsovvisError(f"model.num_classes: must be at least 1, got {mc.num_classes} (0, 'from the data', is "
                           "resolved by the training entry point)")
    t = mc.transformer
    if t.d_model % 32 or t.d_model % t.nheads:
        raise WsovvisError(
            f"model.transformer.d_model: {t.d_model} must be a multiple of 32 (GroupNorm) and of nheads {t.nheads}"
        )
    if len(mc.pixel_mean) != 3 or len(mc.pixel_std) != 3:
        raise WsovvisError("model.pixel_mean / model.pixel_std: need 3 values (RGB)")
    text_head = build_text_head(mc)
    preset = inference_preset(mc.inference)
    backbone = build_backbone_from_config(mc.backbone, trust_pickle=mc.trust_pickle)
    transformer = DeformableTransformer(
        d_model=t.d_model,
        nhead=t.nheads,
        num_encoder_layers=t.enc_layers,
        num_decoder_layers=t.dec_layers,
        dim_feedforward=t.dim_feedforward,
        dropout=t.dropout,
        num_feature_levels=4,
        enc_n_points=t.enc_n_points,
        dec_n_points=t.dec_n_points,
        msda_impl=mc.msda_impl,
    )
    model = SeqFormer(
        backbone,
        transformer,
        num_classes=mc.num_classes,
        num_queries=t.num_queries,
        pixel_mean=tuple(mc.pixel_mean),
        pixel_std=tuple(mc.pixel_std),
        text_head=text_head,
        size_divisibility=preset.size_divisibility,
    )
    if mc.weights:
        load_checkpoint(model, mc.weights, strict=mc.weights_strict, min_share=mc.min_weights_share,
                        trust_pickle=mc.trust_pickle)
    lc = mc.loss
    weights = {
        "loss_ce": lc.class_weight,
        "loss_bbox": lc.bbox_weight,
        "loss_giou": lc.giou_weight,
        "loss_mask": lc.mask_weight,
        "loss_dice": lc.dice_weight,
    }
    if lc.distill_weight > 0:
        if text_head is None:
            raise WsovvisError("model.loss.distill_weight > 0 needs model.class_head=text (the distillation pulls "
                               "the text-space query embeddings towards the CLIP tube embeddings)")
        if lc.distill_type not in DISTILL_TYPES:
            raise WsovvisError(f"model.loss.distill_type: {lc.distill_type!r} is not one of {', '.join(DISTILL_TYPES)}")
        weights["loss_distill"] = lc.distill_weight
    matcher = HungarianMatcher(
        mc.matcher.cost_class, mc.matcher.cost_bbox, mc.matcher.cost_giou, lc.focal_alpha, lc.focal_gamma
    )
    criterion = SetCriterion(
        mc.num_classes,
        matcher,
        build_weight_dict(weights, t.dec_layers, lc.aux_loss),
        focal_alpha=lc.focal_alpha,
        focal_gamma=lc.focal_gamma,
        aux_loss=lc.aux_loss,
        distill_type=lc.distill_type,
    )
    ic = preset
    post = SeqFormerPostProcessor(
        preset=ic.preset,
        top_k=ic.top_k,
        multi_cls=ic.multi_cls,
        cls_threshold=ic.cls_threshold,
        mask_threshold=ic.mask_threshold,
        test_size=ic.test_size,
        max_size=ic.max_size,
        clip_length=ic.clip_length,
        clip_overlap=ic.clip_overlap,
        max_tracks=ic.max_tracks,
        match_threshold=ic.match_threshold,
    )
    return model, criterion, post
