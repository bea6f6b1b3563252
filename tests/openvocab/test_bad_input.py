"""Bad input -> exit 2 with a message naming the file, the item and the problem; partial work is reported."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.openvocab.helpers import make_colour_videos, write_vocab_txt
from wsovvis.cli import main as cli_main
from wsovvis.openvocab.cache import META_NAME, SKIPPED_NAME


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    return make_colour_videos(root, num_videos=2, num_frames=3, objects=2, seed=1)


def _embed(small, out, *extra):
    return cli_main(["embed", "--tubes", str(small["gt"]), "--img_root", str(small["img_root"]), "--out", str(out),
                     "--model", "colorhist:", "--num_workers", "0", "--no_progress", *extra])


def test_changed_settings_refused_unless_overwrite(small, tmp_path, capsys):
    out = tmp_path / "emb"
    assert _embed(small, out) == 0
    assert _embed(small, out, "--pad_ratio", "0.3") == 2
    err = capsys.readouterr().err
    assert f"{out}: holds embeddings made with other settings (crop:" in err and "--overwrite" in err
    assert _embed(small, out, "--pad_ratio", "0.3", "--overwrite") == 0
    assert json.loads((out / META_NAME).read_text())["crop"]["pad_ratio"] == 0.3
    (out / "notes.txt").write_text("mine")
    assert _embed(small, out, "--overwrite") == 0 and (out / "notes.txt").read_text() == "mine"


def test_missing_frame_is_reported_not_fatal(small, tmp_path):
    img = tmp_path / "img"
    shutil.copytree(small["img_root"], img)
    (img / "cv_000" / "00001.jpg").unlink()
    out = tmp_path / "emb"
    assert cli_main(["embed", "--tubes", str(small["gt"]), "--img_root", str(img), "--out", str(out), "--model",
                     "colorhist:", "--num_workers", "0", "--no_progress"]) == 0
    rep = json.loads((out / SKIPPED_NAME).read_text())
    assert rep["instances"] == []  # the other frames still embed the tubes
    frames = [f for f in rep["frames"] if f["video_id"] == 1]
    assert len(frames) == 2 and all("video 1 frame 1 (cv_000/00001.jpg)" in f["reason"] for f in frames)


@pytest.mark.parametrize("case, message", [
    ("no_annotations", "has no 'annotations'"),
    ("duplicate_track", "have the same (video_id, track_id) (1, 1)"),
    ("bad_alpha", "--bg_alpha must be in [0, 1], got 1.5"),
    ("bad_spec", "unknown scheme 'clip'"),
    ("results_no_videos", "--results needs --videos"),
])
def test_embed_bad_input(small, tmp_path, capsys, case, message):
    gt = json.loads(small["gt"].read_text())
    path, extra = tmp_path / "t.json", []
    if case == "no_annotations":
        del gt["annotations"]
    elif case == "duplicate_track":
        gt["annotations"][1]["track_id"] = gt["annotations"][0]["track_id"]
    elif case == "bad_alpha":
        extra = ["--bg_alpha", "1.5"]
    elif case == "bad_spec":
        extra = ["--model", "clip:x"]
    path.write_text(json.dumps(gt))
    src = ["--results", str(path)] if case == "results_no_videos" else ["--tubes", str(path)]
    rc = cli_main(["embed", *src, "--img_root", str(small["img_root"]), "--out", str(tmp_path / "o"),
                   "--model", "colorhist:", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and message in err
    if case in ("no_annotations", "duplicate_track"):
        assert str(path) in err


def test_label_and_classify_bad_input(small, tmp_path, capsys):
    vocab = write_vocab_txt(tmp_path / "v.txt")
    rc = cli_main(["label", "--tubes", str(small["gt"]), "--embeddings", str(tmp_path / "none"), "--vocab", str(vocab),
                   "--out", str(tmp_path / "l.json")])
    assert rc == 2 and "run `wsovvis embed` first" in capsys.readouterr().err
    gt = json.loads(small["gt"].read_text())
    segs = gt["annotations"][0]["segmentations"][:2]
    results = [{"video_id": 1, "score": 0.9, "category_id": 1, "segmentations": segs}]
    res = tmp_path / "res.json"
    res.write_text(json.dumps(results))
    classify = ["classify", "--results", str(res), "--videos", str(small["gt"]), "--img_root", str(small["img_root"]),
                "--vocab", str(vocab), "--out", str(tmp_path / "c.json"), "--model", "colorhist:"]
    rc = cli_main(classify)
    err = capsys.readouterr().err
    assert rc == 2 and f"{res}: results[0]: segmentations has 2 entries but video 1 has 3 frames" in err
    results[0]["video_id"] = 99
    res.write_text(json.dumps(results))
    rc = cli_main(classify)
    assert rc == 2 and "results[0]: video_id 99 is not in" in capsys.readouterr().err
    out = tmp_path / "emb"
    assert _embed(small, out) == 0
    rc = cli_main(["label", "--tubes", str(small["gt"]), "--embeddings", str(out), "--vocab", str(vocab),
                   "--out", str(tmp_path / "l.json"), "--background", "red"])
    assert rc == 2 and "--background names ['red'] are also in the vocabulary" in capsys.readouterr().err


def test_label_refuses_a_cache_made_from_other_tubes(small, tmp_path, capsys):
    out = tmp_path / "emb"
    assert _embed(small, out) == 0
    other = tmp_path / "other.json"
    data = json.loads(small["gt"].read_text())
    data["annotations"] = data["annotations"][::-1]  # same tubes, other order: track keys would mean other tubes
    other.write_text(json.dumps(data))
    vocab = write_vocab_txt(tmp_path / "vocab.txt", ["red", "green"])
    args = ["label", "--embeddings", str(out), "--vocab", str(vocab), "--out", str(tmp_path / "l.json")]
    assert cli_main([*args, "--tubes", str(other)]) == 2
    err = capsys.readouterr().err
    assert f"{out}: its embeddings were made from" in err and f"not from --tubes {other}" in err
    assert not (tmp_path / "l.json").exists()
    assert cli_main([*args, "--tubes", str(small["gt"])]) == 0
