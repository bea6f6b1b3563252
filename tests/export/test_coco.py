"""wsovvis.data.coco: polygons, RLE forms, validation, YouTube-VIS <-> COCO round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from wsovvis.data import coco, rle
from wsovvis.data import convert as conv
from wsovvis.errors import WsovvisError


def _raster(polys, h, w):
    return rle.decode(coco.segmentation_to_rle(polys, h, w))


def test_polygons_rasterise_back_exactly_up_to_holes():
    rng = np.random.default_rng(0)
    for _ in range(100):
        m = rng.random((17, 23)) < 0.5  # many parts, diagonal touches, holes, 1-pixel parts
        polys = coco.mask_to_polygons(m)
        assert all(len(p) >= 6 and len(p) % 2 == 0 for p in polys)
        np.testing.assert_array_equal(_raster(polys, 17, 23), ndimage.binary_fill_holes(m))


def test_polygons_keep_every_outer_part():
    m = np.zeros((20, 30), bool)
    m[2:8, 2:9] = True
    m[17, 27] = True  # a single pixel
    m[15:18, 3:4] = True  # a 1-pixel-wide line
    m[5:15, 15:25] = True
    m[8:11, 18:21] = False  # a hole: filled in polygon form
    polys = coco.mask_to_polygons(m)
    assert len(polys) == 4
    assert any(sorted(zip(p[::2], p[1::2])) == [(27.0, 17.0), (27.0, 18.0), (28.0, 17.0), (28.0, 18.0)]
               for p in polys)
    filled = m.copy()
    filled[8:11, 18:21] = True
    np.testing.assert_array_equal(_raster(polys, 20, 30), filled)
    assert coco.mask_to_polygons(np.zeros((4, 4), bool)) == []
    with pytest.raises(WsovvisError, match="2-D"):
        coco.mask_to_polygons(np.zeros((2, 4, 4), bool))


def test_segmentation_to_rle_accepts_every_form():
    m = np.zeros((7, 9), bool)
    m[1:5, 2:6] = True
    m[3, 3] = False
    compressed = rle.encode(m)
    assert coco.segmentation_to_rle(compressed, 7, 9) == compressed
    as_bytes = {"size": [7, 9], "counts": compressed["counts"].encode()}
    assert coco.segmentation_to_rle(as_bytes, 7, 9) == compressed
    flat = m.flatten(order="F").astype(int)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flat, [1 - flat[-1]]))))
    counts = np.diff(np.concatenate(([0], edges))).tolist()
    assert sum(counts) == 63
    out = coco.segmentation_to_rle({"size": [7, 9], "counts": counts}, 7, 9)
    assert isinstance(out["counts"], str) and out == compressed
    square = coco.segmentation_to_rle([[2, 1, 6, 1, 6, 5, 2, 5]], 7, 9)
    assert rle.area(square) == 16 and isinstance(square["counts"], str)
    # a 4-number "polygon" (pycocotools would read it as a box) encloses nothing
    assert rle.area(coco.segmentation_to_rle([[1, 1, 3, 3]], 7, 9)) == 0
    with pytest.raises(WsovvisError, match=r"x\.json annotations\[3\].*size \[8, 9\] != image size"):
        coco.segmentation_to_rle({"size": [8, 9], "counts": "abc"}, 7, 9, where="x.json annotations[3]")
    with pytest.raises(WsovvisError, match="summing to"):
        coco.segmentation_to_rle({"size": [7, 9], "counts": [1, 2]}, 7, 9)
    with pytest.raises(WsovvisError, match="flat"):
        coco.segmentation_to_rle([[1, 2, 3]], 7, 9)


def _coco_sample():
    m = np.zeros((10, 12), bool)
    m[2:6, 3:8] = True
    return {
        "images": [{"id": 7, "file_name": "a/x.jpg", "height": 10, "width": 12},
                   {"id": 9, "file_name": "b.png", "height": 10, "width": 12}],
        "categories": [{"id": 3, "name": "cat"}, {"id": 11, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 3, "iscrowd": 0, "bbox": [3, 2, 5, 4], "area": 20,
             "segmentation": [[3, 2, 8, 2, 8, 6, 3, 6]]},
            {"id": 5, "image_id": 7, "category_id": 11, "iscrowd": 1, "bbox": [3, 2, 5, 4], "area": 20,
             "segmentation": _uncompressed(m)},
            {"id": 6, "image_id": 9, "category_id": 3, "bbox": [1, 1, 2, 2], "area": 4.0, "score": 0.5},
        ],
    }


def _uncompressed(m):
    flat = m.flatten(order="F").astype(int)
    counts, cur, run = [], 0, 0
    for v in flat:
        if v == cur:
            run += 1
        else:
            counts.append(run)
            cur, run = v, 1
    counts.append(run)
    return {"size": list(m.shape), "counts": counts}


def test_load_coco_reports_every_problem_with_file_and_path(tmp_path):
    good = _coco_sample()
    assert coco.load_coco(good) is good
    bad = json.loads(json.dumps(good))
    bad["images"][1]["id"] = 7
    bad["images"][0]["height"] = 0
    bad["annotations"][0]["category_id"] = 99
    bad["annotations"][1]["segmentation"]["size"] = [5, 5]
    bad["annotations"][2]["bbox"] = [1, 1, -2, 2]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(WsovvisError) as e:
        coco.load_coco(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: invalid COCO JSON (6 problems)")
    for frag in ("images[1].id: duplicate id 7", "images[0].height: must be a positive integer",
                 "annotations[0].category_id: unknown category id 99",
                 "annotations[1].segmentation: RLE size [5, 5] != image size", "annotations[2].bbox",
                 "annotations[2].image_id: unknown image id 9"):
        assert frag in msg
    with pytest.raises(WsovvisError, match="does not exist"):
        coco.load_coco(tmp_path / "missing.json")
    with pytest.raises(WsovvisError, match="looks like a YouTube-VIS file"):
        coco.load_coco({"videos": [], "categories": []})


def test_write_coco_validates_first(tmp_path):
    good = _coco_sample()
    path = coco.write_coco(good, tmp_path / "sub" / "c.json")
    assert json.loads(path.read_text()) == json.loads(json.dumps(good))
    bad = dict(good, annotations=[dict(good["annotations"][0], image_id=123)])
    with pytest.raises(WsovvisError, match=r"(?s)bad.json \(not written\): invalid COCO JSON.*unknown image id 123"):
        coco.write_coco(bad, tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()


def test_lvis_images_get_file_names_and_keep_their_keys():
    lvis = {"images": [{"id": 5, "coco_url": "http://images.cocodataset.org/val2017/000000397133.jpg",
                        "height": 8, "width": 8, "neg_category_ids": [3], "not_exhaustive_category_ids": []}],
            "categories": [{"id": 1, "name": "aerosol_can", "synonyms": ["spray"], "frequency": "c"}],
            "annotations": [{"id": 2, "image_id": 5, "category_id": 1, "bbox": [1, 1, 2, 2], "area": 4,
                             "segmentation": [[1, 1, 3, 1, 3, 3, 1, 3]]}]}
    y = coco.coco_to_ytvis(lvis)
    (v,) = y["videos"]
    assert v["file_names"] == ["val2017/000000397133.jpg"] and v["name"] == "val2017/000000397133"
    assert v["neg_category_ids"] == [3] and (v["id"], v["height"], v["width"], v["length"]) == (5, 8, 8, 1)
    assert rle.area(y["annotations"][0]["segmentations"][0]) == 4


def test_plain_coco_becomes_one_frame_videos_with_compressed_rle(caplog):
    with caplog.at_level("WARNING", logger="wsovvis"):
        y = coco.coco_to_ytvis(_coco_sample(), source="s.json")
    assert "s.json: 1 annotation(s) have a box but no segmentation: their boxes are used as masks" in caplog.text
    assert [(v["id"], v["name"], v["file_names"], v["length"]) for v in y["videos"]] == [
        (7, "a/x", ["a/x.jpg"], 1), (9, "b", ["b.png"], 1)]
    a1, a5, a6 = y["annotations"]
    assert (a1["id"], a1["video_id"], a1["category_id"], a5["iscrowd"]) == (1, 7, 3, 1)
    assert all(isinstance(a["segmentations"][0]["counts"], str) for a in y["annotations"])
    assert a1["segmentations"] == a5["segmentations"]  # polygon and uncompressed RLE of the same box
    assert rle.area(a1["segmentations"][0]) == 20 and a1["bboxes"] == [[3, 2, 5, 4]]
    assert a6["score"] == 0.5 and rle.bbox(a6["segmentations"][0]) == [1.0, 1.0, 2.0, 2.0]  # box-only -> box mask
    from wsovvis.data import ytvis

    ytvis.load(y, require_annotations=True)  # valid YouTube-VIS
    skipped = coco.coco_to_ytvis(_coco_sample(), box_only="skip")
    assert [t["id"] for t in skipped["annotations"]] == [1, 5]
    with pytest.raises(WsovvisError, match="box_only"):
        coco.coco_to_ytvis(_coco_sample(), box_only="drop")


def _check_coco_of(data, c, every=1):
    n_frames = sum(len(range(0, v["length"], every)) for v in data["videos"])
    assert len(c["images"]) == n_frames and [im["id"] for im in c["images"]] == list(range(1, n_frames + 1))
    v0 = data["videos"][0]
    assert c["images"][1]["file_name"] == v0["file_names"][every]
    assert (c["images"][1]["video_id"], c["images"][1]["frame_index"]) == (v0["id"], every)
    present = sum(s is not None for a in data["annotations"] for t, s in enumerate(a["segmentations"])
                  if t % every == 0)
    assert len(c["annotations"]) == present
    coco.load_coco(c)


def test_synthetic_round_trip_is_identical(synthetic_data):
    data = json.loads(synthetic_data.gt_json.read_text())
    c = coco.ytvis_to_coco(data)
    _check_coco_of(data, c)
    a = c["annotations"][0]
    src = next(t for t in data["annotations"] if t["id"] == a["track_id"])
    t = c["images"][a["image_id"] - 1]["frame_index"]
    assert a["segmentation"] == src["segmentations"][t] and a["bbox"] == src["bboxes"][t]
    assert coco.coco_to_ytvis(json.loads(json.dumps(c))) == data
    # every=2 keeps even frames; the others come back absent
    c2 = coco.ytvis_to_coco(data, every=2)
    _check_coco_of(data, c2, every=2)
    back = coco.coco_to_ytvis(c2)
    for orig, got in zip(data["annotations"], back["annotations"]):
        assert got["segmentations"] == [s if t % 2 == 0 else None for t, s in enumerate(orig["segmentations"])]
    # polygons: the masks come back with holes filled
    cp = coco.ytvis_to_coco(data, polygons=True)
    assert all(isinstance(x["segmentation"], list) for x in cp["annotations"])
    for x, y in zip(c["annotations"], cp["annotations"]):
        h, w = x["segmentation"]["size"]
        np.testing.assert_array_equal(_raster(y["segmentation"], h, w),
                                      ndimage.binary_fill_holes(rle.decode(x["segmentation"])))
    with pytest.raises(WsovvisError, match="every"):
        coco.ytvis_to_coco(data, every=0)


def test_score_and_extra_track_keys_survive():
    data = {"videos": [{"id": 4, "height": 6, "width": 5, "length": 2, "file_names": ["v/0.jpg", "v/1.jpg"]}],
            "categories": [{"id": 2, "name": "x"}],
            "annotations": [{"id": 8, "video_id": 4, "category_id": 2, "score": 0.75, "source": "owl",
                             "segmentations": [None, rle.encode(np.eye(6, 5, dtype=bool))]}]}
    c = coco.ytvis_to_coco(data)
    (a,) = c["annotations"]
    assert a["score"] == 0.75 and a["track_id"] == 8 and a["iscrowd"] == 0
    assert a["bbox"] == [0.0, 0.0, 5.0, 5.0] and a["area"] == 5
    assert coco.coco_to_ytvis(c) == data


@pytest.mark.parametrize("method", ["Pseudo_OSVOS_davis2017", "Pseudo_RVOS_davis2017"])
def test_real_davis_round_trip_is_identical(real_data, tmp_path, method):
    root = real_data / "davis2016val_sample"
    out = tmp_path / "tubes.json"
    conv.convert(root / method, root / "JPEGImages", out, split_name="davis", progress=False)
    data = json.loads(out.read_text())
    c = coco.ytvis_to_coco(data)
    _check_coco_of(data, c)
    assert c["images"][0]["file_name"] == "blackswan/00000.jpg"
    assert coco.coco_to_ytvis(json.loads(json.dumps(c))) == data
