"""Copy-paste: instance count, scale/shift geometry, the cover rule, occlusion and recomputed boxes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsovvis.data.copy_paste import CopyPasteDataset, copy_paste


def sample(masks: list[np.ndarray], h: int = 40, w: int = 40, T: int = 1, value: int = 10, labels=None) -> dict:
    m = np.stack([np.stack([mk] * T) for mk in masks]) if masks else np.zeros((0, T, h, w), dtype=bool)
    from wsovvis.data.dataset import boxes_and_valid

    boxes, valid = boxes_and_valid(m)
    return {"images": torch.full((T, 3, h, w), value, dtype=torch.uint8), "masks": torch.from_numpy(m),
            "labels": torch.tensor(labels if labels is not None else [0] * len(masks), dtype=torch.long),
            "boxes": torch.from_numpy(boxes), "valid": torch.from_numpy(valid), "size": torch.tensor([h, w]),
            "video_id": 1, "frame_indices": [0] * T, "ann_ids": list(range(1, len(masks) + 1))}


def rect(y0, x0, y1, x1, h=40, w=40):
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def test_occlusion_and_recomputed_box():
    dst = sample([rect(0, 0, 20, 20)], T=2)
    src = sample([rect(0, 12, 20, 30), rect(30, 30, 40, 40)], value=200, T=2, labels=[3, 4])
    # m = 2 -> exactly one instance; scale 1 on a same-sized image: no shift
    for seed in range(20):
        out = copy_paste(dst, src, np.random.default_rng(seed), scale_range=(1.0, 1.0))
        if out["labels"].tolist() == [0, 3]:
            break
    else:
        pytest.fail("the first source instance was never chosen")
    m = out["masks"].numpy()
    assert m.shape == (2, 2, 40, 40)
    assert np.array_equal(m[0, 0], rect(0, 0, 20, 12))  # 160 of 400 pixels covered (< 0.5): occluded, kept
    assert np.array_equal(m[1, 1], rect(0, 12, 20, 30))
    assert torch.allclose(out["boxes"][0, 0], torch.tensor([6 / 40, 10 / 40, 12 / 40, 20 / 40]))
    assert out["valid"].all()
    img = out["images"].numpy()
    assert (img[:, :, 0:20, 12:30] == 200).all() and (img[:, :, 20:, :] == 10).all()
    assert out["ann_ids"] == [1, -1]


def test_instance_covering_half_of_an_existing_mask_is_dropped():
    dst = sample([rect(0, 0, 20, 20)])
    src = sample([rect(0, 10, 20, 30), rect(0, 10, 20, 30)], value=200)  # covers exactly 0.5
    out = copy_paste(dst, src, np.random.default_rng(0), scale_range=(1.0, 1.0))
    assert out is dst


def test_fully_occluded_instance_is_removed():
    dst = sample([rect(0, 0, 40, 40), rect(5, 5, 7, 7)])  # the small one is covered entirely ...
    src = sample([rect(4, 4, 8, 8), rect(4, 4, 8, 8)], value=200)  # ... by 16 px, 1% of the big one
    # with the cover rule (0.5) such a paste is refused; without it the hidden instance disappears
    assert copy_paste(dst, src, np.random.default_rng(0), scale_range=(1.0, 1.0)) is dst
    out = copy_paste(dst, src, np.random.default_rng(0), scale_range=(1.0, 1.0), max_cover=2.0)
    assert out["masks"].shape[0] == 2
    assert out["ann_ids"] == [1, -1]
    assert int(out["masks"][0].sum()) == 1600 - 16


def test_scale_and_shift_keep_the_pasted_instance_inside():
    src = sample([rect(0, 0, 40, 40), rect(0, 0, 40, 40)], value=200)
    sizes = set()
    for seed in range(30):
        out = copy_paste(sample([]), src, np.random.default_rng(seed), scale_range=(0.3, 1.0))
        m = out["masks"][0, 0].numpy()
        ys, xs = np.nonzero(m)
        side = ys.max() - ys.min() + 1
        assert side == xs.max() - xs.min() + 1 and 12 <= side <= 40  # a square scaled by 0.3..1
        sizes.add(int(side))
    assert len(sizes) > 5


def test_pastes_one_to_m_minus_one_instances():
    src = sample([rect(10 * i, 0, 10 * i + 5, 5) for i in range(4)], value=200)
    counts = {copy_paste(sample([]), src, np.random.default_rng(s), scale_range=(1.0, 1.0))["masks"].shape[0]
              for s in range(40)}
    assert counts == {1, 2, 3}


class Pool(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items
        self.num_classes = 1

    def __len__(self):
        return len(self.items)

    def __getitem__(self, key):
        return self.items[key[0] if isinstance(key, tuple) else key]


def test_dataset_wrapper_is_deterministic_in_the_seed():
    pool = Pool([sample([rect(0, 0, 10, 10)]), sample([rect(20, 20, 40, 40), rect(0, 30, 5, 40)], value=99)])
    ds = CopyPasteDataset(pool, prob=1.0)
    a, b = ds[(0, 123)], ds[(0, 123)]
    assert torch.equal(a["masks"], b["masks"]) and torch.equal(a["images"], b["images"])
    assert ds.num_classes == 1 and len(ds) == 2
    assert CopyPasteDataset(pool, prob=0.0)[(0, 5)] is pool.items[0]
