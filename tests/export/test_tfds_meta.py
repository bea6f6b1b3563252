"""TFDS metadata beside tfds-profile shards; with tensorflow_datasets installed (optional), TFDS opens them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wsovvis.data import coco as coco_io
from wsovvis.errors import WsovvisError
from wsovvis.export import reader, shards


def _coco(synthetic_data):
    data = coco_io.ytvis_to_coco(json.loads(synthetic_data.gt_json.read_text()))
    data["images"].append({"id": 99, "file_name": data["images"][0]["file_name"], "height": 96, "width": 128})
    return data


def _export_two_splits(synthetic_data, folder):
    data = _coco(synthetic_data)
    val = dict(data, images=data["images"][:5], annotations=[a for a in data["annotations"] if a["image_id"] <= 5])
    shards.export_tfrecord(data, synthetic_data.img_root, folder / "train", num_shards=3, profile="tfds",
                           progress=False)
    shards.export_tfrecord(val, synthetic_data.img_root, folder / "validation", num_shards=1, profile="tfds",
                           progress=False)
    return data, val


def test_metadata_lists_every_split(synthetic_data, tmp_path):
    folder = tmp_path / "data" / "shapes" / "1.0.0"
    data, val = _export_two_splits(synthetic_data, folder)
    info = json.loads((folder / "dataset_info.json").read_text())
    assert (info["name"], info["version"], info["fileFormat"]) == ("shapes", "1.0.0", "tfrecord")
    assert [s["name"] for s in info["splits"]] == ["train", "validation"]
    for split, n_shards in (("train", 3), ("validation", 1)):
        entry = next(s for s in info["splits"] if s["name"] == split)
        files = shards.shard_paths(folder / split, n_shards)
        lengths = [sum(1 for _ in reader.read_examples([p])) for p in files]
        assert entry["shardLengths"] == [str(n) for n in lengths]
        assert entry["numBytes"] == str(sum(p.stat().st_size for p in files))
        assert entry["filepathTemplate"] == "{SPLIT}-{SHARD_X_OF_Y}.{FILEFORMAT}"
    assert sum(int(n) for n in info["splits"][0]["shardLengths"]) == len(data["images"])
    names = [c["name"] for c in sorted(data["categories"], key=lambda c: c["id"])]
    assert (folder / "objects-label.labels.txt").read_text().splitlines() == names
    feats = json.loads((folder / "features.json").read_text())["featuresDict"]["features"]
    obj = feats["objects"]["sequence"]["feature"]["featuresDict"]["features"]
    assert obj["label"]["classLabel"]["numClasses"] == str(len(names))
    assert obj["bbox"]["boundingBox"]["bboxFormat"] == "REL_YXYX"
    assert feats["image"]["image"]["encodingFormat"] == "jpeg"
    # another split with other categories would make labels mean other classes: refused before writing
    other = dict(val, categories=val["categories"][:2],
                 annotations=[a for a in val["annotations"] if a["category_id"] in (1, 2)])
    with pytest.raises(WsovvisError, match="label map.*differs"):
        shards.export_tfrecord(other, synthetic_data.img_root, folder / "test", profile="tfds", progress=False)
    assert not list(folder.glob("test-*"))
    with pytest.raises(WsovvisError, match="split name"):
        shards.export_tfrecord(val, synthetic_data.img_root, folder / "val-2", profile="tfds", progress=False)
    # outside a <name>/<version> folder: the folder's name and 1.0.0
    rep = shards.export_tfrecord(val, synthetic_data.img_root, tmp_path / "flat" / "train", profile="tfds",
                                 tfds_version="2.1.0", progress=False)
    info = json.loads((tmp_path / "flat" / "dataset_info.json").read_text())
    assert (info["name"], info["version"]) == ("flat", "2.1.0") and rep["tfds_metadata"].endswith("dataset_info.json")


def test_tfds_opens_the_export(synthetic_data, tmp_path):
    """Optional (tensorflow_datasets is not a dependency): tfds.builder(name, data_dir) decodes every record."""
    tfds = pytest.importorskip("tensorflow_datasets")
    data_dir = tmp_path / "data"
    data, val = _export_two_splits(synthetic_data, data_dir / "shapes" / "1.0.0")
    builder = tfds.builder("shapes", data_dir=str(data_dir))  # what Scenic's OWL-ViT input pipeline calls
    names = [c["name"] for c in sorted(data["categories"], key=lambda c: c["id"])]
    assert builder.info.features["objects"]["label"].names == names
    assert builder.info.splits["train"].num_examples == len(data["images"])
    assert builder.info.splits["validation"].num_examples == len(val["images"])
    label_of = {n: i for i, n in enumerate(names)}
    cat_name = {c["id"]: c["name"] for c in data["categories"]}
    by_image = {}
    for a in data["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    seen = set()
    for ex in tfds.as_numpy(builder.as_dataset(split="train")):
        image_id = int(ex["image/id"])
        seen.add(image_id)
        anns = sorted(by_image.get(image_id, []), key=lambda a: a["id"])
        assert ex["image"].shape == (96, 128, 3) and ex["image"].dtype == np.uint8
        obj = ex["objects"]
        assert obj["id"].tolist() == [a["id"] for a in anns]
        assert obj["label"].tolist() == [label_of[cat_name[a["category_id"]]] for a in anns]
        assert obj["is_crowd"].dtype == bool and not obj["is_crowd"].any()
        expect = [[a["bbox"][1] / 96, a["bbox"][0] / 128, (a["bbox"][1] + a["bbox"][3]) / 96,
                   (a["bbox"][0] + a["bbox"][2]) / 128] for a in anns]
        np.testing.assert_allclose(obj["bbox"], np.asarray(expect, dtype=np.float32).reshape(-1, 4), atol=1e-6)
    assert seen == {im["id"] for im in data["images"]}
    assert sum(1 for _ in tfds.builder_from_directory(str(data_dir / "shapes" / "1.0.0")).as_dataset(
        split="validation")) == len(val["images"])
