"""Contact sheets and GIFs: pixels where the masks are, legend entries, GT and results inputs, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from wsovvis.cli import main as cli_main
from wsovvis.data import rle
from wsovvis.errors import WsovvisError
from wsovvis.viz import Tube, overlay_frame, render_contact_sheet, sample_indices, track_color, visualize_dataset
from wsovvis.viz.colors import text_color


def test_sample_indices_and_colors():
    assert sample_indices(3, 8) == [0, 1, 2]
    assert sample_indices(10, 4) == [0, 3, 6, 9]
    assert sample_indices(100, 2) == [0, 99]
    cols = [track_color(i) for i in range(1, 21)]
    assert len(set(cols)) == 20 and track_color(5) == track_color(5)
    # neighbouring ids differ clearly (sum of channel differences)
    assert min(sum(abs(a - b) for a, b in zip(cols[i], cols[i + 1])) for i in range(19)) > 60
    assert text_color((255, 255, 0)) == (0, 0, 0) and text_color((0, 0, 128)) == (255, 255, 255)


def test_overlay_colours_masked_pixels_only():
    frame = np.full((40, 60, 3), 100, np.uint8)
    m = np.zeros((40, 60), bool)
    m[10:30, 20:50] = True
    tube = Tube(3, [m, None], "disc", 0.9, color=(255, 0, 0))
    out = np.asarray(overlay_frame(frame, [tube], 0, (40, 60), alpha=0.5, tag=False)).astype(int)
    assert tuple(out[20, 35]) == (178, 50, 50)  # 0.5 * 100 + 0.5 * (255, 0, 0), rounded
    assert tuple(out[10, 35]) == (255, 0, 0)  # outline
    assert tuple(out[5, 5]) == (100, 100, 100)  # untouched background
    # frame 1: the tube is absent, nothing is drawn
    assert (np.asarray(overlay_frame(frame, [tube], 1, (40, 60), tag=False)) == 100).all()
    # RLE masks and a missing frame are accepted, and the size is the requested one
    tube2 = Tube(4, [rle.encode(m)], color=(0, 0, 255))
    grey = np.asarray(overlay_frame(None, [tube2], 0, (20, 30), tag=False)).astype(int)
    blue = grey[..., 2] > grey[..., 0] + 50
    assert grey.shape == (20, 30, 3) and blue.sum() > 100 and not blue[:5].any()


def test_render_contact_sheet_layout():
    frames = [np.full((30, 40, 3), 90, np.uint8) for _ in range(5)]
    m = np.zeros((30, 40), bool)
    m[5:25, 5:35] = True
    tubes = [Tube(1, [m] * 5, "square", 0.3), Tube(2, [None, m, None, None, None], "star", 0.8)]
    sheet = render_contact_sheet(frames, tubes, title="demo", cols=3, thumb_width=80)
    arr = np.asarray(sheet)
    assert sheet.width == 3 * 84 + 4
    # 2 rows of thumbnails (5 frames, 3 columns) + title + legend
    assert sheet.height > 26 + 2 * (60 + 16 + 4)
    # each track's colour appears (fills/outlines on tiles, swatches in the legend)
    for tb in tubes:
        assert (arr.reshape(-1, 3) == np.array(tb.rgb)).all(axis=1).sum() > 50
    # track 2 (score 0.8) is drawn over track 1 on frame 1: its outline colour sits at the mask's top edge
    y = 26 + int(round(5 * 60 / 30))
    x = 4 + 84 + 40
    assert tuple(arr[y, x]) == track_color(2)
    with pytest.raises(ValueError):
        render_contact_sheet([], tubes)


def test_visualize_gt_results_and_gif(synthetic_data, tmp_path):
    d = synthetic_data
    out = tmp_path / "gt"
    paths = visualize_dataset(d.gt_json, d.img_root, out, gif=True, max_frames=4, progress=False)
    assert [p.name for p in paths] == [f"{n}.png" for n in d.video_names]
    with Image.open(paths[0]) as im:
        assert im.width == 4 * 260 + 4
    with Image.open(out / f"{d.video_names[0]}.gif") as g:
        assert g.n_frames == d.num_frames
    index = json.loads((out / "index.json").read_text())
    assert index["kind"] == "annotated" and all(v["missing_frames"] == [] for v in index["videos"])
    gt = json.loads(d.gt_json.read_text())
    results = [{"video_id": a["video_id"], "category_id": a["category_id"], "score": 0.1 + 0.01 * a["id"],
                "segmentations": a["segmentations"]} for a in gt["annotations"]]
    rpath = tmp_path / "results.json"
    rpath.write_text(json.dumps(results))
    rc = cli_main(["visualize", str(rpath), "--img_root", str(d.img_root), "--out", str(tmp_path / "res"),
                   "--gt", str(d.gt_json), "--videos", d.video_names[1], "--top_k", "2", "--no_progress"])
    assert rc == 0
    index = json.loads((tmp_path / "res" / "index.json").read_text())
    assert [v["name"] for v in index["videos"]] == [d.video_names[1]] and index["videos"][0]["tracks"] == 2
    assert index["kind"] == "predicted"


def test_missing_frame_is_drawn_and_listed(synthetic_data, tmp_path):
    import shutil

    d = synthetic_data
    img = tmp_path / "img"
    shutil.copytree(d.img_root / d.video_names[0], img / d.video_names[0])
    (img / d.video_names[0] / "00000.jpg").unlink()
    visualize_dataset(d.gt_json, img, tmp_path / "o", videos=[d.video_names[0]], progress=False)
    index = json.loads((tmp_path / "o" / "index.json").read_text())
    assert index["videos"][0]["missing_frames"] == [f"{d.video_names[0]}/00000.jpg: missing"]


def test_bad_inputs(synthetic_data, tmp_path):
    d = synthetic_data
    gt = json.loads(d.gt_json.read_text())
    a = gt["annotations"][0]
    r = tmp_path / "r.json"
    r.write_text(json.dumps([{"video_id": a["video_id"], "score": 0.5, "segmentations": a["segmentations"]}]))
    with pytest.raises(WsovvisError, match="r.json: is a results list .* --videos_json"):
        visualize_dataset(r, d.img_root, tmp_path / "o", progress=False)
    r.write_text(json.dumps([{"video_id": 999, "segmentations": []}]))
    with pytest.raises(WsovvisError, match=r"r.json: \[0\].video_id 999 is not a video of"):
        visualize_dataset(r, d.img_root, tmp_path / "o", videos_json=d.gt_json, progress=False)
    r.write_text(json.dumps([{"video_id": a["video_id"], "segmentations": a["segmentations"][:2]}]))
    with pytest.raises(WsovvisError, match=r"\[0\].segmentations has 2 entries but video 1 has 6 frames"):
        visualize_dataset(r, d.img_root, tmp_path / "o", videos_json=d.gt_json, progress=False)
    r.write_text(json.dumps([{"video_id": a["video_id"]}]))
    with pytest.raises(WsovvisError, match=r"\[0\] is missing required key 'segmentations'"):
        visualize_dataset(r, d.img_root, tmp_path / "o", videos_json=d.gt_json, progress=False)
    with pytest.raises(WsovvisError, match="no video named or numbered nope"):
        visualize_dataset(d.gt_json, d.img_root, tmp_path / "o", videos=["nope"], progress=False)
    r.write_text("[1,")
    assert cli_main(["visualize", str(r), "--img_root", str(d.img_root), "--out", str(tmp_path / "o")]) == 2


def _one_frame_video(root, vid, name, folder):
    (root / folder).mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 12), (80, 80, 80)).save(root / folder / "00000.jpg")
    return {"id": vid, "name": name, "file_names": [f"{folder}/00000.jpg"], "height": 12, "width": 16, "length": 1}


def test_names_that_sanitise_alike_get_distinct_stable_files(tmp_path):
    videos = [_one_frame_video(tmp_path, 1, "cam é", "a"), _one_frame_video(tmp_path, 2, "cam ü", "b"),
              _one_frame_video(tmp_path, 3, "dog", "c")]
    data = {"videos": videos, "categories": [{"id": 1, "name": "x"}], "annotations": []}
    out = visualize_dataset(data, tmp_path, tmp_path / "sheets", progress=False)
    assert [p.name for p in out] == ["cam-1.png", "cam-2.png", "dog.png"]
    index = json.loads((tmp_path / "sheets" / "index.json").read_text())
    assert [e["sheet"] for e in index["videos"]] == ["cam-1.png", "cam-2.png", "dog.png"]
    # choosing one video does not rename its sheet
    again = visualize_dataset(data, tmp_path, tmp_path / "one", videos=["cam ü"], progress=False)
    assert [p.name for p in again] == ["cam-2.png"]


def test_legend_names_tubes_by_their_png_track_id(tmp_path, monkeypatch):
    from wsovvis.viz import contact_sheet

    v = _one_frame_video(tmp_path, 1, "v", "v")
    m = np.zeros((12, 16), bool)
    m[2:8, 2:8] = True
    data = {"videos": [v], "categories": [{"id": 1, "name": "object"}],
            "annotations": [{"id": 1, "video_id": 1, "category_id": 1, "track_id": 7, "iscrowd": 0,
                             "segmentations": [rle.encode(m)], "areas": [36], "bboxes": [[2, 2, 6, 6]]},
                            {"id": 2, "video_id": 1, "category_id": 1, "iscrowd": 0,
                             "segmentations": [rle.encode(m)], "areas": [36], "bboxes": [[2, 2, 6, 6]]}]}
    drawn = []
    real = contact_sheet.render_contact_sheet

    def spy(frames, tubes, **kw):
        drawn.extend(tb.label() for tb in tubes)
        return real(frames, tubes, **kw)

    monkeypatch.setattr(contact_sheet, "render_contact_sheet", spy)
    visualize_dataset(data, tmp_path, tmp_path / "s", progress=False)
    assert sorted(drawn) == ["id 2  object", "id 7  object"]  # track_id when present, else the annotation id
