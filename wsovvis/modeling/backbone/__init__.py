"""Backbones by name: ``build_backbone("resnet50" | "dinov2_vits14" | ... | "tiny_cnn", **kwargs)``."""

from wsovvis.modeling.backbone import dinov2, resnet, tiny_cnn  # noqa: F401  (register the factories)
from wsovvis.modeling.backbone.registry import build_backbone, list_backbones, register_backbone

__all__ = ["build_backbone", "list_backbones", "register_backbone"]
