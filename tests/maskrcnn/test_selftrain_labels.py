"""Self-training labels: threshold filtering, tube IoU, add-back of earlier pseudo tubes."""

from __future__ import annotations

import numpy as np
import pytest

from wsovvis.data import rle, ytvis
from wsovvis.engine.selftrain_labels import add_back, keep_confident, labels_as_results, round_labels, tube_iou


def box(y0, x0, y1, x1, h=20, w=20):
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return rle.encode(m)


def test_tube_iou_sums_over_frames():
    a = [box(0, 0, 10, 10), box(0, 0, 10, 10), None]
    b = [box(0, 0, 10, 5), None, box(0, 0, 2, 2)]
    # intersections 50 + 0 + 0; unions 100 + 100 + 4
    assert tube_iou(a, b) == pytest.approx(50 / 204)
    assert tube_iou(a, a) == 1.0 and tube_iou([None], [None]) == 0.0


def test_threshold_keeps_confident_nonempty_predictions():
    empty = rle.encode(np.zeros((20, 20), dtype=bool))
    res = [{"video_id": 1, "category_id": 1, "score": 0.7, "segmentations": [box(0, 0, 5, 5)]},
           {"video_id": 1, "category_id": 1, "score": 0.69, "segmentations": [box(0, 0, 5, 5)]},
           {"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [empty]}]
    assert [r["score"] for r in keep_confident(res, 0.7)] == [0.7]


def test_add_back_keeps_earlier_tubes_no_prediction_explains():
    kept = [{"video_id": 1, "segmentations": [box(0, 0, 10, 10)]}]
    earlier = [
        {"id": 1, "video_id": 1, "segmentations": [box(0, 0, 10, 9)]},    # IoU 0.9: explained, dropped
        {"id": 2, "video_id": 1, "segmentations": [box(0, 0, 10, 20)]},   # IoU 0.5: not < 0.5, dropped
        {"id": 3, "video_id": 1, "segmentations": [box(0, 0, 10, 19)]},   # IoU 100/190 = 0.53: dropped
        {"id": 4, "video_id": 1, "segmentations": [box(10, 10, 20, 20)]},  # IoU 0: added back
        {"id": 5, "video_id": 2, "segmentations": [box(0, 0, 10, 10)]},   # no prediction in video 2: added back
    ]
    assert [a["id"] for a in add_back(kept, earlier, 0.5)] == [4, 5]


def test_round_labels_write_a_valid_file(tmp_path):
    train = {"videos": [{"id": 1, "file_names": ["a/0.jpg", "a/1.jpg"], "height": 20, "width": 20, "length": 2}],
             "categories": [{"id": 1, "name": "fg"}],
             "annotations": [{"id": 7, "video_id": 1, "category_id": 1, "iscrowd": 0,
                              "segmentations": [box(10, 10, 20, 20), None], "bboxes": [[10, 10, 10, 10], None],
                              "areas": [100, None]}]}
    empty = rle.encode(np.zeros((20, 20), dtype=bool))
    results = [{"video_id": 1, "category_id": 1, "score": 0.8, "segmentations": [box(0, 0, 5, 5), empty]},
               {"video_id": 1, "category_id": 1, "score": 0.3, "segmentations": [box(5, 5, 9, 9), box(5, 5, 9, 9)]}]
    data, counts = round_labels(train, results, 0.65)
    assert counts == {"kept": 1, "added_back": 1, "dropped_predictions": 1}
    a0, a1 = data["annotations"]
    assert a0["score"] == 0.8 and a0["segmentations"][1] is None and a0["areas"] == [25, None]
    assert a0["bboxes"][0] == [0.0, 0.0, 5.0, 5.0]
    assert a1["segmentations"] == train["annotations"][0]["segmentations"] and a1["id"] == 2
    ytvis.write(data, tmp_path / "labels.json")  # validates
    assert ytvis.load(tmp_path / "labels.json", require_annotations=True).annotations
    assert labels_as_results(data)[1]["score"] == 1.0
