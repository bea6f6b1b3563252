"""``tiny_cnn``: a small trainable conv net with the ResNet output contract, for CPU tests and demos."""

from __future__ import annotations

import torch
from torch import nn

from wsovvis.errors import WsovvisError
from wsovvis.modeling.backbone.registry import downsample_mask, register_backbone
from wsovvis.modeling.backbone.weights import load_state_dict_file


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.GroupNorm(8, cout), nn.ReLU(inplace=True)
    )


class TinyCNN(nn.Module):
    """Stem (two stride-2 convs) then three stride-2 stages: res2..res5 at strides 4/8/16/32.

    Channels are ``width * (1, 2, 4, 8)``; every map is ``ceil(H / stride)`` like a ResNet's.
    """

    def __init__(self, width: int = 16, return_res2: bool = False, weights: str | None = None,
                 trust_pickle: bool = False):
        super().__init__()
        self.stem = nn.Sequential(_conv(3, width, 2), _conv(width, width, 2))
        self.res2 = _conv(width, width, 1)
        self.res3 = nn.Sequential(_conv(width, 2 * width, 2), _conv(2 * width, 2 * width, 1))
        self.res4 = nn.Sequential(_conv(2 * width, 4 * width, 2), _conv(4 * width, 4 * width, 1))
        self.res5 = nn.Sequential(_conv(4 * width, 8 * width, 2), _conv(8 * width, 8 * width, 1))
        self.out_features = (["res2"] if return_res2 else []) + ["res3", "res4", "res5"]
        self.out_channels = {"res2": width, "res3": 2 * width, "res4": 4 * width, "res5": 8 * width}
        self.out_strides = {"res2": 4, "res3": 8, "res4": 16, "res5": 32}
        if weights:
            try:
                self.load_state_dict(load_state_dict_file(weights, "tiny_cnn backbone weights", trust_pickle))
            except RuntimeError as e:
                raise WsovvisError(f"{weights}: does not fit tiny_cnn(width={width}): {e}") from e

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        x = self.stem(images)
        out = {}
        for name in ("res2", "res3", "res4", "res5"):
            x = getattr(self, name)(x)
            if name in self.out_features:
                out[name] = (x, downsample_mask(mask, x.shape[-2:]))
        return out


@register_backbone("tiny_cnn")
def tiny_cnn(width: int = 16, return_res2: bool = False, weights: str | None = None,
             trust_pickle: bool = False) -> TinyCNN:
    return TinyCNN(width=width, return_res2=return_res2, weights=weights, trust_pickle=trust_pickle)
