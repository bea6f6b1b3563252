"""SeqFormer in plain PyTorch: model, matcher, criterion, post-processing, clip-wise inference, checkpoints.

Submodules: ``model``, ``transformer`` (``encoder``, ``decoder``), ``mask_head``, ``matcher``,
``criterion``, ``postprocess``, ``inference`` (`predict_video`), ``checkpoint``. The names below are
imported on first use.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "HungarianMatcher": "matcher",
    "SeqFormer": "model",
    "SeqFormerPostProcessor": "postprocess",
    "SetCriterion": "criterion",
    "export_state_dict": "checkpoint",
    "load_checkpoint": "checkpoint",
    "predict_video": "inference",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"wsovvis.modeling.seqformer.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'wsovvis.modeling.seqformer' has no attribute {name!r}")
