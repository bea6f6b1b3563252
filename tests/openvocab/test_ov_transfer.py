"""Open vocabulary inside the model (issue #18): base-only training, evaluation on all categories.

* `data.train_classes=base` drops novel-category tracks and counts them;
* transfer: the text head trained on base colours only names novel colours on held-out videos
  (APn) far above a random head on the same model (`bench/ov_transfer.py` is the larger run);
* the training entry point: category-labelled pseudo tubes from `wsovvis label` train the text head
  (with distillation towards the `wsovvis embed` cache), `eval.vocab` swaps the vocabulary, and the
  LV-VIS evaluation reports base / novel.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.engine.conftest import run_train
from tests.openvocab.helpers import PALETTE, colour_categories, make_colour_videos
from wsovvis.cli import main as cli_main
from wsovvis.data import ytvis
from wsovvis.data.dataset import YTVISClipDataset
from wsovvis.data.transforms import ClipAugmentation
from wsovvis.errors import WsovvisError

REPO = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("ov_transfer_bench", REPO / "bench" / "ov_transfer.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def colour_set(tmp_path_factory):
    return make_colour_videos(tmp_path_factory.mktemp("ov"), num_videos=6, num_frames=4, objects=3, seed=5)


def _aug():
    return ClipAugmentation(min_sizes=[64], max_size=100, flip_prob=0.0)


def test_train_classes_base_drops_novel_tracks(colour_set, tmp_path):
    gt = ytvis.load(colour_set["gt"])
    novel_ids = {c["id"] for c in colour_set["categories"] if c["partition"] in (2, 3)}
    n_novel = sum(a["category_id"] in novel_ids for a in gt.annotations)
    assert n_novel > 0
    ds = YTVISClipDataset(colour_set["gt"], colour_set["img_root"], num_frames=2, frame_range=2,
                          augmentation=_aug(), base_only=True)
    assert ds.dropped_novel == n_novel
    assert sorted(ds.category_map) == [1, 3, 5] and ds.num_classes == 3  # red, green, blue
    seen = set()
    for i in range(len(ds)):
        item = ds[(i, i)]
        assert set(item["ann_ids"]).isdisjoint({a["id"] for a in gt.annotations if a["category_id"] in novel_ids})
        seen |= set(item["labels"].tolist())
    assert seen <= {0, 1, 2}
    full = YTVISClipDataset(colour_set["gt"], colour_set["img_root"], num_frames=2, frame_range=2,
                            augmentation=_aug())
    assert full.dropped_novel == 0 and full.num_classes == 6
    # without partitions there is no base/novel split: an error naming the file
    data = json.loads(Path(colour_set["gt"]).read_text())
    for c in data["categories"]:
        c.pop("partition")
    bad = tmp_path / "nopart.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(WsovvisError, match=r"nopart.json: data.train_classes=base needs an LV-VIS 'partition'"):
        YTVISClipDataset(bad, colour_set["img_root"], num_frames=2, frame_range=2, augmentation=_aug(),
                         base_only=True)


@pytest.mark.slow
def test_base_only_text_head_transfers_to_novel_colours(tmp_path):
    """Trained on red/green/blue only; held-out videos of all six colours with the full vocabulary."""
    torch.set_num_threads(1)
    bench = _bench()
    # held-out videos of seed 99: none of the settings was chosen on them (those were tried on seed 12)
    r = bench.run(tmp_path, steps=600, train_videos=24, val_videos=12, random_seeds=3, seed=0, lr=1e-3,
                  num_frames=1, sigma=30.0, class_weight=4.0, val_seed=99)
    t, rand = r["trained"], r["random"]
    best_random = max(x["APn"] for x in rand)
    print(f"trained AP {t['AP']:.3f} APb {t['APb']:.3f} APn {t['APn']:.3f}; random-head APn "
          f"{[round(x['APn'], 3) for x in rand]}")
    # The random head (same masks, random text projection) stays near zero on the novel colours; the
    # trained head names them although their names were never in the training vocabulary.
    # (measured: APn 0.100 vs random heads 0.022 / 0.013 / 0.047)
    assert t["APn"] > 0.05 and t["APn"] > 1.5 * best_random + 0.01, (t, rand)
    assert t["APb"] > t["APn"] > 0


@pytest.mark.slow
def test_labelled_pseudo_tubes_train_the_text_head_through_the_entry_point(colour_set, tmp_path):
    """agnostic tubes -> `wsovvis embed` -> `wsovvis label` -> train (class_head=text, base only,
    distillation on) -> evaluate with eval.vocab on all colours (LV-VIS base / novel)."""
    gt = colour_set["gt"]
    agnostic = tmp_path / "agnostic.json"
    assert cli_main(["agnostic", "--in_json", str(gt), "--out_json", str(agnostic)]) == 0
    emb = tmp_path / "emb"
    assert cli_main(["embed", "--tubes", str(agnostic), "--img_root", str(colour_set["img_root"]), "--out", str(emb),
                     "--model", "colorhist:", "--num_workers", "0", "--no_progress"]) == 0
    labelled = tmp_path / "labelled.json"
    assert cli_main(["label", "--tubes", str(agnostic), "--embeddings", str(emb), "--vocab", str(gt),
                     "--out", str(labelled), "--temperature", "0.05"]) == 0
    texts = sorted((emb / "text").glob("*.npy"))
    assert len(texts) == 1  # the cached, hashed vocabulary embeddings of `wsovvis label`
    names = json.loads(texts[0].with_suffix(".json").read_text())["names"]
    assert names == list(PALETTE)
    # a vocabulary file in another order and with only some names, for eval.vocab
    from wsovvis.modeling.seqformer.text_head import load_text_vocab, save_text_vocab

    full = load_text_vocab(texts[0])
    order = [5, 0, 3, 2, 1, 4]
    swapped = save_text_vocab(tmp_path / "eval_vocab.npy", full.embeddings[order], names=[names[i] for i in order])
    novel_in_labels = sum(a["category_id"] in (2, 4, 6) for a in ytvis.load(labelled).annotations)
    assert novel_in_labels > 0
    run_dir = tmp_path / "runs"
    img_root = colour_set["img_root"]
    r = run_train(["debug=cpu_smoke", "with", f"data.train_json={labelled}", f"data.train_img_root={img_root}",
                   f"data.val_json={gt}", f"data.val_img_root={img_root}", "data.train_classes=base",
                   f"data.tube_embeddings={emb}", "model.class_head=text", f"model.text_head.embeddings={texts[0]}",
                   "model.loss.distill_weight=1.0", f"eval.vocab={swapped}", "eval.flavor=lvvis",
                   "model.inference.cls_threshold=0.0", "num_threads=1", "progress=False", "plots=False",
                   "-F", str(run_dir), "-c", "no"], cwd=tmp_path, timeout=400)
    assert r.returncode == 0, r.stderr[-4000:]
    run = run_dir / "1"
    report = json.loads((run / "data_report.json").read_text())
    assert report["dropped_novel_tracks"] == novel_in_labels
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("loss_distill" in x for x in rows if "loss" in x)
    metrics = json.loads((run / "inference" / "metrics.json").read_text())["metrics"]
    assert {"AP", "base", "novel"} <= set(metrics) and "AP" in metrics["novel"]
    results = json.loads((run / "inference" / "results.json").read_text())
    # every colour of the swapped vocabulary can be predicted, novel ones included
    assert {res["category_id"] for res in results} == set(range(1, 7))
    # the checkpoint holds no vocabulary: it loads into a model with another one
    ck = torch.load(run / "checkpoints" / "model_final.pth", weights_only=False)
    sd = ck.get("model", ck)
    assert not any(k.endswith("text_head.text") for k in sd) and "text_head.proj.0.weight" in sd
    assert np.isfinite(np.array([res["score"] for res in results])).all()
    # an eval vocabulary from another text encoder (other D) fails at start-up, naming both dimensions
    wrong = save_text_vocab(tmp_path / "d5.npy", np.ones((6, 5), dtype=np.float32), names=names)
    r = run_train(["debug=cpu_smoke", "with", f"data.train_json={labelled}", f"data.train_img_root={img_root}",
                   f"data.val_json={gt}", f"data.val_img_root={img_root}", "model.class_head=text",
                   f"model.text_head.embeddings={texts[0]}", f"eval.vocab={wrong}", "progress=False",
                   "-F", str(tmp_path / "runs2"), "-c", "no"], cwd=tmp_path, timeout=300)
    assert r.returncode == 2
    assert f"{wrong}: vocabulary embedding dimension 5 does not match the model's text head dimension 36" in r.stderr
    assert not list((tmp_path / "runs2").glob("*/checkpoints/*.pth"))


def test_colour_categories_partitions():
    cats = colour_categories()
    assert [c["partition"] for c in cats] == [1, 3, 1, 3, 1, 3]


def test_classify_combines_in_model_scores_with_clip_both_ways(colour_set, tmp_path):
    """`wsovvis classify --combine_weight W` on an in-model head's multi-class results: W=0 keeps the model's
    scores, W=1 gives the CLIP probability of each entry's category, W=0.5 their geometric mean."""
    gt = ytvis.load(colour_set["gt"])
    results = []
    for a in gt.annotations:  # each tube twice: its true colour at 0.6 and the next colour at 0.8
        segs = a["segmentations"]
        results.append({"video_id": a["video_id"], "category_id": a["category_id"], "score": 0.6,
                        "segmentations": segs})
        results.append({"video_id": a["video_id"], "category_id": a["category_id"] % 6 + 1, "score": 0.8,
                        "segmentations": segs})
    res = tmp_path / "model_results.json"
    res.write_text(json.dumps(results))
    common = ["classify", "--results", str(res), "--videos", str(colour_set["gt"]), "--img_root",
              str(colour_set["img_root"]), "--vocab", str(colour_set["gt"]), "--model", "colorhist:36",
              "--temperature", "0.05", "--num_workers", "0", "--no_progress"]
    outs = {}
    for w in (0.0, 0.5, 1.0):
        out = tmp_path / f"combined_{w}.json"
        assert cli_main([*common, "--out", str(out), "--combine_weight", str(w)]) == 0
        outs[w] = json.loads(out.read_text())
        assert len(outs[w]) == len(results)
        assert [(r["video_id"], r["category_id"]) for r in outs[w]] == [(r["video_id"], r["category_id"])
                                                                        for r in results]
    # W = 0: the model's own scores
    assert np.allclose([r["score"] for r in outs[0.0]], [r["score"] for r in results])
    # W = 1: the CLIP probability of the entry's category (as plain classify computes it, all 6 classes)
    plain = tmp_path / "plain.json"
    assert cli_main([*common, "--out", str(plain), "--score_mode", "class", "--topk", "6"]) == 0
    prob = {}
    for r in json.loads(plain.read_text()):
        prob.setdefault((r["video_id"], json.dumps(r["segmentations"])), {})[r["category_id"]] = r["score"]
    clip = [prob[(r["video_id"], json.dumps(r["segmentations"]))][r["category_id"]] for r in results]
    assert np.allclose([r["score"] for r in outs[1.0]], clip, atol=1e-6)
    assert np.allclose([r["score"] for r in outs[0.5]], np.sqrt(np.array(clip) * [r["score"] for r in results]),
                       atol=1e-6)
    # the model alone ranks the wrong colour first; CLIP (W=1) puts the true colour first for most tubes
    true_first = sum(outs[1.0][2 * i]["score"] > outs[1.0][2 * i + 1]["score"] for i in range(len(gt.annotations)))
    assert true_first >= 0.9 * len(gt.annotations)
    assert cli_main([*common, "--out", str(tmp_path / "x.json"), "--combine_weight", "1.5"]) == 2
    assert not (tmp_path / "x.json").exists()
