"""wsovvis convert: real-data round trips, naming rules, skip rules, id formats, bad input, atomicity."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsovvis.cli import main as cli_main
from wsovvis.data import convert as conv
from wsovvis.data import masks, rle, ytvis
from wsovvis.errors import WsovvisError

from .helpers import blob_ids, make_video, write_frame

REPO = Path(__file__).resolve().parents[2]


def _convert(root: Path, **kw) -> tuple[dict, dict]:
    out = root / "out.json"
    rep = conv.convert(root / "masks", root / "img", out, progress=False, **kw)
    return rep, json.loads(out.read_text())


def _assert_round_trip(data: dict, mask_root: Path, naming_of) -> int:
    """Every RLE decodes to exactly its PNG's pixels for its id; boxes and areas match. Returns #masks."""
    by_video = {}
    for a in data["annotations"]:
        by_video.setdefault(a["video_id"], []).append(a)
    n = 0
    for v in data["videos"]:
        anns = by_video.get(v["id"], [])
        for t, f in enumerate(v["file_names"]):
            png = mask_root / naming_of(f)
            ids = masks.read_ids(png) if png.is_file() else np.zeros((v["height"], v["width"]), np.int32)
            assert ids.shape == (v["height"], v["width"])
            present = set(np.unique(ids).tolist()) - {0}
            assert present == {a["track_id"] for a in anns if a["segmentations"][t] is not None}, (f, present)
            for a in anns:
                seg = a["segmentations"][t]
                if seg is None:
                    assert a["areas"][t] is None and a["bboxes"][t] is None
                    continue
                assert isinstance(seg["counts"], str) and seg["size"] == [v["height"], v["width"]]
                m = rle.decode(seg)
                expect = ids == a["track_id"]
                assert np.array_equal(m, expect), (f, a["track_id"])
                assert a["areas"][t] == int(expect.sum())
                assert a["bboxes"][t] == rle.mask_bbox(expect)
                n += 1
    return n


@pytest.mark.parametrize("method, tracks", [("Pseudo_OSVOS_davis2017", 17), ("Pseudo_RVOS_davis2017", 153)])
def test_real_davis_round_trip(real_data, tmp_path, method, tracks):
    root = real_data / "davis2016val_sample"
    out = tmp_path / "out.json"
    rep = conv.convert(root / method, root / "JPEGImages", out, split_name="davis", progress=False)
    data = ytvis.load(out, require_annotations=True).data
    assert [v["name"] for v in data["videos"]] == sorted(p.name for p in (root / "JPEGImages").iterdir())
    assert [v["id"] for v in data["videos"]] == list(range(1, 9))
    assert all(v["length"] == 30 and (v["height"], v["width"]) == (480, 854) for v in data["videos"])
    assert data["videos"][0]["file_names"][0] == "blackswan/00000.jpg"
    assert rep["mask_naming"] == {"<stem>.png": 8} and rep["counts"]["videos_skipped"] == 0
    assert set(rep["id_formats"]) == {"palette"}
    assert len(data["annotations"]) == tracks
    assert [a["id"] for a in data["annotations"]] == list(range(1, tracks + 1))
    assert all(a["iscrowd"] == 0 and a["category_id"] == 1 for a in data["annotations"])
    n = _assert_round_trip(data, root / method, lambda f: f.replace(".jpg", ".png"))
    assert rep["counts"]["mask_pngs"] == 240 and n >= 240
    if method.startswith("Pseudo_OSVOS"):
        # SOURCE.md: kite-surf id2 is present in 19 of 30 frames, scooter-black id1 in 25
        name_of = {v["id"]: v["name"] for v in data["videos"]}
        counts = {(name_of[a["video_id"]], a["track_id"]): sum(s is not None for s in a["segmentations"])
                  for a in data["annotations"]}
        assert counts[("kite-surf", 2)] == 19 and counts[("scooter-black", 1)] == 25
        assert counts[("camel", 1)] == 30 and ("camel", 2) not in counts


def test_synthetic_round_trip_with_check_and_gt(synthetic_data, tmp_path):
    d = synthetic_data
    out = tmp_path / "conv.json"
    rep = conv.convert(d.mask_root, d.img_root, out, min_masks=1, progress=False)
    data = json.loads(out.read_text())
    _assert_round_trip(data, d.mask_root, lambda f: f.replace(".jpg", ".png"))
    gt = json.loads(d.gt_json.read_text())
    # same masks as the generator's own GT, track by track
    conv_by_key = {(a["video_id"], a["track_id"]): a["segmentations"] for a in data["annotations"]}
    for a in gt["annotations"]:
        assert conv_by_key[(a["video_id"], a["track_id"])] == a["segmentations"]
    assert rep["counts"]["tracks"] == len(gt["annotations"])


def test_both_namings_and_missing_masks(tmp_path):
    h, w = 12, 16
    make_video(tmp_path, "a", [blob_ids(h, w, t) for t in range(4)], naming="mask_")
    make_video(tmp_path, "b", [blob_ids(h, w, t) if t != 2 else None for t in range(4)], naming="")
    rep, data = _convert(tmp_path)
    assert rep["mask_naming"] == {"mask_<stem>.png": 1, "<stem>.png": 1}
    b = next(a for a in data["annotations"] if a["video_id"] == 2 and a["track_id"] == 1)
    assert [s is None for s in b["segmentations"]] == [False, False, True, False]
    assert b["areas"] == [9, 9, None, 9] and b["bboxes"][0] == [1.0, 1.0, 3.0, 3.0]
    assert [v["name"] for v in data["videos"]] == ["a", "b"]
    assert data["videos"][1]["file_names"] == [f"b/{t:05d}.jpg" for t in range(4)]


@pytest.mark.parametrize("fmt", ["palette", "gray", "uint16", "rgb"])
def test_id_formats(tmp_path, fmt):
    h, w = 10, 14
    big = 300 if fmt in ("uint16", "rgb") else 7
    maps = [blob_ids(h, w, t, ids=(big, 3)) for t in range(3)]
    make_video(tmp_path, "v", maps, fmt=fmt)
    rep, data = _convert(tmp_path, min_masks=1)
    expected = {"palette": "palette", "gray": "palette", "uint16": "uint16", "rgb": "rgb"}[fmt]
    assert list(rep["id_formats"]) == [expected]
    assert sorted(a["track_id"] for a in data["annotations"]) == sorted([big, 3])
    _assert_round_trip(data, tmp_path / "masks", lambda f: f.replace("v/", "v/mask_").replace(".jpg", ".png"))


def test_id_format_forced_mismatch_is_skipped(tmp_path):
    make_video(tmp_path, "v", [blob_ids(10, 14, t) for t in range(3)], fmt="rgb")
    make_video(tmp_path, "w", [blob_ids(10, 14, t) for t in range(3)], fmt="uint16")
    rep, data = _convert(tmp_path, id_format="uint16", min_masks=1)
    [s] = rep["skipped"]
    assert s["video"] == "v" and s["reason"] == "unreadable_png" and "expects" in s["detail"]
    assert "mask_00000.png" in s["detail"]


def test_ignore_value(tmp_path):
    m = blob_ids(10, 14, 0)
    m[0, :] = 255
    make_video(tmp_path, "v", [m, m, m])
    _, data = _convert(tmp_path, ignore_value=255)
    assert sorted(a["track_id"] for a in data["annotations"]) == [1, 2]
    _, data = _convert(tmp_path)
    assert sorted(a["track_id"] for a in data["annotations"]) == [1, 2, 255]


def test_skip_rules_and_report(tmp_path):
    h, w = 12, 16
    ok = [blob_ids(h, w, t) for t in range(5)]
    make_video(tmp_path, "ok", ok)
    make_video(tmp_path, "listed", ok)
    make_video(tmp_path, "few", [ok[0], ok[1], None, None, None])  # 2 masks < min_masks 3
    make_video(tmp_path, "sparse", ok[:3] + [None] * 13)  # 3/16 < 0.2
    make_video(tmp_path, "nomasks", [None] * 4)  # frames only: min_masks
    make_video(tmp_path, "sizes", ok[:3], frame_hw=(13, 16))  # PNG 12x16 vs frame 13x16
    (tmp_path / "img" / "empty").mkdir()  # empty video folder
    make_video(tmp_path, "orphan", ok)  # masks but no frames
    for f in (tmp_path / "img" / "orphan").iterdir():
        f.unlink()
    (tmp_path / "img" / "orphan").rmdir()
    make_video(tmp_path, "extra", ok)  # a mask for a frame that does not exist
    masks.write_ids(tmp_path / "masks" / "extra" / "mask_00099.png", ok[0])
    make_video(tmp_path, "trunc", ok)  # truncated PNG
    p = tmp_path / "masks" / "trunc" / "mask_00002.png"
    p.write_bytes(p.read_bytes()[:40])
    make_video(tmp_path, "mixed", ok)
    os.rename(tmp_path / "masks" / "mixed" / "mask_00001.png", tmp_path / "masks" / "mixed" / "00001.png")
    skip = tmp_path / "skip.txt"
    skip.write_text("# comment\nlisted\n\nnot_a_video\n")
    out = tmp_path / "out.json"
    rc = cli_main(["convert", "--mask_root", str(tmp_path / "masks"), "--img_root", str(tmp_path / "img"),
                   "--out_json", str(out), "--skip_list", str(skip), "--no_progress"])
    assert rc == 0
    rep = json.loads((tmp_path / "out.skipped.json").read_text())
    reasons = {s["video"]: s["reason"] for s in rep["skipped"]}
    assert reasons == {
        "listed": "skip_list", "few": "min_masks", "sparse": "min_coverage", "nomasks": "min_masks",
        "sizes": "size_mismatch", "empty": "no_frames", "orphan": "no_frames", "extra": "mask_without_frame",
        "trunc": "unreadable_png", "mixed": "mixed_mask_names",
    }
    details = {s["video"]: s["detail"] for s in rep["skipped"]}
    assert "mask_00099.png" in details["extra"]
    assert "mask_00002.png" in details["trunc"] and "unreadable PNG" in details["trunc"]
    assert "16x12" in details["sizes"] and "16x13" in details["sizes"]
    assert "does not exist" in details["orphan"]
    assert "3/16" not in details["sparse"] and "0.188" in details["sparse"]
    assert rep["counts"]["videos_found"] == 11 and rep["counts"]["videos_converted"] == 1
    assert rep["counts"]["skipped_by_reason"]["min_masks"] == 2
    assert rep["skip_list_not_found"] == ["not_a_video"]
    assert set(rep["skip_reasons"]) == set(reasons.values())
    data = ytvis.load(out).data
    assert [v["name"] for v in data["videos"]] == ["ok"] and data["videos"][0]["id"] == 1


def test_thresholds_are_flags(tmp_path):
    make_video(tmp_path, "few", [blob_ids(12, 16, 0), None, None, None, None, None])
    with pytest.raises(WsovvisError, match="no video converted: all 1 skipped .min_masks 1"):
        _convert(tmp_path)
    rep, _ = _convert(tmp_path, min_masks=1, min_coverage=0.1)
    assert rep["counts"]["videos_converted"] == 1
    rep, _ = _convert(tmp_path, min_masks=1, min_coverage=0.0)
    assert rep["counts"]["videos_converted"] == 1
    with pytest.raises(WsovvisError, match="min_coverage"):
        _convert(tmp_path, min_masks=1, min_coverage=0.2)


def test_failure_leaves_no_partial_json(tmp_path):
    make_video(tmp_path, "v", [blob_ids(12, 16, t) for t in range(3)])
    out = tmp_path / "out.json"
    out.write_text("previous")
    p = tmp_path / "masks" / "v" / "mask_00001.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(WsovvisError, match="no video converted.*unreadable_png 1.*not written"):
        conv.convert(tmp_path / "masks", tmp_path / "img", out, progress=False)
    assert out.read_text() == "previous"
    assert json.loads((tmp_path / "out.skipped.json").read_text())["skipped"][0]["reason"] == "unreadable_png"
    assert not [f for f in tmp_path.iterdir() if f.name.endswith(".tmp")]


def test_bad_roots_and_flags(tmp_path):
    (tmp_path / "img").mkdir()
    with pytest.raises(WsovvisError, match="--mask_root is not a folder"):
        conv.convert(tmp_path / "nope", tmp_path / "img", tmp_path / "o.json", progress=False)
    (tmp_path / "masks").mkdir()
    with pytest.raises(WsovvisError, match="no video folders"):
        conv.convert(tmp_path / "masks", tmp_path / "img", tmp_path / "o.json", progress=False)
    with pytest.raises(WsovvisError, match="--workers"):
        conv.convert(tmp_path / "masks", tmp_path / "img", tmp_path / "o.json", workers=0, progress=False)
    assert cli_main(["convert", "--mask_root", str(tmp_path / "masks"), "--img_root", str(tmp_path / "img"),
                     "--out_json", str(tmp_path / "o.json"), "--skip_list", str(tmp_path / "missing.txt")]) == 2


def test_unreadable_frame_and_frame_size_disagreement(tmp_path):
    make_video(tmp_path, "bad", [blob_ids(12, 16, t) for t in range(3)])
    (tmp_path / "img" / "bad" / "00001.jpg").write_bytes(b"not a jpeg")
    make_video(tmp_path, "sizes", [blob_ids(12, 16, t) for t in range(3)])
    write_frame(tmp_path / "img" / "sizes" / "00002.jpg", 20, 16)
    make_video(tmp_path, "good", [blob_ids(12, 16, t) for t in range(3)])
    rep, _ = _convert(tmp_path)
    reasons = {s["video"]: (s["reason"], s["detail"]) for s in rep["skipped"]}
    assert reasons["bad"][0] == "unreadable_frame" and "00001.jpg" in reasons["bad"][1]
    assert reasons["sizes"][0] == "size_mismatch" and "00002.jpg" in reasons["sizes"][1]


def test_workers_give_identical_output(synthetic_data, tmp_path):
    d = synthetic_data
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    conv.convert(d.mask_root, d.img_root, a, progress=False)
    conv.convert(d.mask_root, d.img_root, b, workers=2, progress=False)
    assert a.read_bytes() == b.read_bytes()


def test_tool_script_summary_and_default_report(tmp_path):
    make_video(tmp_path, "v", [blob_ids(12, 16, t) for t in range(4)])
    make_video(tmp_path, "w", [blob_ids(12, 16, 0)] + [None] * 3)
    out = tmp_path / "sub" / "pseudo.json"
    r = subprocess.run([sys.executable, str(REPO / "tools" / "convert_videocutler_png_to_json.py"),
                        "--mask_root", str(tmp_path / "masks"), "--img_root", str(tmp_path / "img"),
                        "--out_json", str(out), "--split_name", "pseudo_train", "--category_id", "7",
                        "--category_name", "thing", "--no_progress"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "converted 1/2 videos (4 frames, 4 mask PNGs [mask_<stem>.png: 1], 2 tracks)" in r.stdout
    assert "skipped 1 (min_masks 1)" in r.stdout and "pseudo.skipped.json" in r.stdout
    data = json.loads(out.read_text())
    assert data["categories"] == [{"id": 7, "name": "thing", "supercategory": "thing"}]
    assert {a["category_id"] for a in data["annotations"]} == {7} and data["info"]["split"] == "pseudo_train"
    assert json.loads((tmp_path / "sub" / "pseudo.skipped.json").read_text())["split_name"] == "pseudo_train"
    r = subprocess.run([sys.executable, str(REPO / "tools" / "convert_videocutler_png_to_json.py"),
                        "--mask_root", str(tmp_path / "nope"), "--img_root", str(tmp_path / "img"),
                        "--out_json", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and "error:" in r.stderr and "nope" in r.stderr


def test_default_skip_report_name():
    assert conv.default_skip_report("a/b/x.json") == Path("a/b/x.skipped.json")
    assert conv.default_skip_report("x.out") == Path("x.out.skipped.json")


def test_empty_masks_keep_video_without_tracks(tmp_path):
    make_video(tmp_path, "v", [np.zeros((8, 8), np.int64)] * 3)
    rep, data = _convert(tmp_path)
    assert data["annotations"] == [] and rep["counts"]["videos_without_tracks"] == 1
    assert Image.open(tmp_path / "masks" / "v" / "mask_00000.png").mode == "P"


def test_image_size_header_reader(tmp_path):
    rgb = (np.random.default_rng(0).random((37, 53, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.jpg")
    # progressive, with an EXIF block that puts the SOF marker past the first read
    Image.fromarray(rgb).save(tmp_path / "p.jpg", progressive=True, exif=b"Exif\x00\x00" + b"\x00" * 60000)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb).save(tmp_path / "a.bmp")  # neither: PIL fallback
    for f in ("a.jpg", "p.jpg", "a.png", "a.bmp"):
        assert conv.image_size(tmp_path / f) == (37, 53), f


@pytest.mark.parametrize("method", ["Pseudo_OSVOS_davis2017", "Pseudo_RVOS_davis2017"])
def test_compiled_and_numpy_encoders_write_the_same_bytes(real_data, tmp_path, monkeypatch, method):
    if not rle.has_compiled_encoder():
        pytest.skip("wsovvis.data._rle_encode is not built; only the numpy encoder exists here")
    root = real_data / "davis2016val_sample"
    conv.convert(root / method, root / "JPEGImages", tmp_path / "c.json", progress=False)
    monkeypatch.setenv(rle.ENCODER_ENV, "numpy")
    conv.convert(root / method, root / "JPEGImages", tmp_path / "n.json", progress=False)
    assert (tmp_path / "c.json").read_bytes() == (tmp_path / "n.json").read_bytes()
