"""Frozen DINOv2 ViT (via timm) with a pseudo-FPN to the ResNet output contract.

``dinov2_vit{s,b,l,g}14`` and ``dinov2_vit{s,b,l,g}14_reg`` (4 registers). Weights come from an
official DINOv2 checkpoint file (``dinov2_vits14_pretrain.pth`` ...), converted by timm's
``checkpoint_filter_fn`` (drops ``mask_token``, maps registers and giant's SwiGLU ``w12/w3``).
Nothing is ever downloaded: without ``weights`` the ViT gets a cheap random init (`random_init_`,
for tests and smoke runs only).

Inputs are zero-padded on the right/bottom to a multiple of 14; the padding is marked in the
mask, and a padded frame's tokens do not attend to padding-only patches (attention mask), so a
frame's features do not depend on the other frames of the batch (see `DinoV2Backbone.forward`).
Four block outputs (``layers``, shallow to deep) become res2..res5 at strides 4/8/16/32:
1x1 conv + GroupNorm, bilinear resampling to the exact pixel-centre grid of the target stride,
3x3 conv + GroupNorm. These ``fpn`` layers are trainable; the ViT is frozen by default (eval mode,
``requires_grad=False``, forward under ``no_grad``), so an optimizer over
``p.requires_grad`` parameters excludes it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wsovvis.errors import WsovvisError
from wsovvis.modeling.backbone.registry import downsample_mask, register_backbone
from wsovvis.modeling.backbone.weights import load_state_dict_file
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

PATCH = 14
_SIZES = {"s": "small", "b": "base", "l": "large", "g": "giant"}
_STAGES = ("res2", "res3", "res4", "res5")
_STRIDES = (4, 8, 16, 32)


def timm_name(size: str, registers: bool) -> str:
    return f"vit_{_SIZES[size]}_patch14{'_reg4' if registers else ''}_dinov2"


def default_layers(depth: int) -> list[int]:
    """The last block of each quarter of the network, e.g. 12 blocks -> [2, 5, 8, 11]."""
    return [depth * (i + 1) // 4 - 1 for i in range(4)]


def resample_to_stride(feat: torch.Tensor, out_hw: tuple[int, int], stride: int, patch: int = PATCH) -> torch.Tensor:
    """Bilinearly sample a patch grid ``[B, C, h, w]`` (cell ``j`` centred on pixel ``(j + 0.5) * patch``)
    at the pixel centres ``(i + 0.5) * stride`` of an ``out_hw`` map -> ``[B, C, *out_hw]``."""
    h, w = feat.shape[-2:]
    oh, ow = out_hw
    ys = (torch.arange(oh, device=feat.device, dtype=feat.dtype) + 0.5) * stride / (h * patch) * 2 - 1
    xs = (torch.arange(ow, device=feat.device, dtype=feat.dtype) + 0.5) * stride / (w * patch) * 2 - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # [oh, ow, 2] as (x, y)
    grid = grid[None].expand(feat.shape[0], -1, -1, -1)
    return F.grid_sample(feat, grid, mode="bilinear", padding_mode="border", align_corners=False)


@torch.no_grad()
def random_init_(vit: nn.Module, seed: int = 0) -> None:
    """Cheap random init of a ViT trunk for runs without a checkpoint (tests, smoke runs).

    Matrices get N(0, 0.02) values tiled from one table of 2^20 draws (rotated per tensor), norms 1,
    biases 0, LayerScale 1e-5. Generating ViT-g's 1.1B values one by one takes ~10 s on a core;
    a random frozen trunk is only useful for checking shapes and plumbing anyway.
    """
    if any(p.is_meta for p in vit.parameters()):
        return
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(1 << 20, generator=g) * 0.02
    for i, (name, p) in enumerate(vit.named_parameters()):
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "gamma":
            p.fill_(1e-5)
        elif leaf == "bias":
            p.zero_()
        elif p.dim() == 1:
            p.fill_(1.0)  # norm weights
        else:
            flat = p.view(-1)
            src = table.roll(i * 7919)
            for start in range(0, flat.numel(), src.numel()):
                n = min(src.numel(), flat.numel() - start)
                flat[start : start + n] = src[:n]
    for buf in vit.buffers():
        if buf.is_floating_point():
            buf.zero_()


class DinoV2Backbone(nn.Module):
    """DINOv2 ViT trunk (``vit``) + pseudo-FPN (``fpn``) -> res2..res5 with ``out_channels`` each."""

    def __init__(
        self,
        size: str,
        registers: bool = False,
        weights: str | None = None,
        freeze: bool = True,
        out_channels: int = 256,
        layers: list[int] | None = None,
        return_res2: bool = False,
        trust_pickle: bool = False,
    ):
        super().__init__()
        self.trust_pickle = trust_pickle  # full unpickling of `weights` (model.trust_pickle)
        if out_channels % 32 != 0:
            raise WsovvisError(f"model.backbone.out_channels: {out_channels} is not a multiple of 32 (GroupNorm)")
        self.name = f"dinov2_vit{size}14{'_reg' if registers else ''}"
        self.timm_name = timm_name(size, registers)
        self.vit = self._create(weights)
        depth = len(self.vit.blocks)
        self.layers = list(layers) if layers is not None else default_layers(depth)
        if len(self.layers) != 4 or not all(0 <= i < depth for i in self.layers):
            raise WsovvisError(
                f"model.backbone.layers: {self.name} needs 4 block indices in 0..{depth - 1}, got {self.layers}"
            )
        self.freeze = freeze
        if freeze:
            self.vit.requires_grad_(False)
            self.vit.eval()
        dim = self.vit.embed_dim
        self.fpn = nn.ModuleList(
            nn.ModuleDict(
                {
                    "proj": nn.Sequential(nn.Conv2d(dim, out_channels, 1), nn.GroupNorm(32, out_channels)),
                    "refine": nn.Sequential(
                        nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.GroupNorm(32, out_channels)
                    ),
                }
            )
            for _ in _STAGES
        )
        for level in self.fpn:
            for m in level.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)
        self.out_features = (["res2"] if return_res2 else []) + ["res3", "res4", "res5"]
        self.out_channels = dict.fromkeys(_STAGES, out_channels)
        self.out_strides = dict(zip(_STAGES, _STRIDES))

    def _create(self, weights: str | None) -> nn.Module:
        import timm  # imported on first build: importing the registry stays cheap

        kwargs = dict(pretrained=False, num_classes=0, dynamic_img_size=True, dynamic_img_pad=True)
        if not weights:
            with torch.device("meta"):
                vit = timm.create_model(self.timm_name, weight_init="skip", **kwargs)
            # "meta" when built under `with torch.device("meta")` (shape-only runs), else cpu
            device = torch.get_default_device()
            vit.to_empty(device=device if device.type == "meta" else "cpu")
            random_init_(vit)
            return vit
        sd = load_state_dict_file(weights, f"DINOv2 checkpoint for {self.name}", self.trust_pickle)
        with torch.device("meta"):
            vit = timm.create_model(self.timm_name, weight_init="skip", **kwargs)
        self._check_checkpoint(sd, vit, weights)
        from timm.models.vision_transformer import checkpoint_filter_fn

        sd = checkpoint_filter_fn(sd, vit)
        try:
            vit.load_state_dict(sd, strict=True, assign=True)
        except RuntimeError as e:
            raise WsovvisError(f"{weights}: does not fit {self.name} ({self.timm_name}): {e}") from e
        log.info("loaded DINOv2 weights for %s from %s", self.name, weights)
        return vit

    def _check_checkpoint(self, sd: dict[str, torch.Tensor], vit: nn.Module, path: str) -> None:
        if "cls_token" not in sd:
            raise WsovvisError(f"{path}: not a DINOv2 checkpoint (no 'cls_token' among {len(sd)} keys)")
        ck_dim = int(sd["cls_token"].shape[-1])
        if ck_dim != vit.embed_dim:
            raise WsovvisError(
                f"{path}: checkpoint embed dim is {ck_dim} but backbone {self.name} ({self.timm_name}) "
                f"has embed dim {vit.embed_dim}; choose the backbone that matches the checkpoint"
            )
        ck_reg = "register_tokens" in sd or "reg_token" in sd
        if ck_reg != (getattr(vit, "reg_token", None) is not None):
            raise WsovvisError(
                f"{path}: checkpoint {'has' if ck_reg else 'has no'} register tokens but backbone {self.name} "
                f"{'has none' if ck_reg else 'expects 4'}; use the {'_reg' if ck_reg else 'plain'} variant"
            )

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze:
            self.vit.eval()
        return self

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """images ``[B, 3, H, W]`` normalised, mask ``[B, H, W]`` (True = pad, valid region top-left)
        -> res maps at ``ceil(H / s)``, zero on padded cells.

        Padding never leaks into a frame's features, so they do not depend on the other frames of
        the batch: each frame's position embedding is resampled to ITS valid patch grid, its tokens do
        not attend to patches that are padding only (attention mask), and the pseudo-FPN normalises
        over valid positions only (masked GroupNorm) with padded patches replaced by the nearest
        valid one before resampling (what the grid's border gives a frame that is not padded)."""
        H, W = images.shape[-2:]
        ph, pw = (-H) % PATCH, (-W) % PATCH
        x = F.pad(images, (0, pw, 0, ph))
        grid = (x.shape[-2] // PATCH, x.shape[-1] // PATCH)
        valid = ~mask
        vh, vw = valid.any(2).sum(1), valid.any(1).sum(1)  # valid rows / cols per frame
        gh, gw = (-(-vh // PATCH)).clamp(min=1), (-(-vw // PATCH)).clamp(min=1)  # valid patch grid per frame
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            # nothing padded beyond the last patch (or a shape-only run on the meta device): the plain trunk
            if x.is_meta or bool((gh == grid[0]).all() and (gw == grid[1]).all()):
                feats = self.vit.forward_intermediates(
                    x, indices=self.layers, norm=True, output_fmt="NCHW", intermediates_only=True, stop_early=True
                )
            else:
                feats = masked_intermediates(self.vit, x, gh, gw, self.layers)
        rows = torch.arange(grid[0], device=x.device)
        cols = torch.arange(grid[1], device=x.device)
        patch_valid = (rows[None, :, None] < gh[:, None, None]) & (cols[None, None, :] < gw[:, None, None])
        out = {}
        for stage, stride, level, feat in zip(_STAGES, _STRIDES, self.fpn, feats):
            if stage not in self.out_features:
                continue
            size = (-(-H // stride), -(-W // stride))
            m = downsample_mask(mask, size)
            y = masked_group_norm(level["proj"][1], level["proj"][0](feat), patch_valid)
            y = replicate_beyond(y, gh, gw)
            y = resample_to_stride(y, size, stride).masked_fill(m[:, None], 0.0)
            y = masked_group_norm(level["refine"][1], level["refine"][0](y), ~m).masked_fill(m[:, None], 0.0)
            out[stage] = (y, m)
        return out


def masked_intermediates(vit: nn.Module, x: torch.Tensor, gh: torch.Tensor, gw: torch.Tensor,
                         layers: list[int]) -> list[torch.Tensor]:
    """timm ViT ``forward_intermediates`` (normed, NCHW) where frame ``b`` is the top-left ``gh[b] x gw[b]``
    patches: position embeddings resampled per valid grid, padding-only patches masked as keys."""
    B = x.shape[0]
    t = vit.patch_embed(x)  # [B, Hg, Wg, C] (dynamic_img_size)
    Hg, Wg, C = t.shape[1:]
    P = vit.num_prefix_tokens
    seq = []
    for b in range(B):
        h, w = int(gh[b]), int(gw[b])
        sub = vit._pos_embed(t[b : b + 1, :h, :w].contiguous())  # [1, P + h*w, C], the grid's own positions
        body = F.pad(sub[:, P:].reshape(1, h, w, C), (0, 0, 0, Wg - w, 0, Hg - h))  # padding patches: zeros
        seq.append(torch.cat([sub[:, :P], body.flatten(1, 2)], dim=1))
    x = vit.norm_pre(vit.patch_drop(torch.cat(seq)))
    rows = torch.arange(Hg, device=x.device)
    cols = torch.arange(Wg, device=x.device)
    valid = (rows[None, :, None] < gh[:, None, None]) & (cols[None, None, :] < gw[:, None, None])
    keys = torch.cat([torch.ones(B, P, dtype=torch.bool, device=x.device), valid.flatten(1)], dim=1)
    attn_mask = keys[:, None, None, :]  # True = may attend
    out = []
    for i, blk in enumerate(vit.blocks[: max(layers) + 1]):
        x = blk(x, attn_mask=attn_mask)
        if i in layers:
            y = vit.norm(x)[:, P:]
            out.append(y.reshape(B, Hg, Wg, C).permute(0, 3, 1, 2).contiguous())
    return out


def masked_group_norm(gn: nn.GroupNorm, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``gn`` applied to ``x [B, C, h, w]`` with statistics over the ``valid [B, h, w]`` positions only."""
    B, C, h, w = x.shape
    G = gn.num_groups
    xg = x.reshape(B, G, C // G, h * w)
    m = valid.reshape(B, 1, 1, h * w).to(x.dtype)
    n = (m.sum(-1, keepdim=True) * (C // G)).clamp(min=1)
    mean = (xg * m).sum((-1, -2), keepdim=True) / n
    var = (((xg - mean) * m) ** 2).sum((-1, -2), keepdim=True) / n
    y = ((xg - mean) / torch.sqrt(var + gn.eps)).reshape(B, C, h, w)
    return y * gn.weight[None, :, None, None] + gn.bias[None, :, None, None] if gn.affine else y


def replicate_beyond(y: torch.Tensor, gh: torch.Tensor, gw: torch.Tensor) -> torch.Tensor:
    """Patches beyond each frame's valid ``gh x gw`` grid take the nearest valid patch's value."""
    B, _, Hg, Wg = y.shape
    ri = torch.minimum(torch.arange(Hg, device=y.device)[None], (gh - 1)[:, None])  # [B, Hg]
    ci = torch.minimum(torch.arange(Wg, device=y.device)[None], (gw - 1)[:, None])  # [B, Wg]
    y = torch.gather(y, 2, ri[:, None, :, None].expand(-1, y.shape[1], -1, Wg))
    return torch.gather(y, 3, ci[:, None, None, :].expand(-1, y.shape[1], Hg, -1))


def _factory(size: str, registers: bool):
    def build(
        weights: str | None = None,
        freeze: bool = True,
        out_channels: int = 256,
        layers: list[int] | None = None,
        return_res2: bool = False,
        trust_pickle: bool = False,
    ) -> DinoV2Backbone:
        return DinoV2Backbone(size, registers, weights, freeze, out_channels, layers, return_res2, trust_pickle)

    return build


for _size in _SIZES:
    for _reg in (False, True):
        register_backbone(f"dinov2_vit{_size}14{'_reg' if _reg else ''}")(_factory(_size, _reg))
