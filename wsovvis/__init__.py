"""wsovvis: weakly-supervised, open-vocabulary video instance segmentation harness."""

__version__ = "0.1.0"
