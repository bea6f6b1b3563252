"""Tiny random OWLv2 / SAM2 / SAM2-video models saved to disk and loaded through the real
``--detector`` / ``--segmenter`` path: shapes, dtypes, box placement on non-square images, empty
results, and the whole CLI on them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.autolabel.scenes import video_frames, write_video
from tests.autolabel.tiny_models import save_owlv2, save_sam2, save_sam2_video
from wsovvis.autolabel.models import (
    Detections,
    Owlv2Detector,
    Sam2Segmenter,
    Sam2VideoTracker,
    load_detector,
    load_segmenter,
    load_video_segmenter,
)
from wsovvis.cli import main as cli
from wsovvis.errors import WsovvisError


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_models")
    return {"owlv2": save_owlv2(root / "owlv2"), "sam2": save_sam2(root / "sam2"),
            "sam2_video": save_sam2_video(root / "sam2_video")}


def _force_outputs(monkeypatch, detector: Owlv2Detector, box_cxcywh, query: int, prompt: int):
    """Query ``query`` gets the normalised box (relative to the padded square) and a high logit for
    ``prompt``; every other logit is very low (the model's heads replaced on the instance)."""
    model = detector.model
    class_predictor, box_predictor = model.class_predictor, model.box_predictor

    def fixed_logits(feats, queries, mask):
        logits, emb = class_predictor(feats, queries, mask)
        logits = torch.full_like(logits, -20.0)
        logits[0, query, prompt] = 20.0
        return logits, emb

    def fixed_boxes(feats, fmap, *args):
        boxes = box_predictor(feats, fmap, *args).clone()
        boxes[0, query] = torch.tensor(box_cxcywh, dtype=boxes.dtype)
        return boxes

    monkeypatch.setattr(model, "class_predictor", fixed_logits)
    monkeypatch.setattr(model, "box_predictor", fixed_boxes)


@pytest.mark.parametrize("cache_text", [True, False])
@pytest.mark.parametrize("hw", [(40, 80), (90, 30)])
def test_owlv2_boxes_land_in_place_on_non_square_images(models, hw, cache_text, monkeypatch):
    det = load_detector(models["owlv2"], "cpu")
    assert isinstance(det, Owlv2Detector)
    det.cache_text = cache_text
    h, w = hw
    side = max(h, w)  # OWLv2 pads bottom/right to a square: boxes are relative to that square
    _force_outputs(monkeypatch, det, (0.25, 0.2, 0.2, 0.1), query=5, prompt=1)
    out = det.detect(np.zeros((h, w, 3), np.uint8), ["red", "blue thing"])
    assert out.boxes.dtype == np.float32 and out.scores.dtype == np.float32 and out.labels.dtype == np.int64
    keep = out.scores > 0.5
    assert keep.sum() == 1 and out.labels[keep][0] == 1
    exp = np.array([0.15 * side, 0.15 * side, 0.35 * side, 0.25 * side])
    exp[0::2] = exp[0::2].clip(0, w)
    exp[1::2] = exp[1::2].clip(0, h)
    np.testing.assert_allclose(out.boxes[keep][0], exp, atol=1e-3)


def test_owlv2_cached_text_queries_match_the_model_forward(models):
    det = load_detector(models["owlv2"], "cpu")
    img = np.random.default_rng(4).integers(0, 255, (36, 50, 3), dtype=np.uint8)
    prompts = ["red", "blue thing", "a green tree"]
    logits, boxes = det.raw_outputs(img, prompts)
    q = det.query_embeddings(prompts)[0]
    assert det.query_embeddings(prompts)[0] is q  # embedded once per prompt list
    det.cache_text = False
    ref_logits, ref_boxes = det.raw_outputs(img, prompts)
    assert logits.shape == ref_logits.shape == (1, 64, 3)
    torch.testing.assert_close(logits, ref_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(boxes, ref_boxes, atol=1e-5, rtol=1e-5)
    det.cache_text = True
    assert det.query_embeddings(["red"])[0].shape[0] == 1  # another prompt list re-embeds


def test_owlv2_random_weights_shapes_and_empty(models):
    det = load_detector(models["owlv2"], "cpu")
    img = np.random.default_rng(0).integers(0, 255, (40, 80, 3), dtype=np.uint8)
    out = det.detect(img, ["red", "blue thing", "a green tree"])
    n = len(out)
    assert out.boxes.shape == (n, 4) and n > 0  # threshold 0: every query is returned
    assert out.labels.min() >= 0 and out.labels.max() < 3
    assert (out.boxes[:, 0::2] <= 80).all() and (out.boxes[:, 1::2] <= 40).all() and (out.boxes >= 0).all()
    assert len(det.detect(img, [])) == 0
    det.threshold = 1.01  # nothing passes: empty arrays of the right shapes
    empty = det.detect(img, ["red"])
    assert empty.boxes.shape == (0, 4) and empty.scores.shape == (0,) and empty.labels.dtype == np.int64


def test_sam2_segment_shapes(models):
    seg = load_segmenter(models["sam2"], "cpu")
    assert isinstance(seg, Sam2Segmenter)
    img = np.random.default_rng(1).integers(0, 255, (40, 70, 3), dtype=np.uint8)
    masks = seg.segment(img, np.array([[5, 5, 30, 30], [40, 10, 69, 39], [0, 0, 70, 40]], np.float32))
    assert masks.shape == (3, 40, 70) and masks.dtype == bool
    assert seg.segment(img, np.zeros((0, 4), np.float32)).shape == (0, 40, 70)
    seg.batch = 2  # boxes in several decoder calls give the same masks
    np.testing.assert_array_equal(seg.segment(img, np.array([[5, 5, 30, 30], [40, 10, 69, 39], [0, 0, 70, 40]],
                                                            np.float32)), masks)


def test_sam2_video_tracker(models):
    trk = load_video_segmenter(models["sam2_video"], "cpu")
    assert isinstance(trk, Sam2VideoTracker)
    frames = np.random.default_rng(2).integers(0, 255, (4, 36, 60, 3), dtype=np.uint8)
    mask = np.zeros((36, 60), bool)
    mask[8:20, 10:30] = True
    out = trk.propagate(frames, {3: np.array([5, 5, 30, 30], np.float32), 9: mask})
    assert sorted(out) == [3, 9]
    assert all(v.shape == (4, 36, 60) and v.dtype == bool for v in out.values())
    np.testing.assert_array_equal(out[9][0], mask)  # a mask prompt is the object's mask on its frame
    assert trk.propagate(frames, {}) == {}
    # the image model loads from a video checkpoint too (one SAM2.1 checkpoint serves both)
    assert isinstance(load_segmenter(models["sam2_video"], "cpu"), Sam2Segmenter)


def test_model_folder_errors(models, tmp_path):
    with pytest.raises(WsovvisError, match="--detector folder does not exist"):
        load_detector(tmp_path / "nope")
    with pytest.raises(WsovvisError, match=r"--detector holds a 'sam2' model; expected 'owlv2'"):
        load_detector(models["sam2"])
    with pytest.raises(WsovvisError, match=r"--segmenter holds a 'owlv2' model"):
        load_segmenter(models["owlv2"])
    with pytest.raises(WsovvisError, match=r"--segmenter holds a 'sam2' model; expected 'sam2_video'"):
        load_video_segmenter(models["sam2"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(WsovvisError, match="no config.json"):
        load_segmenter(tmp_path / "empty")
    with pytest.raises(WsovvisError, match="standin:colour"):
        load_detector("standin:shapes")


def test_cli_images_on_tiny_models(models, tmp_path, capsys):
    from PIL import Image

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(3)
    for name, hw in (("a.jpg", (40, 60)), ("b.png", (50, 30))):
        Image.fromarray(rng.integers(0, 255, (*hw, 3), dtype=np.uint8)).save(imgs / name)
    (tmp_path / "vocab.txt").write_text("cat\ndog\n")
    base = ["autolabel", "images", "--images", str(imgs), "--vocab", str(tmp_path / "vocab.txt"), "--detector",
            str(models["owlv2"]), "--segmenter", str(models["sam2"]), "--threshold", "0", "--device", "cpu",
            "--no_progress"]
    assert cli(base + ["--out", str(tmp_path / "seg"), "--max_detections", "3"]) == 0
    coco = json.loads((tmp_path / "seg" / "coco_export.json").read_text())
    assert [im["file_name"] for im in coco["images"]] == ["a.jpg", "b.png"]
    per_image = {im["id"]: sum(a["image_id"] == im["id"] for a in coco["annotations"]) for im in coco["images"]}
    assert all(0 < n <= 3 for n in per_image.values())
    assert all(a["category_id"] in (1, 2) and "segmentation" in a and "score" in a for a in coco["annotations"])
    assert cli(base + ["--out", str(tmp_path / "det"), "--mode", "detect"]) == 0
    det = json.loads((tmp_path / "det" / "coco_export.json").read_text())
    assert det["annotations"] and all("segmentation" not in a for a in det["annotations"])
    capsys.readouterr()
    assert cli(base[:6] + ["--detector", str(models["sam2"]), "--segmenter", str(models["sam2"]),
                           "--out", str(tmp_path / "bad")]) == 2
    assert "--detector holds a 'sam2' model" in capsys.readouterr().err


def test_pseudo_engine_on_tiny_models(models, tmp_path):
    img = tmp_path / "img"
    frames, _ = video_frames(num_frames=5, h=32, w=48)
    write_video(img, "v", frames)
    (tmp_path / "vocab.txt").write_text("box\ncar\n")
    out = tmp_path / "out"
    assert cli(["pseudo", "--img_root", str(img), "--out", str(out), "--engine", "owlv2_sam2", "--vocab",
                str(tmp_path / "vocab.txt"), "--detector", str(models["owlv2"]), "--segmenter",
                str(models["sam2_video"]), "--threshold", "0", "--max_detections", "2", "--key_every", "3",
                "--min_len", "1", "--device", "cpu", "--no_progress"]) == 0
    side = json.loads((out / "masks" / "v" / "tracks.json").read_text())
    assert {c["name"] for c in side["categories"]} == {"box", "car"}
    assert all(t["category_name"] in ("box", "car") for t in side["tracks"])
    assert len(list((out / "masks" / "v").glob("mask_*.png"))) == 5


def test_detections_validate_lengths():
    with pytest.raises(ValueError):
        Detections(np.zeros((2, 4)), np.zeros(1), np.zeros(2))


def test_device_rule(monkeypatch):
    import os

    from wsovvis.autolabel.models import device_and_dtype

    assert os.environ.get("PYTORCH_ENABLE_MPS_FALLBACK") == "1"  # set by importing wsovvis.autolabel
    assert device_and_dtype("cpu") == ("cpu", torch.float32)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device_and_dtype(None) == ("cuda", torch.float16)
    assert device_and_dtype("cuda:1") == ("cuda:1", torch.float16)
    assert device_and_dtype("cpu") == ("cpu", torch.float32)  # --device overrides
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert device_and_dtype("auto") == ("mps", torch.float32)
    with pytest.raises(WsovvisError, match="CUDA is not available"):
        device_and_dtype("cuda")
    with pytest.raises(WsovvisError, match="--device 'tpu'"):
        device_and_dtype("tpu")
