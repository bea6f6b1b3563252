"""Backbone registry: ``@register_backbone(name)`` on a factory, ``build_backbone(name, **kwargs)``.

Every backbone maps normalised images to a dict of feature maps with their padding masks:

    backbone(images [B, 3, H, W], mask [B, H, W] bool, True = padding)
        -> {"res2"?: (feat, mask), "res3": ..., "res4": ..., "res5": ...}
        feat [B, C_k, ceil(H / s_k), ceil(W / s_k)], mask [B, ceil(H / s_k), ceil(W / s_k)]

and exposes ``out_features`` (names in order), ``out_channels`` and ``out_strides`` (dicts by name).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from wsovvis.errors import WsovvisError

_BACKBONES: dict[str, Callable[..., nn.Module]] = {}


def register_backbone(name: str):
    def deco(fn: Callable[..., nn.Module]):
        if name in _BACKBONES:
            raise ValueError(f"backbone {name!r} registered twice")
        _BACKBONES[name] = fn
        return fn

    return deco


def list_backbones() -> list[str]:
    return sorted(_BACKBONES)


def build_backbone(name: str, **kwargs) -> nn.Module:
    """Build the registered backbone ``name``; keyword arguments go to its factory."""
    if name not in _BACKBONES:
        raise WsovvisError(f"model.backbone.name: unknown backbone {name!r}; choose from {', '.join(list_backbones())}")
    return _BACKBONES[name](**kwargs)


def downsample_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Padding mask ``[B, H, W]`` -> ``[B, h, w]`` by nearest interpolation (DETR's rule)."""
    return F.interpolate(mask[:, None].float(), size=size, mode="nearest")[:, 0].bool()
