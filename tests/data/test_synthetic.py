"""Synthetic sample videos: layout, valid GT, determinism, and the properties the demo relies on."""

from __future__ import annotations

import colorsys
import json

import numpy as np
import pytest
from PIL import Image

from wsovvis.cli import main as cli_main
from wsovvis.data import masks, rle, ytvis
from wsovvis.data.synthetic import SHAPES, generate_dataset, shape_mask
from wsovvis.errors import WsovvisError


def test_shape_masks_hand_values():
    u = np.array([0.0, 0.9, 0.0, 0.7, 0.95])
    v = np.array([0.0, 0.0, 0.3, 0.7, 0.0])
    assert shape_mask("disc", u, v).tolist() == [True, True, True, True, True]
    # the ring has a hole of radius 0.55
    assert shape_mask("ring", u, v).tolist() == [False, True, False, True, True]
    # the square's half side is 0.8
    assert shape_mask("square", u, v).tolist() == [True, False, True, True, False]
    # star: centre inside, a point between two tips (radius 0.6 at the inner-vertex angle) outside
    a = np.pi / 2 + np.pi / 5
    assert shape_mask("star", np.array([0.0, 0.6 * np.cos(a)]), np.array([0.0, 0.6 * np.sin(a)])).tolist() == [
        True,
        False,
    ]
    # triangle points up: the apex region is inside, the same point below is outside
    assert shape_mask("triangle", np.array([0.0, 0.0]), np.array([0.8, -0.8])).tolist() == [True, False]
    with pytest.raises(WsovvisError, match="unknown synthetic shape"):
        shape_mask("blob", u, v)


def test_layout_and_valid_gt(synthetic_data):
    d = synthetic_data
    data = json.loads(d.gt_json.read_text())
    assert ytvis.validate(data) == []
    assert [v["file_names"][0] for v in data["videos"]] == [f"{n}/00000.jpg" for n in d.video_names]
    assert [c["name"] for c in data["categories"]] == list(SHAPES[:5])
    for v in data["videos"]:
        assert v["length"] == 6 and (v["height"], v["width"]) == (96, 128)
        for f in v["file_names"]:
            with Image.open(d.img_root / f) as im:
                assert im.size == (128, 96) and im.mode == "RGB"
            assert (d.mask_root / f.replace(".jpg", ".png")).is_file()


def test_gt_matches_id_pngs_and_every_object_visible(synthetic_data):
    d = synthetic_data
    ds = ytvis.load(d.gt_json, require_annotations=True)
    for v in ds.videos:
        anns = ds.anns_by_video[v["id"]]
        assert 2 <= len(anns) <= 4
        id_maps = [masks.read_ids(d.mask_root / f.replace(".jpg", ".png")) for f in v["file_names"]]
        assert sorted(set(np.unique(np.stack(id_maps))) - {0}) == list(range(1, len(anns) + 1))
        for k, a in enumerate(anns, 1):
            assert any(s is not None for s in a["segmentations"]), "object never visible"
            for t, seg in enumerate(a["segmentations"]):
                gt = id_maps[t] == k
                if seg is None:
                    assert not gt.any() and a["areas"][t] is None
                    continue
                assert np.array_equal(rle.decode(seg), gt)
                assert a["areas"][t] == int(gt.sum())
                assert a["bboxes"][t] == rle.mask_bbox(gt)


def test_not_trivial_motion_occlusion_entering(tmp_path):
    d = generate_dataset(tmp_path, num_videos=12, num_frames=8, seed=3, progress=False)
    ds = ytvis.load(d.gt_json)
    partial, occluded, scale_changes, moved = 0, 0, 0, 0
    for v in ds.videos:
        for a in ds.anns_by_video[v["id"]]:
            areas = [x for x in a["areas"] if x]
            boxes = [b for b in a["bboxes"] if b]
            present = [s is not None for s in a["segmentations"]]
            # entering/leaving: absent in some frames, or cut by the border
            if not all(present) or any(b[0] == 0 or b[1] == 0 or b[0] + b[2] == 128 or b[1] + b[3] == 96
                                       for b in boxes):
                partial += 1
            if max(areas) > 1.3 * min(areas):
                scale_changes += 1
            cx = [b[0] + b[2] / 2 for b in boxes]
            cy = [b[1] + b[3] / 2 for b in boxes]
            if np.hypot(max(cx) - min(cx), max(cy) - min(cy)) > 5:
                moved += 1
        # occlusion: two objects' boxes overlap in some frame
        anns = ds.anns_by_video[v["id"]]
        for t in range(8):
            bs = [a["bboxes"][t] for a in anns if a["bboxes"][t]]
            for i in range(len(bs)):
                for j in range(i + 1, len(bs)):
                    (x1, y1, w1, h1), (x2, y2, w2, h2) = bs[i], bs[j]
                    if min(x1 + w1, x2 + w2) > max(x1, x2) and min(y1 + h1, y2 + h2) > max(y1, y2):
                        occluded += 1
    n = len(ds.annotations)
    assert partial >= n // 4 and scale_changes >= n // 2 and moved >= n // 2 and occluded >= 10, (
        partial, scale_changes, moved, occluded, n)
    # every category occurs
    assert {a["category_id"] for a in ds.annotations} == {1, 2, 3, 4, 5}


def test_objects_stand_out_from_background(synthetic_data):
    """Saturation of object pixels is well above the background's (what segmenters key on)."""
    d = synthetic_data
    for name in d.video_names:
        img = np.asarray(Image.open(d.img_root / name / "00002.jpg"), dtype=np.float64) / 255
        ids = masks.read_ids(d.mask_root / name / "00002.png")
        sat = np.array([colorsys.rgb_to_hsv(*px)[1] for px in img.reshape(-1, 3)]).reshape(ids.shape)
        fg, bg = sat[ids > 0], sat[ids == 0]
        assert fg.size > 100
        assert np.median(fg) > np.median(bg) + 0.35, (name, np.median(fg), np.median(bg))
        # the background is textured, not flat
        assert img[ids == 0].std(axis=0).mean() > 0.02


def test_deterministic_and_prefix_stable(tmp_path):
    a = generate_dataset(tmp_path / "a", num_videos=2, num_frames=4, seed=7, progress=False)
    b = generate_dataset(tmp_path / "b", num_videos=3, num_frames=4, seed=7, progress=False)
    c = generate_dataset(tmp_path / "c", num_videos=2, num_frames=4, seed=8, progress=False)
    for f in ("synth_0000/00003.png", "synth_0001/00000.png"):
        assert (a.mask_root / f).read_bytes() == (b.mask_root / f).read_bytes()
        jpg = f.replace("png", "jpg")
        assert (a.img_root / jpg).read_bytes() == (b.img_root / jpg).read_bytes()
    assert (a.mask_root / "synth_0000/00000.png").read_bytes() != (c.mask_root / "synth_0000/00000.png").read_bytes()


def test_bad_arguments(tmp_path):
    with pytest.raises(WsovvisError, match="num_categories"):
        generate_dataset(tmp_path, num_categories=99)
    with pytest.raises(WsovvisError, match="min_objects"):
        generate_dataset(tmp_path, min_objects=3, max_objects=2)
    assert not (tmp_path / "gt.json").exists()


def test_cli_synth(tmp_path, capsys):
    rc = cli_main(["synth", "--out", str(tmp_path / "s"), "--num_videos", "2", "--num_frames", "3",
                   "--seed", "1", "--no_progress"])
    assert rc == 0
    assert "wrote 2 videos" in capsys.readouterr().out
    ds = ytvis.load(tmp_path / "s" / "gt.json", require_annotations=True)
    assert len(ds.videos) == 2 and all(v["length"] == 3 for v in ds.videos)
    assert cli_main(["synth", "--out", str(tmp_path / "x"), "--num_categories", "0"]) == 2


def test_training_free_threshold_finds_the_objects(synthetic_data):
    """A saturation threshold alone recovers the objects' union: IoU >= 0.8 in every frame."""
    d = synthetic_data
    for name in d.video_names:
        for t in range(d.num_frames):
            hsv = np.asarray(Image.open(d.img_root / name / f"{t:05d}.jpg").convert("HSV"))
            gt = masks.read_ids(d.mask_root / name / f"{t:05d}.png") > 0
            fg = hsv[..., 1] > 115
            if gt.any():
                assert (fg & gt).sum() / (fg | gt).sum() >= 0.8, (name, t)
            else:
                assert fg.mean() < 0.01
