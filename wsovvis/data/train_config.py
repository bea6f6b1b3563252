"""Schema of the image-data and copy-paste options of the ``data`` config node.

`wsovvis.engine.config.DataConfig` holds them as ``data.images`` and ``data.copy_paste``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ImageDataConfig:
    """Still images trained beside (or instead of) the videos: each becomes a pseudo-video of
    ``input.sampling_frame_num`` independently cropped/scaled/shifted copies."""

    json: str | None = None  # COCO instances JSON, or the one-frame YouTube-VIS JSON of `wsovvis import coco`
    img_root: str | None = None
    ratio: float = 0.5  # share of training samples drawn from the images; 1.0 = images only (train_json optional)
    min_crop: float = 0.7  # each pseudo-video frame is a random crop of >= this fraction of each side (1 = none)
    max_images: int = 0  # 0 = all

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio <= 1.0:
            raise ValueError(f"images.ratio must be in [0, 1], got {self.ratio}")
        if not 0.0 < self.min_crop <= 1.0:
            raise ValueError(f"images.min_crop must be in (0, 1], got {self.min_crop}")


@dataclass
class CopyPasteConfig:
    """CutLER copy-paste (`wsovvis.data.copy_paste`): paste instances of another training sample."""

    enabled: bool = False
    prob: float = 1.0  # share of samples that get a paste (CutLER: every image)
    scale: list[float] = field(default_factory=lambda: [0.3, 1.0])  # CutLER: 0.3-1.0 (0.5-1.0 in self-training)
    max_cover: float = 0.5  # a pasted instance covering this share of an existing mask is dropped

    def __post_init__(self) -> None:
        if len(self.scale) != 2 or not 0.0 < self.scale[0] <= self.scale[1] <= 1.0:
            raise ValueError(f"copy_paste.scale must be [lo, hi] with 0 < lo <= hi <= 1, got {self.scale}")
        if not 0.0 <= self.prob <= 1.0:
            raise ValueError(f"copy_paste.prob must be in [0, 1], got {self.prob}")
