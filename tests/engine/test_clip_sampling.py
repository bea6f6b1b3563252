"""Clip frame sampling and clip-level transforms: hand-computed values and edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from wsovvis.data.clip_sampler import frame_pool, sample_clip_indices
from wsovvis.data.transforms import ClipAugmentation, ClipTransform, resized_hw


def test_frame_pool_hand_values():
    assert frame_pool(10, 5, 2).tolist() == [3, 4, 6, 7]
    assert frame_pool(10, 0, 3).tolist() == [1, 2, 3]  # clipped at the start
    assert frame_pool(10, 9, 3).tolist() == [6, 7, 8]  # clipped at the end
    assert frame_pool(1, 0, 10).tolist() == []
    assert frame_pool(5, 2, 0).tolist() == []


def test_sample_clip_indices_within_range_sorted_with_reference():
    rng = np.random.default_rng(0)
    for _ in range(200):
        length = int(rng.integers(2, 40))
        ref = int(rng.integers(length))
        idx = sample_clip_indices(length, 5, 3, rng, ref=ref)
        assert len(idx) == 5
        assert idx == sorted(idx)
        assert ref in idx
        assert all(abs(i - ref) <= 3 and 0 <= i < length for i in idx)


def test_one_frame_video_and_zero_range_repeat_the_reference():
    rng = np.random.default_rng(1)
    assert sample_clip_indices(1, 5, 10, rng) == [0, 0, 0, 0, 0]
    assert sample_clip_indices(8, 3, 0, rng, ref=4) == [4, 4, 4]
    assert sample_clip_indices(8, 1, 3, rng, ref=6) == [6]
    with pytest.raises(ValueError, match="0 frames"):
        sample_clip_indices(0, 3, 2, rng)


def test_sampling_is_a_function_of_the_seed():
    a = [sample_clip_indices(30, 5, 10, np.random.default_rng(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    b = {tuple(sample_clip_indices(30, 5, 10, np.random.default_rng(s))) for s in range(20)}
    assert len(b) > 10


def test_resized_hw_hand_values():
    assert resized_hw(480, 640, 360, 1333) == (360, 480)
    assert resized_hw(720, 1280, 360, 1333) == (360, 640)
    # the long side would be 3600 > 1333: the max size wins (scale 1333/1000)
    assert resized_hw(100, 1000, 360, 1333) == (133, 1333)
    assert resized_hw(96, 128, 96, 1333) == (96, 128)
    assert resized_hw(97, 128, 64, 1333) == (64, 84)  # 128 * 64/97 = 84.45 -> 84


def test_transform_keeps_frames_and_masks_aligned():
    img = np.zeros((40, 60, 3), dtype=np.uint8)
    img[5:15, 10:20] = 255  # a square at rows 5..14, cols 10..19
    mask = np.zeros((1, 40, 60), dtype=bool)
    mask[0, 5:15, 10:20] = True
    tf = ClipTransform(src_hw=(40, 60), out_hw=(20, 30), flip=True)
    out_img, out_mask = tf.apply_image(img), tf.apply_masks(mask)
    assert out_img.shape == (20, 30, 3) and out_mask.shape == (1, 20, 30)
    # nearest halving samples source pixel 2y: rows 5..14 -> 3..7, cols 10..19 -> 5..9, mirrored -> 20..24
    ys, xs = np.nonzero(out_mask[0])
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (3, 7, 20, 24)
    bright = out_img[..., 0] > 127
    assert (bright == out_mask[0]).mean() > 0.97


def test_crop_then_resize():
    masks = np.zeros((2, 50, 50), dtype=bool)
    masks[0, 0:10, 0:10] = True  # cropped away by the crop below
    masks[1, 30:40, 30:40] = True
    tf = ClipTransform(src_hw=(50, 50), out_hw=(25, 25), crop=(20, 20, 25, 25))
    out = tf.apply_masks(masks)
    assert out.shape == (2, 25, 25)
    assert not out[0].any()
    ys, xs = np.nonzero(out[1])
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (10, 19, 10, 19)  # rows 30..39 -> 10..19 of the crop


def test_augmentation_draws_one_size_and_flip_per_clip():
    aug = ClipAugmentation(min_sizes=[64, 96], max_size=1000, flip_prob=0.5, crop_prob=1.0, crop_size=(30, 40))
    seen_sizes, seen_flips = set(), set()
    for s in range(40):
        tf = aug.sample(100, 120, np.random.default_rng(s))
        y0, x0, ch, cw = tf.crop
        assert 30 <= ch <= 40 and 30 <= cw <= 40 and y0 + ch <= 100 and x0 + cw <= 120
        assert min(tf.out_hw) in (64, 96)
        seen_sizes.add(min(tf.out_hw))
        seen_flips.add(tf.flip)
    assert seen_sizes == {64, 96} and seen_flips == {True, False}
