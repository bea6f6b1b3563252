"""Text-prompted auto-labelling: a text-prompted detector (OWLv2) gives boxes, a promptable
segmenter (SAM2) turns them into masks; images -> COCO, videos -> category-labelled pseudo tubes."""

import os

# MPS lacks some kernels SAM2/OWLv2 use; torch reads this only at import, so set it before any
# module of this package imports torch (an explicit setting in the environment wins).
os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")
