"""Tube scores (and categories) travel with the tubes: pseudo -> tracks.json -> convert -> eval."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from wsovvis.cli import run_module
from wsovvis.data import convert as convert_mod
from wsovvis.data import track_sidecar
from wsovvis.data.masks import write_ids
from wsovvis.errors import WsovvisError
from wsovvis.evaluation import cli as eval_cli
from wsovvis.evaluation import evaluate
from wsovvis.pseudo import cli as pseudo_cli
from wsovvis.pseudo.runner import read_manifests
from wsovvis.utils.io import read_json


def _frames_and_masks(tmp_path, ids_per_frame, name="v1", size=(6, 8)):
    from PIL import Image

    img, msk = tmp_path / "img" / name, tmp_path / "masks" / name
    img.mkdir(parents=True)
    msk.mkdir(parents=True)
    for t, ids in enumerate(ids_per_frame):
        Image.new("RGB", (size[1], size[0])).save(img / f"{t:05d}.jpg")
        m = np.zeros(size, np.uint8)
        for k, i in enumerate(ids):
            m[k, :] = i
        write_ids(msk / f"mask_{t:05d}.png", m)
    return tmp_path / "img", tmp_path / "masks"


def test_sidecar_round_trip_and_errors(tmp_path):
    track_sidecar.write_sidecar(tmp_path, "v", [{"id": 2, "score": 0.25, "category_id": 7, "category_name": "cat"},
                                                {"id": 1, "score": 0.5}], [{"id": 7, "name": "cat"}])
    got = track_sidecar.read_sidecar(tmp_path)
    assert got["tracks"] == {1: {"score": 0.5, "category_id": None, "category_name": None},
                             2: {"score": 0.25, "category_id": 7, "category_name": "cat"}}
    assert got["categories"] == {7: "cat"}
    assert track_sidecar.read_sidecar(tmp_path / "nowhere") is None
    for bad, msg in [({"tracks": [{"id": 1, "score": float("nan")}]}, r"tracks\[0\] \(id 1\): 'score' must be"),
                     ({"tracks": [{"id": 0, "score": 1}]}, r"tracks\[0\]: needs a positive integer 'id'"),
                     ({"tracks": [{"id": 1, "score": 1, "category_id": 3}]}, r"category_id 3 is not in"),
                     ({"tracks": [{"id": 1, "score": 1}, {"id": 1, "score": 2}]}, r"listed twice"),
                     ([], r"must be an object with a 'tracks' list")]:
        (tmp_path / "tracks.json").write_text(json.dumps(bad))
        with pytest.raises(WsovvisError, match=msg) as e:
            track_sidecar.read_sidecar(tmp_path)
        assert "tracks.json" in str(e.value)


def test_convert_keeps_scores_and_sidecar_categories(tmp_path):
    img, masks = _frames_and_masks(tmp_path, [[1, 2], [1, 2], [2]])
    cats = [{"id": 4, "name": "dog"}, {"id": 9, "name": "cat"}]
    track_sidecar.write_sidecar(masks / "v1", "v1", [{"id": 1, "score": 0.9, "category_id": 9, "category_name": "cat"},
                                                     {"id": 2, "score": 0.3, "category_id": 4, "category_name": "dog"}],
                                cats)
    out = tmp_path / "tubes.json"
    report = convert_mod.convert(masks, img, out, min_masks=1, progress=False)
    data = read_json(out)
    assert [c["id"] for c in data["categories"]] == [4, 9] and data["categories"][1]["name"] == "cat"
    by_track = {a["track_id"]: a for a in data["annotations"]}
    assert (by_track[1]["score"], by_track[1]["category_id"]) == (0.9, 9)
    assert (by_track[2]["score"], by_track[2]["category_id"]) == (0.3, 4)
    assert report["counts"]["videos_with_track_scores"] == 1


def test_convert_without_sidecar_is_unchanged_and_a_missing_track_skips_the_video(tmp_path):
    img, masks = _frames_and_masks(tmp_path, [[1, 2], [1, 2]])
    data = read_json(convert_mod.convert(masks, img, tmp_path / "a.json", min_masks=1, progress=False)["out_json"])
    assert data["categories"] == [{"id": 1, "name": "object", "supercategory": "object"}]
    assert all("score" not in a for a in data["annotations"])
    track_sidecar.write_sidecar(masks / "v1", "v1", [{"id": 1, "score": 0.9}])
    with pytest.raises(WsovvisError, match="no video converted"):
        convert_mod.convert(masks, img, tmp_path / "b.json", min_masks=1, progress=False)
    report = read_json(tmp_path / "b.skipped.json")
    assert report["skipped"][0]["reason"] == "sidecar_mismatch"
    assert "track id(s) [2]" in report["skipped"][0]["detail"]


def test_one_category_id_with_two_names_is_an_error(tmp_path):
    img, masks = _frames_and_masks(tmp_path, [[1], [1]], name="a")
    _frames_and_masks(tmp_path, [[1], [1]], name="b")
    track_sidecar.write_sidecar(masks / "a", "a", [{"id": 1, "score": 1, "category_id": 3}], [{"id": 3, "name": "x"}])
    track_sidecar.write_sidecar(masks / "b", "b", [{"id": 1, "score": 1, "category_id": 3}], [{"id": 3, "name": "y"}])
    with pytest.raises(WsovvisError, match=r"category id 3 is 'x' in video a but 'y' in video b"):
        convert_mod.convert(masks, img, tmp_path / "c.json", min_masks=1, progress=False)


def _manifest_results(tubes: dict, pseudo_out, gt: dict) -> list[dict]:
    """The scoring the demo used to do by hand: each converted track gets its manifest score."""
    manifest = read_manifests(pseudo_out)
    gt_id = {v["name"]: v["id"] for v in gt["videos"]}
    name = {v["id"]: v["name"] for v in tubes["videos"]}
    res = []
    for a in tubes["annotations"]:
        v = name[a["video_id"]]
        score = {t["id"]: t["score"] for t in manifest[v]["tubes"]}[a["track_id"]]
        res.append({"video_id": gt_id[v], "category_id": 1, "score": score, "segmentations": a["segmentations"]})
    return res


@pytest.mark.slow
def test_pseudo_convert_eval_gives_the_manifest_score_ap(synthetic_data, tmp_path, capsys):
    pseudo_out, tubes = tmp_path / "pseudo", tmp_path / "tubes.json"
    assert run_module(pseudo_cli, ["--img_root", str(synthetic_data.img_root), "--out", str(pseudo_out),
                                   "--no_progress"], "wsovvis pseudo") == 0
    assert sorted(p.name for p in (pseudo_out / "masks").iterdir() if (p / "tracks.json").is_file()) == \
        sorted(p.name for p in synthetic_data.img_root.iterdir())
    assert run_module(convert_mod, ["--mask_root", str(pseudo_out / "masks"), "--img_root",
                                    str(synthetic_data.img_root), "--out_json", str(tubes), "--min_masks", "1",
                                    "--no_progress"], "wsovvis convert") == 0
    capsys.readouterr()
    assert run_module(eval_cli, ["--gt", str(synthetic_data.gt_json), "--results", str(tubes), "--class_agnostic",
                                 "--json"], "wsovvis eval") == 0
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    gt = read_json(synthetic_data.gt_json)
    expected = evaluate(gt, _manifest_results(read_json(tubes), pseudo_out, gt), class_agnostic=True)
    assert stats["AP50"] > 0
    for k in ("AP", "AP50", "AP75", "AR1", "AR10"):
        assert stats[k] == pytest.approx(expected[k], abs=1e-12)
    # without scores the same tubes rank as ties, which is what the scores are there to avoid
    plain = read_json(tubes)
    for a in plain["annotations"]:
        a.pop("score")
    tied = evaluate(gt, plain, class_agnostic=True)
    assert tied["AP"] != pytest.approx(stats["AP"], abs=1e-9) or tied["AR1"] != pytest.approx(stats["AR1"])


def test_eval_matches_tube_json_videos_by_name_and_warns_about_uncovered_videos(synthetic_data, tmp_path, caplog):
    gt = read_json(synthetic_data.gt_json)
    tubes = json.loads(json.dumps(gt))
    # renumber and reorder the tube file's videos: matching must go by name, not by id
    keep = tubes["videos"][:2][::-1]
    remap = {v["id"]: 100 + k for k, v in enumerate(keep)}
    tubes["videos"] = [dict(v, id=remap[v["id"]]) for v in keep]
    tubes["annotations"] = [dict(a, video_id=remap[a["video_id"]], score=0.9)
                            for a in tubes["annotations"] if a["video_id"] in remap]
    with caplog.at_level("WARNING", logger="wsovvis"):
        stats = evaluate(gt, tubes)
    assert 0 < stats["AR100"] < 1  # two of the videos found perfectly, the rest missed
    n = len(gt["videos"])
    assert f"cover 2 of the {n} GT videos; {n - 2} GT video(s) have no prediction" in caplog.text
    covered = {v["id"] for v in gt["videos"][:2]}
    only = dict(gt, videos=[v for v in gt["videos"] if v["id"] in covered],
                annotations=[a for a in gt["annotations"] if a["video_id"] in covered])
    assert evaluate(only, tubes)["AP"] == pytest.approx(1.0)  # the GT itself, as tubes: perfect
    tubes["videos"][0]["name"] = "nope"
    with pytest.raises(WsovvisError, match=r"1 video\(s\) not in the GT \(matched by name\): nope"):
        evaluate(gt, tubes)


def test_demo_layout_keeps_working_when_a_pseudo_output_has_no_sidecar(tmp_path):
    img, masks = _frames_and_masks(tmp_path, [[1], [1]])
    shutil.copytree(masks / "v1", masks / "v2")
    shutil.copytree(img / "v1", img / "v2")
    track_sidecar.write_sidecar(masks / "v1", "v1", [{"id": 1, "score": 0.4}])
    data = read_json(convert_mod.convert(masks, img, tmp_path / "x.json", min_masks=1, progress=False)["out_json"])
    assert [a.get("score") for a in data["annotations"]] == [0.4, None]


def test_tube_categories_match_the_gt_by_name_not_by_id(synthetic_data):
    gt = read_json(synthetic_data.gt_json)
    tubes = json.loads(json.dumps(gt))
    for a in tubes["annotations"]:
        a["score"] = 0.9
    # same ids, other names: an id match would score them as the GT classes
    tubes["categories"] = [dict(c, name=f"other_{c['id']}") for c in tubes["categories"]]
    with pytest.raises(WsovvisError, match=r"have a category that is not in the GT.*--allow_drops"):
        evaluate(gt, tubes)
    assert evaluate(gt, tubes, allow_drops=True)["AP"] == 0.0  # all dropped: nothing found
    assert evaluate(gt, tubes, class_agnostic=True)["AP"] == pytest.approx(1.0)
    # the right names in another id order map back to the GT ids
    ids = [c["id"] for c in tubes["categories"]]
    renumber = dict(zip(ids, ids[::-1]))
    tubes["categories"] = [dict(c, id=renumber[c["id"]]) for c in gt["categories"]]
    for a in tubes["annotations"]:
        a["category_id"] = renumber[a["category_id"]]
    assert evaluate(gt, tubes)["AP"] == pytest.approx(1.0)
