"""Open-vocabulary classification of a class-agnostic model's predicted tubes (``wsovvis classify``).

    wsovvis classify --results results.json --videos lvvis_val.json --img_root JPEGImages \\
        --vocab lvvis_val.json --weights siglip.bin --out classified.json
    wsovvis eval --gt lvvis_val.json --results classified.json --flavor lvvis

Each prediction is embedded from its RLEs and frames (cached in ``--embeddings``, default
``<out stem>.embeddings/``; re-runs resume), named from the vocabulary, and written once per top-k
category with score ``model score x class probability`` (``--score_mode product``) or the class
probability alone (``class``). Predictions that get no embedding or are rejected are listed in
``<out stem>.rejected.json``.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from wsovvis.data import ytvis
from wsovvis.errors import WsovvisError
from wsovvis.openvocab import sources
from wsovvis.openvocab.cache import load_feats, read_index, recorded_model, recorded_weights_file
from wsovvis.openvocab.embed import embed_source
from wsovvis.openvocab.embed_cli import add_crop_arguments, add_model_arguments, build_from_args, crop_settings
from wsovvis.openvocab.embedder import DEFAULT_SPEC
from wsovvis.openvocab.label_cli import (
    add_naming_arguments,
    load_naming_vocab,
    name_instances,
    report_path,
    vocab_text,
)
from wsovvis.utils.io import atomic_write_json
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)
SCORE_MODES = ("product", "class")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", required=True, help="YouTube-VIS results list of a class-agnostic model")
    parser.add_argument("--videos", required=True,
                        help="YouTube-VIS JSON listing the videos' frames (the GT or the images-only split file)")
    parser.add_argument("--img_root", required=True, help="frames folder (<img_root>/<file_name>)")
    parser.add_argument("--out", required=True, help="per-class results JSON for `wsovvis eval --flavor lvvis`")
    parser.add_argument("--embeddings", default=None,
                        help="embedding cache folder (default: <results stem>.embeddings beside --results, so "
                             "classifying the same results again, into any --out, reuses it)")
    parser.add_argument("--score_mode", choices=SCORE_MODES, default="product",
                        help="output score: model score x class probability (product) or the probability (class)")
    parser.add_argument("--combine_weight", type=float, default=None, metavar="W",
                        help="results of an in-model open-vocabulary head (model.class_head=text): keep each "
                             "entry's category and score it model_score^(1-W) x CLIP_prob^W (0: the model, 1: CLIP)")
    add_naming_arguments(parser)
    add_model_arguments(parser, recorded_default=True)
    add_crop_arguments(parser)


def model_spec(given: str | None, emb_dir: Path, overwrite: bool) -> str:
    """The model to embed with: the one that made ``emb_dir``'s embeddings; ``--model`` must agree with it."""
    recorded = recorded_model(emb_dir)
    if given is None:
        if recorded:
            log.info("classify: model %s, as recorded in %s", recorded, emb_dir)
        return recorded or DEFAULT_SPEC
    if recorded and given != recorded and not overwrite:
        raise WsovvisError(f"--model {given} differs from the model {recorded} that made the embeddings in {emb_dir}; "
                           f"drop --model (or pass --model {recorded}), or use another --embeddings / --overwrite")
    return given


def main(args: argparse.Namespace) -> int:
    if args.combine_weight is not None and not 0.0 <= args.combine_weight <= 1.0:
        raise WsovvisError(f"--combine_weight must be in [0, 1], got {args.combine_weight}")
    out = Path(args.out)
    res_path = Path(args.results)
    emb_dir = Path(args.embeddings) if args.embeddings else res_path.with_name(f"{res_path.stem}.embeddings")
    vocab = load_naming_vocab(args)
    args.model = model_spec(args.model, emb_dir, args.overwrite)
    embedder = build_from_args(args, recorded_weights_file(emb_dir))
    stats = embed_source(
        "results", args.results, emb_dir, embedder, img_root=args.img_root, videos=args.videos,
        settings=crop_settings(args), batch_size=args.batch_size, num_workers=args.num_workers,
        overwrite=args.overwrite, progress=not args.no_progress,
    )
    index, meta = read_index(emb_dir)
    cache_dir = Path(args.text_cache) if args.text_cache else emb_dir / "text"
    text = vocab_text(args, meta, vocab, cache_dir, lambda: embedder)

    ds = ytvis.load(args.videos, what="videos JSON")
    results = sources.load_results(args.results, ds)
    keys = [(r["video_id"], i + 1) for i, r in enumerate(results)]
    have = [i for i, k in enumerate(keys) if k in index]
    missing = [{"result_index": i, "video_id": keys[i][0], "reason": "no embedding (see embed_skipped.json)"}
               for i, k in enumerate(keys) if k not in index]
    feats = load_feats([index[keys[i]] for i in have], int(meta["dim"]))
    if args.combine_weight is not None:
        return _combine(args, results, have, feats, text, vocab, keys, missing, out)
    named = name_instances(feats, text, vocab, args) if have else []
    classified, rejected, per_cat = [], [], Counter()
    for i, att in zip(have, named):
        r = results[i]
        if att.rejected:
            rejected.append({"result_index": i, "video_id": r["video_id"], "reason": att.rejected,
                             "best": vocab.names[att.best[0]], "best_prob": round(att.best[1], 4)})
            continue
        base = float(r.get("score", 1.0))
        for k, p in att.labels:
            score = base * p if args.score_mode == "product" else p
            classified.append({"video_id": r["video_id"], "category_id": vocab.ids[k], "score": score,
                               "segmentations": r["segmentations"]})
        per_cat[vocab.names[att.labels[0][0]]] += 1
    if not classified and results:
        log.warning("classify: none of the %d prediction(s) could be classified", len(results))
    atomic_write_json(out, classified)
    rep = report_path(out, "rejected")
    atomic_write_json(rep, {"rejected": rejected, "missing_embedding": missing}, indent=1)
    top = ", ".join(f"{n} {c}" for n, c in per_cat.most_common(8))
    log.info("classify: %d prediction(s) (%d newly embedded): %d classified, %d rejected, %d without embedding "
             "-> %s (%d entries); top: %s", len(results), stats.written, len(have) - len(rejected), len(rejected),
             len(missing), out, len(classified), top)
    if rejected or missing:
        log.warning("classify: rejected predictions and predictions without embedding are listed in %s", rep)
    return 0


def _combine(args, results, have, feats, text, vocab, keys, missing, out: Path) -> int:
    """``--combine_weight``: the weighted geometric mean of each entry's own score (an in-model text head's
    class probability) and the CLIP probability of the same category (`text_head.geometric_mix`)."""
    from wsovvis.modeling.seqformer.text_head import geometric_mix
    from wsovvis.openvocab.attribute import class_probs

    k_of = {cid: k for k, cid in enumerate(vocab.ids)}
    unknown = sorted({results[i]["category_id"] for i in have} - set(k_of))
    if unknown:
        raise WsovvisError(f"{args.results}: category ids {unknown[:10]} are not in the vocabulary {args.vocab}; "
                           "--combine_weight needs the vocabulary the model predicted with")
    probs = class_probs(feats, text, args.temperature)[:, : len(vocab)] if have else None
    classified = []
    for j, i in enumerate(have):
        r = results[i]
        score = float(geometric_mix(float(r.get("score", 1.0)), float(probs[j, k_of[r["category_id"]]]),
                                    args.combine_weight))
        classified.append({"video_id": r["video_id"], "category_id": r["category_id"], "score": score,
                           "segmentations": r["segmentations"]})
    # entries without an embedding (e.g. empty in every frame) keep the model's score
    classified += [dict(results[m["result_index"]]) for m in missing]
    atomic_write_json(out, classified)
    atomic_write_json(report_path(out, "rejected"), {"rejected": [], "missing_embedding": missing}, indent=1)
    log.info("classify: %d prediction(s) combined with CLIP (weight %g), %d without embedding -> %s",
             len(classified), args.combine_weight, len(missing), out)
    return 0
