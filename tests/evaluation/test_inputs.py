"""Input checking: every bad input is a `WsovvisError` naming the file and the item, never a hang."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from wsovvis.errors import WsovvisError
from wsovvis.evaluation import evaluate
from wsovvis.evaluation.rle_batch import check_rles

from .helpers import box, make_gt, pred

H, W = 8, 10


@pytest.fixture()
def gt():
    m = box(H, W, 1, 1, 5, 6)
    return make_gt([(1, H, W, 2), (2, H, W, 2)], [1, 2],
                   [{"video_id": 1, "category_id": 1, "masks": [m, m]}])


def good(**kw):
    m = box(H, W, 1, 1, 5, 6)
    r = pred(1, 1, 0.9, [m, m])
    r.update(kw)
    return r


def test_gt_without_annotations_names_the_file(tmp_path, gt):
    del gt["annotations"]
    path = tmp_path / "valid.json"
    path.write_text(json.dumps(gt))
    with pytest.raises(WsovvisError, match=r"valid\.json: has no 'annotations'.*ground truth"):
        evaluate(path, [good()])


def test_missing_results_file_and_non_list_results(tmp_path, gt):
    with pytest.raises(WsovvisError, match=r"nope\.json.*does not exist"):
        evaluate(gt, tmp_path / "nope.json")
    p = tmp_path / "r.json"
    p.write_text(json.dumps({"annotations": []}))
    with pytest.raises(WsovvisError, match=r"r\.json: results must be a JSON list"):
        evaluate(gt, p)


def test_unknown_video_ids_are_listed(gt):
    with pytest.raises(WsovvisError, match=r"video ids not in the GT: 7, 9 \(first at result\[1\]\)"):
        evaluate(gt, [good(), good(video_id=9), good(video_id=7)])


def test_unknown_categories_are_dropped_with_a_count(gt, caplog):
    with caplog.at_level(logging.WARNING, logger="wsovvis"):
        s = evaluate(gt, [good(), good(category_id=42), good(category_id=42, score=0.99)], allow_drops=True)
    assert "dropped 2 result(s) whose category is not in the GT categories (category ids 42)" in caplog.text
    assert s["AP"] == pytest.approx(1.0, abs=1e-12)  # the dropped ones do not count as FPs


def test_dropping_more_than_a_small_share_is_an_error_unless_allowed(gt):
    res = [good(), good(category_id=42)]
    with pytest.raises(WsovvisError, match=r"1 of 2 results \(50.0%\) have a category that is not in the GT.*"
                                           r"--allow_drops"):
        evaluate(gt, res)
    assert evaluate(gt, res, allow_drops=True)["AP"] == pytest.approx(1.0, abs=1e-12)
    # one drop in 21 results (4.8%) is a subset, not a wrong mapping: a warning only
    assert evaluate(gt, [good(score=0.5)] * 20 + [good(category_id=42)])["AP50"] > 0


@pytest.mark.parametrize("bad_frame,message", [
    ({"size": [H, W], "counts": [3, 4, 73]}, r"result\[1\]\.segmentations\[0\]: must be null or a compressed RLE"),
    ([[1, 1, 4, 1, 4, 4]], r"result\[1\]\.segmentations\[0\]: must be null or a compressed RLE"),
    ({"size": [W, H], "counts": "0"}, r"result\[1\]\.segmentations\[0\]: RLE size \[10, 8\] != video 1 size"),
])
def test_non_compressed_rle_and_wrong_size_name_the_result(gt, bad_frame, message):
    r = good()
    r["segmentations"][0] = bad_frame
    with pytest.raises(WsovvisError, match=message):
        evaluate(gt, [good(), r])


@pytest.mark.parametrize("score", [float("nan"), float("inf"), "0.5", True, None])
def test_bad_scores_name_the_result(gt, score):
    with pytest.raises(WsovvisError, match=r"result\[1\]: score must be a finite number"):
        evaluate(gt, [good(), good(score=score)])


def test_length_mismatch_is_an_error_unless_lenient(gt, caplog):
    r = good()
    r["segmentations"].append(None)
    with pytest.raises(WsovvisError, match=r"result\[0\] has 3 frames, video 1 has 2.*--lenient"):
        evaluate(gt, [r])
    with caplog.at_level(logging.WARNING, logger="wsovvis"):
        evaluate(gt, [r], lenient=True)
    assert "1 result(s) have a segmentation list length different" in caplog.text


def test_structural_problems_are_listed_together(gt):
    with pytest.raises(WsovvisError) as e:
        evaluate(gt, [good(), 3, {"video_id": 1}, good(video_id="1"), good(segmentations=None)])
    msg = str(e.value)
    assert "<results>: invalid results (4 problems)" in msg
    assert "result[1]: must be an object, got int" in msg
    assert "result[2]: missing keys 'category_id', 'score', 'segmentations'" in msg
    assert "result[3]: video_id and category_id must be integers" in msg
    assert "result[4]: 'segmentations' must be a list" in msg


def test_gt_needs_areas_and_lvvis_needs_partitions(gt):
    del gt["annotations"][0]["areas"]
    with pytest.raises(WsovvisError, match=r"annotations\[0\] \(id 1\) has no 'areas' list"):
        evaluate(gt, [good()])
    gt2 = make_gt([(1, H, W, 1)], [1, 2], [{"video_id": 1, "category_id": 1, "masks": [box(H, W, 0, 0, 2, 2)]}])
    gt2["categories"][1]["partition"] = 1
    with pytest.raises(WsovvisError, match=r"categories\[0\] \(id 1\): 'partition' is None"):
        evaluate(gt2, [], flavor="lvvis")
    with pytest.raises(WsovvisError, match="unknown evaluation flavor 'coco'"):
        evaluate(gt2, [], flavor="coco")


def _rle_counts(mask: np.ndarray) -> str:
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()


def _check(strings: list[str], pixels: int):
    _, areas, bad = check_rles([{"size": [1, 1], "counts": s} for s in strings], pixels)
    return areas, bad


def test_check_rles_finds_every_kind_of_broken_counts():
    rng = np.random.default_rng(0)
    masks = [rng.random((H, W)) < p for p in (0.0, 0.1, 0.5, 0.9, 1.0)] + [box(H, W, 0, 0, H, W // 2)]
    good_strings = [_rle_counts(m) for m in masks]
    areas, bad = _check(good_strings, H * W)
    assert not bad.any()
    assert areas.tolist() == [int(m.sum()) for m in masks]
    s = good_strings[2]
    broken = {
        "other resolution (smaller)": _rle_counts(rng.random((H - 1, W)) < 0.5),
        "other resolution (larger)": _rle_counts(rng.random((H + 1, W)) < 0.5),
        "truncated": s[:-1],
        "extra value": s + "1",
        "unterminated": s + "P",
        "empty": "",
        "char below '0'": s[:2] + "!" + s[3:],
        "non-ascii": s + "\u00e9",
        "negative first run": "N" + s[1:],
    }
    areas, bad = _check(list(broken.values()) + good_strings, H * W)
    assert bad.tolist() == [True] * len(broken) + [False] * len(good_strings), dict(zip(broken, bad))


def test_check_rles_agrees_with_pycocotools_on_many_random_masks():
    rng = np.random.default_rng(1)
    h, w = 37, 23
    masks = []
    for i in range(600):  # > 255: pycocotools' own area() fails on such lists with numpy 2
        kind = i % 3
        m = rng.random((h, w)) < rng.random() if kind == 0 else np.zeros((h, w), bool)
        if kind == 1:
            m[rng.integers(0, h):, rng.integers(0, w):] = True
        masks.append(m)
    areas, bad = _check([_rle_counts(m) for m in masks], h * w)
    assert not bad.any()
    assert areas.tolist() == [int(m.sum()) for m in masks]


_HANG_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from pycocotools import mask as mask_utils
    from wsovvis.errors import WsovvisError
    from wsovvis.evaluation import evaluate
    H, W = 8, 10
    m = np.zeros((H, W), np.uint8); m[1:5, 1:6] = 1
    def rle(a):
        r = mask_utils.encode(np.asfortranarray(a)); return {"size": [H, W], "counts": r["counts"].decode()}
    gt = {"videos": [{"id": 1, "height": H, "width": W, "length": 1, "file_names": ["a.jpg"]}],
          "categories": [{"id": 1, "name": "x"}],
          "annotations": [{"id": 1, "video_id": 1, "category_id": 1, "iscrowd": 0,
                           "segmentations": [rle(m)], "areas": [20], "bboxes": [None]}]}
    other = np.zeros((H + int(sys.argv[1]), W), np.uint8); other[1:5, 1:6] = 1
    bad = mask_utils.encode(np.asfortranarray(other))["counts"].decode()   # encoded at another size
    res = [{"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [{"size": [H, W], "counts": bad}]}]
    try:
        evaluate(gt, res)
    except WsovvisError as e:
        print("ERROR", e)
""")


@pytest.mark.parametrize("delta", [-2, 3])
def test_masks_encoded_at_another_size_are_an_error_not_a_hang(delta):
    """pycocotools' pairwise walk never ends on RLEs of different totals (the official code hangs)."""
    proc = subprocess.run([sys.executable, "-c", _HANG_SCRIPT, str(delta)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "ERROR <results>: result[0].segmentations[0] (video 1): malformed compressed RLE counts" in proc.stdout
    assert "do not add up to 8x10 pixels" in proc.stdout


def test_uncompressed_and_polygon_gt_and_bytes_counts_give_the_same_numbers():
    """YTVIS-2019 GT files store uncompressed RLE; polygons are converted like annToRLE; pycocotools
    callers may pass bytes counts."""
    from wsovvis.evaluation.reference import reference_evaluate

    h, w = 12, 16
    a, b = box(h, w, 2, 3, 8, 9), box(h, w, 1, 1, 5, 12)
    gt = make_gt([(1, h, w, 2)], [1], [{"video_id": 1, "category_id": 1, "masks": [a, a]},
                                       {"video_id": 1, "category_id": 1, "masks": [b, None]}])
    results = [pred(1, 1, 0.9, [a, b]), pred(1, 1, 0.7, [b, None]), pred(1, 1, 0.8, [a, None])]
    base = evaluate(gt, results)
    assert base["AP"] > 0
    # the same mask as uncompressed RLE (column-major runs, zeros first)
    unc = json.loads(json.dumps(gt))
    flat = a.flatten(order="F").astype(np.int8)
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate(([0], edges, [flat.size])))
    counts = ([0] if flat[0] else []) + runs.tolist()
    unc["annotations"][0]["segmentations"][0] = {"size": [h, w], "counts": counts}
    assert evaluate(unc, results) == base
    # bytes counts in results (pycocotools.mask.encode output) are accepted as they are
    as_bytes = [dict(r, segmentations=[None if s is None else {"size": s["size"], "counts": s["counts"].encode()}
                                       for s in r["segmentations"]]) for r in results]
    assert evaluate(gt, as_bytes) == base
    # a polygon GT frame is rasterised like the official annToRLE
    poly = json.loads(json.dumps(gt))
    poly["annotations"][1]["segmentations"][0] = [[1.0, 1.0, 11.5, 1.0, 11.5, 4.5, 1.0, 4.5]]
    got, ref = evaluate(poly, results), reference_evaluate(poly, results)
    assert all(got[k] == ref[k] for k in got)
