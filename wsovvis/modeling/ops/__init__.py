"""Multi-scale deformable attention in pure PyTorch (no compiled extension)."""

from wsovvis.modeling.ops.ms_deform_attn_func import (
    IMPLS,
    ms_deform_attn,
    ms_deform_attn_embedding_bag,
    ms_deform_attn_grid_sample,
)
from wsovvis.modeling.ops.ms_deform_attn_module import MSDeformAttn

__all__ = ["IMPLS", "MSDeformAttn", "ms_deform_attn", "ms_deform_attn_embedding_bag", "ms_deform_attn_grid_sample"]
