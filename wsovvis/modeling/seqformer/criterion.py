"""SeqFormer losses: per-layer Hungarian matching, then focal class, L1/GIoU box, focal/dice mask.

``criterion(outputs, targets) -> {name: scalar}`` (unweighted); ``criterion.weight_dict`` holds the
weights, with ``_0 .. _{D-2}`` copies for the auxiliary decoder layers. Every loss is normalised by
the number of GT video instances in the batch (all-reduced under DDP, at least 1).

Targets (one dict per clip): ``labels [n]``, ``boxes [n, T, 4]`` cxcywh normalised by the valid
(w, h), ``masks [n, T, Hp, Wp]`` on the image canvas, ``valid [n, T]``, ``size [2]`` (h, w).
Absent frames keep their all-zero boxes and masks and are supervised like the others.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from wsovvis.errors import WsovvisError
from wsovvis.modeling.box_ops import box_cxcywh_to_xyxy, generalized_box_iou
from wsovvis.modeling.seqformer.mask_head import dynamic_mask_logits
from wsovvis.modeling.seqformer.matcher import HungarianMatcher
from wsovvis.modeling.seqformer.valid_region import crop_valid_stride4
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

BASE_LOSSES = ("loss_ce", "loss_bbox", "loss_giou", "loss_mask", "loss_dice")
DISTILL_TYPES = ("cosine", "l1")


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0):
    """Element-wise focal loss (no reduction), same shape as ``logits``."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


def dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``[n, P]`` logits and targets -> ``[n]`` ``1 - (2 sum(p t) + 1) / (sum(p) + sum(t) + 1)``."""
    p = logits.sigmoid()
    return 1 - (2 * (p * targets).sum(1) + 1) / (p.sum(1) + targets.sum(1) + 1)


def mask_targets(
    gt: torch.Tensor, pred: torch.Tensor, size: torch.Tensor, warn: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Align predicted stride-4 mask logits with GT masks.

    Args:
        gt: ``[n, T, Hm, Wm]`` GT masks; pred: ``[n, T, hp, wp]`` logits at stride 4 of the image canvas;
        size: ``[2]`` valid (h, w).

    Returns ``(pred, target)`` of equal shape. When the GT shares the image canvas (``Hm == 4 hp``)
    the GT is subsampled ``[2::4, 2::4]`` (pixel centres of the stride-4 grid). Otherwise both are
    cropped to the valid region first and the prediction is upsampled x4 and cropped to ``h x w``,
    so the padded area is never stretched onto the image.
    """
    Hm, Wm = gt.shape[-2:]
    hp, wp = pred.shape[-2:]
    if Hm == 4 * hp and Wm == 4 * wp:
        return pred, gt[..., 2::4, 2::4].to(pred.dtype)
    h, w = int(size[0]), int(size[1])
    if warn:
        log.warning(
            "mask targets %dx%d do not share the %dx%d image canvas of the predictions; cropping both to the "
            "valid %dx%d region and upsampling the prediction (full-resolution loss)", Hm, Wm, 4 * hp, 4 * wp, h, w
        )
    if h > Hm or w > Wm:
        raise WsovvisError(f"targets: masks {Hm}x{Wm} are smaller than the valid image size {h}x{w}")
    crop = crop_valid_stride4(pred, (h, w))  # one extra cell keeps the border interpolation
    n, T, ch, cw = crop.shape
    up = F.interpolate(crop.flatten(0, 1)[:, None], scale_factor=4, mode="bilinear", align_corners=False)
    up = up.view(n, T, 4 * ch, 4 * cw)[..., :h, :w]
    return up, gt[..., :h, :w].to(pred.dtype)


class SetCriterion(nn.Module):
    def __init__(
        self,
        num_classes: int,
        matcher: HungarianMatcher,
        weight_dict: dict[str, float],
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        aux_loss: bool = True,
        distill_type: str = "cosine",
    ):
        """``weight_dict``: weights of `BASE_LOSSES` and their ``_i`` copies (see `build_weight_dict`);
        a ``loss_distill`` weight turns on `loss_distill` (text head only), ``distill_type`` cosine | l1."""
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher
        self.weight_dict = dict(weight_dict)
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.aux_loss = aux_loss
        if distill_type not in DISTILL_TYPES:
            raise WsovvisError(f"model.loss.distill_type: {distill_type!r} is not one of {', '.join(DISTILL_TYPES)}")
        self.distill_type = distill_type
        self._warned_masks = False

    # --- one method per loss term -------------------------------------------------------------
    def loss_labels(self, outputs, targets, indices, num_boxes, ctx) -> dict[str, torch.Tensor]:
        logits = outputs["pred_logits"]  # [B, Q, K]
        onehot = torch.zeros_like(logits)
        for b, (src, tgt) in enumerate(indices):
            onehot[b, src.to(logits.device), targets[b]["labels"].to(logits.device)[tgt]] = 1
        loss = sigmoid_focal_loss(logits, onehot, self.focal_alpha, self.focal_gamma).sum() / num_boxes
        out = {"loss_ce": loss}
        if ctx.get("log", False):
            with torch.no_grad():
                pred = torch.cat([logits[b, src].argmax(-1).cpu() for b, (src, _) in enumerate(indices)])
                gt = torch.cat([targets[b]["labels"].cpu()[tgt] for b, (_, tgt) in enumerate(indices)])
                acc = (pred == gt).float().mean() * 100 if gt.numel() else torch.tensor(100.0)
                out["class_error"] = (100 - acc).to(logits.device)
        return out

    def _matched_boxes(self, outputs, targets, indices):
        src = torch.cat([outputs["pred_boxes"][b, s] for b, (s, _) in enumerate(indices)])  # [m, T, 4]
        dev = src.device
        tgt = torch.cat([targets[b]["boxes"].to(dev)[t] for b, (_, t) in enumerate(indices)]).to(src.dtype)
        return src, tgt

    def loss_bbox(self, outputs, targets, indices, num_boxes, ctx) -> dict[str, torch.Tensor]:
        src, tgt = self._matched_boxes(outputs, targets, indices)
        T = outputs["pred_boxes"].shape[2]
        return {"loss_bbox": F.l1_loss(src, tgt, reduction="none").sum() / T / num_boxes}

    def loss_giou(self, outputs, targets, indices, num_boxes, ctx) -> dict[str, torch.Tensor]:
        src, tgt = self._matched_boxes(outputs, targets, indices)
        T = outputs["pred_boxes"].shape[2]
        giou = generalized_box_iou(box_cxcywh_to_xyxy(src), box_cxcywh_to_xyxy(tgt))
        return {"loss_giou": (1 - giou).sum() / T / num_boxes}

    def _matched_masks(self, outputs, targets, indices, layer, ctx):
        """Predicted logits and targets of the matched queries, flattened to ``[m, T*h*w]``; cached per layer."""
        if "masks" not in ctx:
            preds, gts = [], []
            for b, (src, tgt) in enumerate(indices):
                if src.numel() == 0:
                    continue
                logits = dynamic_mask_logits(
                    outputs["mask_feats"][b],
                    layer["mask_params"][b, src],
                    layer["mask_refs"][b, src],
                    outputs["image_sizes"][b],
                )
                gt = targets[b]["masks"].to(logits.device)[tgt]
                p, g = mask_targets(gt, logits, targets[b]["size"], warn=not self._warned_masks)
                if p.shape != logits.shape:
                    self._warned_masks = True
                preds.append(p.flatten(1))
                gts.append(g.flatten(1))
            ctx["masks"] = (preds, gts)
        return ctx["masks"]

    def _zero(self, outputs, layer) -> torch.Tensor:
        # keeps the mask branch in the graph when a batch has no GT instance (DDP needs every gradient)
        return 0.0 * (outputs["mask_feats"].sum() + layer["mask_params"].sum() + layer["mask_refs"].sum())

    def loss_mask(self, outputs, targets, indices, num_boxes, ctx) -> dict[str, torch.Tensor]:
        preds, gts = self._matched_masks(outputs, targets, indices, ctx["layer"], ctx)
        loss = self._zero(outputs, ctx["layer"])
        for p, g in zip(preds, gts):
            loss = loss + sigmoid_focal_loss(p, g, self.focal_alpha, self.focal_gamma).mean(1).sum()
        return {"loss_mask": loss / num_boxes}

    def loss_dice(self, outputs, targets, indices, num_boxes, ctx) -> dict[str, torch.Tensor]:
        preds, gts = self._matched_masks(outputs, targets, indices, ctx["layer"], ctx)
        loss = self._zero(outputs, ctx["layer"])
        for p, g in zip(preds, gts):
            loss = loss + dice_loss(p, g).sum()
        return {"loss_dice": loss / num_boxes}

    def loss_distill(self, outputs, targets, indices, num_boxes, ctx) -> dict[str, torch.Tensor]:
        """Matched query embeddings ``query_embeds [B, Q, D]`` vs the cached CLIP tube embeddings of their
        targets (``embeddings [n, D]``; rows where ``has_embedding [n]`` is False are left out):
        ``1 - cos`` or the L1 distance of the unit vectors, summed / num_boxes."""
        emb = outputs.get("query_embeds")
        if emb is None:
            raise WsovvisError("model.loss.distill_weight > 0 needs model.class_head=text (no query embeddings)")
        loss = 0.0 * emb.sum()
        for b, (src, tgt) in enumerate(indices):
            if "embeddings" not in targets[b]:
                raise WsovvisError("model.loss.distill_weight > 0: the training targets carry no tube embeddings "
                                   "(set data.tube_embeddings to a `wsovvis embed` cache of the training JSON)")
            if src.numel() == 0:
                continue
            t = targets[b]["embeddings"].to(emb.device, emb.dtype)[tgt]
            keep = targets[b].get("has_embedding")
            q = F.normalize(emb[b, src.to(emb.device)], dim=-1)
            t = F.normalize(t, dim=-1)
            per = 1 - (q * t).sum(-1) if self.distill_type == "cosine" else (q - t).abs().sum(-1)
            if keep is not None:
                per = per * keep.to(emb.device)[tgt].to(per.dtype)
            loss = loss + per.sum()
        return {"loss_distill": loss / num_boxes}

    # ------------------------------------------------------------------------------------------
    def num_boxes(self, targets: list[dict], device: torch.device) -> torch.Tensor:
        n = torch.as_tensor([float(sum(len(t["labels"]) for t in targets))], device=device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(n)
            n = n / dist.get_world_size()
        return n.clamp(min=1).squeeze(0)

    def layer_losses(self, outputs, layer, targets, num_boxes, log: bool = False):
        """All loss terms of one decoder layer (``layer`` holds its logits/boxes/mask params)."""
        view = {**layer, "mask_feats": outputs["mask_feats"], "image_sizes": outputs["image_sizes"]}
        indices = self.matcher(view, targets)
        ctx = {"layer": layer, "log": log}
        losses = {}
        fns = [self.loss_labels, self.loss_bbox, self.loss_giou, self.loss_mask, self.loss_dice]
        if "loss_distill" in self.weight_dict:
            fns.append(self.loss_distill)
        for fn in fns:
            losses.update(fn(view, targets, indices, num_boxes, ctx))
        return losses, indices

    def forward(self, outputs: dict, targets: list[dict]) -> dict[str, torch.Tensor]:
        num_boxes = self.num_boxes(targets, outputs["pred_logits"].device)
        losses, _ = self.layer_losses(outputs, outputs, targets, num_boxes, log=True)
        for i, aux in enumerate(outputs.get("aux_outputs", []) if self.aux_loss else []):
            aux_losses, _ = self.layer_losses(outputs, aux, targets, num_boxes)
            losses.update({f"{k}_{i}": v for k, v in aux_losses.items()})
        return losses


def build_weight_dict(weights: dict[str, float], num_decoder_layers: int, aux_loss: bool = True) -> dict[str, float]:
    """``{"loss_ce": 2, ...}`` -> the same plus ``loss_ce_0 .. loss_ce_{D-2}`` for the auxiliary layers."""
    out = dict(weights)
    if aux_loss:
        for i in range(num_decoder_layers - 1):
            out.update({f"{k}_{i}": v for k, v in weights.items()})
    return out
