"""Images and videos in one training stream, drawn with a configurable ratio.

`MixedDataset` concatenates a video dataset and an image dataset (keys ``(index, seed)``, index
``< len(videos)`` for a video). `MixedClipSampler` makes the stream a function of the seed and the
stream position only, like `wsovvis.engine.data.InfiniteClipSampler` (so a resumed run sees the
same samples as an uninterrupted one): position ``p`` takes an image with probability ``ratio``
and then a uniformly drawn item of that source (with replacement), with clip seed ``(seed, p)``;
rank ``r`` of ``world`` takes every ``world``-th position.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Dataset, Sampler

from wsovvis.errors import WsovvisError


class MixedDataset(Dataset):
    def __init__(self, videos: Dataset | None, images: Dataset | None, ratio: float) -> None:
        if videos is None and images is None:
            raise ValueError("MixedDataset needs at least one source")
        if images is None:
            ratio = 0.0
        if videos is None:
            ratio = 1.0
        self.videos, self.images, self.ratio = videos, images, ratio
        if videos is not None and images is not None and not (
                getattr(videos, "class_agnostic", False) and getattr(images, "class_agnostic", False)):
            vc = sorted(c["id"] for c in videos.categories)
            ic = sorted(c["id"] for c in images.categories)
            if vc != ic:
                raise WsovvisError(f"{images.json_path}: image category ids {ic[:10]} differ from the video "
                                   f"categories {vc[:10]} of {videos.json_path}; train class-agnostic "
                                   "(data.train_classes=agnostic) or use the same categories")
        self.num_videos = len(videos) if videos is not None else 0

    @property
    def num_classes(self) -> int:
        return max(getattr(d, "num_classes", 1) for d in (self.videos, self.images) if d is not None)

    @property
    def categories(self) -> list[dict]:
        return (self.videos if self.videos is not None else self.images).categories

    @property
    def skipped(self) -> list:
        return [s for d in (self.videos, self.images) if d is not None for s in d.skipped]

    def __len__(self) -> int:
        return self.num_videos + (len(self.images) if self.images is not None else 0)

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, None)
        if index < self.num_videos:
            return self.videos[(index, seed)]
        return self.images[(index - self.num_videos, seed)]

    def sampler(self, seed: int, rank: int = 0, world_size: int = 1, start: int = 0) -> MixedClipSampler:
        n_img = len(self.images) if self.images is not None else 0
        return MixedClipSampler(self.num_videos, n_img, self.ratio, seed, rank, world_size, start)


def _position_rng(seed: int, position: int) -> np.random.Generator:
    return np.random.default_rng([seed, position, 23])


class MixedClipSampler(Sampler):
    """Endless ``(index, clip_seed)`` pairs over ``num_videos`` videos then ``num_images`` images."""

    def __init__(self, num_videos: int, num_images: int, ratio: float, seed: int, rank: int = 0,
                 world_size: int = 1, start: int = 0) -> None:
        if num_videos + num_images < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.nv, self.ni = num_videos, num_images
        self.ratio = 0.0 if num_images == 0 else (1.0 if num_videos == 0 else ratio)
        self.seed, self.rank, self.world_size, self.start = seed, rank, world_size, start

    def draw(self, position: int) -> tuple[int, int]:
        rng = _position_rng(self.seed, position)
        if rng.random() < self.ratio:
            index = self.nv + int(rng.integers(self.ni))
        else:
            index = int(rng.integers(self.nv))
        return index, int(rng.integers(2**31))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        p = self.start + (self.rank - self.start) % self.world_size
        while True:
            yield self.draw(p)
            p += self.world_size
