"""Vocabularies and their text embeddings, cached by what they were made from.

A vocabulary comes from a categories JSON (a YouTube-VIS / LV-VIS / COCO dataset file with a
``categories`` list, or the list itself) or from a text file with one name per line (ids 1..K).
Each name is embedded as the normalised mean over an ensemble of prompt templates. The result is
cached as ``<cache>/<key>.npy`` (float32 ``[K, D]``) with a ``<key>.json`` stating the model
fingerprint, templates and names, where ``key`` hashes exactly those; so any ``.npy`` can be traced
back to the text encoder and prompts that produced it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from wsovvis.errors import WsovvisError
from wsovvis.utils.io import atomic_open, atomic_write_json, read_json
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

if TYPE_CHECKING:  # the embedder module imports torch; reading a vocabulary must not
    from wsovvis.openvocab.embedder import Embedder

# Prompt ensemble: generic photo/video phrasings; averaging over them makes the class vector less
# sensitive to any one wording.
DEFAULT_TEMPLATES = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a cropped photo of a {}.",
    "a close-up photo of a {}.",
    "a blurry photo of a {}.",
    "a low resolution photo of a {}.",
    "a photo of a small {}.",
    "a photo of a large {}.",
    "a video frame showing a {}.",
    "a {} in a video.",
    "an image of a {}.",
    "there is a {} in the scene.",
)
TEMPLATE_SETS = {"default": DEFAULT_TEMPLATES, "single": ("a photo of a {}.",)}


@dataclass
class Vocabulary:
    """``ids[k]``, ``names[k]``; ``categories`` as they go into an output JSON (with ``partition`` if given)."""

    ids: list[int]
    names: list[str]
    categories: list[dict]
    source: str

    def __len__(self) -> int:
        return len(self.ids)


def prompt_name(name: str) -> str:
    """Dataset spelling -> words: ``traffic_light`` -> ``traffic light``, ``bow_(weapon)`` -> ``bow (weapon)``."""
    return re.sub(r"\s+", " ", name.replace("_", " ")).strip()


def _from_categories(cats: list, path: str) -> Vocabulary:
    ids, names, out, seen = [], [], [], {}
    for i, c in enumerate(cats):
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or isinstance(c.get("id"), bool):
            raise WsovvisError(f"{path}: categories[{i}] needs an integer 'id'")
        if not isinstance(c.get("name"), str) or not c["name"].strip():
            raise WsovvisError(f"{path}: categories[{i}] (id {c['id']}) needs a non-empty string 'name'")
        if c["id"] in seen:
            raise WsovvisError(f"{path}: categories[{i}] repeats id {c['id']} (also categories[{seen[c['id']]}])")
        seen[c["id"]] = i
        ids.append(c["id"])
        names.append(c["name"])
        out.append({k: v for k, v in c.items() if k in ("id", "name", "supercategory", "partition", "synonyms")})
    return Vocabulary(ids, names, out, path)


def name_key(name: str) -> str:
    """How two spellings of a category name are compared: ``Traffic_Light`` == ``traffic light``."""
    return prompt_name(name).casefold()


def match_names(names: list[str], ref: Vocabulary, what: str) -> list[int]:
    """Index into ``ref`` of each name (by `name_key`); every unmatched name is listed in one error."""
    index: dict[str, int] = {}
    for k, n in enumerate(ref.names):
        index.setdefault(name_key(n), k)
    missing = [n for n in names if name_key(n) not in index]
    if missing:
        shown = ", ".join(repr(n) for n in missing[:20]) + (f", ... ({len(missing)} in all)" if len(missing) > 20
                                                            else "")
        raise WsovvisError(f"{what}: {len(missing)} name(s) not among the {len(ref)} categories of {ref.source}: "
                           f"{shown}")
    return [index[name_key(n)] for n in names]


def align_vocab(vocab: Vocabulary, ref: Vocabulary) -> Vocabulary:
    """``vocab``'s names with ``ref``'s category ids (and partitions): a text vocabulary, or one numbered
    otherwise, then writes the GT's ids, so that its results evaluate against that GT."""
    ks = match_names(vocab.names, ref, vocab.source)
    return Vocabulary([ref.ids[k] for k in ks], list(vocab.names), [dict(ref.categories[k]) for k in ks],
                      f"{vocab.source} (ids from {ref.source})")


def load_vocab(path: str | os.PathLike) -> Vocabulary:
    """Categories JSON (``.json``) or text file of names; raises naming the file and the bad entry."""
    p = Path(path)
    if p.suffix.lower() == ".json":
        data = read_json(p, "vocabulary JSON")
        cats = data.get("categories") if isinstance(data, dict) else data
        if not isinstance(cats, list):
            raise WsovvisError(f"{p}: a vocabulary JSON must be a list of categories or hold a 'categories' list")
        vocab = _from_categories(cats, str(p))
    else:
        if not p.is_file():
            raise WsovvisError(f"{p}: vocabulary file does not exist")
        names, lines = [], {}
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            name = line.strip()
            if not name or name.startswith("#"):
                continue
            if name in lines:
                raise WsovvisError(f"{p}: line {n} repeats the name {name!r} (also line {lines[name]})")
            lines[name] = n
            names.append(name)
        vocab = Vocabulary(list(range(1, len(names) + 1)), names,
                           [{"id": i + 1, "name": nm} for i, nm in enumerate(names)], str(p))
    if not len(vocab):
        raise WsovvisError(f"{p}: the vocabulary is empty")
    return vocab


def load_templates(spec: str) -> tuple[str, ...]:
    """A named set (``default``, ``single``) or a text file with one template containing ``{}`` per line."""
    if spec in TEMPLATE_SETS:
        return TEMPLATE_SETS[spec]
    p = Path(spec)
    if not p.is_file():
        raise WsovvisError(f"--templates {spec!r}: neither a template set ({', '.join(TEMPLATE_SETS)}) nor a file")
    out = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        t = line.strip()
        if not t or t.startswith("#"):
            continue
        if t.count("{}") != 1:
            raise WsovvisError(f"{p}: line {n}: a template must contain '{{}}' exactly once, got {t!r}")
        out.append(t)
    if not out:
        raise WsovvisError(f"{p}: no templates")
    return tuple(out)


def cache_key(fingerprint: dict, templates: tuple[str, ...], names: list[str]) -> str:
    """sha256 over (model fingerprint, templates, names); the text cache file name."""
    blob = json.dumps({"fingerprint": fingerprint, "templates": list(templates), "names": list(names)},
                      sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def encode_vocab(embedder: Embedder, names: list[str], templates: tuple[str, ...]) -> np.ndarray:
    """Mean over templates of the unit text embeddings, renormalised -> float32 ``[K, D]``."""
    prompts = [t.format(prompt_name(n)) for n in names for t in templates]
    f = embedder.encode_texts(prompts).double().numpy().reshape(len(names), len(templates), -1)
    f /= np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-12)
    f = f.mean(axis=1)
    return (f / np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def text_embeddings(
    fingerprint: dict,
    names: list[str],
    templates: tuple[str, ...],
    cache_dir: str | os.PathLike,
    build: Callable[[], Embedder],
) -> np.ndarray:
    """Cached `encode_vocab`. ``build`` is called only on a cache miss (so a hit loads no model),
    and the built embedder's fingerprint must equal ``fingerprint``."""
    key = cache_key(fingerprint, templates, names)
    cache_dir = Path(cache_dir)
    npy, info = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
    if npy.is_file():
        try:
            arr = np.load(npy)
            if arr.ndim == 2 and arr.shape[0] == len(names):
                log.info("text embeddings of %d name(s) x %d template(s) from %s", len(names), len(templates), npy)
                return arr.astype(np.float32)
        except (OSError, ValueError):
            pass
        log.warning("%s: unreadable cached text embeddings, recomputing", npy)
    embedder = build()
    if embedder.fingerprint() != fingerprint:
        raise WsovvisError(
            f"the text model {embedder.fingerprint()} is not the one that made the image embeddings "
            f"({fingerprint}); pass the same --model/--weights as `wsovvis embed`"
        )
    arr = encode_vocab(embedder, names, templates)
    with atomic_open(npy, "wb") as f:
        np.save(f, arr)
    atomic_write_json(info, {"fingerprint": fingerprint, "templates": list(templates), "names": list(names),
                             "shape": list(arr.shape)}, indent=1)
    log.info("text embeddings of %d name(s) x %d template(s) -> %s", len(names), len(templates), npy)
    return arr
