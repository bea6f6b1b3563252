"""Frozen DINOv2 ViT (via timm) with a pseudo-FPN to the ResNet output contract.

``dinov2_vit{s,b,l,g}14`` and ``dinov2_vit{s,b,l,g}14_reg`` (4 registers). Weights come from an
official DINOv2 checkpoint file (``dinov2_vits14_pretrain.pth`` ...), converted by timm's
``checkpoint_filter_fn`` (drops ``mask_token``, maps registers and giant's SwiGLU ``w12/w3``).
Nothing is ever downloaded: without ``weights`` the ViT gets a cheap random init (`random_init_`,
for tests and smoke runs only).

Inputs are zero-padded on the right/bottom to a multiple of 14; the padding is marked in the
mask. Four block outputs (``layers``, shallow to deep) become res2..res5 at strides 4/8/16/32:
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
    ):
        super().__init__()
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
        sd = load_state_dict_file(weights, f"DINOv2 checkpoint for {self.name}")
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
        """images ``[B, 3, H, W]`` normalised, mask ``[B, H, W]`` (True = pad) -> res maps at ``ceil(H / s)``."""
        H, W = images.shape[-2:]
        ph, pw = (-H) % PATCH, (-W) % PATCH
        x = F.pad(images, (0, pw, 0, ph))
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            feats = self.vit.forward_intermediates(
                x, indices=self.layers, norm=True, output_fmt="NCHW", intermediates_only=True, stop_early=True
            )
        out = {}
        for stage, stride, level, feat in zip(_STAGES, _STRIDES, self.fpn, feats):
            if stage not in self.out_features:
                continue
            size = (-(-H // stride), -(-W // stride))
            y = level["refine"](resample_to_stride(level["proj"](feat), size, stride))
            out[stage] = (y, downsample_mask(mask, size))
        return out


def _factory(size: str, registers: bool):
    def build(
        weights: str | None = None,
        freeze: bool = True,
        out_channels: int = 256,
        layers: list[int] | None = None,
        return_res2: bool = False,
    ) -> DinoV2Backbone:
        return DinoV2Backbone(size, registers, weights, freeze, out_channels, layers, return_res2)

    return build


for _size in _SIZES:
    for _reg in (False, True):
        register_backbone(f"dinov2_vit{_size}14{'_reg' if _reg else ''}")(_factory(_size, _reg))
