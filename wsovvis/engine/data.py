"""Training/inference data loaders built from the config.

`InfiniteClipSampler` is what makes resumption exact: the global stream of clips is a function of
the seed only (epoch ``e`` is ``randperm(N)`` seeded by ``(seed, e)``; stream position ``p`` also
fixes the clip's augmentation seed), iteration ``i`` consumes positions
``[i * ims_per_batch, (i + 1) * ims_per_batch)``, and rank ``r`` takes every ``world``-th of them.
Restarting at iteration ``i`` therefore yields exactly the clips an uninterrupted run would see.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from wsovvis.data.collate import collate_clips
from wsovvis.data.dataset import YTVISClipDataset, YTVISVideoDataset
from wsovvis.data.transforms import ClipAugmentation
from wsovvis.errors import WsovvisError


def _clip_seed(seed: int, position: int) -> int:
    return int(np.random.default_rng([seed, position, 7]).integers(2**31))


class InfiniteClipSampler(Sampler):
    """Endless ``(index, clip_seed)`` pairs for one rank, starting at stream position ``start``."""

    def __init__(self, size: int, seed: int, rank: int = 0, world_size: int = 1, start: int = 0) -> None:
        if size < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.size, self.seed, self.rank, self.world_size, self.start = size, seed, rank, world_size, start

    def _perm(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(int(np.random.default_rng([self.seed, epoch]).integers(2**62)))
        return torch.randperm(self.size, generator=g).tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        # First position >= start that belongs to this rank.
        p = self.start + (self.rank - self.start) % self.world_size
        epoch, perm = -1, []
        while True:
            e = p // self.size
            if e != epoch:
                epoch, perm = e, self._perm(e)
            yield perm[p % self.size], _clip_seed(self.seed, p)
            p += self.world_size


def per_rank_batch(cfg, world_size: int) -> int:
    s = cfg.solver
    div = world_size * s.grad_accum_steps
    if s.ims_per_batch % div:
        raise WsovvisError(
            f"config: solver.ims_per_batch={s.ims_per_batch} must be divisible by processes x grad_accum_steps "
            f"= {world_size} x {s.grad_accum_steps}"
        )
    return s.ims_per_batch // div


def build_train_dataset(cfg, plain: bool = False) -> YTVISClipDataset:
    d, i = cfg.data, cfg.input
    if not plain and (d.images.json or d.copy_paste.enabled):  # still images mixed in and/or copy-paste
        from wsovvis.engine.image_data import build_mixed_train_dataset

        return build_mixed_train_dataset(cfg, lambda: build_train_dataset(cfg, plain=True))
    if not d.train_json or not d.train_img_root:
        raise WsovvisError("config: data.train_json and data.train_img_root must be set for training")
    aug = ClipAugmentation(
        min_sizes=list(i.min_size_train), max_size=i.max_size_train, flip_prob=i.flip_prob,
        crop_prob=i.crop.prob if i.crop.enabled else 0.0, crop_size=tuple(i.crop.size),
    )
    return YTVISClipDataset(d.train_json, d.train_img_root, num_frames=i.sampling_frame_num,
                            frame_range=i.sampling_frame_range, augmentation=aug,
                            class_agnostic=d.train_classes == "agnostic", max_videos=d.max_train_videos,
                            drop_empty=d.drop_empty_videos, bad_frames=d.bad_frames,
                            base_only=d.train_classes == "base",
                            tube_embeddings=load_tube_embeddings(d.tube_embeddings))


def load_tube_embeddings(root: str | None) -> dict | None:
    """``data.tube_embeddings``: a `wsovvis embed` cache -> ``{(video_id, track_id): float32 [D]}`` (None if unset)."""
    if not root:
        return None
    from wsovvis.openvocab.cache import load_feats, read_index

    index, meta = read_index(root)
    keys = sorted(index)
    feats = load_feats([index[k] for k in keys], int(meta.get("dim", 0)))
    return dict(zip(keys, feats))


def build_train_loader(cfg, dataset: YTVISClipDataset, rank: int, world_size: int, start_iter: int) -> DataLoader:
    """Loader yielding collated micro-batches of ``per_rank_batch`` clips, resumed at ``start_iter``."""
    batch = per_rank_batch(cfg, world_size)
    start = start_iter * cfg.solver.ims_per_batch
    sampler = (dataset.sampler(cfg.seed, rank, world_size, start) if hasattr(dataset, "sampler")  # images + videos
               else InfiniteClipSampler(len(dataset), cfg.seed, rank, world_size, start=start))
    workers = cfg.data.num_workers
    return DataLoader(
        dataset, batch_size=batch, sampler=sampler, num_workers=workers,
        collate_fn=partial(collate_clips, size_divisibility=cfg.input.size_divisibility),
        prefetch_factor=cfg.data.prefetch_factor if workers > 0 else None,
        persistent_workers=workers > 0, pin_memory=torch.cuda.is_available(),
        worker_init_fn=_worker_init,
        # Its own generator: creating the loader iterator must not draw from the global torch RNG,
        # whose state is checkpointed (dropout) and must match an uninterrupted run.
        generator=torch.Generator().manual_seed(cfg.seed),
    )


def _worker_init(_worker_id: int) -> None:
    # Loader workers decode frames; one intra-op thread each keeps them off the training threads.
    torch.set_num_threads(1)


def build_val_dataset(cfg) -> YTVISVideoDataset | None:
    d = cfg.data
    if not d.val_json:
        return None
    if not d.val_img_root:
        raise WsovvisError("config: data.val_img_root must be set when data.val_json is")
    return YTVISVideoDataset(d.val_json, d.val_img_root, max_videos=d.max_val_videos)
