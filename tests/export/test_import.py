"""`wsovvis import coco` (instances and panoptic) and `wsovvis export coco` through the CLI."""

from __future__ import annotations

import json

import numpy as np

from wsovvis.cli import main
from wsovvis.data import masks, rle, ytvis


def _write_panoptic(tmp_path):
    root = tmp_path / "annotations"
    png_dir = root / "panoptic_val"
    png_dir.mkdir(parents=True)
    a = np.zeros((30, 40), np.int64)
    a[2:10, 3:20] = 5  # a thing
    a[12:30, :] = 256 * 3 + 7  # stuff, id needs the G channel
    a[0, 39] = 65536 * 2 + 1  # a thing of one pixel, id needs the B channel
    a[1, 0] = 77  # pixels whose id no segment lists
    b = np.zeros((30, 40), np.int64)
    b[5:25, 5:25] = 9
    (png_dir / "a.png").write_bytes(masks.encode_rgb_ids_png(a))
    (png_dir / "b.png").write_bytes(masks.encode_rgb_ids_png(b))
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 30, "width": 40},
                   {"id": 2, "file_name": "b.jpg", "height": 30, "width": 40}],
        "categories": [{"id": 1, "name": "person", "isthing": 1}, {"id": 184, "name": "sky", "isthing": 0}],
        "annotations": [
            {"image_id": 1, "file_name": "a.png", "segments_info": [
                {"id": 5, "category_id": 1, "iscrowd": 0, "area": 136},
                {"id": 256 * 3 + 7, "category_id": 184, "iscrowd": 0},
                {"id": 65536 * 2 + 1, "category_id": 1, "iscrowd": 1},
                {"id": 1234, "category_id": 1, "iscrowd": 0}]},  # listed but absent from the PNG
            {"image_id": 2, "file_name": "b.png", "segments_info": [{"id": 9, "category_id": 1}]},
        ],
    }
    path = root / "panoptic_val.json"
    path.write_text(json.dumps(data))
    return path, a, b


def test_import_panoptic(tmp_path):
    path, a, b = _write_panoptic(tmp_path)
    out = tmp_path / "y.json"
    assert main(["import", "coco", "--coco", str(path), "--out", str(out)]) == 0  # PNG folder found beside the JSON
    y = ytvis.load(out, require_annotations=True).data
    assert [v["file_names"] for v in y["videos"]] == [["a.jpg"], ["b.jpg"]]
    got = [(t["video_id"], t["category_id"], t["iscrowd"], rle.decode(t["segmentations"][0])) for t in y["annotations"]]
    expect = [(1, 1, 0, a == 5), (1, 184, 0, a == 256 * 3 + 7), (1, 1, 1, a == 65536 * 2 + 1), (2, 1, 0, b == 9)]
    assert len(got) == len(expect)
    for (v, c, crowd, m), (v2, c2, crowd2, m2) in zip(got, expect):
        assert (v, c, crowd) == (v2, c2, crowd2)
        np.testing.assert_array_equal(m, m2)
    t0 = y["annotations"][0]
    assert t0["areas"] == [136] and t0["bboxes"] == [[3.0, 2.0, 17.0, 8.0]]
    assert [t["id"] for t in y["annotations"]] == [1, 2, 3, 4]
    out2 = tmp_path / "things.json"
    assert main(["import", "coco", "--coco", str(path), "--out", str(out2), "--things_only",
                 "--panoptic_root", str(path.with_suffix(""))]) == 0
    assert [t["category_id"] for t in json.loads(out2.read_text())["annotations"]] == [1, 1, 1]
    from wsovvis.export.panoptic import panoptic_to_coco

    _, rep = panoptic_to_coco(json.loads(path.read_text()), path.with_suffix(""), progress=False)
    assert rep == {"segments": 5, "empty_segments": 1, "unlisted_pixels": 1, "stuff_dropped": 0}


def test_import_errors_name_the_file(tmp_path, capsys):
    path, _, _ = _write_panoptic(tmp_path)
    out = tmp_path / "y.json"
    assert main(["import", "coco", "--coco", str(path), "--out", str(out), "--panoptic_root", str(tmp_path)]) == 2
    assert f"{tmp_path / 'a.png'}" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": [{"id": 1, "file_name": "x.jpg", "height": 4, "width": 4}],
                               "categories": [{"id": 1, "name": "a"}],
                               "annotations": [{"id": 1, "image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1]}]}))
    assert main(["import", "coco", "--coco", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"error: {bad}: invalid COCO JSON" in err and "annotations[0].image_id: unknown image id 2" in err
    assert not out.exists()


def test_export_coco_cli_round_trip_and_missing_frames(synthetic_data, tmp_path, capsys):
    out = tmp_path / "coco.json"
    argv = ["export", "coco", "--tubes", str(synthetic_data.gt_json), "--out", str(out)]
    assert main([*argv, "--img_root", str(synthetic_data.img_root)]) == 0
    coco = json.loads(out.read_text())
    assert coco["images"][0]["file_name"].endswith("/00000.jpg")
    back = tmp_path / "back.json"
    assert main(["import", "coco", "--coco", str(out), "--out", str(back)]) == 0
    assert json.loads(back.read_text()) == json.loads(synthetic_data.gt_json.read_text())
    assert main([*argv, "--img_root", str(tmp_path)]) == 2
    assert "exported frame(s) are missing" in capsys.readouterr().err
    assert main([*argv, "--every", "2", "--polygons"]) == 0
    coco2 = json.loads(out.read_text())
    assert all(im["frame_index"] % 2 == 0 for im in coco2["images"])
    assert all(isinstance(a["segmentation"], list) for a in coco2["annotations"])
