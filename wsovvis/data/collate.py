"""Batching of training clips onto one padded canvas shared by images and masks.

The canvas is the batch's largest (h, w) rounded up to a multiple of ``size_divisibility`` (32),
zero-padded at the bottom/right. GT masks are padded onto the *same* canvas as the images, so
the model's stride-4 mask predictions and ``masks[..., 2::4, 2::4]`` line up (seqformer.md §3.4).

`collate_clips` output::

    images       uint8 [B, T, 3, Hp, Wp]   (kept uint8 for cheap worker -> main transfer)
    image_sizes  long  [B, 2]              (h, w) of each clip's valid region
    targets      list of B dicts: labels [n], boxes [n, T, 4], masks bool [n, T, Hp, Wp],
                 valid [n, T], size [2]  (the model contract in DEVELOPING.md)
    video_ids    list[int];  frame_indices list[list[int]]

`to_device` moves a batch to a device and turns images into float 0..255 as the model expects.
"""

from __future__ import annotations

import math

import torch


def padded_hw(sizes: list[tuple[int, int]], size_divisibility: int = 32) -> tuple[int, int]:
    """Canvas ``(Hp, Wp)``: the largest size rounded up to a multiple of ``size_divisibility``."""
    h = max(s[0] for s in sizes)
    w = max(s[1] for s in sizes)
    d = max(1, size_divisibility)
    return int(math.ceil(h / d) * d), int(math.ceil(w / d) * d)


def collate_clips(batch: list[dict], size_divisibility: int = 32) -> dict:
    if not batch:
        raise ValueError("empty batch")
    T = batch[0]["images"].shape[0]
    if any(s["images"].shape[0] != T for s in batch):
        raise ValueError("all clips of a batch must have the same number of frames")
    sizes = [(int(s["size"][0]), int(s["size"][1])) for s in batch]
    hp, wp = padded_hw(sizes, size_divisibility)
    images = torch.zeros((len(batch), T, 3, hp, wp), dtype=batch[0]["images"].dtype)
    targets = []
    for i, s in enumerate(batch):
        h, w = sizes[i]
        images[i, :, :, :h, :w] = s["images"]
        n = s["masks"].shape[0]
        masks = torch.zeros((n, T, hp, wp), dtype=torch.bool)
        masks[:, :, :h, :w] = s["masks"]
        targets.append({
            "labels": s["labels"],
            "boxes": s["boxes"],
            "masks": masks,
            "valid": s["valid"],
            "size": s["size"],
            # cached CLIP tube embeddings (distillation targets), when the dataset has them
            **{k: s[k] for k in ("embeddings", "has_embedding") if k in s},
        })
    return {
        "images": images,
        "image_sizes": torch.tensor(sizes, dtype=torch.long),
        "targets": targets,
        "video_ids": [s.get("video_id") for s in batch],
        "frame_indices": [s.get("frame_indices") for s in batch],
    }


def to_device(batch: dict, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    """``(images float [B, T, 3, Hp, Wp], image_sizes [B, 2], targets)`` on ``device``."""
    images = batch["images"].to(device, non_blocking=True).float()
    sizes = batch["image_sizes"].to(device)
    targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in batch["targets"]]
    return images, sizes, targets
