"""``ModelConfig``: the typed schema of the ``model`` config node (``configs/model/*.yaml``).

The training code composes it into the full Hydra schema; `wsovvis.modeling.build_model` accepts
the full config (anything with a ``model`` attribute or key), a ``ModelConfig``, or a plain dict /
DictConfig of the model node, and validates it against this schema (unknown keys and wrong types
raise `WsovvisError` naming the key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wsovvis.errors import WsovvisError


@dataclass
class BackboneConfig:
    name: str = "resnet50"  # a name of wsovvis.modeling.backbone.list_backbones()
    weights: str | None = None  # backbone-only weights (torchvision .pth, detectron2 .pkl, DINOv2 .pth)
    return_res2: bool = False
    freeze_at: int = 2  # resnet50: 0 none, 1 stem, 2 stem + res2 (detectron2 FREEZE_AT)
    freeze: bool = True  # dinov2: frozen ViT trunk
    out_channels: int = 256  # dinov2: pseudo-FPN width
    layers: list[int] | None = None  # dinov2: 4 block indices (default: last block of each quarter)
    width: int = 16  # tiny_cnn: channels of res2 (x2 per stage)


@dataclass
class TransformerConfig:
    d_model: int = 256
    nheads: int = 8
    dim_feedforward: int = 1024
    dropout: float = 0.1
    enc_layers: int = 6
    dec_layers: int = 6
    num_queries: int = 300
    enc_n_points: int = 4
    dec_n_points: int = 4


@dataclass
class MatcherConfig:
    cost_class: float = 2.0
    cost_bbox: float = 5.0
    cost_giou: float = 2.0


@dataclass
class LossConfig:
    class_weight: float = 2.0
    bbox_weight: float = 5.0
    giou_weight: float = 2.0
    mask_weight: float = 2.0
    dice_weight: float = 5.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    aux_loss: bool = True
    # class_head=text: L1 / cosine pull of each matched query embedding towards the cached CLIP
    # embedding of its target tube (`wsovvis embed`, data.tube_embeddings); 0 = off
    distill_weight: float = 0.0
    distill_type: str = "cosine"  # cosine | l1


@dataclass
class TextHeadConfig:
    """``class_head: text``: queries scored by cosine similarity with vocabulary text embeddings."""

    embeddings: str | None = None  # .npy [K, D] (+ .json names) as `wsovvis label` caches them (<emb>/text/)
    embed_dim: int = 0  # D; 0 = from `embeddings`
    temperature: float = 0.07  # initial 1/s of the cosine logits
    learn_temperature: bool = True
    normalize_queries: bool = True


@dataclass
class InferenceConfig:
    # default: memory-bounded clip-wise inference with these options; vnext: VNext's procedure
    # (whole video in one pass, shortest side 360 / max 1333, /32 padding, top-10); original: the
    # original SeqFormer repo's inference.py (shortest side 360, no max size, no /32 padding,
    # top-10 over flattened query x class scores, masks resized straight to the original size)
    preset: str = "default"
    test_size: int = 360  # shortest edge (480 for Swin-L in VNext)
    max_size: int = 1333
    top_k: int = 10  # queries kept per clip
    multi_cls: bool = True
    cls_threshold: float = 0.05
    mask_threshold: float = 0.5
    clip_length: int = 20  # frames per forward pass (>= video length: whole video at once)
    clip_overlap: int = 5  # frames shared by consecutive clips (used to stitch queries)
    max_tracks: int = 120
    match_threshold: float = 0.01


@dataclass
class MaskRCNNConfig:
    """Options of the Mask R-CNN models (``name: maskrcnn`` / ``maskrcnn_v2``); SeqFormer ignores them."""

    fpn_channels: int = 256
    representation_size: int = 1024  # box head MLP width
    anchor_sizes: list[int] = field(default_factory=lambda: [32, 64, 128, 256, 512])  # one per FPN level
    rpn_pre_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_test: int = 1000
    rpn_nms_thresh: float = 0.7
    box_batch_size_per_image: int = 512
    box_positive_fraction: float = 0.25  # CutLER
    detections_per_img: int = 100
    droploss: bool = False  # CutLER DropLoss: no class loss for RoIs whose predicted box misses every GT
    droploss_iou: float = 0.01  # ... i.e. max IoU <= this
    link_iou: float = 0.1  # video inference: mask IoU to continue a tube in the next frame
    link_max_age: int = 1  # frames a tube may miss before it ends


@dataclass
class ModelConfig:
    name: str = "seqformer"
    num_classes: int = 40  # 0: the training data's category count, resolved once at launch
    weights: str | None = None  # full model checkpoint (ours, original SeqFormer or VNext)
    # every tensor of `weights` must fit the model (missing / unexpected / other shape: an error listing
    # them by module); false: a WARNING with counts, but a load matching under min_weights_share of the
    # model's tensors still fails (0 accepts anything)
    weights_strict: bool = True
    min_weights_share: float = 0.5
    # full unpickling of `weights` / backbone weights / resumed checkpoints: runs any code the file holds
    trust_pickle: bool = False
    class_head: str = "linear"  # linear | text (open vocabulary, see text_head)
    text_head: TextHeadConfig = field(default_factory=TextHeadConfig)
    pixel_mean: list[float] = field(default_factory=lambda: [123.675, 116.28, 103.53])
    pixel_std: list[float] = field(default_factory=lambda: [58.395, 57.12, 57.375])
    msda_impl: str = "auto"  # auto | grid_sample | embedding_bag
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    matcher: MatcherConfig = field(default_factory=MatcherConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    maskrcnn: MaskRCNNConfig = field(default_factory=MaskRCNNConfig)


def _model_node(cfg: Any) -> Any:
    if isinstance(cfg, ModelConfig):
        return cfg
    if hasattr(cfg, "model") and not isinstance(cfg, dict):
        return cfg.model
    try:
        if "model" in cfg and not isinstance(cfg["model"], str):
            return cfg["model"]
    except TypeError:
        pass
    return cfg


def to_model_config(cfg: Any) -> ModelConfig:
    """Full config / model node (dataclass, dict, DictConfig) -> validated `ModelConfig`, with the same
    validator as the training config (`wsovvis.utils.schema.from_dict`: unknown keys name the closest
    valid one, wrong types name the expected type)."""
    from wsovvis.utils.schema import from_dict

    node = _model_node(cfg)
    if isinstance(node, ModelConfig):
        return node
    if not isinstance(node, dict):
        from omegaconf import DictConfig, OmegaConf

        if isinstance(node, DictConfig):
            node = OmegaConf.to_container(node, resolve=True)
    if not isinstance(node, dict):
        raise WsovvisError(f"model config: expected a mapping for the model node, got {type(node).__name__}")
    return from_dict(ModelConfig, node, where="model config", path="model")
