"""A COCO / CocoVID file given where YouTube-VIS is expected gets a diagnosis, not only missing keys."""

import pytest

from wsovvis.data import ytvis
from wsovvis.errors import WsovvisError


def test_cocovid_file_is_named_as_such():
    cocovid = {"videos": [{"id": 1, "name": "v"}], "images": [{"id": 1, "video_id": 1}],
               "categories": [{"id": 1, "name": "car"}],
               "annotations": [{"id": 1, "image_id": 1, "instance_id": 0, "category_id": 1, "segmentation": {}}]}
    with pytest.raises(WsovvisError, match=r"\$: this looks like a CocoVID \(mmtracking\) file"):
        ytvis.load(cocovid)


def test_coco_image_file_is_named_and_still_lists_the_missing_keys():
    coco = {"images": [{"id": 1}], "categories": [{"id": 1, "name": "car"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": []}]}
    problems = ytvis.validate(coco)
    assert problems[0].kind == "format" and "COCO (images)" in problems[0].message
    assert any(p.message == "missing required key 'videos'" for p in problems)


def test_real_cocovid_fixture(real_data):
    path = real_data / "ytvis2019_mmtracking_demo" / "ann_cocovid.json"
    with pytest.raises(WsovvisError, match="CocoVID"):
        ytvis.load(path)


def test_a_youtube_vis_file_gets_no_hint():
    data = {"videos": [{"id": 1, "height": 2, "width": 2, "length": 1, "file_names": ["v/0.jpg"]}],
            "categories": [{"id": 1, "name": "x"}], "annotations": []}
    assert ytvis.validate(data) == []
