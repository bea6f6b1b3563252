"""Embedding-cache mechanics with a real open_clip model (ViT-S-32, seeded random weights saved to a file).

No weights can be downloaded, so the "checkpoint" is the random-initialised model written to disk by
the test; that exercises the same loading path as a real checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch

from tests.openvocab.helpers import make_colour_videos, write_vocab_txt
from wsovvis.cli import main as cli_main
from wsovvis.data import ytvis
from wsovvis.errors import WsovvisError
from wsovvis.openvocab import openclip_embedder
from wsovvis.openvocab.cache import INDEX_NAME, META_NAME, read_index
from wsovvis.openvocab.embed import embed_source
from wsovvis.openvocab.embedder import build_embedder
from wsovvis.openvocab.openclip_embedder import OpenClipEmbedder, make_tokenizer, tag_settings

ARCH = "ViT-S-32"  # the smallest open_clip ViT config with the bundled BPE tokenizer
DIM = 384


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ocm")
    data = make_colour_videos(root / "data", num_videos=2, num_frames=3, h=48, w=64, objects=2)
    model = OpenClipEmbedder(ARCH, random_init=True).model
    weights = root / "vit_s32_random.pt"
    torch.save({k: v.half() for k, v in model.state_dict().items()}, weights)  # fp16 halves the file
    del model
    out = root / "emb"
    rc = cli_main(["embed", "--tubes", str(data["gt"]), "--img_root", str(data["img_root"]), "--out", str(out),
                   "--model", f"openclip:{ARCH}", "--weights", str(weights), "--device", "cpu",
                   "--batch_size", "2", "--num_workers", "0", "--no_progress"])
    assert rc == 0
    return {"root": root, "data": data, "weights": weights, "out": out}


def test_cache_layout_shapes_fp16_unit_norm(setup):
    out, gt = setup["out"], ytvis.load(setup["data"]["gt"])
    lines = (out / INDEX_NAME).read_text().splitlines()
    assert lines[0] == "video_id\ttrack_id\tfeat_file"
    keys = {(a["video_id"], a["track_id"]) for a in gt.annotations}
    assert len(lines) - 1 == len(keys) == 4
    for line in lines[1:]:
        vid, tid, name = line.split("\t")
        assert (int(vid), int(tid)) in keys and name == f"{vid}_{tid}.npy"
        v = np.load(out / name)
        assert v.shape == (DIM,) and v.dtype == np.float16
        assert np.linalg.norm(v.astype(np.float64)) == pytest.approx(1.0, abs=2e-3)
    meta = json.loads((out / META_NAME).read_text())
    assert meta["fingerprint"] == {"spec": f"openclip:{ARCH}", "pretrained_tag": None, "preprocess": {},
                                   "weights_sha256": hashlib.sha256(setup["weights"].read_bytes()).hexdigest()}
    assert meta["dim"] == DIM and meta["crop"] == {"pad_ratio": 0.1, "bg_alpha": 0.3, "topk_frames": 0}


def test_weights_file_really_loaded(setup):
    """The file holds the seeded random init (in fp16): embeddings match --random_init closely, and a
    file with the wrong keys is refused naming the file."""
    out2 = setup["root"] / "emb_random"
    emb = build_embedder(f"openclip:{ARCH}", random_init=True)
    embed_source("tubes", setup["data"]["gt"], out2, emb, img_root=setup["data"]["img_root"], batch_size=4,
                 progress=False)
    a, _ = read_index(setup["out"])
    b, _ = read_index(out2)
    assert a.keys() == b.keys()
    for k in a:
        va, vb = np.load(a[k]).astype(np.float64), np.load(b[k]).astype(np.float64)
        assert va @ vb > 0.995
    bogus = setup["root"] / "bogus.pt"
    torch.save({"not_a_key": torch.zeros(3)}, bogus)
    with pytest.raises(WsovvisError, match=r"bogus.pt: cannot load as weights of open_clip model 'ViT-S-32'"):
        build_embedder(f"openclip:{ARCH}", weights=bogus)


def test_resume_repairs_half_written_index(setup):
    out = setup["root"] / "emb_resume"
    shutil.copytree(setup["out"], out)
    before = {k: np.load(p) for k, p in read_index(out)[0].items()}
    index = out / INDEX_NAME
    lines = index.read_text().splitlines()
    # A crash: the last line torn mid-write (its .npy is complete) and one finished .npy lost.
    index.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:3])
    lost = lines[1].split("\t")[2]
    (out / lost).unlink()
    emb = build_embedder(f"openclip:{ARCH}", weights=setup["weights"])
    stats = embed_source("tubes", setup["data"]["gt"], out, emb, img_root=setup["data"]["img_root"],
                         batch_size=2, progress=False)
    assert stats.written == 1 and stats.already_done == 3 and not stats.skipped
    text = index.read_text()
    assert text.endswith("\n") and text.splitlines() == lines  # repaired, complete, sorted
    after = {k: np.load(p) for k, p in read_index(out)[0].items()}
    for k in before:
        assert np.allclose(before[k].astype(np.float32), after[k].astype(np.float32), atol=2e-3)
    stats = embed_source("tubes", setup["data"]["gt"], out, emb, img_root=setup["data"]["img_root"],
                         progress=False)
    assert stats.written == 0 and stats.already_done == 4


def test_text_path_and_label(setup, tmp_path):
    vocab = write_vocab_txt(tmp_path / "colours.txt")
    labelled = tmp_path / "labelled.json"
    argv = ["label", "--tubes", str(setup["data"]["gt"]), "--embeddings", str(setup["out"]), "--vocab", str(vocab),
            "--out", str(labelled), "--templates", "single", "--topk", "2", "--text_cache", str(tmp_path / "text")]
    assert cli_main(argv) == 0
    ds = ytvis.load(labelled, require_annotations=True)
    assert [c["name"] for c in ds.categories] == ["red", "yellow", "green", "cyan", "blue", "magenta"]
    assert len(ds.annotations) == 8  # 4 tubes x top-2
    for a in ds.annotations:
        assert 0 < a["score"] <= 1 and a["label_rank"] in (0, 1)
    npys = list((tmp_path / "text").glob("*.npy"))
    assert len(npys) == 1
    t = np.load(npys[0])
    assert t.shape == (6, DIM) and np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)
    info = json.loads(npys[0].with_suffix(".json").read_text())
    assert info["templates"] == ["a photo of a {}."] and info["names"][0] == "red"
    # the tokenizer works directly too
    assert make_tokenizer(ARCH)(["a red thing"]).shape == (1, 77)


def test_missing_weights_fail_fast(tmp_path, capsys):
    with pytest.raises(WsovvisError, match="--weights FILE"):
        build_embedder(f"openclip:{ARCH}")
    with pytest.raises(WsovvisError, match=r"nope.pt: --weights file does not exist"):
        build_embedder(f"openclip:{ARCH}", weights=tmp_path / "nope.pt")
    with pytest.raises(WsovvisError, match="did you mean"):
        build_embedder("openclip:ViT-B-32-typo", random_init=True)
    with pytest.raises(WsovvisError, match="hub-hosted"):
        build_embedder("openclip:hf-hub:timm/ViT-B-16-SigLIP", random_init=True)
    rc = cli_main(["embed", "--tubes", str(tmp_path / "t.json"), "--img_root", str(tmp_path), "--out",
                   str(tmp_path / "o"), "--model", "openclip:ViT-B-16-SigLIP"])
    assert rc == 2 and "--weights FILE" in capsys.readouterr().err


def test_siglip_tokenizer_needs_local_dir(tmp_path):
    with pytest.raises(WsovvisError, match="pass --tokenizer DIR"):
        make_tokenizer("ViT-B-16-SigLIP")
    with pytest.raises(WsovvisError, match="--tokenizer directory does not exist"):
        make_tokenizer("ViT-B-16-SigLIP", tmp_path / "missing")
    try:
        import transformers  # noqa: F401
    except ImportError:
        with pytest.raises(WsovvisError, match="needs the `transformers` package"):
            make_tokenizer("ViT-B-16-SigLIP", tmp_path)


def test_tag_settings_of_published_weights():
    tag, cfg = tag_settings("ViT-B-16-SigLIP", None)
    assert tag == "webli" and cfg["mean"] == [0.5, 0.5, 0.5] and cfg["std"] == [0.5, 0.5, 0.5]
    assert cfg["resize_mode"] == "squash"
    with pytest.raises(WsovvisError, match="pass --pretrained_tag TAG"):
        tag_settings("ViT-B-32", None)  # OpenAI weights use QuickGELU, LAION ones do not
    assert tag_settings("ViT-B-32", "openai")[1]["quick_gelu"] is True
    assert not tag_settings("ViT-B-32", "laion2b_s34b_b79k")[1].get("quick_gelu", False)
    with pytest.raises(WsovvisError, match="'nope' is not a published tag of openclip:ViT-B-32; choose from openai"):
        tag_settings("ViT-B-32", "nope")
    assert tag_settings(ARCH, None) == (None, {})


def test_local_weights_get_the_tag_preprocessing(setup, monkeypatch):
    """open_clip gives a local file the generic CLIP mean/std; the tag's (here SigLIP-like 0.5) must win."""
    siglike = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "interpolation": "bicubic", "resize_mode": "squash"}
    monkeypatch.setattr(openclip_embedder, "tag_settings", lambda name, tag: ("fake", siglike))
    emb = build_embedder(f"openclip:{ARCH}", weights=setup["weights"])
    assert emb.fill_rgb == (128, 128, 128) and emb.fingerprint()["preprocess"] == siglike
    norm = [t for t in emb._preprocess.transforms if type(t).__name__ == "Normalize"][0]
    assert tuple(norm.mean) == (0.5, 0.5, 0.5) and tuple(norm.std) == (0.5, 0.5, 0.5)


def test_fp16_autocast_path_agrees_with_fp32():
    """The autocast branch GPU runs take by default, run on CPU: float32 outputs close to the fp32 ones."""
    full = OpenClipEmbedder(ARCH, random_init=True, amp=False)
    half = OpenClipEmbedder(ARCH, random_init=True, amp=True)
    images = torch.rand(2, 3, 224, 224)
    a, b = full.encode_images(images), half.encode_images(images)
    assert b.dtype == torch.float32 and b.shape == a.shape == (2, DIM) and torch.isfinite(b).all()
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1)
    assert (cos > 0.99).all(), cos
    assert not torch.equal(a, b)  # the half-precision branch really ran
    ta, tb = full.encode_texts(["a cat", "a red car"]), half.encode_texts(["a cat", "a red car"])
    assert tb.dtype == torch.float32 and (torch.nn.functional.cosine_similarity(ta, tb, dim=1) > 0.99).all()
