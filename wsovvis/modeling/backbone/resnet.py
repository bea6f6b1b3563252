"""ResNet-50 with frozen batch norm (torchvision layout, stride in the 3x3 conv)."""

from __future__ import annotations

import torch
import torchvision
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from wsovvis.errors import WsovvisError
from wsovvis.modeling.backbone.registry import downsample_mask, register_backbone
from wsovvis.modeling.backbone.weights import load_resnet_weights

_STAGES = ("res2", "res3", "res4", "res5")
_LAYERS = ("layer1", "layer2", "layer3", "layer4")


class ResNetBackbone(nn.Module):
    """torchvision ResNet trunk under ``body`` (``conv1``, ``bn1``, ``layer1..4``; no ``fc``).

    ``freeze_at`` follows detectron2: 0 trains everything, 1 freezes the stem, 2 (default) also
    res2. All batch norms are `FrozenBatchNorm2d` (buffers ``weight, bias, running_mean, running_var``).
    Returns ``res3..res5`` (strides 8/16/32, channels 512/1024/2048), plus ``res2`` (stride 4, 256)
    with ``return_res2=True``.
    """

    def __init__(self, depth: int = 50, freeze_at: int = 2, return_res2: bool = False, weights: str | None = None,
                 trust_pickle: bool = False):
        super().__init__()
        if depth != 50:
            raise WsovvisError(f"model.backbone: ResNet depth {depth} is not supported (only 50)")
        if not 0 <= freeze_at <= 5:
            raise WsovvisError(f"model.backbone.freeze_at: {freeze_at} is outside 0..5")
        body = torchvision.models.resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
        del body.fc, body.avgpool
        self.body = body
        self.out_features = (["res2"] if return_res2 else []) + ["res3", "res4", "res5"]
        self.out_channels = {"res2": 256, "res3": 512, "res4": 1024, "res5": 2048}
        self.out_strides = {"res2": 4, "res3": 8, "res4": 16, "res5": 32}
        if weights:
            load_resnet_weights(self.body, weights, trust_pickle)
        frozen = [body.conv1, body.bn1] if freeze_at >= 1 else []
        frozen += [getattr(body, name) for name in _LAYERS[: max(freeze_at - 1, 0)]]
        for module in frozen:
            module.requires_grad_(False)

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        b = self.body
        x = b.maxpool(b.relu(b.bn1(b.conv1(images))))
        out = {}
        for stage, layer in zip(_STAGES, _LAYERS):
            x = getattr(b, layer)(x)
            if stage in self.out_features:
                out[stage] = (x, downsample_mask(mask, x.shape[-2:]))
        return out


@register_backbone("resnet50")
def resnet50(freeze_at: int = 2, return_res2: bool = False, weights: str | None = None,
             trust_pickle: bool = False) -> ResNetBackbone:
    return ResNetBackbone(50, freeze_at=freeze_at, return_res2=return_res2, weights=weights, trust_pickle=trust_pickle)
