"""Models: multi-scale deformable attention (``ops``), backbones by name (``backbone``), SeqFormer.

``build_model(cfg) -> (model, criterion, postprocessor)`` reads ``cfg.model`` (a `ModelConfig`).
"""

from wsovvis.modeling.build import build_model
from wsovvis.modeling.config import ModelConfig

__all__ = ["ModelConfig", "build_model"]
