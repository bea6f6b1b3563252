"""SeqFormer: a query-based video instance segmentation model (Wu et al., ECCV 2022).

Call contract (see DEVELOPING.md):

    outputs = model(images [B, T, 3, Hp, Wp] RGB 0..255 unnormalised, zero-padded bottom/right,
                    image_sizes long [B, 2] (h, w) of the valid region)

``outputs`` keys (D decoder layers, Q queries, K classes):

* ``pred_logits [B, Q, K]`` class logits (sigmoid; no "no object" class), last layer. With the text
  head (``model.class_head=text``, `TextClassifier`) ``K`` is the current vocabulary's size and
  ``query_embeds [B, Q, D]`` (the queries in text-embedding space) is added to every layer's dict.
* ``pred_boxes [B, Q, T, 4]`` cxcywh normalised by the valid (w, h), last layer.
* ``mask_params [B, Q, 169]`` dynamic-conv parameters, ``mask_refs [B, Q, T, 2]`` the layer's input
  reference centres (x, y); masks come from `dynamic_mask_logits` for the queries one needs
  (matched ones in training, top-k at inference), see `SeqFormer.mask_logits`.
* ``mask_feats [B, T, 8, Hp/8, Wp/8]`` shared mask features; ``image_sizes [B, 2]``.
* ``aux_outputs`` (training only): list of D-1 dicts with the first four keys for layers 0..D-2.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from wsovvis.errors import WsovvisError
from wsovvis.modeling.backbone.registry import downsample_mask
from wsovvis.modeling.seqformer.mask_head import NUM_DYNAMIC_PARAMS, MaskHead, dynamic_mask_logits
from wsovvis.modeling.seqformer.mlp import MLP
from wsovvis.modeling.seqformer.position_encoding import PositionEmbeddingSine
from wsovvis.modeling.seqformer.text_head import TextClassifier
from wsovvis.modeling.seqformer.transformer import DeformableTransformer
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

SIZE_DIVISIBILITY = 32
_LEVELS = ("res3", "res4", "res5")


class SeqFormer(nn.Module):
    """Backbone -> input projections (+ stride-64 level) -> deformable transformer -> heads."""

    def __init__(
        self,
        backbone: nn.Module,
        transformer: DeformableTransformer,
        num_classes: int,
        num_queries: int = 300,
        pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53),
        pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375),
        text_head: TextClassifier | None = None,
        size_divisibility: int = SIZE_DIVISIBILITY,
    ):
        """``text_head`` given: it scores the queries (open vocabulary) and ``num_classes`` is its
        vocabulary size; otherwise a ``Linear(C, num_classes)`` per decoder layer.
        ``size_divisibility``: inputs are zero-padded to a multiple of it (32 like VNext; 1 = no
        padding, the original SeqFormer repo's inference)."""
        super().__init__()
        missing = [name for name in _LEVELS if name not in backbone.out_features]
        if missing:
            raise WsovvisError(f"model.backbone: backbone does not return {missing}")
        C = transformer.d_model
        num_dec = len(transformer.decoder.layers)
        self._num_classes = num_classes
        self.size_divisibility = max(1, int(size_divisibility))
        self.num_queries = num_queries
        self.backbone = backbone
        self.transformer = transformer
        in_ch = [backbone.out_channels[name] for name in _LEVELS]
        self.input_proj = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(c, C, 1), nn.GroupNorm(32, C)) for c in in_ch]
            + [nn.Sequential(nn.Conv2d(in_ch[-1], C, 3, stride=2, padding=1), nn.GroupNorm(32, C))]
        )
        self.query_embed = nn.Embedding(num_queries, 2 * C)
        self.text_head = text_head
        self.class_embed = None if text_head is not None else nn.ModuleList(
            nn.Linear(C, num_classes) for _ in range(num_dec))
        self.bbox_embed = nn.ModuleList(MLP(C, C, 4, 3) for _ in range(num_dec))
        self.controller = MLP(C, C, NUM_DYNAMIC_PARAMS, 3)
        self.mask_head = MaskHead(C)
        self.position_embedding = PositionEmbeddingSine(C // 2)
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(3, 1, 1), persistent=False)
        self._reset_parameters()
        # iterative box refinement: the decoder refines with the same modules as the box heads
        self.transformer.decoder.bbox_embed = self.bbox_embed

    def _reset_parameters(self) -> None:
        bias = -math.log((1 - 0.01) / 0.01)
        for lin in self.class_embed or []:
            nn.init.constant_(lin.bias, bias)
        for mlp in self.bbox_embed:
            nn.init.constant_(mlp.layers[-1].weight, 0)
            nn.init.constant_(mlp.layers[-1].bias, 0)
        nn.init.constant_(self.bbox_embed[0].layers[-1].bias[2:], -2.0)
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.constant_(proj[0].bias, 0)
        for lin in self.controller.layers:
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    @property
    def num_classes(self) -> int:
        return self.text_head.num_classes if self.text_head is not None else self._num_classes

    def set_vocabulary(self, embeddings, source: str = "text embeddings") -> None:
        """Text head only: score against ``embeddings [K, D]`` from now on (no retraining)."""
        if self.text_head is None:
            raise WsovvisError(f"{source}: a vocabulary can only be swapped with model.class_head=text "
                               "(this model has a linear class head)")
        self.text_head.set_vocabulary(embeddings, source)

    def classify(self, hs: torch.Tensor, layer: int) -> dict[str, torch.Tensor]:
        """Instance queries ``[B, Q, C]`` of decoder layer ``layer`` -> ``{"pred_logits"[, "query_embeds"]}``."""
        if self.text_head is None:
            return {"pred_logits": self.class_embed[layer](hs)}
        logits, emb = self.text_head(hs, layer)
        return {"pred_logits": logits, "query_embeds": emb}

    def preprocess(self, images: torch.Tensor, image_sizes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, T, 3, H, W]`` 0..255 -> normalised ``[B*T, 3, Hp, Wp]`` (padding 0) and mask ``[B*T, Hp, Wp]``."""
        if images.dim() != 5 or images.shape[2] != 3:
            raise WsovvisError(f"model input: images must be [B, T, 3, H, W], got {tuple(images.shape)}")
        B, T, _, H, W = images.shape
        if image_sizes.shape != (B, 2):
            raise WsovvisError(f"model input: image_sizes must be [{B}, 2], got {tuple(image_sizes.shape)}")
        x = images.flatten(0, 1).to(self.pixel_mean.dtype)
        ph, pw = (-H) % self.size_divisibility, (-W) % self.size_divisibility
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        Hp, Wp = H + ph, W + pw
        sizes = image_sizes.to(x.device).repeat_interleave(T, dim=0)
        rows = torch.arange(Hp, device=x.device)[None, :, None] >= sizes[:, 0, None, None]
        cols = torch.arange(Wp, device=x.device)[None, None, :] >= sizes[:, 1, None, None]
        mask = rows | cols
        x = ((x - self.pixel_mean) / self.pixel_std).masked_fill(mask[:, None], 0.0)
        return x, mask

    def forward(self, images: torch.Tensor, image_sizes: torch.Tensor) -> dict:
        B, T = images.shape[:2]
        x, mask = self.preprocess(images, image_sizes)
        feats = self.backbone(x, mask)
        srcs, masks = [], []
        for lvl, name in enumerate(_LEVELS):
            feat, m = feats[name]
            srcs.append(self.input_proj[lvl](feat))
            masks.append(m)
        srcs.append(self.input_proj[len(_LEVELS)](feats[_LEVELS[-1]][0]))
        masks.append(downsample_mask(mask, srcs[-1].shape[-2:]))
        pos = [self.position_embedding(m, dtype=s.dtype) for s, m in zip(srcs, masks)]
        out = self.transformer(srcs, masks, pos, self.query_embed.weight, T)

        memory, shapes, starts = out["memory"], out["spatial_shapes"], out["level_start_index"]
        levels = []
        for lvl in range(3):
            h, w = shapes[lvl].tolist()
            s = int(starts[lvl])
            levels.append(memory[:, s : s + h * w].transpose(1, 2).reshape(B * T, -1, h, w))
        mask_feats = self.mask_head(*levels)
        mask_feats = mask_feats.view(B, T, *mask_feats.shape[1:])

        hs, boxes, refs = out["hs"], out["boxes"], out["refs"]
        layers = range(len(hs)) if self.training else [len(hs) - 1]
        per_layer = [
            {
                **self.classify(hs[lid], lid),
                "pred_boxes": boxes[lid].permute(0, 2, 1, 3),
                "mask_params": self.controller(hs[lid]),
                "mask_refs": refs[lid][..., :2].permute(0, 2, 1, 3),
            }
            for lid in layers
        ]
        outputs = dict(per_layer[-1])
        outputs["mask_feats"] = mask_feats
        outputs["image_sizes"] = image_sizes.to(mask_feats.device)
        if self.training:
            outputs["aux_outputs"] = per_layer[:-1]
        return outputs

    @staticmethod
    def mask_logits(outputs: dict, batch_index: int, query_index: torch.Tensor, layer: dict | None = None):
        """Stride-4 mask logits ``[n, T, Hp/4, Wp/4]`` of the queries ``query_index`` of clip ``batch_index``.

        ``layer`` selects an entry of ``aux_outputs`` (default: the last layer, i.e. ``outputs``).
        """
        src = outputs if layer is None else layer
        return dynamic_mask_logits(
            outputs["mask_feats"][batch_index],
            src["mask_params"][batch_index, query_index],
            src["mask_refs"][batch_index, query_index],
            outputs["image_sizes"][batch_index],
        )
