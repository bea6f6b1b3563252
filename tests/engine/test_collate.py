"""The collate function pads images and masks onto one canvas (multiple of 32)."""

from __future__ import annotations

import torch

from wsovvis.data.collate import collate_clips, padded_hw, to_device


def _sample(h: int, w: int, n: int, T: int = 2, fill: int = 7) -> dict:
    masks = torch.zeros((n, T, h, w), dtype=torch.bool)
    masks[:, :, -1, -1] = True  # bottom-right pixel of the valid region
    return {
        "images": torch.full((T, 3, h, w), fill, dtype=torch.uint8),
        "masks": masks,
        "labels": torch.zeros(n, dtype=torch.long),
        "boxes": torch.rand(n, T, 4),
        "valid": torch.ones(n, T, dtype=torch.bool),
        "size": torch.tensor([h, w]),
        "video_id": 3,
        "frame_indices": [0, 1],
    }


def test_padded_hw_hand_values():
    assert padded_hw([(64, 96)]) == (64, 96)
    assert padded_hw([(65, 96), (40, 100)]) == (96, 128)
    assert padded_hw([(1, 1)], 32) == (32, 32)


def test_images_and_masks_share_the_canvas():
    batch = collate_clips([_sample(50, 70, 2, fill=7), _sample(70, 33, 1, fill=9)])
    assert batch["images"].shape == (2, 2, 3, 96, 96)
    assert batch["image_sizes"].tolist() == [[50, 70], [70, 33]]
    for t, (h, w) in zip(batch["targets"], [(50, 70), (70, 33)]):
        assert t["masks"].shape[-2:] == batch["images"].shape[-2:]
        assert t["masks"][:, :, h - 1, w - 1].all()  # content kept at its place
        assert t["masks"].sum() == t["masks"].shape[0] * 2
    img0 = batch["images"][0]
    assert (img0[:, :, :50, :70] == 7).all() and (img0[:, :, 50:] == 0).all() and (img0[:, :, :, 70:] == 0).all()
    assert (batch["images"][1][:, :, :70, :33] == 9).all() and (batch["images"][1][:, :, :, 33:] == 0).all()


def test_clip_without_instances_and_device_transfer():
    batch = collate_clips([_sample(32, 32, 0)])
    assert batch["targets"][0]["masks"].shape == (0, 2, 32, 32)
    images, sizes, targets = to_device(batch, "cpu")
    assert images.dtype == torch.float32 and images.max() == 7.0
    assert sizes.dtype == torch.long and targets[0]["labels"].numel() == 0
