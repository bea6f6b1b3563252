"""Images in training through the real entry point: SeqFormer on images as pseudo-videos mixed with
videos (+ copy-paste), Mask R-CNN on images only; bad COCO input is skipped, not a crash."""

from __future__ import annotations

import json

import pytest

from tests.engine.conftest import run_train
from tests.maskrcnn.test_maskrcnn_train import TINY
from wsovvis.data.coco import ytvis_to_coco
from wsovvis.utils.io import read_json

SMALL = ["input.min_size_train=[64]", "input.max_size_train=64", "data.num_workers=0", "num_threads=1",
         "device=cpu", "progress=False", "plots=False", "data.train_classes=agnostic", "eval.at_end=False",
         "eval.period=0"]


@pytest.fixture(scope="module")
def image_set(tmp_path_factory):
    from wsovvis.data.synthetic import generate_dataset

    d = generate_dataset(tmp_path_factory.mktemp("img64"), num_videos=2, num_frames=2, height=64, width=64, seed=2)
    coco = ytvis_to_coco(read_json(d.gt_json, "gt"), polygons=True)
    coco.pop("videos"), coco.pop("tracks")  # a plain COCO file: every frame an image
    coco["images"].append({"id": 999, "file_name": "nowhere/0.jpg", "height": 64, "width": 64})
    coco["annotations"].append({"id": 999, "image_id": coco["images"][0]["id"], "category_id": 1, "iscrowd": 0,
                                "segmentation": [[1, 1, 4, 4]], "bbox": [1, 1, 3, 3], "area": 9})
    coco["annotations"].append({"id": 998, "image_id": coco["images"][0]["id"], "category_id": 1, "iscrowd": 0,
                                "segmentation": [[1, 1, 4, 1, 4, 4]], "bbox": [1, 1, 0, 3], "area": 0})
    path = d.root / "coco.json"
    path.write_text(json.dumps(coco))
    return d, path


@pytest.mark.slow
def test_seqformer_images_as_pseudo_videos_mixed_with_videos_and_copy_paste(image_set, tmp_path):
    d, coco = image_set
    argv = ["debug=cpu_smoke", "eval=off", "with", f"data.train_json={d.gt_json}", f"data.train_img_root={d.img_root}",
            f"data.images.json={coco}", f"data.images.img_root={d.img_root}", "data.images.ratio=0.5",
            "data.copy_paste.enabled=True", *SMALL, "solver.max_iter=2", "solver.checkpoint_period=2",
            "model.num_classes=1", "-F", str(tmp_path / "runs"), "-c", "no"]
    r = run_train(argv, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "1 images missing on disk" in r.stderr and "1 polygons with < 3 points" in r.stderr
    assert "1 zero-area boxes" in r.stderr
    report = json.loads((tmp_path / "runs" / "1" / "data_report.json").read_text())
    assert report["videos"] == 2 + 4  # 2 videos + 4 frames as images
    assert any(s["reason"].startswith("missing image") for s in report["skipped_videos"])


@pytest.mark.slow
def test_maskrcnn_on_images_only(image_set, tmp_path):
    d, coco = image_set
    argv = ["debug=cpu_smoke", "eval=off", "model=maskrcnn_r50", "with", f"data.images.json={coco}",
            f"data.images.img_root={d.img_root}", "data.images.ratio=1.0", "data.images.min_crop=1.0",
            "input.sampling_frame_num=1", *TINY, *SMALL, "solver.max_iter=2", "solver.checkpoint_period=2",
            "-F", str(tmp_path / "runs"), "-c", "no"]
    r = run_train(argv, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-4000:]
    rows = [json.loads(x) for x in (tmp_path / "runs" / "1" / "metrics.jsonl").read_text().splitlines()]
    assert rows and "loss_mask" in rows[0]
