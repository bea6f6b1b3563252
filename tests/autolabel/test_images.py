"""Auto-labelling images with the colour stand-ins: categories, thresholds, NMS, polygons vs RLE,
the folder run (resume, overwrite, report), the ZIP, and bad input."""

from __future__ import annotations

import json
import logging
import zipfile

import numpy as np
import pytest
from PIL import Image

from tests.autolabel.scenes import BG, image_with
from wsovvis.autolabel.draw import annotate
from wsovvis.autolabel.images import AutolabelParams, box_iou, label_image, nms, polygons_or_rle
from wsovvis.autolabel.prompts import PromptSet
from wsovvis.autolabel.standins import COLOURS, ColourDetector, ColourSegmenter
from wsovvis.cli import main as cli
from wsovvis.data import rle as rle_utils
from wsovvis.data.coco import load_coco, segmentation_to_rle

DET, SEG = ColourDetector(), ColourSegmenter()


def _label(img, prompt_map, names=("box", "car", "cloud"), **kw):
    return label_image(img, PromptSet.from_names(list(names), prompt_map), DET, SEG, AutolabelParams(**kw))


def test_nms_and_box_iou_hand_values():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32)
    assert box_iou(boxes[:1], boxes[1:2])[0, 0] == pytest.approx(81 / 119)
    assert nms(boxes, np.array([0.9, 0.8, 0.7, 0.6]), 0.5).tolist() == [0, 2]
    # different groups never suppress each other
    assert nms(boxes, np.array([0.9, 0.8, 0.7, 0.6]), 0.5, np.array([0, 0, 0, 1])).tolist() == [0, 2, 3]


def test_categories_and_prompt_ensemble_nms():
    img = image_with([("red", (5, 5, 20, 15)), ("blue", (40, 30, 25, 20)), ("red", (60, 2, 10, 10))])
    pm = {"red box": "box", "a red square": "box", "blue car": "car"}
    anns = _label(img, pm)
    # the two red prompts find the same squares; per-class NMS leaves one annotation per square
    assert sorted((a["category_id"], tuple(a["bbox"])) for a in anns) == [
        (1, (5.0, 5.0, 20.0, 15.0)), (1, (60.0, 2.0, 10.0, 10.0)), (2, (40.0, 30.0, 25.0, 20.0))]
    assert all(a["area"] == a["bbox"][2] * a["bbox"][3] for a in anns)  # solid rectangles
    assert len(_label(img, pm, nms_iou=None)) == 5
    assert [a["score"] for a in anns] == sorted((a["score"] for a in anns), reverse=True)


def test_agnostic_nms_across_classes_and_thresholds():
    img = image_with([("blue", (10, 10, 20, 20))])
    disc = image_with([])
    yy, xx = np.mgrid[:60, :90]
    disc[(yy - 30) ** 2 + (xx - 45) ** 2 <= 100] = COLOURS["blue"]  # a disc scores ~0.89 (area / box)
    pm = {"blue car": "car", "blue cloud": "cloud"}
    assert sorted(a["category_id"] for a in _label(img, pm)) == [2, 3]
    assert [a["category_id"] for a in _label(img, pm, agnostic_nms_iou=0.5)] == [2]
    assert len(_label(disc, pm, threshold=0.95)) == 0
    assert [a["category_id"] for a in _label(disc, pm, threshold=0.95, class_thresholds={3: 0.5})] == [3]
    small = image_with([("blue", (10, 10, 3, 20)), ("blue", (50, 10, 20, 20))])
    assert [a["bbox"][2] for a in _label(small, {"blue car": "car"}, min_box_size=4)] == [20.0]
    assert len(_label(small, {"blue car": "car"}, max_detections=1)) == 1
    assert _label(img, {"purple car": "car"}) == []


def test_detect_mode_has_no_segmentation():
    img = image_with([("red", (5, 5, 20, 15))])
    p = PromptSet.from_names(["box"], {"red box": "box"})
    anns = label_image(img, p, DET, None, AutolabelParams(mode="detect"))
    assert anns == [{"bbox": [5.0, 5.0, 20.0, 15.0], "category_id": 1, "score": 1.0, "area": 300.0, "iscrowd": 0}]


def test_polygons_and_rle_agree():
    img = image_with([("red", (5, 5, 20, 15)), ("green", (40, 20, 30, 30))])
    yy, xx = np.mgrid[:60, :90]
    img[((yy - 40) ** 2 + (xx - 15) ** 2) <= 64] = COLOURS["yellow"]
    pm = {"red box": "box", "green car": "car", "yellow cloud": "cloud"}
    rle = _label(img, pm)
    poly = _label(img, pm, polygons=True)
    assert len(rle) == len(poly) == 3
    for a, b in zip(rle, poly):
        assert isinstance(b["segmentation"], list) and isinstance(a["segmentation"], dict)
        ma = rle_utils.decode(a["segmentation"]).astype(bool)
        mb = rle_utils.decode(segmentation_to_rle(b["segmentation"], 60, 90)).astype(bool)
        np.testing.assert_array_equal(ma, mb)
        assert a["bbox"] == b["bbox"] and a["area"] == b["area"]


def test_polygons_keep_every_part_and_fall_back_on_holes(caplog):
    m = np.zeros((40, 40), bool)
    m[2:10, 2:10] = True
    m[20:30, 15:35] = True
    seg, ok = polygons_or_rle(m)
    assert ok and len(seg) == 2
    np.testing.assert_array_equal(rle_utils.decode(segmentation_to_rle(seg, 40, 40)).astype(bool), m)
    ring = np.zeros((40, 40), bool)
    ring[5:35, 5:35] = True
    ring[9:31, 9:31] = False  # a big hole: polygons would fill it (IoU 0.46)
    with caplog.at_level(logging.WARNING):
        seg, ok = polygons_or_rle(ring, "x.png")
    assert not ok and isinstance(seg, dict)
    np.testing.assert_array_equal(rle_utils.decode(seg).astype(bool), ring)
    assert "x.png" in caplog.text and "RLE" in caplog.text


def _folder(tmp_path):
    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(image_with([("red", (5, 5, 20, 15)), ("blue", (40, 30, 25, 20))], 60, 90)).save(root / "a.png")
    Image.fromarray(image_with([("blue", (10, 20, 30, 12))], 48, 64)).save(root / "sub" / "b.png")
    Image.fromarray(image_with([], 30, 30)).save(root / "sub" / "c.bmp")
    cats = [{"id": 3, "name": "box"}, {"id": 7, "name": "car"}]
    (tmp_path / "vocab.json").write_text(json.dumps({"categories": cats}))
    (tmp_path / "map.txt").write_text("red box = box\n# comment\nblue car = car\nblue vehicle = 7\n")
    return root


def _args(tmp_path, root, out="out", *extra):
    return ["autolabel", "images", "--images", str(root), "--vocab", str(tmp_path / "vocab.json"), "--prompt_map",
            str(tmp_path / "map.txt"), "--detector", "standin:colour", "--segmenter", "standin:colour",
            "--out", str(tmp_path / out), "--no_progress", *extra]


def test_folder_run_report_resume_overwrite(tmp_path, capsys):
    root = _folder(tmp_path)
    assert cli(_args(tmp_path, root)) == 0
    out = tmp_path / "out"
    coco = load_coco(out / "coco_export.json")
    assert [im["file_name"] for im in coco["images"]] == ["a.png", "sub/b.png", "sub/c.bmp"]
    assert coco["categories"] == [{"id": 3, "name": "box"}, {"id": 7, "name": "car"}]
    assert sorted((a["image_id"], a["category_id"]) for a in coco["annotations"]) == [(1, 3), (1, 7), (2, 7)]
    assert [a["id"] for a in coco["annotations"]] == [1, 2, 3]
    report = json.loads((out / "report.json").read_text())
    assert report["per_image"] == {"a.png": 2, "sub/b.png": 1, "sub/c.bmp": 0}
    assert report["per_class"] == {"box": 1, "car": 2}
    first = (out / "coco_export.json").read_bytes()
    capsys.readouterr()
    assert cli(_args(tmp_path, root)) == 0
    assert "(3 resumed)" in capsys.readouterr().out
    assert (out / "coco_export.json").read_bytes() == first
    assert cli(_args(tmp_path, root, "out", "--threshold", "0.5")) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli(_args(tmp_path, root, "out", "--threshold", "0.5", "--overwrite")) == 0
    assert "(0 resumed)" in capsys.readouterr().out


def test_zip_coordinates_match_resized_images(tmp_path):
    root = _folder(tmp_path)
    for extra, name in (([], "rle"), (["--polygons"], "poly")):
        zpath = tmp_path / f"{name}.zip"
        assert cli(_args(tmp_path, root, name, "--zip", str(zpath), "--zip_size", "45", *extra)) == 0
        with zipfile.ZipFile(zpath) as zf:
            coco = json.loads(zf.read("coco_export.json"))
            ims = {im["id"]: im for im in coco["images"]}
            assert sorted(zf.namelist()) == ["coco_export.json", "images/a.png", "images/sub/b.png",
                                             "images/sub/c.png"]  # BMP -> PNG
            assert [im["file_name"] for im in coco["images"]] == ["a.png", "sub/b.png", "sub/c.png"]
            for a in coco["annotations"]:
                im = ims[a["image_id"]]
                pix = np.asarray(Image.open(zf.open(f"images/{im['file_name']}")).convert("RGB"))
                assert pix.shape[:2] == (im["height"], im["width"]) and max(pix.shape[:2]) == 45
                colour = np.array(COLOURS["red" if a["category_id"] == 3 else "blue"])
                # pixels of the resized image closer to the object's colour than to the background
                truth = np.abs(pix - colour).sum(-1) < np.abs(pix - np.array(BG)).sum(-1)
                seg = segmentation_to_rle(a["segmentation"], im["height"], im["width"])
                m = rle_utils.decode(seg).astype(bool)
                iou = (m & truth).sum() / (m | truth).sum()
                assert iou >= 0.85, (name, a, iou)  # 10x7.5 px objects: half-pixel edges
                tb = rle_utils.mask_bbox(truth)
                assert np.abs(np.array(a["bbox"]) - np.array(tb)).max() <= 1.5, (a["bbox"], tb)


def test_bad_inputs(tmp_path, capsys):
    root = _folder(tmp_path)
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    assert cli(_args(tmp_path, root)) == 1
    out = capsys.readouterr().out
    assert "broken.jpg" in out and "1 image(s) failed" in out
    assert "broken.jpg" in json.loads((tmp_path / "out" / "report.json").read_text())["failed"]
    (tmp_path / "empty").mkdir()
    assert cli(_args(tmp_path, tmp_path / "empty", "o2")) == 2
    assert "no images found" in capsys.readouterr().err
    (tmp_path / "vocab.json").write_text(json.dumps([{"id": 1, "name": "car"}, {"id": 2, "name": "Car"}]))
    assert cli(_args(tmp_path, root, "o3")) == 2
    err = capsys.readouterr().err
    assert "vocab.json" in err and "repeats the class name" in err
    (tmp_path / "vocab.json").write_text(json.dumps([{"id": 3, "name": "box"}, {"id": 7, "name": "car"}]))
    (tmp_path / "map.txt").write_text("red box = box\nblue bus = bus\n")
    assert cli(_args(tmp_path, root, "o4")) == 2
    err = capsys.readouterr().err
    assert "map.txt" in err and "unknown class 'bus'" in err
    (tmp_path / "map.txt").write_text("red box = box\nred box = car\n")
    assert cli(_args(tmp_path, root, "o5")) == 2
    assert "appears twice" in capsys.readouterr().err
    (tmp_path / "v.txt").write_text("car\nbus\ncar\n")
    assert cli(["autolabel", "images", "--images", str(root), "--vocab", str(tmp_path / "v.txt"), "--detector",
                "standin:colour", "--segmenter", "standin:colour", "--out", str(tmp_path / "o6")]) == 2
    assert "repeats the name 'car'" in capsys.readouterr().err
    assert cli(["autolabel", "images", "--images", str(root), "--vocab", str(tmp_path / "vocab.json"), "--detector",
                str(tmp_path / "nowhere"), "--mode", "detect", "--out", str(tmp_path / "o7")]) == 2
    assert "--detector folder does not exist" in capsys.readouterr().err


def test_nothing_found_exits_nonzero(tmp_path, capsys):
    root = _folder(tmp_path)
    (tmp_path / "map.txt").write_text("purple box = box\n")
    assert cli(_args(tmp_path, root)) == 1
    assert "nothing was found in any image" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "report.json").read_text())["annotations"] == 0


def test_annotate_draws_boxes_and_masks():
    img = image_with([("red", (5, 5, 20, 15))])
    anns = _label(img, {"red box": "box"}, polygons=True)
    out = annotate(img, anns, [{"id": 1, "name": "box"}])
    assert out.shape == img.shape and out.dtype == np.uint8
    assert (out[5:20, 5:25] != img[5:20, 5:25]).any()  # mask fill / box outline / tag
    assert (out[40:, 40:] == img[40:, 40:]).all()  # far from the annotation nothing changes
