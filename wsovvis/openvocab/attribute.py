"""Naming instances from a vocabulary: cosine similarity, temperature softmax, top-k, rejection.

``probs = softmax(cos(feat, text) / temperature)`` over the vocabulary plus optional background
names. A tube is rejected when a background name wins, or when its best vocabulary probability is
below ``reject_below``; otherwise it gets its ``topk`` best vocabulary categories with their
probabilities as confidences.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wsovvis.errors import WsovvisError


@dataclass
class Attribution:
    """For one instance: ``labels`` = ``[(vocab index, prob)]`` best first (empty when rejected)."""

    labels: list[tuple[int, float]]
    rejected: str | None = None
    best: tuple[int, float] | None = None  # best vocabulary entry, also for rejected ones (reports)


def class_probs(feats: np.ndarray, text: np.ndarray, temperature: float) -> np.ndarray:
    """``feats [N, D]``, ``text [K, D]`` (unit rows) -> ``[N, K]`` softmax of cosine / temperature."""
    if temperature <= 0:
        raise WsovvisError(f"--temperature must be > 0, got {temperature}")
    if feats.shape[1] != text.shape[1]:
        raise WsovvisError(f"embedding size {feats.shape[1]} != text embedding size {text.shape[1]}")
    logits = (feats.astype(np.float64) @ text.astype(np.float64).T) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def attribute(
    probs: np.ndarray,
    num_vocab: int,
    topk: int = 1,
    reject_below: float = 0.0,
) -> list[Attribution]:
    """``probs [N, K + B]``: the first ``num_vocab`` columns are the vocabulary, the rest background names."""
    if topk < 1:
        raise WsovvisError(f"--topk must be >= 1, got {topk}")
    out = []
    for row in probs:
        vocab = row[:num_vocab]
        order = np.argsort(-vocab, kind="stable")[: min(topk, num_vocab)]
        best = (int(order[0]), float(vocab[order[0]]))
        if row.shape[0] > num_vocab and row[num_vocab:].max() > best[1]:
            out.append(Attribution([], f"background (p={float(row[num_vocab:].max()):.3f})", best))
        elif best[1] < reject_below:
            out.append(Attribution([], f"unknown (best p={best[1]:.3f} < {reject_below})", best))
        else:
            out.append(Attribution([(int(k), float(vocab[k])) for k in order], None, best))
    return out
