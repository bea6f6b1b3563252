"""Correctness with the deterministic colour-histogram embedder: tubes get the colour they have."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.openvocab.helpers import PALETTE, make_colour_videos, write_vocab_txt
from wsovvis.cli import main as cli_main
from wsovvis.data import rle as rle_utils
from wsovvis.data import ytvis
from wsovvis.openvocab.cache import read_index
from wsovvis.openvocab.color_embedder import ColorHistEmbedder
from wsovvis.openvocab.embed import CropSettings, embed_source


@pytest.fixture(scope="module")
def colour_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("colour")
    return make_colour_videos(root, num_videos=8, num_frames=4, objects=3, seed=3)


def test_label_colour_tubes_at_least_90_percent(colour_set, tmp_path):
    gt = colour_set["gt"]
    agnostic = tmp_path / "agnostic.json"
    assert cli_main(["agnostic", "--in_json", str(gt), "--out_json", str(agnostic)]) == 0
    emb = tmp_path / "emb"
    assert cli_main(["embed", "--tubes", str(agnostic), "--img_root", str(colour_set["img_root"]), "--out", str(emb),
                     "--model", "colorhist:", "--num_workers", "1", "--batch_size", "7", "--no_progress"]) == 0
    out = tmp_path / "labelled.json"
    assert cli_main(["label", "--tubes", str(agnostic), "--embeddings", str(emb), "--vocab", str(gt),
                     "--out", str(out), "--temperature", "0.05"]) == 0
    labelled = ytvis.load(out, require_annotations=True)
    truth = {(a["video_id"], a["track_id"]): a["category_id"] for a in ytvis.load(gt).annotations}
    assert len(truth) >= 20 and len(labelled.annotations) == len(truth)
    correct = sum(truth[(a["video_id"], a["track_id"])] == a["category_id"] for a in labelled.annotations)
    assert correct / len(truth) >= 0.9, f"{correct}/{len(truth)} tubes got their colour"
    assert all(0 < a["score"] <= 1 for a in labelled.annotations)
    assert labelled.categories == colour_set["categories"]  # partitions kept for LV-VIS base/novel


def test_rejection_and_background(colour_set, tmp_path):
    emb = tmp_path / "emb"
    embed_source("tubes", colour_set["gt"], emb, ColorHistEmbedder(), img_root=colour_set["img_root"], progress=False)
    # a vocabulary without red: red tubes should lose to a 'red' background name, or be rejected as unknown
    vocab = write_vocab_txt(tmp_path / "v.txt", names=("green", "blue"))
    out = tmp_path / "l.json"
    assert cli_main(["label", "--tubes", str(colour_set["gt"]), "--embeddings", str(emb), "--vocab", str(vocab),
                     "--out", str(out), "--background", "red", "--background", "yellow", "--background", "cyan",
                     "--background", "magenta", "--results_out", str(tmp_path / "r.json")]) == 0
    gt_anns = ytvis.load(colour_set["gt"]).annotations
    truth = {(a["video_id"], a["track_id"]): PALETTE[a["category_id"] - 1] for a in gt_anns}
    kept = ytvis.load(out).annotations
    assert {truth[(a["video_id"], a["track_id"])] for a in kept} <= {"green", "blue"}
    rep = json.loads((tmp_path / "l.rejected.json").read_text())
    rejected = {(r["video_id"], r["track_id"]) for r in rep["rejected"]}
    assert len(rejected) + len(kept) == len(truth)
    assert sum(truth[k] in ("green", "blue") for k in rejected) <= 1
    results = json.loads((tmp_path / "r.json").read_text())
    assert len(results) == len(kept)
    assert all(isinstance(s["counts"], str) for r in results for s in r["segmentations"] if s)
    # unknown threshold: nothing passes p >= 1.01
    assert cli_main(["label", "--tubes", str(colour_set["gt"]), "--embeddings", str(emb), "--vocab", str(vocab),
                     "--out", str(out), "--reject_below", "1.01"]) == 0
    assert ytvis.load(out).annotations == []
    rejected = json.loads((tmp_path / "l.rejected.json").read_text())["rejected"]
    assert len(rejected) == len(truth) and all(r["reason"].startswith("unknown") for r in rejected)


def _solid_video(root, frames):
    """PNG frames (no JPEG loss) on flat grey with one coloured rectangle per frame: ``[(rgb, (y0, y1, x0, x1))]``."""
    h, w = 24, 32
    segs, names = [], []
    for t, (rgb, (y0, y1, x0, x1)) in enumerate(frames):
        img = np.full((h, w, 3), 128, np.uint8)
        img[y0:y1, x0:x1] = rgb
        m = np.zeros((h, w), bool)
        m[y0:y1, x0:x1] = True
        (root / "v").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / "v" / f"{t}.png")
        segs.append(rle_utils.encode(m))
        names.append(f"v/{t}.png")
    gt = {"videos": [{"id": 1, "height": h, "width": w, "length": len(frames), "file_names": names}],
          "categories": [{"id": 1, "name": "object"}],
          "annotations": [{"id": 1, "video_id": 1, "category_id": 1, "segmentations": segs}]}
    ytvis.write(gt, root / "gt.json")
    return root / "gt.json"


@pytest.mark.parametrize("topk_frames, expect_red", [(0, 10 / np.sqrt(10**2 + 30**2)), (1, 0.0)])
def test_area_weighted_mean_and_topk_frames(tmp_path, topk_frames, expect_red):
    """Frame 0 shows 10 red pixels, frame 1 30 blue ones (hues 240 deg apart: orthogonal hue profiles), so
    the area-weighted mean has cosine 10/sqrt(1000) with red and 30/sqrt(1000) with blue."""
    gt = _solid_video(tmp_path, [((255, 0, 0), (2, 4, 3, 8)), ((0, 0, 255), (5, 10, 4, 10))])
    emb = ColorHistEmbedder()
    embed_source("tubes", gt, tmp_path / "emb", emb, img_root=tmp_path,
                 settings=CropSettings(topk_frames=topk_frames), progress=False)
    index, _ = read_index(tmp_path / "emb")
    v = np.load(index[(1, 1)]).astype(np.float64)
    t = emb.encode_texts(["red", "blue"]).double().numpy()
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    assert v @ t[0] == pytest.approx(expect_red, abs=2e-3)
    assert v @ t[1] == pytest.approx(np.sqrt(1 - expect_red**2), abs=2e-3)
