"""Attribute categories of a vocabulary to pseudo tubes (``wsovvis label``).

    wsovvis label --tubes pseudo.json --embeddings emb/ --vocab lvvis_categories.json --out labelled.json

Reads the tube embeddings made by `wsovvis embed` (same model: its spec and weights are read from
the cache), embeds the vocabulary with a prompt ensemble (cached), names each tube by cosine
similarity with a temperature, and writes a multi-class YouTube-VIS JSON whose annotations carry
``score`` (the class probability). Rejected tubes and tubes without an embedding are listed in
``<out stem>.rejected.json``.
"""

from __future__ import annotations

import argparse
import copy
from collections import Counter
from pathlib import Path

import numpy as np

from wsovvis.data import rle as rle_utils
from wsovvis.data import ytvis
from wsovvis.errors import WsovvisError
from wsovvis.openvocab import sources
from wsovvis.openvocab.attribute import Attribution, attribute, class_probs
from wsovvis.openvocab.cache import load_feats, read_index
from wsovvis.openvocab.embedder import Embedder, build_embedder
from wsovvis.openvocab.vocab import Vocabulary, align_vocab, load_templates, load_vocab, text_embeddings
from wsovvis.utils.io import atomic_write_json, file_sha256
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)


def add_naming_arguments(parser: argparse.ArgumentParser) -> None:
    """Vocabulary and attribution flags shared by `label` and `classify`."""
    parser.add_argument("--vocab", required=True,
                        help="categories JSON (YTVIS / LV-VIS / COCO file or a list) or a text file, one name per line")
    parser.add_argument("--categories_from", default=None, metavar="JSON",
                        help="take category ids (and partitions) from this dataset/categories JSON, matching the "
                             "vocabulary's names to its names (e.g. the GT you will evaluate against); unmatched "
                             "names are an error. Without it a text vocabulary is numbered 1..K in line order")
    g = parser.add_argument_group("attribution")
    g.add_argument("--templates", default="default",
                   help="prompt templates: 'default' (12), 'single', or a file with one '{}' template per line")
    g.add_argument("--temperature", type=float, default=0.01, help="softmax temperature on cosine similarity (0.01)")
    g.add_argument("--topk", type=int, default=1, help="categories per tube, each its own output entry (1)")
    g.add_argument("--reject_below", type=float, default=0.0,
                   help="reject a tube whose best category probability is below this (0 = never)")
    g.add_argument("--background", action="append", default=[], metavar="NAME",
                   help="extra non-vocabulary name (repeatable, e.g. 'background'); a tube it wins is rejected")
    g.add_argument("--text_cache", default=None, help="text embedding cache folder (default: <embeddings>/text)")


def add_text_model_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("text model (defaults: the model recorded by `wsovvis embed`)")
    g.add_argument("--weights", default=None, help="weights file, if it moved since `wsovvis embed`")
    g.add_argument("--tokenizer", default=None, help="local HuggingFace tokenizer directory (SigLIP models)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    g.add_argument("--trust_pickle", action="store_true",
                   help="load the weights with full unpickling (legacy files holding Python objects); this runs "
                        "any code the file contains, so only for files from a source you trust")


def text_builder(meta: dict, weights: str | None, tokenizer: str | None, device: str, trust_pickle: bool = False):
    """A function that builds the embedder recorded in a cache's ``meta`` (called only on a text cache miss)."""
    fp = meta.get("fingerprint") or {}
    recorded = meta.get("weights_file") or {}

    def build() -> Embedder:
        w = weights or recorded.get("path")
        random_init = "random_init_seed" in fp
        if w is not None and not random_init and not Path(w).is_file():
            raise WsovvisError(f"{w}: the weights file recorded by `wsovvis embed` is gone; pass --weights FILE")
        return build_embedder(meta["model"], weights=None if random_init else w, device=device, tokenizer=tokenizer,
                              random_init=random_init, pretrained_tag=fp.get("pretrained_tag"),
                              known_fingerprint=recorded or None, trust_pickle=trust_pickle)

    return build


def load_naming_vocab(args: argparse.Namespace) -> Vocabulary:
    """``--vocab``, with the ids of ``--categories_from`` when given."""
    vocab = load_vocab(args.vocab)
    if args.categories_from:
        return align_vocab(vocab, load_vocab(args.categories_from))
    if not Path(args.vocab).suffix.lower() == ".json":
        log.info("%s: categories numbered 1..%d in line order (pass --categories_from GT.json to use a GT's ids)",
                 args.vocab, len(vocab))
    return vocab


def vocab_text(args: argparse.Namespace, meta: dict, vocab: Vocabulary, cache_dir: Path, build) -> np.ndarray:
    """``[K + B, D]`` unit text embeddings: the vocabulary, then the ``--background`` names."""
    templates = load_templates(args.templates)
    clash = set(args.background) & set(vocab.names)
    if clash:
        raise WsovvisError(f"--background names {sorted(clash)} are also in the vocabulary {vocab.source}")
    return text_embeddings(meta["fingerprint"], vocab.names + list(args.background), templates, cache_dir, build)


def name_instances(feats: np.ndarray, text: np.ndarray, vocab: Vocabulary, args) -> list[Attribution]:
    probs = class_probs(feats, text, args.temperature)
    return attribute(probs, len(vocab), args.topk, args.reject_below)


def to_compressed(seg, h: int, w: int):
    """Any segmentation -> compressed RLE with ``str`` counts (the results format), None stays None."""
    if seg is None or rle_utils.is_compressed(seg):
        return seg
    rle = sources.seg_to_rle(seg, h, w)
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def report_path(out: str | Path, suffix: str) -> Path:
    out = Path(out)
    return out.with_name(f"{out.stem}.{suffix}.json")


def check_source(emb_dir, meta: dict, tubes) -> None:
    """The cache's embeddings must come from this very tubes file: its track keys mean nothing for another."""
    want = meta.get("source_sha256")
    if not want:
        raise WsovvisError(f"{emb_dir}: the embedding cache records no source file hash (made by an older "
                           f"wsovvis?); re-run `wsovvis embed --tubes {tubes} --out {emb_dir} --overwrite`")
    got = file_sha256(tubes)
    if got != want:
        raise WsovvisError(f"{emb_dir}: its embeddings were made from {meta.get('source')} (sha256 {want[:12]}...), "
                           f"not from --tubes {tubes} (sha256 {got[:12]}...); re-run `wsovvis embed --tubes {tubes} "
                           "--out DIR` for these tubes")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tubes", required=True, help="YouTube-VIS JSON of (class-agnostic) tubes")
    parser.add_argument("--embeddings", required=True, help="cache folder written by `wsovvis embed --tubes`")
    parser.add_argument("--out", required=True, help="labelled multi-class YouTube-VIS JSON")
    parser.add_argument("--results_out", default=None,
                        help="also write the labelled tubes as a results list (for `wsovvis eval`)")
    add_naming_arguments(parser)
    add_text_model_arguments(parser)


def main(args: argparse.Namespace) -> int:
    ds = ytvis.load(args.tubes, require_annotations=True, what="tubes JSON")
    index, meta = read_index(args.embeddings)
    if meta.get("kind") != "video":
        raise WsovvisError(f"{args.embeddings}: holds {meta.get('kind')} embeddings, not video tubes")
    check_source(args.embeddings, meta, args.tubes)
    vocab = load_naming_vocab(args)
    cache_dir = Path(args.text_cache) if args.text_cache else Path(args.embeddings) / "text"
    text = vocab_text(args, meta, vocab, cache_dir, text_builder(meta, args.weights, args.tokenizer, args.device,
                                                                     args.trust_pickle))

    keys, anns, missing = [], [], []
    for a in ds.annotations:
        key = (a["video_id"], sources.track_key(a))
        if key in index:
            keys.append(key)
            anns.append(a)
        else:
            missing.append({"video_id": key[0], "track_id": key[1], "reason": "no embedding (see embed_skipped.json)"})
    feats = load_feats([index[k] for k in keys], int(meta["dim"]))
    named = name_instances(feats, text, vocab, args) if keys else []

    out_anns, rejected, per_cat = [], [], Counter()
    for key, a, att in zip(keys, anns, named):
        if att.rejected:
            rejected.append({"video_id": key[0], "track_id": key[1], "reason": att.rejected,
                             "best": vocab.names[att.best[0]], "best_prob": round(att.best[1], 4)})
            continue
        for rank, (k, p) in enumerate(att.labels):
            b = copy.copy(a)
            b["id"] = len(out_anns) + 1
            b["track_id"] = key[1]
            if "orig_category_id" not in b and "category_id" in a:
                b["orig_category_id"] = a["category_id"]
            b["category_id"] = vocab.ids[k]
            if "score" in a:  # the tube's own (objectness) score; `score` becomes the class confidence
                b["tube_score"] = a["score"]
            b["score"] = p
            b["label_rank"] = rank
            out_anns.append(b)
            if rank == 0:
                per_cat[vocab.names[k]] += 1
    info = dict(ds.data.get("info") or {})
    info["wsovvis_label"] = {
        "tubes": str(args.tubes), "vocab": vocab.source, "model": meta["model"], "fingerprint": meta["fingerprint"],
        "templates": args.templates, "temperature": args.temperature, "topk": args.topk,
        "reject_below": args.reject_below, "background": list(args.background),
    }
    out = {"info": info, "licenses": ds.data.get("licenses", []), "videos": ds.videos,
           "categories": vocab.categories, "annotations": out_anns}
    ytvis.write(out, args.out)
    if args.results_out:
        results = []
        for b in out_anns:
            v = ds.video_by_id[b["video_id"]]
            results.append({"video_id": b["video_id"], "category_id": b["category_id"], "score": b["score"],
                            "segmentations": [to_compressed(s, v["height"], v["width"]) for s in b["segmentations"]]})
        atomic_write_json(args.results_out, results)
    rep = report_path(args.out, "rejected")
    atomic_write_json(rep, {"rejected": rejected, "missing_embedding": missing}, indent=1)
    top = ", ".join(f"{n} {c}" for n, c in per_cat.most_common(8))
    log.info("label: %d tube(s): %d labelled, %d rejected, %d without embedding -> %s (%d annotation(s)); top: %s",
             len(ds.annotations), len(keys) - len(rejected), len(rejected), len(missing), args.out, len(out_anns), top)
    if rejected or missing:
        log.warning("label: rejected tubes and tubes without embedding are listed in %s", rep)
    return 0
