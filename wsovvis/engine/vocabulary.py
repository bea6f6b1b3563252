"""Vocabularies of the open-vocabulary class head (``model.class_head=text``) in training and evaluation.

Training scores the queries against the rows of ``model.text_head.embeddings`` that belong to the
training classes (all categories of ``data.train_json``, or only its base categories with
``data.train_classes=base``), in the dataset's contiguous class order. Evaluation swaps in
``eval.vocab`` (default: ``model.text_head.embeddings``) restricted to the val JSON's categories,
without retraining; the returned ``index_to_id`` maps each row to its category id.

A row is matched to a category by the sidecar's ``ids``, else by ``names`` (exact, then
case-insensitive with ``_`` as a space); a plain ``.npy`` without sidecar must have one row per
category, in ascending id order.
"""

from __future__ import annotations

import numpy as np

from wsovvis.errors import WsovvisError
from wsovvis.modeling.seqformer.text_head import TextVocab, load_text_vocab
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)


def _norm(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


def vocab_rows(vocab: TextVocab, categories: list[dict], source: str, require_all: bool = True) -> list[int | None]:
    """The vocabulary row of each category (None where ``require_all`` is False and it has none)."""
    cats = list(categories)
    if vocab.ids is not None:
        index = {cid: r for r, cid in enumerate(vocab.ids)}
        rows = [index.get(c["id"]) for c in cats]
    elif vocab.names is not None:
        exact = {n: r for r, n in enumerate(vocab.names)}
        loose = {_norm(n): r for r, n in enumerate(vocab.names)}
        rows = [exact.get(c.get("name"), loose.get(_norm(str(c.get("name", ""))))) for c in cats]
    else:
        if len(vocab) != len(cats):
            raise WsovvisError(
                f"{vocab.source}: {len(vocab)} text embeddings without a names/ids sidecar cannot be matched to the "
                f"{len(cats)} categories of {source}; add {vocab.source[:-4]}.json with 'names' (as `wsovvis label` "
                "writes) or give one row per category in ascending id order"
            )
        order = sorted(range(len(cats)), key=lambda i: cats[i]["id"])
        rows = [0] * len(cats)
        for r, i in enumerate(order):
            rows[i] = r
    missing = [(c["id"], c.get("name")) for c, r in zip(cats, rows) if r is None]
    if missing and require_all:
        raise WsovvisError(f"{vocab.source}: no text embedding for categories {missing[:10]} of {source}"
                           f"{' (and more)' if len(missing) > 10 else ''}")
    return rows


def training_vocab(cfg, category_map: dict[int, int], categories: list[dict]) -> np.ndarray:
    """``[K_train, D]``: the rows of ``model.text_head.embeddings`` in the dataset's contiguous class order."""
    tc = cfg.model.text_head
    if not tc.embeddings:
        raise WsovvisError("model.class_head=text: training needs model.text_head.embeddings")
    vocab = load_text_vocab(tc.embeddings)
    by_id = {c["id"]: c for c in categories}
    ordered = [by_id[cid] for cid in sorted(category_map, key=category_map.__getitem__)]
    rows = vocab_rows(vocab, ordered, cfg.data.train_json)
    return vocab.embeddings[rows]


def eval_vocab(cfg, categories: list[dict], source: str) -> tuple[np.ndarray, list[int], str]:
    """``(embeddings [K, D], index_to_id [K], path)`` for evaluation on ``categories`` (the val JSON's)."""
    path = getattr(cfg.eval, "vocab", None) or cfg.model.text_head.embeddings
    if not path:
        raise WsovvisError("model.class_head=text: evaluation needs eval.vocab or model.text_head.embeddings")
    vocab = load_text_vocab(path)
    cats = sorted(categories, key=lambda c: c["id"])
    rows = vocab_rows(vocab, cats, source, require_all=False)
    keep = [(c["id"], r) for c, r in zip(cats, rows) if r is not None]
    if not keep:
        raise WsovvisError(f"{path}: none of its {len(vocab)} text embeddings matches a category of {source}")
    if len(keep) < len(cats):
        log.warning("%s: %d of the %d categories of %s have no text embedding and will not be predicted",
                    path, len(cats) - len(keep), len(cats), source)
    return vocab.embeddings[[r for _, r in keep]], [cid for cid, _ in keep], str(path)
