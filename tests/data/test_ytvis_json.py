"""YouTube-VIS JSON layer: validation with JSON paths, loading errors, atomic validated writes, real files."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from wsovvis.data import rle, ytvis
from wsovvis.errors import WsovvisError


def _tiny() -> dict:
    m = np.zeros((4, 6), bool)
    m[1:3, 2:5] = True
    r = rle.encode(m)
    return {
        "videos": [{"id": 1, "height": 4, "width": 6, "length": 2, "file_names": ["v/0.jpg", "v/1.jpg"]}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [{"id": 1, "video_id": 1, "category_id": 1, "iscrowd": 0, "segmentations": [r, None],
                         "bboxes": [[2.0, 1.0, 3.0, 2.0], None], "areas": [6, None]}],
    }


def _paths(data) -> dict[str, str]:
    return {p.path: p.message for p in ytvis.validate(data)}


def test_valid_and_video_length():
    assert ytvis.validate(_tiny()) == []
    assert ytvis.video_length({"file_names": ["a", "b", "c"]}) == 3
    assert ytvis.video_length({"length": 5, "file_names": []}) == 5


def test_missing_required_keys():
    assert _paths({"videos": []}) == {"$": "missing required key 'categories'"}
    d = _tiny()
    del d["videos"][0]["file_names"], d["annotations"][0]["category_id"]
    got = _paths(d)
    assert got["videos[0]"] == "missing required key 'file_names'"
    assert got["annotations[0]"] == "missing required key 'category_id'"
    assert ytvis.validate([1, 2])[0].path == "$"


def test_duplicate_and_unknown_ids():
    d = _tiny()
    d["videos"].append(copy.deepcopy(d["videos"][0]))
    d["annotations"].append({**copy.deepcopy(d["annotations"][0]), "video_id": 7, "category_id": 9})
    probs = ytvis.validate(d)
    got = {p.path: p for p in probs}
    assert "duplicate id 1 (also videos[0])" in got["videos[1].id"].message
    assert got["videos[1].id"].kind == "duplicate_id"
    assert "duplicate id 1" in got["annotations[1].id"].message
    assert got["annotations[1].video_id"].message == "unknown video id 7"
    assert got["annotations[1].category_id"].kind == "unknown_id"


def test_per_frame_lists_of_wrong_length_and_rle_size():
    d = _tiny()
    d["annotations"][0]["segmentations"].append(None)
    d["annotations"][0]["areas"] = [6]
    got = _paths(d)
    assert got["annotations[0].segmentations"] == "has 3 entries but video 1 has 2 frames"
    assert got["annotations[0].areas"] == "has 1 entries but video 1 has 2 frames"
    d = _tiny()
    d["annotations"][0]["segmentations"][1] = {"size": [5, 6], "counts": "0"}
    d["videos"][0]["length"] = 3
    d["annotations"][0]["bboxes"][0] = [1, 2]
    got = _paths(d)
    assert "RLE size [5, 6] != video size [height, width] [4, 6]" in got["annotations[0].segmentations[1]"]
    assert got["videos[0].length"] == "is 3 but file_names has 2 entries"
    assert "[x, y, w, h]" in got["annotations[0].bboxes[0]"]


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(WsovvisError, match="nope.json: YouTube-VIS JSON does not exist"):
        ytvis.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"videos": [1,')
    with pytest.raises(WsovvisError, match=r"bad.json: unreadable YouTube-VIS JSON: .* line 1"):
        ytvis.load(bad)
    d = _tiny()
    d["annotations"][0]["segmentations"] = [None]
    p = tmp_path / "short.json"
    p.write_text(json.dumps(d))
    with pytest.raises(WsovvisError, match=r"(?s)short.json: invalid .*annotations\[0\].segmentations: has 1 entries"):
        ytvis.load(p)
    images_only = {k: v for k, v in _tiny().items() if k != "annotations"}
    with pytest.raises(WsovvisError, match="<memory>: has no 'annotations'"):
        ytvis.load(images_only, require_annotations=True)
    with pytest.raises(WsovvisError, match="val.json: has no 'annotations'"):
        ytvis.load(images_only, require_annotations=True, source="val.json")


def test_many_problems_are_truncated_in_the_message():
    d = _tiny()
    d["annotations"] = [{"id": i + 1, "video_id": 99, "category_id": 1, "segmentations": []} for i in range(30)]
    msg = ytvis.format_problems("x.json", ytvis.validate(d))
    assert msg.startswith("x.json: invalid YouTube-VIS JSON (30 problems)")
    assert "and 10 more (run `wsovvis check`" in msg


def test_write_is_validated_and_atomic(tmp_path):
    out = tmp_path / "o.json"
    ytvis.write(_tiny(), out)
    assert json.loads(out.read_text()) == _tiny()
    bad = _tiny()
    bad["videos"][0]["height"] = -1
    with pytest.raises(WsovvisError, match=r"(?s)o.json \(not written\).*videos\[0\].height"):
        ytvis.write(bad, out)
    assert json.loads(out.read_text()) == _tiny()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.json"]


def test_real_annotation_files(real_data):
    ovis = ytvis.load(real_data / "ovis_labelformat_fixture" / "annotations_train.json", require_annotations=True)
    assert len(ovis.annotations) == 10 and ovis.videos[0]["height"] == 886
    # SOURCE.md: track 1 frame 0 decodes to 6377 px while 'areas' holds the box area 11352
    a = ovis.annotations[0]
    assert rle.area(a["segmentations"][0]) == 6377 and a["areas"][0] == 11352
    mm = ytvis.load(real_data / "ytvis2019_mmtracking_demo" / "ytvis_format_DERIVED.json")
    assert ytvis.video_length(mm.videos[0]) == 20
    assert sorted(sum(s is not None for s in a["segmentations"]) for a in mm.annotations) == [12, 18]


@pytest.mark.parametrize("box, ok", [
    ([1, 2, 3, 4], True), ([1.5, 2, 3, 4.25], True), (None, True),
    ([1, 2], False), ([1, 2, 3, 4, 5], False), ((1, 2, 3, 4), False), ([True, 2, 3, 4], False),
    ([1, "2", 3, 4], False), ([float("nan"), 2, 3, 4], False), ([1, 2, float("inf"), 4], False),
    ([1e308, 1e308, 1, 1], True),  # the sum overflows: the fast check defers, the per-frame check accepts
])
def test_box_checks_fast_path_agrees_with_the_per_frame_check(box, ok):
    from wsovvis.data.ytvis_schema import _boxes_plainly_valid

    d = _tiny()
    d["annotations"][0]["bboxes"][0] = box
    problems = [p for p in _paths(d) if p.startswith("annotations[0].bboxes")]
    assert (not problems) == ok
    if _boxes_plainly_valid([box]):  # "plainly valid" is never wrong; False only means "look closer"
        assert ok
