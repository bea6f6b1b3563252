"""TFRecord export: framing and Example bytes (TensorFlow's, hard-coded), COCO -> shards -> read back, bad input."""

from __future__ import annotations

import io
import json
import math
import shutil

import numpy as np
import pytest
from PIL import Image

from wsovvis.data import coco as coco_io
from wsovvis.data import rle
from wsovvis.errors import WsovvisError
from wsovvis.export import example_proto, reader, shards, tfrecord
from wsovvis.export.examples import to_nested, yxyx_normalised

# Bytes written by tensorflow-cpu 2.21.0 (tf.io.TFRecordWriter: records b"hello" and b""; and
# tf.train.Example{a: int64 [1], b: float [0.5], c: bytes [b"x"]}.SerializeToString(deterministic=True)).
TF_FRAMES = bytes.fromhex("0500000000000000eab2043e68656c6c6fbb1f1c19000000000000000029039807d8ea82a2")
TF_EXAMPLE = bytes.fromhex("0a270a0a0a016112051a030a01010a0d0a0162120812060a040000003f0a0a0a016312050a030a0178")


def test_framing_and_example_bytes_equal_tensorflows(tmp_path):
    assert tfrecord.frame(b"hello") + tfrecord.frame(b"") == TF_FRAMES
    assert tfrecord.masked_crc(b"") == 0xA282EAD8
    feats = {"a": ("int64", [1]), "b": ("float", [0.5]), "c": ("bytes", [b"x"])}
    assert example_proto.encode_example(feats) == TF_EXAMPLE
    assert example_proto.decode_example(TF_EXAMPLE) == feats
    path = tmp_path / "x.tfrecord"
    path.write_bytes(TF_FRAMES)
    assert list(tfrecord.read_records(path)) == [b"hello", b""]
    with open(tmp_path / "y.tfrecord", "wb") as f:
        assert tfrecord.write_record(f, b"hello") == 21
    assert (tmp_path / "y.tfrecord").read_bytes() == TF_FRAMES[:21]
    with open(tmp_path / "z.tfrecord", "wb") as f:
        assert tfrecord.write_record_parts(f, [b"he", b"", b"llo"]) == 21
        assert tfrecord.write_record_parts(f, []) == 16
    assert (tmp_path / "z.tfrecord").read_bytes() == TF_FRAMES


def test_example_round_trip_of_every_kind():
    feats = {"e": ("int64", []), "f": ("float", [0.25, -1.5, 3.0]), "i": ("int64", [0, -2, 2**40]),
             "s": ("bytes", [b"", b"\x00\xff" * 10])}
    assert example_proto.decode_example(example_proto.encode_example(feats)) == feats
    with pytest.raises(WsovvisError, match="r.tfrecord: record 3: not a tf.train.Example"):
        example_proto.decode_example(b"\xff\xff\xff", where="r.tfrecord: record 3")


def test_direct_encoder_equals_protobuf_runtime():
    rng = np.random.default_rng(0)
    special = [0, 1, 127, 128, -1, 2**63 - 1, -(2**63), 2**40 + 3, -(2**35), 16383, 16384, 2**21 - 1, 2**21, 409920]
    keys = ["a", "b/c", "image/encoded", "objects/bbox", "z", "\u00e9/x", "k" * 200]  # none a prefix of another
    for _ in range(200):
        feats = {}
        for key in rng.choice(keys, size=rng.integers(0, 6), replace=False).tolist():
            n = int(rng.choice([0, 1, 3, 200]))
            kind = str(rng.choice(example_proto.KINDS))
            if kind == "bytes":
                vals = [rng.bytes(int(rng.choice([0, 5, 300, 4096, 20000]))) for _ in range(min(n, 3))]
            elif kind == "float":
                vals = rng.uniform(-1e6, 1e6, n).astype(np.float32).tolist()
            else:
                vals = [int(v) for v in rng.choice(special, n)]
            feats[key] = (kind, vals)
        data = example_proto.encode_example(feats)
        assert data == example_proto.encode_example_protobuf(feats)
        assert example_proto.decode_example(data) == dict(sorted(feats.items()))
    # keys that prefix one another: C++ order (bytes), which upb does not use; the parsed values agree
    feats = {"image": ("bytes", [b"jpeg"]), "image/id": ("int64", [3]), "a": ("float", [0.5]), "ab": ("int64", [])}
    data = example_proto.encode_example(feats)
    assert example_proto.decode_example(data) == example_proto.decode_example(
        example_proto.encode_example_protobuf(feats)) == dict(sorted(feats.items()))
    assert data.index(b"image/id") > data.index(b"jpeg")


def test_damaged_files_name_file_record_and_offset(tmp_path):
    good = tfrecord.frame(b"abc") + tfrecord.frame(b"defg")
    bad = bytearray(good)
    bad[19 + 12 + 1] ^= 0x01  # a data byte of record 1
    path = tmp_path / "bad.tfrecord"
    path.write_bytes(bytes(bad))
    it = tfrecord.read_records(path)
    assert next(it) == b"abc"
    with pytest.raises(WsovvisError, match=r"bad.tfrecord: record 1 at byte 19: data CRC mismatch"):
        next(it)
    path.write_bytes(good[:-3])
    with pytest.raises(WsovvisError, match="record 1 at byte 19: truncated record"):
        list(tfrecord.read_records(path))
    path.write_bytes(b"not a tfrecord at all")
    with pytest.raises(WsovvisError, match="length CRC mismatch"):
        list(tfrecord.read_records(path))


def test_box_conversion_is_exact_and_clips():
    box, clipped = yxyx_normalised([10, 20, 30, 40], 100, 200)
    assert box == [0.2, 0.05, 0.6, 0.2] and not clipped
    box, clipped = yxyx_normalised([-5, 90, 30, 20], 100, 200)
    assert box == [0.9, 0.0, 1.0, 25 / 200] and clipped


def _read_all(prefix):
    return [(p.name, i, f) for p, i, f in reader.read_examples(reader.expand_paths([str(prefix)]))]


@pytest.mark.parametrize("profile", ["scenic", "tfds"])
def test_synthetic_coco_to_tfrecord_round_trip(synthetic_data, tmp_path, profile):
    data = coco_io.ytvis_to_coco(json.loads(synthetic_data.gt_json.read_text()))
    data["images"].append({"id": 99, "file_name": data["images"][0]["file_name"], "height": 96, "width": 128})
    prefix = tmp_path / "out" / "train"
    rep = shards.export_tfrecord(data, synthetic_data.img_root, prefix, num_shards=4, profile=profile,
                                 progress=False)
    n_images = len(data["images"])
    assert rep["counts"]["records"] == n_images and rep["counts"]["skipped"] == 0
    assert rep["counts"]["empty_images"] == 1 and rep["counts"]["reencoded"] == 0
    assert [p.split("/")[-1] for p in rep["shards"]] == [f"train-0000{i}-of-00004.tfrecord" for i in range(4)]
    records = _read_all(prefix)
    assert len(records) == n_images
    # round robin over sorted image ids
    ids_sorted = sorted(im["id"] for im in data["images"])
    for name, i, f in records:
        k = int(name.split("-")[1])
        assert f["image/id"][1] == [ids_sorted[k + 4 * i]]
    lm = json.loads((tmp_path / "out" / "label_map.json").read_text())
    cats = sorted(data["categories"], key=lambda c: c["id"])
    assert lm["names"] == [c["name"] for c in cats] and lm["num_classes"] == len(cats)
    image_by_id = {im["id"]: im for im in data["images"]}
    anns_by_image = {}
    for a in data["annotations"]:
        anns_by_image.setdefault(a["image_id"], []).append(a)
    for _, _, f in records:
        nested = to_nested(f)
        im = image_by_id[nested["image/id"]]
        assert nested["image"] == (synthetic_data.img_root / im["file_name"]).read_bytes()
        assert nested["image/filename"] == im["file_name"]
        anns = sorted(anns_by_image.get(im["id"], []), key=lambda a: a["id"])
        obj = nested["objects"]
        assert obj["bbox"].shape == (len(anns), 4) and obj["bbox"].dtype == np.float32
        for k, a in enumerate(anns):
            x, y, w, h = a["bbox"]
            np.testing.assert_allclose(obj["bbox"][k], [y / 96, x / 128, (y + h) / 96, (x + w) / 128], atol=1e-6)
            assert lm["labels"][obj["label"][k]]["category_id"] == a["category_id"]
            assert obj["id"][k] == a["id"] and not obj["is_crowd"][k]
            assert obj["area"][k] == (round(w * h) if profile == "scenic" else math.trunc(a["area"]))
        if profile == "scenic":
            assert (nested["image/height"], nested["image/width"]) == (96, 128)
        else:
            assert "image/height" not in f and "image" in f and "image/encoded" not in f
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "train-*-of-00004.tfrecord" in readme and cats[0]["name"] in readme
    assert reader.check_tfrecords(reader.expand_paths([str(prefix)]))["ok"]


def test_shards_are_deterministic_whatever_the_workers(synthetic_data, tmp_path):
    data = coco_io.ytvis_to_coco(json.loads(synthetic_data.gt_json.read_text()))
    outs = []
    for run, workers in enumerate((1, 2, 2)):
        prefix = tmp_path / f"r{run}" / "train"
        shards.export_tfrecord(data, synthetic_data.img_root, prefix, num_shards=3, workers=workers, progress=False)
        outs.append([p.read_bytes() for p in shards.shard_paths(prefix, 3)])
    assert outs[0] == outs[1] == outs[2] and all(outs[0])
    assert shards.assign_shards([5, 1, 4, 2, 3], 2) == [[1, 3, 5], [2, 4]]
    # re-running needs --overwrite; a different shard count removes the stale files
    prefix = tmp_path / "r0" / "train"
    with pytest.raises(WsovvisError, match="already exist.*--overwrite"):
        shards.export_tfrecord(data, synthetic_data.img_root, prefix, num_shards=2, progress=False)
    shards.export_tfrecord(data, synthetic_data.img_root, prefix, num_shards=2, overwrite=True, progress=False)
    assert sorted(p.name for p in prefix.parent.glob("*.tfrecord")) == [
        "train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]


def _png_bytes(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_bad_input_is_clipped_skipped_reencoded_and_reported(tmp_path):
    root = tmp_path / "img"
    root.mkdir()
    rgb = (np.arange(40 * 50 * 3) % 251).astype(np.uint8).reshape(40, 50, 3)
    Image.fromarray(rgb).save(root / "a.jpg", quality=90)
    (root / "b.png").write_bytes(_png_bytes(rgb))
    (root / "broken.jpg").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    Image.fromarray(rgb).save(root / "small.jpg")
    mask = np.zeros((40, 50), bool)
    mask[5:15, 10:30] = True
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 40, "width": 50},
                   {"id": 2, "file_name": "b.png", "height": 40, "width": 50},
                   {"id": 3, "file_name": "broken.jpg", "height": 40, "width": 50},
                   {"id": 4, "file_name": "missing.jpg", "height": 40, "width": 50},
                   {"id": 5, "file_name": "small.jpg", "height": 20, "width": 50}],
        "categories": [{"id": 90, "name": "zebra"}, {"id": 3, "name": "car"}, {"id": 17, "name": "cat"}],
        "annotations": [
            {"id": 11, "image_id": 1, "category_id": 90, "bbox": [40, 30, 20, 20], "area": 100.7, "iscrowd": 1},
            {"id": 12, "image_id": 1, "category_id": 3, "segmentation": rle.encode(mask)},  # no bbox: from the mask
            {"id": 13, "image_id": 2, "category_id": 17, "bbox": [1, 2, 3, 4], "area": 12},
        ],
    }
    prefix = tmp_path / "out" / "val"
    rep = shards.export_tfrecord(data, root, prefix, num_shards=1, segmentation=True, progress=False)
    c = rep["counts"]
    assert (c["records"], c["skipped"], c["reencoded"], c["boxes_clipped"]) == (2, 3, 1, 1)
    assert c["skipped_by_kind"] == {"size_mismatch": 1, "undecodable": 1, "unreadable": 1}
    assert rep["clipped_annotation_ids"] == [11]
    assert "small.jpg: image is 40x50 (HxW) but the JSON says 20x50" in rep["skipped"]["size_mismatch"][0]
    lm = json.loads((tmp_path / "out" / "label_map.json").read_text())
    assert [(x["index"], x["category_id"], x["name"]) for x in lm["labels"]] == [
        (0, 3, "car"), (1, 17, "cat"), (2, 90, "zebra")]
    assert lm["contiguous_ids"] is False
    saved = json.loads((tmp_path / "out" / "val.export_report.json").read_text())
    assert saved["counts"] == c
    chk = reader.check_tfrecords(reader.expand_paths([str(prefix)]))  # with objects/segmentation
    assert chk["ok"] and chk["counts"]["records"] == 2 and chk["counts"]["boxes"] == 3
    (_, _, f1), (_, _, f2) = _read_all(prefix)
    n1, n2 = to_nested(f1), to_nested(f2)
    assert n1["image"] == (root / "a.jpg").read_bytes()
    expect = [[30 / 40, 40 / 50, 1.0, 1.0], [5 / 40, 10 / 50, 15 / 40, 30 / 50]]
    np.testing.assert_allclose(n1["objects"]["bbox"], expect, atol=1e-6)
    assert n1["objects"]["label"].tolist() == [2, 0] and n1["objects"]["is_crowd"].tolist() == [True, False]
    assert n1["objects"]["area"].tolist() == [400, 200]  # scenic: box w*h
    seg = np.asarray(Image.open(io.BytesIO(n1["objects"]["segmentation"][1])))
    np.testing.assert_array_equal(seg, mask.astype(np.uint8) * 255)
    assert not np.asarray(Image.open(io.BytesIO(n1["objects"]["segmentation"][0]))).any()
    # the PNG became a JPEG of the same picture
    assert n2["image"][:3] == b"\xff\xd8\xff" and shards.jpeg_size(n2["image"]) == (40, 50)
    back = np.asarray(Image.open(io.BytesIO(n2["image"])), dtype=np.int16)
    assert np.abs(back - rgb).mean() < 8
    # every image skipped: nothing written is an error from the CLI, not a silent empty file
    from wsovvis.cli import main

    only_bad = dict(data, images=data["images"][2:], annotations=[])
    (tmp_path / "bad.json").write_text(json.dumps(only_bad))
    assert main(["export", "tfrecord", "--coco", str(tmp_path / "bad.json"), "--img_root", str(root),
                 "--out", str(tmp_path / "o2" / "x")]) == 2


def test_check_finds_problems_and_cli_exit_codes(synthetic_data, tmp_path, capsys):
    from wsovvis.cli import main

    tubes = str(synthetic_data.gt_json)
    out = tmp_path / "o"
    assert main(["export", "tfrecord", "--tubes", tubes, "--every", "2", "--img_root", str(synthetic_data.img_root),
                 "--out", str(out / "train"), "--shards", "2", "--profile", "tfds"]) == 0
    assert main(["export", "check", str(out / "train"), "--report", str(tmp_path / "rep.json")]) == 0
    rep = json.loads((tmp_path / "rep.json").read_text())
    # 3 synthetic videos of 6 frames, every 2nd frame kept
    assert rep["ok"] and rep["counts"]["records"] == 9 and rep["counts"]["by_profile"] == {"tfds": 9}
    # a record whose boxes are out of range and whose labels exceed the label map
    bad = example_proto.encode_example({"image": ("bytes", [b"\xff\xd8\xffnot really"]),
                                        "image/filename": ("bytes", [b"x.jpg"]), "image/id": ("int64", [1]),
                                        "objects/bbox": ("float", [0.5, 0.5, 0.2, 1.5]),
                                        "objects/label": ("int64", [99]), "objects/id": ("int64", [1]),
                                        "objects/area": ("int64", []), "objects/is_crowd": ("int64", [0])})
    shutil.copy(out / "label_map.json", tmp_path / "label_map.json")
    with open(tmp_path / "bad-00000-of-00001.tfrecord", "wb") as f:
        tfrecord.write_record(f, bad)
    assert main(["export", "check", str(tmp_path / "bad")]) == 1
    err = capsys.readouterr().err
    assert "objects/area has 0 values for 1 boxes" in err and "outside [0, 1]" in err
    assert "objects/label outside 0..4" in err
    assert main(["export", "check", str(tmp_path / "nothing")]) == 2


def test_tensorflow_parses_every_record_of_both_profiles(synthetic_data, tmp_path):
    """Optional cross-check (tensorflow is not a dependency): Scenic's feature description parses every record."""
    tf = pytest.importorskip("tensorflow")
    data = coco_io.ytvis_to_coco(json.loads(synthetic_data.gt_json.read_text()))
    data["images"].append({"id": 99, "file_name": data["images"][0]["file_name"], "height": 96, "width": 128})
    by_image = {}
    for a in data["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    for profile in ("scenic", "tfds"):
        prefix = tmp_path / profile / "train"
        shards.export_tfrecord(data, synthetic_data.img_root, prefix, num_shards=2, profile=profile,
                               segmentation=profile == "scenic", progress=False)
        image_key = "image/encoded" if profile == "scenic" else "image"
        desc = {image_key: tf.io.FixedLenFeature([], tf.string), "image/id": tf.io.FixedLenFeature([], tf.int64),
                "image/filename": tf.io.FixedLenFeature([], tf.string)}
        desc.update({f"objects/{k}": tf.io.VarLenFeature(t) for k, t in (
            ("bbox", tf.float32), ("label", tf.int64), ("id", tf.int64), ("area", tf.int64), ("is_crowd", tf.int64))})
        if profile == "scenic":
            desc.update({"image/height": tf.io.FixedLenFeature([], tf.int64),
                         "image/width": tf.io.FixedLenFeature([], tf.int64),
                         "objects/segmentation": tf.io.VarLenFeature(tf.string)})
        files = [str(p) for p in shards.shard_paths(prefix, 2)]
        n = 0
        for rec in tf.data.TFRecordDataset(files):
            ex = tf.io.parse_single_example(rec, desc)
            image_id = int(ex["image/id"])
            anns = sorted(by_image.get(image_id, []), key=lambda a: a["id"])
            box = tf.reshape(tf.sparse.to_dense(ex["objects/bbox"]), [-1, 4]).numpy()
            assert box.shape == (len(anns), 4)
            assert tf.sparse.to_dense(ex["objects/id"]).numpy().tolist() == [a["id"] for a in anns]
            img = tf.io.decode_jpeg(ex[image_key], channels=3)
            assert tuple(img.shape) == (96, 128, 3)
            if profile == "scenic":
                masks = tf.sparse.to_dense(ex["objects/segmentation"])
                assert int(ex["image/height"]) == 96 and len(masks) == len(anns)
            n += 1
        assert n == len(data["images"])
        # the reading code in the generated README works as written
        readme = (prefix.parent / "README.md").read_text()
        code = readme.split("```python\n")[1].split("```")[0]
        scope: dict = {}
        exec(code, scope)  # noqa: S102 - our own generated snippet
        got = {int(x["image/id"]): x for x in scope["ds"]}
        assert len(got) == len(data["images"])
        for image_id, x in got.items():
            anns = sorted(by_image.get(image_id, []), key=lambda a: a["id"])
            assert tuple(x["image"].shape) == (96, 128, 3) and x["objects"]["bbox"].shape == (len(anns), 4)
            assert x["objects"]["is_crowd"].dtype == tf.bool
            assert x["objects"]["id"].numpy().tolist() == [a["id"] for a in anns]


def test_real_davis_tubes_to_tfrecord_round_trip(real_data, tmp_path):
    """The real DAVIS JPEGs and OSVOS tubes: every image's bytes and boxes come back (tfds profile)."""
    from wsovvis.data import convert as conv

    root = real_data / "davis2016val_sample"
    conv.convert(root / "Pseudo_OSVOS_davis2017", root / "JPEGImages", tmp_path / "t.json", split_name="davis",
                 progress=False)
    data = coco_io.ytvis_to_coco(json.loads((tmp_path / "t.json").read_text()), every=3)
    for a in data["annotations"][::2]:
        del a["area"]  # tfds then takes the mask's pixel count
    rep = shards.export_tfrecord(data, root / "JPEGImages", tmp_path / "o" / "davis", num_shards=3, profile="tfds",
                                 progress=False)
    assert rep["counts"]["records"] == 80 and rep["counts"]["reencoded"] == 0 and rep["counts"]["skipped"] == 0
    anns_by_image = {}
    for a in data["annotations"]:
        anns_by_image.setdefault(a["image_id"], []).append(a)
    image_by_id = {im["id"]: im for im in data["images"]}
    n = 0
    for _, _, f in _read_all(tmp_path / "o" / "davis"):
        nested = to_nested(f)
        im = image_by_id[nested["image/id"]]
        assert nested["image"] == (root / "JPEGImages" / im["file_name"]).read_bytes()
        anns = anns_by_image.get(im["id"], [])
        expect = [[a["bbox"][1] / 480, a["bbox"][0] / 854, (a["bbox"][1] + a["bbox"][3]) / 480,
                   (a["bbox"][0] + a["bbox"][2]) / 854] for a in anns]
        np.testing.assert_allclose(nested["objects"]["bbox"], np.asarray(expect).reshape(-1, 4), atol=1e-6)
        assert nested["objects"]["area"].tolist() == [
            a["area"] if "area" in a else rle.area(a["segmentation"]) for a in anns]
        n += len(anns)
    assert n == len(data["annotations"])
