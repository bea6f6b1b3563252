"""FPN backbones for Mask R-CNN: torchvision ResNet-50 (weights from a local file) or ``tiny_cnn`` (tests).

Every backbone returns an ``OrderedDict`` of FPN maps named ``"0".."3"`` (strides 4..32) plus ``"pool"``
(stride 64) and has ``out_channels``, which is what torchvision's ``MaskRCNN`` expects.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torchvision
from torch import nn
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from wsovvis.errors import WsovvisError
from wsovvis.modeling.backbone.tiny_cnn import TinyCNN
from wsovvis.modeling.backbone.weights import load_resnet_weights, load_state_dict_file
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)


def resnet50_fpn(weights: str | None, freeze_at: int, out_channels: int, fpn_norm: bool,
                 trust_pickle: bool = False) -> nn.Module:
    """ResNet-50 + FPN. With ``weights`` (torchvision ``.pth``, detectron2 ``R-50.pkl`` or DINO ResNet-50
    ``.pth``, read by `wsovvis.modeling.backbone.weights`) the trunk's batch norms are frozen
    (`FrozenBatchNorm2d`) and stages below ``freeze_at`` (detectron2 numbering) do not train; without
    weights everything trains with ordinary BatchNorm (torchvision's rule)."""
    if not 0 <= freeze_at <= 5:
        raise WsovvisError(f"model.backbone.freeze_at: {freeze_at} is outside 0..5")
    pretrained = bool(weights)
    body = torchvision.models.resnet50(weights=None, norm_layer=FrozenBatchNorm2d if pretrained else nn.BatchNorm2d)
    body.fc = nn.Identity()  # classification head: not part of any backbone file we read
    if pretrained:
        load_resnet_weights(body, weights, trust_pickle)
    trainable = 5 - freeze_at if pretrained else 5
    fpn = _resnet_fpn_extractor(body, trainable, norm_layer=nn.BatchNorm2d if fpn_norm else None)
    if out_channels != fpn.out_channels:
        raise WsovvisError(f"model.maskrcnn.fpn_channels: the ResNet-50 FPN has {fpn.out_channels} channels, "
                           f"got {out_channels}")
    return fpn


class TinyFPN(nn.Module):
    """`TinyCNN` (res2..res5, strides 4..32) + FPN + max-pool level: a CPU-sized Mask R-CNN backbone."""

    def __init__(self, width: int, out_channels: int, fpn_norm: bool, weights: str | None = None,
                 trust_pickle: bool = False) -> None:
        super().__init__()
        self.body = TinyCNN(width=width, return_res2=True)
        if weights:
            try:
                self.body.load_state_dict(load_state_dict_file(weights, "tiny_cnn backbone weights", trust_pickle))
            except RuntimeError as e:
                raise WsovvisError(f"{weights}: does not fit tiny_cnn(width={width}): {e}") from e
        chans = [self.body.out_channels[n] for n in ("res2", "res3", "res4", "res5")]
        self.fpn = FeaturePyramidNetwork(chans, out_channels, extra_blocks=LastLevelMaxPool(),
                                         norm_layer=nn.BatchNorm2d if fpn_norm else None)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        x = self.body.stem(x)
        feats = OrderedDict()
        for i, name in enumerate(("res2", "res3", "res4", "res5")):
            x = getattr(self.body, name)(x)
            feats[str(i)] = x
        return self.fpn(feats)


def build_fpn_backbone(name: str, weights: str | None, freeze_at: int, width: int, out_channels: int,
                       fpn_norm: bool, trust_pickle: bool = False) -> nn.Module:
    """``trust_pickle`` (``model.trust_pickle``): read a legacy weights pickle fully (it can run code)."""
    if name == "resnet50":
        return resnet50_fpn(weights, freeze_at, out_channels, fpn_norm, trust_pickle)
    if name == "tiny_cnn":
        return TinyFPN(width, out_channels, fpn_norm, weights, trust_pickle)
    raise WsovvisError(f"model.backbone.name: Mask R-CNN supports 'resnet50' and 'tiny_cnn', got {name!r}")
