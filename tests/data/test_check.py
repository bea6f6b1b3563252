"""wsovvis check: a clean set passes; each kind of problem is found, named by JSON path, and fails the exit code."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from wsovvis.cli import main as cli_main
from wsovvis.data import masks, rle
from wsovvis.data.check import check_dataset
from wsovvis.data.synthetic import generate_dataset


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("chk"), num_videos=2, num_frames=4, seed=5, progress=False)


@pytest.fixture
def ds(base, tmp_path):
    """A private, mutable copy of the small set."""
    shutil.copytree(base.root, tmp_path / "s")
    root = tmp_path / "s"
    return root, json.loads((root / "gt.json").read_text())


def _run(root, data, with_masks=True):
    return check_dataset(data, root / "JPEGImages", root / "Annotations" if with_masks else None)


def _kinds(rep):
    return {(p.severity, p.kind) for p in rep.problems}


def test_clean_set_passes(ds, tmp_path, capsys):
    root, data = ds
    rep = _run(root, data)
    assert rep.problems == [] and rep.stats["videos"] == 2 and rep.stats["frames"] == 8
    assert rep.stats["tracks"] == len(data["annotations"]) and rep.stats["masks"] > 0
    assert sum(c["tracks"] for c in rep.coverage) == len(data["annotations"])
    out = tmp_path / "r.json"
    rc = cli_main(["check", str(root / "gt.json"), "--img_root", str(root / "JPEGImages"), "--mask_root",
                   str(root / "Annotations"), "--report", str(out), "--no_progress"])
    assert rc == 0 and "0 errors, 0 warnings -> OK" in capsys.readouterr().out
    assert json.loads(out.read_text())["ok"] is True


def test_missing_frames_and_size_mismatches(ds):
    root, data = ds
    (root / "JPEGImages" / "synth_0000" / "00001.jpg").unlink()
    Image.new("RGB", (60, 40)).save(root / "JPEGImages" / "synth_0001" / "00002.jpg")
    masks.write_ids(root / "Annotations" / "synth_0001" / "00003.png", np.zeros((10, 10), np.uint8))
    (root / "JPEGImages" / "synth_0000" / "00003.jpg").write_bytes(b"garbage")
    rep = _run(root, data)
    by = {p.kind: p for p in rep.errors}
    assert by["missing_frame"].path == "videos[0].file_names[1]" and "00001.jpg" in by["missing_frame"].message
    assert by["unreadable_frame"].path == "videos[0].file_names[3]"
    sizes = [p for p in rep.errors if p.kind == "size_mismatch"]
    assert {p.path for p in sizes} == {"videos[1].file_names[2]", "videos[1].file_names[3]"}
    assert any("60x40 but the video says 128x96" in p.message for p in sizes)
    assert any("10x10 but frame" in p.message for p in sizes)


def test_tracks_areas_boxes_and_png_agreement(ds):
    root, data = ds
    anns = data["annotations"]
    t = next(i for i, s in enumerate(anns[0]["segmentations"]) if s is not None)
    anns[0]["areas"][t] += 5
    anns[0]["bboxes"][t][0] += 3
    # a mask that disagrees with the id PNG (same size, other pixels)
    t1 = next(i for i, s in enumerate(anns[1]["segmentations"]) if s is not None)
    m = rle.decode(anns[1]["segmentations"][t1])
    m[0, :] = True
    anns[1]["segmentations"][t1] = rle.encode(m)
    anns[1]["areas"][t1], anns[1]["bboxes"][t1] = int(m.sum()), rle.mask_bbox(m)
    # an empty track
    anns.append({**anns[2], "id": 99, "segmentations": [None] * 4, "areas": [None] * 4, "bboxes": [None] * 4})
    rep = _run(root, data)
    by = {(p.kind, p.path): p for p in rep.problems}
    assert ("area_mismatch", f"annotations[0].areas[{t}]") in by
    assert ("bbox_mismatch", f"annotations[0].bboxes[{t}]") in by
    assert ("mask_png_mismatch", f"annotations[1].segmentations[{t1}]") in by
    assert by[("empty_track", f"annotations[{len(anns) - 1}]")].severity == "warning"
    # without the masks the PNG comparison is not made
    assert "mask_png_mismatch" not in {p.kind for p in _run(root, data, with_masks=False).problems}


def test_structure_errors_are_listed_with_paths(ds):
    root, data = ds
    data["annotations"][1]["id"] = data["annotations"][0]["id"]
    data["annotations"][2]["category_id"] = 42
    data["annotations"][0]["video_id"] = 77
    data["annotations"][3]["segmentations"] = data["annotations"][3]["segmentations"][:2]
    rep = _run(root, data)
    paths = {p.path: p.kind for p in rep.errors}
    assert paths["annotations[1].id"] == "duplicate_id"
    assert paths["annotations[2].category_id"] == "unknown_id"
    assert paths["annotations[0].video_id"] == "unknown_id"
    assert paths["annotations[3].segmentations"] == "length_mismatch"


def test_coverage_box_areas_and_orphan_masks(ds):
    root, data = ds
    data["categories"].append({"id": 50, "name": "unused"})
    for a in data["annotations"]:
        a["areas"] = [None if b is None else b[2] * b[3] for b in a["bboxes"]]
    masks.write_ids(root / "Annotations" / "synth_0000" / "00042.png", np.zeros((96, 128), np.uint8))
    rep = _run(root, data)
    kinds = _kinds(rep)
    assert ("warning", "category_without_tracks") in kinds and ("warning", "box_areas") in kinds
    assert ("warning", "mask_without_frame") in kinds
    assert not rep.errors  # box areas of non-rectangular shapes are the OVIS quirk, not an error
    assert next(c for c in rep.coverage if c["id"] == 50)["tracks"] == 0


def test_real_ovis_box_areas(real_data):
    rep = check_dataset(real_data / "ovis_labelformat_fixture" / "annotations_train.json")
    assert not rep.errors
    assert next(p for p in rep.warnings if p.kind == "box_areas").message.startswith("30 areas equal the box area")


def test_cli_exit_codes(ds, tmp_path, capsys):
    root, data = ds
    data["annotations"][0]["segmentations"].append(None)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    report = tmp_path / "rep.json"
    assert cli_main(["check", str(bad), "--report", str(report)]) == 1
    out = capsys.readouterr().out
    assert "error length_mismatch (1):" in out and "annotations[0].segmentations: has 5 entries" in out
    assert "FAILED" in out
    saved = json.loads(report.read_text())
    assert saved["ok"] is False and saved["counts"]["by_kind"] == {"error:length_mismatch": 1}
    (tmp_path / "broken.json").write_text("{")
    assert cli_main(["check", str(tmp_path / "broken.json")]) == 2
    assert "broken.json: unreadable YouTube-VIS JSON" in capsys.readouterr().err
    no_keys = tmp_path / "nokeys.json"
    no_keys.write_text(json.dumps({"videos": []}))
    assert cli_main(["check", str(no_keys)]) == 1
    assert "missing required key 'categories'" in capsys.readouterr().out
    assert cli_main(["check", str(bad), "--img_root", str(tmp_path / "nope")]) == 2
