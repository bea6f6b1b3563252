"""Still images as training data: bad COCO input skipped with counts, pseudo-videos, the mixed sampler."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from wsovvis.data.coco import coco_to_ytvis
from wsovvis.data.image_clips import ImageClipDataset, load_image_instances
from wsovvis.data.mixed import MixedClipSampler
from wsovvis.data.transforms import ClipAugmentation


def _square_image(path, h=48, w=64, box=(10, 12, 30, 40)):
    img = np.full((h, w, 3), 30, dtype=np.uint8)
    y0, x0, y1, x1 = box
    img[y0:y1, x0:x1] = (220, 40, 40)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def _poly(y0, x0, y1, x1):
    return [x0, y0, x1, y0, x1, y1, x0, y1]


@pytest.fixture
def coco_dir(tmp_path):
    for k in (1, 2, 3):
        _square_image(tmp_path / "img" / f"{k}.png")
    images = [{"id": k, "file_name": f"{k}.png", "height": 48, "width": 64} for k in (1, 2, 3, 4)]  # 4.png missing
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": [_poly(10, 12, 30, 40)],
         "bbox": [12, 10, 28, 20], "area": 560},
        {"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": [[1, 1, 5, 5]]},  # 2 points
        {"id": 3, "image_id": 2, "category_id": 1, "iscrowd": 0,  # one good part, one 2-point part
         "segmentation": [_poly(10, 12, 30, 40), [0, 0, 3, 3]]},
        {"id": 4, "image_id": 2, "category_id": 1, "iscrowd": 0, "segmentation": [_poly(0, 0, 4, 4)],
         "bbox": [0, 0, 0, 4]},  # zero-area box
        {"id": 5, "image_id": 3, "category_id": 1, "iscrowd": 1, "segmentation": [_poly(0, 0, 4, 4)]},  # crowd
        {"id": 6, "image_id": 4, "category_id": 1, "iscrowd": 0, "segmentation": [_poly(0, 0, 4, 4)]},
    ]
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "obj"}]}))
    return path, tmp_path / "img"


def test_bad_coco_input_is_skipped_with_counts(coco_dir):
    path, root = coco_dir
    inst = load_image_instances(path, root)
    assert inst.skip_counts == {
        "images missing on disk": 1,
        "polygons with < 3 points": 2,
        "annotations without a polygon of >= 3 points": 1,
        "zero-area boxes": 1,
        "crowd annotations": 1,
        "images without a usable annotation": 1,  # image 3: only a crowd annotation
    }
    assert [r.id for r in inst.records] == [1, 2]
    assert [r.ann_ids for r in inst.records] == [[1], [3]]
    assert {s.video_id for s in inst.skipped} == {3, 4}


def test_images_become_pseudo_videos_with_independent_crops(coco_dir):
    path, root = coco_dir
    aug = ClipAugmentation(min_sizes=[48], max_size=200, flip_prob=0.5)
    ds = ImageClipDataset(path, root, num_frames=3, augmentation=aug, min_crop=0.6)
    assert len(ds) == 2 and ds.num_classes == 1
    s = ds[(0, 7)]
    T, _, h, w = s["images"].shape
    assert T == 3 and s["masks"].shape == (1, 3, h, w) and s["valid"].all()
    assert s["frame_indices"] == [0, 0, 0] and s["ann_ids"] == [1]
    img = s["images"].permute(0, 2, 3, 1).numpy().astype(int)
    for t in range(T):
        m = s["masks"][0, t].numpy()
        inside = img[t][m]
        assert (np.abs(inside - [220, 40, 40]).max(axis=1) < 40).mean() > 0.9  # the mask sits on the red square
    assert len({tuple(s["boxes"][0, t].tolist()) for t in range(T)}) > 1  # frames cropped independently
    again = ds[(0, 7)]
    assert (again["images"] == s["images"]).all()


def test_one_frame_youtube_vis_file_reads_like_coco(coco_dir, tmp_path):
    path, root = coco_dir
    data = json.loads(path.read_text())
    data["annotations"] = [a for a in data["annotations"] if a["id"] in (1, 3)]
    for a in data["annotations"]:
        a["segmentation"] = [a["segmentation"][0]]
    yt = tmp_path / "one_frame.json"
    yt.write_text(json.dumps(coco_to_ytvis(data)))
    inst = load_image_instances(yt, root)
    assert [r.id for r in inst.records] == [1, 2]
    assert inst.skip_counts["images missing on disk"] == 1


def test_mixed_sampler_ratio_resume_and_ranks():
    s = MixedClipSampler(num_videos=5, num_images=20, ratio=0.25, seed=3)
    it = iter(s)
    draws = [next(it) for _ in range(4000)]
    share = sum(i >= 5 for i, _ in draws) / len(draws)
    assert 0.22 < share < 0.28
    assert Counter(i for i, _ in draws if i < 5).keys() == set(range(5))
    resumed = iter(MixedClipSampler(5, 20, 0.25, seed=3, start=100))
    assert [next(resumed) for _ in range(10)] == draws[100:110]
    r0 = iter(MixedClipSampler(5, 20, 0.25, seed=3, rank=0, world_size=2))
    r1 = iter(MixedClipSampler(5, 20, 0.25, seed=3, rank=1, world_size=2))
    assert [next(r0) for _ in range(5)] == draws[0:10:2] and [next(r1) for _ in range(5)] == draws[1:10:2]
    only_images = MixedClipSampler(0, 20, 0.1, seed=0)  # no videos: every draw is an image
    assert only_images.ratio == 1.0 and {only_images.draw(p)[0] for p in range(200)} == set(range(20))
