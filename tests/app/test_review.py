"""Review tab logic: opening (tubes, predictions, bad input), tube table, decisions, rendering, curated save."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.app.helpers import H, W, write_review_set
from wsovvis.app import review, review_render
from wsovvis.data import rle
from wsovvis.data.check import check_dataset
from wsovvis.errors import WsovvisError


def test_open_lists_videos_and_tubes(tmp_path):
    path, frames = write_review_set(tmp_path)
    s = review.open_review(path, frames)
    assert s.kind == "tubes" and s.notes == []
    assert review.video_choices(s) == [("v1  (4 fr, 3 tubes, 0 decided)", 1), ("v2  (4 fr, 1 tubes, 0 decided)", 2)]
    assert review.tube_rows(s, 1) == [
        [1, "cat", 0.9, "4/4", "0-3", "undecided"],
        [2, "dog", 0.6, "3/4", "0-1, 3", "undecided"],
        [3, "cat", 0.3, "1/4", "2", "undecided"],
    ]
    assert review.tube_choices(s, 2) == [("#4 dog 0.80 [undecided]", 4)]


def test_decisions_renames_and_curated_save_pass_check(tmp_path):
    path, frames = write_review_set(tmp_path)
    before = path.read_bytes()
    s = review.open_review(path, frames)
    review.decide(s, [2], review.REJECTED)
    review.decide(s, [1], review.ACCEPTED)
    review.rename(s, [3], "kitten")  # a new category
    review.rename(s, [4], "cat")  # an existing one
    assert review.tube_rows(s, 1)[1][-1] == "rejected" and review.tube_rows(s, 1)[2][1] == "kitten"
    out, summary = review.save_curated(s)
    assert out == tmp_path / "tubes.curated.json" and path.read_bytes() == before  # input untouched
    assert "saved 3 tubes" in summary and "1 rejected" in summary and "2 renamed" in summary
    data = json.loads(out.read_text())
    assert [a["id"] for a in data["annotations"]] == [1, 3, 4]
    assert data["categories"][-1] == {"id": 3, "name": "kitten"}
    assert {a["id"]: a["category_id"] for a in data["annotations"]} == {1: 1, 3: 3, 4: 1}
    rep = check_dataset(out, frames)
    assert rep.errors == [], [str(p) for p in rep.errors]
    # A second save never overwrites the first; dropping undecided tubes keeps only the accepted one.
    out2, _ = review.save_curated(s, keep_undecided=False)
    assert out2.name == "tubes.curated-2.json" and out.exists()
    assert [a["id"] for a in json.loads(out2.read_text())["annotations"]] == [1]


def test_render_hides_rejected_tubes_and_limits_the_gif(tmp_path):
    path, frames = write_review_set(tmp_path, length=6)
    s = review.open_review(path, frames)
    png, gif, note = review_render.render_video(s, 1, tmp_path / "out", gif_frames=3, thumb_width=64)
    assert "first 3" in note and "6 frames" in note
    with Image.open(gif) as im:
        assert im.n_frames == 3
    review.decide(s, [1, 3], review.REJECTED)
    png2, _, _ = review_render.render_video(s, 1, tmp_path / "out", max_frames=1, thumb_width=W * 4)
    assert png2 != png  # a new file per render (browsers cache by URL)
    sheet = np.asarray(Image.open(png2).convert("RGB")).astype(int)
    # Frame 0 is drawn 4x at the tile origin (4, 26): tube 1's box is grey, tube 2's box is tinted.
    tile = sheet[26:26 + H * 4, 4:4 + W * 4]
    assert np.abs(tile[5 * 4, 5 * 4] - 40).max() <= 2  # inside rejected tube 1: the plain frame value
    assert np.abs(tile[10 * 4, 20 * 4] - 40).max() > 20  # inside kept tube 2: overlay colour


def test_predictions_open_with_their_videos_json(tmp_path):
    path, frames = write_review_set(tmp_path)
    gt = json.loads(path.read_text())
    m = np.zeros((H, W), bool)
    m[3:9, 5:15] = True
    results = [{"video_id": 1, "category_id": 2, "score": 0.7, "segmentations": [rle.encode(m), None, None, None]},
               {"video_id": 2, "category_id": 1, "score": 0.2, "segmentations": [None, rle.encode(m), None, None]}]
    res_path = tmp_path / "results.json"
    res_path.write_text(json.dumps(results))
    with pytest.raises(WsovvisError, match="results list.*videos JSON"):
        review.open_review(res_path, frames)
    s = review.open_review(res_path, frames, path)
    assert s.kind == "predictions" and review.tube_rows(s, 1) == [[1, "dog", 0.7, "1/4", "0", "undecided"]]
    review.decide(s, [2], review.REJECTED)
    out, _ = review.save_curated(s)
    data = json.loads(out.read_text())
    assert data["videos"] == gt["videos"] and len(data["annotations"]) == 1
    a = data["annotations"][0]
    assert a["areas"] == [60, None, None, None] and a["bboxes"][0] == [5.0, 3.0, 10.0, 6.0]
    assert check_dataset(out, frames).errors == []


def test_bad_inputs_name_the_file_and_problem(tmp_path):
    path, frames = write_review_set(tmp_path)
    coco = tmp_path / "coco.json"
    coco.write_text(json.dumps({"images": [], "annotations": [{"segmentation": []}], "categories": []}))
    with pytest.raises(WsovvisError, match=r"(?s)coco\.json.*COCO.*missing required key .videos."):
        review.open_review(coco, frames)
    notjson = tmp_path / "x.json"
    notjson.write_text("{oops")
    with pytest.raises(WsovvisError, match=r"x\.json"):
        review.open_review(notjson, frames)
    with pytest.raises(WsovvisError, match="none of 6 looked-up frames exists"):
        review.open_review(path, tmp_path)  # the folder above the frame root
    with pytest.raises(WsovvisError, match="does not exist"):
        review.open_review(path, tmp_path / "nope")
    images_only = tmp_path / "images_only.json"
    data = json.loads(path.read_text())
    data.pop("annotations")
    images_only.write_text(json.dumps(data))
    with pytest.raises(WsovvisError, match="no tubes to review"):
        review.open_review(images_only, frames)
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"videos": [], "categories": [], "annotations": []}))
    with pytest.raises(WsovvisError, match=r"empty\.json: lists no videos"):
        review.open_review(empty, frames)
    (frames / "v2" / "00003.png").unlink()
    s = review.open_review(path, frames)
    assert "1 of 6 looked-up frames are missing" in s.notes[0]
    with pytest.raises(WsovvisError, match="no tube selected"):
        review.decide(s, [], review.REJECTED)
    with pytest.raises(WsovvisError, match="no tube with id 99"):
        review.decide(s, [99], review.REJECTED)
    with pytest.raises(WsovvisError, match="type the new category name"):
        review.rename(s, [1], "  ")


def test_curated_path_never_returns_the_input(tmp_path):
    src = tmp_path / "a.curated.json"
    src.write_text("{}")
    assert review.curated_path(src) == tmp_path / "a.curated.curated.json"
    (tmp_path / "a.curated.curated.json").write_text("{}")
    assert review.curated_path(src) == tmp_path / "a.curated.curated-2.json"


def test_real_predictions_review(real_data, tmp_path):
    """Real YouTube-VIS 2019 predictions (mmtracking demo, 9 tubes) reviewed against their GT's videos.

    The set ships no frames: opening it with an empty folder is refused with a readable message;
    blank stand-in frames of the right size let the masks be drawn and the curation be saved.
    """
    root = real_data / "ytvis2019_mmtracking_demo"
    videos = root / "ytvis_format_DERIVED.json"
    # Reviewed from a read-only copy: the curated file must go to the fallback folder, never beside the data.
    ro = tmp_path / "ro"
    ro.mkdir()
    results = ro / "results_mmtracking_format.json"
    shutil.copyfile(root / "results_mmtracking_format.json", results)
    ro.chmod(0o555)
    with pytest.raises(WsovvisError, match="none of 3 looked-up frames exists"):
        review.open_review(results, tmp_path, videos)
    gt = json.loads(videos.read_text())
    for name in gt["videos"][0]["file_names"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (1280, 720), (90, 90, 90)).save(tmp_path / name)
    s = review.open_review(results, tmp_path, videos)
    rows = review.tube_rows(s, 1)
    assert [r[:4] for r in rows[:3]] == [[1, "person", 0.956, "1/20"], [4, "sedan", 0.885, "20/20"],
                                         [3, "sedan", 0.812, "14/20"]]
    review.decide(s, [r[0] for r in rows if r[2] < 0.5], review.REJECTED)
    review.rename(s, [1], "pedestrian")
    png, _, _ = review_render.render_video(s, 1, tmp_path / "out", thumb_width=160)
    assert Image.open(png).size[0] > 600
    try:
        out, summary = review.save_curated(s, fallback_dir=tmp_path / "session")
    finally:
        ro.chmod(0o755)
    assert out == tmp_path / "session" / "results_mmtracking_format.curated.json" and list(ro.iterdir()) == [results]
    assert "saved 3 tubes" in summary and "6 rejected" in summary
    data = json.loads(out.read_text())
    assert sorted(a["id"] for a in data["annotations"]) == [1, 3, 4]
    assert data["categories"][-1]["name"] == "pedestrian" and len(data["categories"]) == 41
    rep = check_dataset(out, tmp_path)
    assert rep.errors == [], [str(p) for p in rep.errors[:3]]


def test_real_davis_frames_with_osvos_pseudo_tubes(real_data, tmp_path):
    """Pseudo tubes converted from real OSVOS masks of two DAVIS sequences, reviewed over the real frames."""
    from wsovvis.data.convert import convert

    davis = real_data / "davis2016val_sample"
    masks = tmp_path / "masks"
    masks.mkdir()
    for seq in ("blackswan", "kite-surf"):
        (masks / seq).symlink_to(davis / "Pseudo_OSVOS_davis2017" / seq)  # read in place, not copied
    tubes = tmp_path / "osvos.json"
    convert(masks, davis / "JPEGImages", tubes, progress=False)
    s = review.open_review(tubes, davis / "JPEGImages")
    assert s.notes == []
    by_name = {label.split()[0]: vid for label, vid in review.video_choices(s)}
    swan = review.tube_rows(s, by_name["blackswan"])
    assert len(swan) == 1 and swan[0][3] == "30/30"
    kite = review.tube_rows(s, by_name["kite-surf"])
    assert len(kite) >= 2
    review.decide(s, [kite[-1][0]], review.REJECTED)
    png, gif, _ = review_render.render_video(s, by_name["blackswan"], tmp_path / "out", gif_frames=3)
    with Image.open(png) as im:
        assert im.size[0] > 900  # 4 real frames per row
    out, summary = review.save_curated(s)
    assert out == tmp_path / "osvos.curated.json" and f"saved {len(s.ds.annotations) - 1} tubes" in summary
    rep = check_dataset(out, davis / "JPEGImages")
    assert rep.errors == [], [str(p) for p in rep.errors[:3]]
