"""``wsovvis pseudo --engine owlv2_sam2`` end to end with the stand-ins: id PNGs + tracks.json ->
``wsovvis convert`` (multi-class, scores kept) -> ``wsovvis check`` -> ``wsovvis eval`` per class."""

from __future__ import annotations

import json

import numpy as np

from tests.autolabel.scenes import video_frames, write_video
from wsovvis.cli import main as cli
from wsovvis.data import rle as rle_utils

NAMES = ["box", "car", "tree"]


def _gt_json(path, videos):
    vids, anns = [], []
    for vi, (name, gt) in enumerate(videos, 1):
        t, h, w = gt.shape
        vids.append({"id": vi, "name": name, "file_names": [f"{name}/{k:05d}.png" for k in range(t)],
                     "height": h, "width": w, "length": t})
        for g in (1, 2, 3):
            segs = [rle_utils.encode(gt[k] == g) if (gt[k] == g).any() else None for k in range(t)]
            anns.append({"id": len(anns) + 1, "video_id": vi, "category_id": g, "iscrowd": 0, "segmentations": segs,
                         "areas": [None if s is None else rle_utils.area(s) for s in segs],
                         "bboxes": [None if s is None else rle_utils.bbox(s) for s in segs]})
    path.write_text(json.dumps({"videos": vids, "annotations": anns,
                                "categories": [{"id": i + 1, "name": n} for i, n in enumerate(NAMES)]}))


def test_pseudo_convert_check_eval(tmp_path, capsys):
    img = tmp_path / "img"
    videos = []
    for i, n in enumerate((12, 14)):
        frames, gt = video_frames(num_frames=n)
        write_video(img, f"vid{i}", frames)
        videos.append((f"vid{i}", gt))
    (tmp_path / "vocab.txt").write_text("\n".join(NAMES) + "\n")
    (tmp_path / "map.json").write_text(json.dumps({"box": ["red box", "red square"], "car": ["blue car"],
                                                   "tree": ["green tree"]}))
    out = tmp_path / "out"
    argv = ["pseudo", "--img_root", str(img), "--out", str(out), "--engine", "owlv2_sam2", "--vocab",
            str(tmp_path / "vocab.txt"), "--prompt_map", str(tmp_path / "map.json"), "--detector", "standin:colour",
            "--segmenter", "standin:colour", "--key_every", "3", "--min_len", "2", "--no_progress"]
    assert cli(argv) == 0
    side = json.loads((out / "masks" / "vid0" / "tracks.json").read_text())
    assert sorted(t["category_name"] for t in side["tracks"]) == NAMES
    assert all(t["score"] > 0.5 for t in side["tracks"])
    pseudo = tmp_path / "pseudo.json"
    assert cli(["convert", "--mask_root", str(out / "masks"), "--img_root", str(img), "--out_json", str(pseudo),
                "--no_progress"]) == 0
    data = json.loads(pseudo.read_text())
    assert [c["name"] for c in data["categories"]] == NAMES
    assert sorted((a["video_id"], a["category_id"]) for a in data["annotations"]) == \
        [(v, c) for v in (1, 2) for c in (1, 2, 3)]
    assert all("score" in a for a in data["annotations"])
    assert cli(["check", str(pseudo), "--img_root", str(img), "--no_progress"]) == 0
    gt = tmp_path / "gt.json"
    _gt_json(gt, videos)
    capsys.readouterr()
    stats_file = tmp_path / "stats.json"
    assert cli(["eval", "--gt", str(gt), "--results", str(pseudo), "--json", "--per_category",
                "--out", str(stats_file)]) == 0
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[0])
    assert stats["AP"] > 0.95, stats
    rows = {r["name"]: r for r in json.loads(stats_file.read_text())["per_category"]}
    assert sorted(rows) == NAMES
    for n in NAMES:  # each class: its two GT tracks found, under the right category
        assert rows[n]["num_gt"] == 2 and rows[n]["num_results"] == 2 and rows[n]["AP50"] == 1.0, rows[n]


def test_pseudo_resume_keeps_output(tmp_path):
    img = tmp_path / "img"
    frames, _ = video_frames(num_frames=6)
    write_video(img, "v", frames)
    (tmp_path / "vocab.txt").write_text("red\nblue\n")
    argv = ["pseudo", "--img_root", str(img), "--out", str(tmp_path / "out"), "--engine", "owlv2_sam2", "--vocab",
            str(tmp_path / "vocab.txt"), "--detector", "standin:colour", "--segmenter", "standin:colour",
            "--no_progress"]
    assert cli(argv) == 0
    png = tmp_path / "out" / "masks" / "v" / "mask_00000.png"
    first = png.read_bytes()
    assert set(np.unique(np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(png)))) == {0, 1, 2}
    assert cli(argv) == 0
    assert png.read_bytes() == first
