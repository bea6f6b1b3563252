"""SeqFormer in plain PyTorch: model, matcher, criterion, post-processing, clip-wise inference, checkpoints."""

from wsovvis.modeling.seqformer.checkpoint import export_state_dict, load_checkpoint
from wsovvis.modeling.seqformer.criterion import SetCriterion
from wsovvis.modeling.seqformer.inference import predict_video
from wsovvis.modeling.seqformer.matcher import HungarianMatcher
from wsovvis.modeling.seqformer.model import SeqFormer
from wsovvis.modeling.seqformer.postprocess import SeqFormerPostProcessor

__all__ = [
    "HungarianMatcher",
    "SeqFormer",
    "SeqFormerPostProcessor",
    "SetCriterion",
    "export_state_dict",
    "load_checkpoint",
    "predict_video",
]
