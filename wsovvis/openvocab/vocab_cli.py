"""Base/novel partitions for open-vocabulary evaluation on your own data (``wsovvis vocab``).

    wsovvis vocab --from my_val.json --novel novel.txt --out my_val_lvvis.json
    wsovvis eval --gt my_val_lvvis.json --results results.json --flavor lvvis      # AP, APb, APn

Every category of ``--from`` gets a ``partition``: 2 (novel) when its name is in ``--novel``, else 0
(base); with ``--base`` too, a name in neither list is an error. These are the values LV-VIS's
evaluation reads (base = partition 0/1, novel = 2/3). Names match case-insensitively, with ``_`` as a
space, and every name in a list that matches no category is reported. A dataset file (with ``videos``)
is written whole with the partitions added, ready for ``--flavor lvvis``; a categories file or a text
vocabulary becomes ``{"categories": [...]}``.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

from wsovvis.errors import WsovvisError
from wsovvis.openvocab.vocab import Vocabulary, load_vocab, match_names
from wsovvis.utils.io import atomic_write_json, read_json
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

BASE, NOVEL = 0, 2


def read_names(spec: str, flag: str) -> list[str]:
    """A text file with one name per line, or a comma-separated list."""
    p = Path(spec)
    if p.is_file():
        names = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]
        names = [n for n in names if n and not n.startswith("#")]
    elif "/" in spec or spec.endswith(".txt"):
        raise WsovvisError(f"{spec}: {flag} file does not exist")
    else:
        names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise WsovvisError(f"{spec}: {flag} names no category")
    return names


def partitions(vocab: Vocabulary, novel: list[str], base: list[str] | None) -> list[int]:
    """Partition of each category of ``vocab`` (in its order)."""
    novel_k = set(match_names(novel, vocab, "--novel"))
    parts = [NOVEL if k in novel_k else BASE for k in range(len(vocab))]
    if base is not None:
        base_k = set(match_names(base, vocab, "--base"))
        both = sorted(vocab.names[k] for k in base_k & novel_k)
        if both:
            raise WsovvisError(f"categories in both --base and --novel: {', '.join(both)}")
        neither = [vocab.names[k] for k in range(len(vocab)) if k not in base_k | novel_k]
        if neither:
            raise WsovvisError(f"{len(neither)} categor{'y is' if len(neither) == 1 else 'ies are'} in neither "
                               f"--base nor --novel: {', '.join(neither[:20])}")
    return parts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="source", required=True,
                        help="dataset JSON (YouTube-VIS / COCO), categories JSON, or a text file of names")
    parser.add_argument("--novel", required=True, help="novel category names: a text file (one per line) or a,b,c")
    parser.add_argument("--base", default=None,
                        help="base names (optional; then every category must be in exactly one of the lists)")
    parser.add_argument("--out", required=True, help="output JSON (never the --from file)")


def main(args: argparse.Namespace) -> int:
    src, out = Path(args.source), Path(args.out)
    if out.exists() and out.resolve() == src.resolve():
        raise WsovvisError(f"{out}: --out would overwrite the --from file; choose another name")
    vocab = load_vocab(src)
    parts = partitions(vocab, read_names(args.novel, "--novel"),
                       read_names(args.base, "--base") if args.base else None)
    data = read_json(src, "dataset JSON") if src.suffix.lower() == ".json" else None
    if isinstance(data, dict) and ("videos" in data or "images" in data):
        result = copy.copy(data)
        result["categories"] = [dict(c, partition=p) for c, p in zip(data["categories"], parts)]
    else:
        result = {"categories": [dict(c, partition=p) for c, p in zip(vocab.categories, parts)]}
    atomic_write_json(out, result)
    n_novel = sum(p == NOVEL for p in parts)
    log.info("vocab: %d categories, %d base (partition %d), %d novel (partition %d) -> %s", len(parts),
             len(parts) - n_novel, BASE, n_novel, NOVEL, out)
    return 0
