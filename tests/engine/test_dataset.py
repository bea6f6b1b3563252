"""Training/inference datasets: targets, absent instances, skips, 1-frame videos, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsovvis.data.dataset import YTVISClipDataset, YTVISVideoDataset, box_cxcywh
from wsovvis.data.transforms import ClipAugmentation
from wsovvis.errors import WsovvisError

from .helpers import box_mask, frames, write_video_set

NO_AUG = ClipAugmentation(min_sizes=[32], max_size=1000, flip_prob=0.0)


def test_box_cxcywh_hand_values():
    m = box_mask(10, 20, 2, 4, 6, 8)  # rows 2..5, cols 4..7
    assert box_cxcywh(m) == pytest.approx((6 / 20, 4 / 10, 4 / 20, 4 / 10))
    assert box_cxcywh(np.zeros((4, 4), dtype=bool)) is None


@pytest.fixture()
def small_set(tmp_path):
    h, w = 32, 48
    a = box_mask(h, w, 4, 8, 12, 24)
    b = box_mask(h, w, 16, 0, 32, 16)
    videos = [
        # track 1 present in frames 0 and 2 only; track 2 only in frame 1
        {"name": "v1", "frames": frames(3), "tracks": [(1, [a, None, a]), (2, [None, b, None])]},
        {"name": "empty", "frames": frames(2), "tracks": []},
        {"name": "single", "frames": frames(1), "tracks": [(2, [b])]},
    ]
    return write_video_set(tmp_path, videos), tmp_path / "JPEGImages"


def test_targets_absent_frames_are_zero_and_invalid(small_set):
    json_path, root = small_set
    ds = YTVISClipDataset(json_path, root, num_frames=3, frame_range=2, augmentation=NO_AUG, drop_empty=True)
    assert len(ds) == 2 and [s.reason for s in ds.skipped] == ["no annotations"]
    # reference frame 1 with range 2 and 3 frames: draw until the clip is exactly [0, 1, 2]
    for seed in range(200):
        s = ds[(0, seed)]
        if s["frame_indices"] == [0, 1, 2]:
            break
    else:
        pytest.fail("no clip [0, 1, 2] in 200 seeds")
    assert s["images"].shape == (3, 3, 32, 48) and s["images"].dtype == torch.uint8
    assert s["images"][:, 0, 0, 0].tolist() == [100, 101, 102]
    assert s["labels"].tolist() == [0, 1]  # category ids 1, 2 -> contiguous 0, 1
    assert s["valid"].tolist() == [[True, False, True], [False, True, False]]
    assert s["masks"].shape == (2, 3, 32, 48)
    assert not s["masks"][0, 1].any() and not s["masks"][1, 0].any()
    assert s["masks"][0, 0].sum() == 8 * 16
    assert s["boxes"][0, 1].tolist() == [0, 0, 0, 0]
    assert s["boxes"][0, 0].tolist() == pytest.approx([16 / 48, 8 / 32, 16 / 48, 8 / 32])
    assert s["boxes"][1, 1].tolist() == pytest.approx([8 / 48, 24 / 32, 16 / 48, 16 / 32])
    assert s["size"].tolist() == [32, 48]


def test_instances_absent_from_the_whole_clip_are_left_out(small_set):
    json_path, root = small_set
    ds = YTVISClipDataset(json_path, root, num_frames=1, frame_range=0, augmentation=NO_AUG)
    for seed in range(50):
        s = ds[(0, seed)]
        t = s["frame_indices"][0]
        assert s["labels"].tolist() == ([1] if t == 1 else [0])
        assert s["valid"].all()


def test_one_frame_video_gives_a_repeated_clip(small_set):
    json_path, root = small_set
    ds = YTVISClipDataset(json_path, root, num_frames=4, frame_range=10, augmentation=NO_AUG)
    s = ds[(2, 3)]
    assert s["frame_indices"] == [0, 0, 0, 0]
    assert s["masks"].shape == (1, 4, 32, 48) and s["valid"].all()


def test_videos_without_annotations_are_negatives_by_default(small_set):
    """VNext keeps them (FILTER_EMPTY_ANNOTATIONS False): a clip with frames and no targets."""
    json_path, root = small_set
    ds = YTVISClipDataset(json_path, root, num_frames=2, frame_range=1, augmentation=NO_AUG)
    assert len(ds) == 3 and ds.negatives == 1 and ds.skipped == []
    s = ds[(1, 0)]
    assert s["images"].shape == (2, 3, 32, 48) and s["masks"].shape == (0, 2, 32, 48)
    assert s["labels"].shape == (0,) and s["boxes"].shape == (0, 2, 4) and s["valid"].shape == (0, 2)


def test_class_agnostic_labels_and_resize(small_set):
    json_path, root = small_set
    aug = ClipAugmentation(min_sizes=[16], max_size=1000, flip_prob=1.0)
    ds = YTVISClipDataset(json_path, root, num_frames=3, frame_range=2, augmentation=aug, class_agnostic=True)
    s = ds[(0, 5)]
    assert set(s["labels"].tolist()) == {0}
    assert s["images"].shape[-2:] == (16, 24) and s["masks"].shape[-2:] == (16, 24)
    assert s["size"].tolist() == [16, 24]
    assert ds.num_classes == 1


def test_same_seed_same_clip(small_set):
    json_path, root = small_set
    aug = ClipAugmentation(min_sizes=[16, 24, 32], max_size=1000, flip_prob=0.5)
    ds = YTVISClipDataset(json_path, root, num_frames=3, frame_range=2, augmentation=aug)
    a, b = ds[(0, 11)], ds[(0, 11)]
    assert a["frame_indices"] == b["frame_indices"]
    assert torch.equal(a["images"], b["images"]) and torch.equal(a["masks"], b["masks"])


def test_missing_frames_and_unlabelled_json(tmp_path):
    h, w = 32, 48
    m = box_mask(h, w, 0, 0, 8, 8)
    json_path = write_video_set(tmp_path, [{"name": "a", "frames": frames(2), "tracks": [(1, [m, m])]},
                                           {"name": "b", "frames": frames(2), "tracks": [(1, [m, m])]}])
    (tmp_path / "JPEGImages" / "b" / "00001.png").unlink()
    ds = YTVISClipDataset(json_path, tmp_path / "JPEGImages", num_frames=2, frame_range=1, augmentation=NO_AUG)
    assert len(ds) == 1
    assert ds.skipped[0].name == "b" and "00001.png" in ds.skipped[0].reason
    (tmp_path / "JPEGImages" / "a" / "00000.png").unlink()
    with pytest.raises(WsovvisError, match="no video with annotations and frames"):
        YTVISClipDataset(json_path, tmp_path / "JPEGImages", num_frames=2, frame_range=1, augmentation=NO_AUG)
    nolabels = write_video_set(tmp_path / "n", [{"name": "a", "frames": frames(1)}], annotations=False)
    with pytest.raises(WsovvisError, match="has no 'annotations'"):
        YTVISClipDataset(nolabels, tmp_path / "n" / "JPEGImages", num_frames=1, frame_range=0, augmentation=NO_AUG)


def test_video_dataset_streams_frames(small_set):
    json_path, root = small_set
    val = YTVISVideoDataset(json_path, root, max_videos=2)
    assert len(val) == 2
    got = list(val.frames(0))
    assert len(got) == 3 and got[2].shape == (32, 48, 3) and got[2][0, 0, 0] == 102


def test_synthetic_clips_through_the_loader(synthetic_data):
    """The real synthetic set through the training loader: one canvas, boxes inside [0, 1]."""
    from wsovvis.data.collate import collate_clips

    aug = ClipAugmentation(min_sizes=[64, 96], max_size=200, flip_prob=0.5)
    ds = YTVISClipDataset(synthetic_data.gt_json, synthetic_data.img_root, num_frames=3, frame_range=2,
                          augmentation=aug)
    batch = collate_clips([ds[(i % len(ds), i)] for i in range(4)])
    hp, wp = batch["images"].shape[-2:]
    assert hp % 32 == 0 and wp % 32 == 0
    for t in batch["targets"]:
        assert t["masks"].shape[-2:] == (hp, wp)
        assert (t["boxes"] >= 0).all() and (t["boxes"] <= 1).all()
        assert t["valid"].any(dim=1).all()  # every kept instance is visible in at least one frame
        assert (t["masks"].flatten(2).any(-1) == t["valid"]).all()
