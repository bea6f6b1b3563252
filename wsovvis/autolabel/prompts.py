"""Prompt sets: the text queries sent to the detector and the class each one stands for.

The vocabulary (classes) comes from a YouTube-VIS / LV-VIS / COCO categories JSON or a text file
with one name per line (`wsovvis.openvocab.vocab.load_vocab`). Without a prompt map every class
is prompted by its name in words (``traffic_light`` -> ``traffic light``). A prompt map names
the prompts explicitly; several prompts may map to one class (a prompt ensemble), and classes
the map leaves out are not searched for. Map files:

* JSON: ``{"prompt": "class name", ...}`` (a class may also be given by its integer id), or
  ``{"class name": ["prompt", "prompt", ...]}`` (lists mean class -> prompts);
* text: one ``prompt = class name`` (or ``= class id``) per line (``#`` comments).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from wsovvis.errors import WsovvisError
from wsovvis.openvocab.vocab import load_vocab, prompt_name


@dataclass(frozen=True)
class PromptSet:
    """``prompts[j]`` is searched for class ``class_ids[j]``; ``categories`` [{id, name}] of the vocabulary."""

    prompts: tuple[str, ...]
    class_ids: tuple[int, ...]
    categories: tuple[dict, ...]

    def __post_init__(self) -> None:
        if len(self.prompts) != len(self.class_ids):
            raise ValueError("PromptSet: prompts and class_ids differ in length")

    @property
    def names(self) -> dict[int, str]:
        return {c["id"]: c["name"] for c in self.categories}

    def __len__(self) -> int:
        return len(self.prompts)

    @classmethod
    def from_names(cls, names: list[str], prompt_map: dict[str, str] | None = None) -> PromptSet:
        """Classes ``names`` (ids 1..K) with prompts from ``prompt_map`` {prompt: class name} (default: the names)."""
        cats = [{"id": i + 1, "name": n} for i, n in enumerate(names)]
        _check_unique(cats, "<names>")
        return _build(cats, prompt_map, "<names>", "<prompt map>")


def _check_unique(cats: list[dict], source: str) -> None:
    seen: dict[str, int] = {}
    for c in cats:
        key = c["name"].strip().lower()
        if key in seen:
            raise WsovvisError(f"{source}: the vocabulary repeats the class name {c['name']!r} "
                               f"(ids {seen[key]} and {c['id']}); class names must be unique")
        seen[key] = c["id"]


def read_prompt_map(path: str | os.PathLike) -> list[tuple[str, object]]:
    """-> [(prompt, class name or id)] in file order; raises naming the file and the entry."""
    p = Path(path)
    if not p.is_file():
        raise WsovvisError(f"{p}: --prompt_map file does not exist")
    pairs: list[tuple[str, object]] = []
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise WsovvisError(f"{p}: --prompt_map is not valid JSON ({e})") from e
        if not isinstance(data, dict):
            raise WsovvisError(f"{p}: --prompt_map JSON must be an object {{prompt: class}} or {{class: [prompts]}}")
        for k, v in data.items():
            if isinstance(v, list):
                if not all(isinstance(x, str) and x.strip() for x in v):
                    raise WsovvisError(f"{p}: entry {k!r}: the prompts must be non-empty strings")
                pairs += [(x, k) for x in v]
            elif isinstance(v, (str, int)) and not isinstance(v, bool):
                pairs.append((k, v))
            else:
                raise WsovvisError(f"{p}: entry {k!r}: expected a class name, a class id or a list of prompts, "
                                   f"got {type(v).__name__}")
    else:
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if "=" not in line:
                raise WsovvisError(f"{p}: line {n}: expected 'prompt = class name', got {line!r}")
            prompt, cls = (s.strip() for s in line.split("=", 1))
            pairs.append((prompt, cls))
    return pairs


def _build(cats: list[dict], pairs, source: str, map_source: str) -> PromptSet:
    if pairs is None:
        return PromptSet(tuple(prompt_name(c["name"]) for c in cats), tuple(c["id"] for c in cats), tuple(cats))
    if isinstance(pairs, dict):
        pairs = list(pairs.items())
    by_name = {c["name"].strip().lower(): c["id"] for c in cats}
    ids = {c["id"] for c in cats}
    prompts, class_ids, seen = [], [], {}
    for prompt, cls in pairs:
        prompt = str(prompt).strip()
        if not prompt:
            raise WsovvisError(f"{map_source}: an empty prompt (for class {cls!r})")
        if isinstance(cls, int):
            if cls not in ids:
                raise WsovvisError(f"{map_source}: prompt {prompt!r} maps to class id {cls}, "
                                   f"which {source} does not have")
            cid = cls
        else:
            key = str(cls).strip()
            cid = by_name.get(key.lower())
            if cid is None and key.isdigit() and int(key) in ids:  # a class id written in a text map
                cid = int(key)
            if cid is None:
                hint = ("; to give a class several prompts write {class: [prompts]}"
                        if by_name.get(prompt.lower()) is not None else "")
                raise WsovvisError(f"{map_source}: prompt {prompt!r} maps to unknown class {cls!r} "
                                   f"(not in the vocabulary {source}){hint}")
        if prompt.lower() in seen:
            raise WsovvisError(f"{map_source}: the prompt {prompt!r} appears twice")
        seen[prompt.lower()] = cid
        prompts.append(prompt)
        class_ids.append(cid)
    if not prompts:
        raise WsovvisError(f"{map_source}: the prompt map is empty")
    return PromptSet(tuple(prompts), tuple(class_ids), tuple(cats))


def load_prompt_set(vocab: str | os.PathLike, prompt_map: str | os.PathLike | None = None) -> PromptSet:
    """``--vocab`` (+ optional ``--prompt_map``) -> `PromptSet`; every problem names the file and the entry."""
    v = load_vocab(vocab)
    cats = [{"id": i, "name": n} for i, n in zip(v.ids, v.names)]
    _check_unique(cats, str(vocab))
    pairs = read_prompt_map(prompt_map) if prompt_map else None
    return _build(cats, pairs, str(vocab), str(prompt_map))
