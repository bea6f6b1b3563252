"""Open-vocabulary transfer of the in-model text head, with a deterministic colour stand-in for CLIP.

Videos whose categories are colours (``tests/openvocab/helpers.make_colour_videos``: red, yellow,
green, cyan, blue, magenta; partitions alternate base 1 / novel 3). Text embeddings come from the
weight-free ``colorhist`` embedder (colour name -> hue profile), cached and hashed exactly as
``wsovvis label`` caches vocabulary embeddings. ``seqformer_tiny`` with ``class_head=text`` is trained
on the BASE colours only (novel tracks dropped from the targets, base-only vocabulary), then
evaluated on held-out videos with the FULL vocabulary swapped in (no retraining): LV-VIS AP / APb / APn.

Baseline (same run): the trained model with its text projection re-initialised at random
("random head": the same masks, chance-level naming), several seeds.

The settings (1-frame clips, class weight 4, colour embeddings 30 deg wide) were chosen by trying
about ten variants against held-out videos of seed 12; the default held-out set (seed 99) was not
used for that. Measured (2-core shared CPU): seed 99, 600 steps, 24 training / 24 held-out videos:
AP 13.2, APb 17.6, APn 8.7; random heads APn 2.1 / 2.1 / 4.2 / 0.0 / 7.1. With novel objects present
but unlabelled in the training videos (``--novel_in_train``) APn is 0.0: they are learned as background.

    .venv/bin/python bench/ov_transfer.py [--steps 600] [--train_videos 24] [--val_videos 24]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.openvocab.helpers import PALETTE, colour_categories, make_colour_videos  # noqa: E402
from wsovvis.data import ytvis  # noqa: E402
from wsovvis.data.collate import collate_clips  # noqa: E402
from wsovvis.data.dataset import YTVISClipDataset, YTVISVideoDataset  # noqa: E402
from wsovvis.data.transforms import ClipAugmentation  # noqa: E402
from wsovvis.evaluation import evaluate  # noqa: E402
from wsovvis.modeling.seqformer.inference import predict_video  # noqa: E402
from wsovvis.modeling.seqformer.text_head import load_text_vocab, save_text_vocab  # noqa: E402
from wsovvis.openvocab.color_embedder import ColorHistEmbedder  # noqa: E402
from wsovvis.openvocab.vocab import TEMPLATE_SETS, text_embeddings  # noqa: E402

MODEL_YAML = ROOT / "configs" / "model" / "seqformer_tiny.yaml"


def colour_text_vocab(out_dir: Path, names=PALETTE, sigma: float = 60.0) -> Path:
    """The colour names' text embeddings through the hashed text cache (`wsovvis.openvocab.vocab`),
    saved with a names/ids sidecar -> path of the ``.npy`` [K, D]."""
    emb = ColorHistEmbedder(bins=36, sigma=sigma)
    arr = text_embeddings(emb.fingerprint(), list(names), TEMPLATE_SETS["single"], out_dir / "text", lambda: emb)
    return save_text_vocab(out_dir / "colours.npy", arr, names=list(names), ids=list(range(1, len(names) + 1)))


BASE = tuple(c["name"] for c in colour_categories() if c["partition"] in (0, 1))  # red, green, blue


def make_sets(root: Path, train_videos: int, val_videos: int, frames: int = 4,
              novel_in_train: bool = False, val_seed: int = 12) -> tuple[dict, dict]:
    """Training videos (base colours only unless ``novel_in_train``: then novel objects appear and are
    dropped from the targets, i.e. trained as background) and held-out videos of all six colours.
    Both JSONs carry the full six-category list with LV-VIS partitions (ids = `PALETTE` order)."""
    names = PALETTE if novel_in_train else BASE
    train = make_colour_videos(root / "train", num_videos=train_videos, num_frames=frames, objects=3, seed=11,
                               names=names)
    if not novel_in_train:  # re-index the base-only set's categories to the full palette's ids
        gt = ytvis.load(train["gt"]).data
        for a in gt["annotations"]:
            a["category_id"] = PALETTE.index(names[a["category_id"] - 1]) + 1
        gt["categories"] = colour_categories()
        ytvis.write(gt, train["gt"])
    val = make_colour_videos(root / "val", num_videos=val_videos, num_frames=frames, objects=3, seed=val_seed)
    return train, val


def build_text_model(vocab_npy: Path, seed: int = 0, class_weight: float = 2.0, cls_threshold: float = 0.05):
    import yaml

    from wsovvis.modeling import build_model

    cfg = yaml.safe_load(MODEL_YAML.read_text())
    cfg["class_head"] = "text"
    cfg["text_head"] = {"embeddings": str(vocab_npy)}
    cfg["loss"]["class_weight"] = class_weight
    cfg["matcher"]["cost_class"] = class_weight
    cfg["inference"].update(test_size=64, max_size=100, top_k=10, clip_length=4, clip_overlap=2,
                            cls_threshold=cls_threshold)
    torch.manual_seed(seed)
    return build_model({"model": cfg})


def train_base_only(train: dict, vocab_npy: Path, steps: int, batch: int = 2, seed: int = 0, lr: float = 1e-3,
                    num_frames: int = 3, class_weight: float = 2.0, cls_threshold: float = 0.05):
    """Train on base colours only: novel tracks dropped, vocabulary = the base rows."""
    ds = YTVISClipDataset(train["gt"], train["img_root"], num_frames=num_frames, frame_range=2, base_only=True,
                          augmentation=ClipAugmentation(min_sizes=[64], max_size=100, flip_prob=0.5))
    full = load_text_vocab(vocab_npy)
    base_ids = sorted(ds.category_map, key=ds.category_map.__getitem__)  # contiguous base index -> category id
    rows = [full.ids.index(cid) for cid in base_ids]
    model, criterion, post = build_text_model(vocab_npy, seed, class_weight, cls_threshold)
    model.set_vocabulary(full.embeddings[rows], "base vocabulary")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    model.train()
    history = []
    for _step in range(steps):
        items = [ds[(int(rng.integers(len(ds))), int(rng.integers(2**31)))] for _ in range(batch)]
        b = collate_clips(items)
        losses = criterion(model(b["images"].float(), b["image_sizes"]), b["targets"])
        loss = sum(losses[k] * criterion.weight_dict[k] for k in losses if k in criterion.weight_dict)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        history.append(float(loss.detach()))
    return model, post, {"dropped_novel": ds.dropped_novel, "base_ids": base_ids, "loss_first": history[0],
                         "loss_last": float(np.mean(history[-10:]))}


def evaluate_full_vocab(model, post, val: dict, vocab_npy: Path) -> dict:
    """Swap in the full vocabulary, predict every held-out video, score with the LV-VIS evaluator."""
    full = load_text_vocab(vocab_npy)
    model.set_vocabulary(full.embeddings, "full vocabulary")
    vds = YTVISVideoDataset(val["gt"], val["img_root"])
    results = []
    for i, v in enumerate(vds.videos):
        for p in predict_video(model, post, vds.frames(i)):
            results.append({"video_id": int(v["id"]), "category_id": int(full.ids[p["category_index"]]),
                            "score": float(p["score"]), "segmentations": p["segmentations"]})
    m = evaluate(val["gt"], results, flavor="lvvis")
    return {"AP": m["AP"], "APb": m["base"]["AP"], "APn": m["novel"]["AP"], "predictions": len(results)}


def random_head(model, seed: int):
    """The same trained model with its text projections (and background) re-initialised at random."""
    other = copy.deepcopy(model)
    g = torch.Generator().manual_seed(1000 + seed)
    with torch.no_grad():
        for lin in other.text_head.proj:
            bound = float(np.sqrt(6.0 / (lin.in_features + lin.out_features)))
            lin.weight.copy_(torch.rand(lin.weight.shape, generator=g) * 2 * bound - bound)
            lin.bias.zero_()
        other.text_head.background.copy_(torch.randn(other.text_head.embed_dim, generator=g))
    return other


def run(root: Path, steps: int, train_videos: int, val_videos: int, random_seeds: int = 3, seed: int = 0,
        novel_in_train: bool = False, lr: float = 1e-3, num_frames: int = 3, sigma: float = 60.0,
        class_weight: float = 2.0, cls_threshold: float = 0.05, val_seed: int = 12) -> dict:
    torch.manual_seed(seed)
    train, val = make_sets(root, train_videos, val_videos, novel_in_train=novel_in_train, val_seed=val_seed)
    vocab = colour_text_vocab(root, sigma=sigma)
    t0 = time.perf_counter()
    model, post, info = train_base_only(train, vocab, steps, seed=seed, lr=lr, num_frames=num_frames,
                                        class_weight=class_weight, cls_threshold=cls_threshold)
    train_s = time.perf_counter() - t0
    trained = evaluate_full_vocab(model, post, val, vocab)
    randoms = [evaluate_full_vocab(random_head(model, s), post, val, vocab) for s in range(random_seeds)]
    return {"trained": trained, "random": randoms, "train_s": train_s, **info}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--train_videos", type=int, default=24)
    ap.add_argument("--val_videos", type=int, default=24)
    ap.add_argument("--random_seeds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val_seed", type=int, default=99,
                    help="seed of the held-out videos (99: untouched; 12: the set the settings were chosen on)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--class_weight", type=float, default=4.0, help="class loss weight and matching cost")
    ap.add_argument("--sigma", type=float, default=30.0, help="hue width (degrees) of the colour text embeddings")
    ap.add_argument("--frames", type=int, default=1, help="frames per training clip")
    ap.add_argument("--cls_threshold", type=float, default=0.05, help="model.inference.cls_threshold at evaluation")
    ap.add_argument("--novel_in_train", action="store_true",
                    help="novel-colour objects appear in the training videos (unlabelled: trained as background)")
    ap.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        r = run(root, args.steps, args.train_videos, args.val_videos, args.random_seeds, args.seed,
                args.novel_in_train, args.lr, args.frames, args.sigma, args.class_weight, args.cls_threshold,
                args.val_seed)
    print(f"colour stand-in, seqformer_tiny text head, trained {args.steps} steps x 2 clips x {args.frames} frames "
          f"(64 px, lr {args.lr:g}, class weight {args.class_weight:g}, colour embedding sigma {args.sigma:g} deg) "
          f"on {args.train_videos} videos, base colours {', '.join(PALETTE[i] for i in (0, 2, 4))} only "
          f"({r['dropped_novel']} novel tracks dropped), {r['train_s']:.0f} s; loss {r['loss_first']:.2f} -> "
          f"{r['loss_last']:.2f}")
    print(f"held-out: {args.val_videos} other videos (seed {args.val_seed}), full vocabulary of {len(PALETTE)} "
          "colours (LV-VIS evaluator)")
    print(f"{'head':<16} {'AP':>6} {'APb':>6} {'APn':>6}")
    t = r["trained"]
    print(f"{'trained':<16} {100 * t['AP']:6.1f} {100 * t['APb']:6.1f} {100 * t['APn']:6.1f}")
    for i, x in enumerate(r["random"]):
        print(f"{'random seed ' + str(i):<16} {100 * x['AP']:6.1f} {100 * x['APb']:6.1f} {100 * x['APn']:6.1f}")
    best = max(x["APn"] for x in r["random"])
    print(f"APn trained / best random head: {t['APn']:.3f} / {best:.3f}")


if __name__ == "__main__":
    main()
