"""Test/Batch tab logic: prompts from the page, uploads (images, videos, non-images), the same results as
``wsovvis autolabel images``, the ZIP."""

from __future__ import annotations

import json
import zipfile

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.app.helpers import scene
from wsovvis.app import labeling
from wsovvis.cli import main as cli_main
from wsovvis.errors import WsovvisError


@pytest.fixture(scope="module")
def standins():
    return labeling.build_labeler("standin:colour", "standin:colour")


def test_parse_prompt_text():
    assert labeling.parse_prompt_text("red, blue ball = ball\n# note\ngreen") == (
        ["red", "ball", "green"], {"red": "red", "blue ball": "ball", "green": "green"})
    with pytest.raises(WsovvisError, match="appears twice"):
        labeling.parse_prompt_text("red, red")
    with pytest.raises(WsovvisError, match="no prompts"):
        labeling.prompt_set(" , ", None)


def test_test_tab_labels_an_image(tmp_path, standins):
    Image.fromarray(scene()).save(tmp_path / "a.png")
    res = labeling.run_test(standins, tmp_path / "a.png", "red, blue = sky", None, 0.1, "segment", tmp_path / "s")
    assert res.rows == [[0, "red", 1.0, 10.0, 8.0, 20.0, 20.0, 400], [0, "sky", 1.0, 40.0, 30.0, 30.0, 20.0, 600]]
    assert "2 detection(s) on 1 frame(s)" in res.note
    (png, caption), = res.images
    drawn = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert caption == "2 detections" and np.abs(drawn[18, 20] - scene()[18, 20]).max() > 10  # mask drawn
    detect = labeling.run_test(standins, tmp_path / "a.png", "red", None, 0.1, "detect", tmp_path / "s")
    assert detect.rows == [[0, "red", 1.0, 10.0, 8.0, 20.0, 20.0, 400]]
    assert "segmentation" not in detect.annotations[0][0]
    high = labeling.run_test(standins, tmp_path / "a.png", "green", None, 0.1, "detect", tmp_path / "s")
    assert high.rows == [] and "nothing found" in high.note


def test_test_tab_video_keeps_the_first_frames_with_a_note(tmp_path, standins):
    path = tmp_path / "clip.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (80, 60))
    for t in range(12):
        vw.write(np.ascontiguousarray(scene(shift=t)[:, :, ::-1]))
    vw.release()
    res = labeling.run_test(standins, path, "red", None, 0.1, "detect", tmp_path / "s", max_frames=4)
    assert [r[0] for r in res.rows] == [0, 1, 2, 3]
    assert [r[3] for r in res.rows] == pytest.approx([10, 11, 12, 13], abs=1)  # the red box moves right
    assert "clip.avi: 12 frames; the preview uses the first 4" in res.note and len(res.images) == 4
    # As tubes: the owlv2_sam2 engine with the stand-in tracker follows each rectangle over the frames.
    tubes = labeling.run_test(standins, path, "red, blue = sky", None, 0.1, "segment", tmp_path / "s",
                              max_frames=4, video_as="tubes")
    assert tubes.headers == ["tube", "category", "score", "frames", "present in"]
    assert sorted(r[1:] for r in tubes.rows) == [["red", 1.0, "4/4", "0-3"], ["sky", 1.0, "4/4", "0-3"]]
    assert "2 tube(s) over 4 frame(s)" in tubes.note and "owlv2_sam2" in tubes.note
    (sheet, _), (gif, _) = tubes.images
    with Image.open(gif) as im:
        assert im.n_frames == 4
    detect = labeling.run_test(standins, path, "red", None, 0.1, "detect", tmp_path / "s", max_frames=4,
                               video_as="tubes")
    assert "tubes need segment mode" in detect.note and len(detect.rows) == 4
    frames, note = labeling.read_media(path, 12)  # exactly as long as the preview: no note
    assert len(frames) == 12 and note == ""


def test_test_tab_bad_input(tmp_path, standins):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(WsovvisError, match=r"notes\.txt: not an image or a video"):
        labeling.run_test(standins, tmp_path / "notes.txt", "red", None, 0.1, "detect", tmp_path / "s")
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(WsovvisError, match=r"broken\.mp4"):
        labeling.run_test(standins, tmp_path / "broken.mp4", "red", None, 0.1, "detect", tmp_path / "s")
    (tmp_path / "vocab.txt").write_bytes(b"\xff\xfe\x00bin")
    with pytest.raises(WsovvisError, match=r"vocab\.txt: the vocabulary file is not text"):
        labeling.prompt_set("", tmp_path / "vocab.txt")
    no_models = labeling.Labeler()
    with pytest.raises(WsovvisError, match="--detector") as e:
        no_models.require("detect")
    assert "--segmenter" in str(e.value)
    with pytest.raises(WsovvisError, match="segment mode needs a segmenter"):
        labeling.build_labeler("standin:colour", None).require("segment")


def test_batch_matches_the_autolabel_command_and_zips(tmp_path, standins):
    from pycocotools.coco import COCO

    src = tmp_path / "in"
    src.mkdir()
    for k in range(3):
        Image.fromarray(scene(shift=2 * k)).save(src / f"im{k}.png")
    (src / "readme.txt").write_text("not an image")
    files = [str(p) for p in sorted(src.iterdir())]
    res = labeling.run_batch(standins, files, "", "red, blue", None, 0.1, "segment", 40, tmp_path / "s")
    assert [r[:2] for r in res.rows[:3]] == [["im0.png", 2], ["im1.png", 2], ["im2.png", 2]]
    assert res.rows[3][0] == "readme.txt" and res.rows[3][2].startswith("skipped: not an image")
    assert len(res.images) == 3 and "3 image(s) labelled" in res.note
    # The command line on the same images gives the same annotations (one code path).
    (src / "readme.txt").unlink()
    assert cli_main(["autolabel", "images", "--images", str(src), "--out", str(tmp_path / "cli"), "--vocab",
                     str(_vocab(tmp_path)), "--detector", "standin:colour", "--segmenter", "standin:colour",
                     "--no_progress"]) == 0
    cli = json.loads((tmp_path / "cli" / "coco_export.json").read_text())
    assert cli["annotations"] == res.coco["annotations"] and cli["images"] == res.coco["images"]
    with zipfile.ZipFile(res.zip_path) as z:
        assert sorted(z.namelist()) == ["coco_export.json", "images/im0.png", "images/im1.png", "images/im2.png"]
        z.extractall(tmp_path / "unzipped")
    coco = COCO(str(tmp_path / "unzipped" / "coco_export.json"))
    assert len(coco.getAnnIds()) == 6
    img = coco.imgs[1]
    assert (img["height"], img["width"]) == (30, 40)
    with Image.open(tmp_path / "unzipped" / "images" / img["file_name"]) as im:
        assert im.size == (40, 30)
    red = next(a for a in coco.loadAnns(coco.getAnnIds(imgIds=[1])) if a["category_id"] == 1)
    assert red["bbox"] == [5.0, 4.0, 10.0, 10.0] and coco.annToMask(red).sum() == 100  # halved coordinates


def _vocab(tmp_path):
    p = tmp_path / "vocab.txt"
    p.write_text("red\nblue\n")
    return p


def test_batch_from_a_server_folder_and_bad_batches(tmp_path, standins):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(scene()).save(src / "a.jpg")
    (src / "bad.png").write_bytes(b"not a png")
    res = labeling.run_batch(standins, [], str(src), "red", None, 0.1, "detect", 64, tmp_path / "s")
    assert res.rows[0][:2] == ["a.jpg", 1] and res.rows[1][0] == "bad.png" and "failed" in res.rows[1][2]
    assert "1 failed" in res.note and "1 file(s) not labelled" in res.note
    with pytest.raises(WsovvisError, match="no images"):
        labeling.run_batch(standins, [], "", "red", None, 0.1, "detect", 64, tmp_path / "s")
    with pytest.raises(WsovvisError, match="does not exist"):
        labeling.run_batch(standins, [], str(tmp_path / "nope"), "red", None, 0.1, "detect", 64, tmp_path / "s")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(WsovvisError, match=r"none of the uploads is an image: x\.txt"):
        labeling.run_batch(standins, [str(tmp_path / "x.txt")], "", "red", None, 0.1, "detect", 64, tmp_path / "s")
