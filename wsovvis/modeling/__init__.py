"""Models: multi-scale deformable attention (``ops``), backbones by name (``backbone``), SeqFormer.

``build_model(cfg) -> (model, criterion, postprocessor)`` reads ``cfg.model`` (a `ModelConfig`).
Both names are imported on first use, so ``wsovvis.modeling.box_ops`` and friends stay light
(no timm import).
"""

from __future__ import annotations

__all__ = ["ModelConfig", "build_model"]


def __getattr__(name: str):
    if name == "build_model":
        from wsovvis.modeling.build import build_model

        return build_model
    if name == "ModelConfig":
        from wsovvis.modeling.config import ModelConfig

        return ModelConfig
    raise AttributeError(f"module 'wsovvis.modeling' has no attribute {name!r}")
