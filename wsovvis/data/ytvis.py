"""Load, validate and write YouTube-VIS JSON.

A YouTube-VIS file is one dict::

    videos:      [{id, height, width, length, file_names: [str] * length}]
    categories:  [{id, name, (partition)}]
    annotations: [{id, video_id, category_id, iscrowd,
                   segmentations: [RLE | None] * length,   # None = absent in that frame
                   bboxes: [[x, y, w, h] | None] * length,
                   areas: [int | None] * length}]        # one entry per object track

``annotations`` is absent from the public val/test files (images-only JSON); callers
that need ground truth ask for it with ``require_annotations=True``.
Validation collects every problem with its JSON path (``annotations[17].segmentations[3]``)
so that one run of ``wsovvis check`` lists them all.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wsovvis.data.ytvis_schema import (  # noqa: F401 - re-exported: the names callers know
    MAX_LISTED_PROBLEMS,
    Problem,
    _check_ids,
    _is_int,
    _is_num,
    escapes_root,
    format_problems,
    segmentations_plainly_valid,
    validate,
    validate_structure,
    video_length,
)
from wsovvis.errors import WsovvisError
from wsovvis.utils.io import atomic_write_json, read_json


def video_name(v: dict) -> str | None:
    """A video's name: its ``name``, else the folder of its first ``file_names`` entry (None when neither)."""
    if isinstance(v.get("name"), str):
        return v["name"]
    files = v.get("file_names")
    if isinstance(files, list) and files and isinstance(files[0], str) and "/" in files[0]:
        return files[0].rsplit("/", 1)[0].rsplit("/", 1)[-1]
    return None


def check_result(i: int, r: Any, ds: YTVIS, source: str, require_category: bool = False) -> tuple[dict, list,
                                                                                               float | None]:
    """One entry ``[i]`` of a results list, checked against the videos of ``ds`` -> (video, segmentations, score).

    The checks a viewer needs (the evaluator's `check_results` is stricter): an object with ``video_id`` and a
    ``segmentations`` list of the video's length, a known video (and, with ``require_category``, a known
    ``category_id``), a numeric score when there is one. Raises `WsovvisError` naming ``source: [i].key``.
    """
    where = f"{source}: [{i}]"
    if not isinstance(r, dict):
        raise WsovvisError(f"{where} must be an object, got {type(r).__name__}")
    for key in ("video_id", "category_id", "segmentations") if require_category else ("video_id", "segmentations"):
        if key not in r:
            raise WsovvisError(f"{where} is missing required key '{key}' (not a YouTube-VIS results list?)")
    v = ds.video_by_id.get(r["video_id"])
    if v is None:
        raise WsovvisError(f"{where}.video_id {r['video_id']!r} is not a video of {ds.source}")
    if require_category and r["category_id"] not in ds.cat_by_id:
        raise WsovvisError(f"{where}.category_id {r['category_id']!r} is not a category of {ds.source}")
    segs = r["segmentations"]
    if not isinstance(segs, list) or len(segs) != video_length(v):
        n = len(segs) if isinstance(segs, list) else type(segs).__name__
        raise WsovvisError(f"{where}.segmentations has {n} entries but video {r['video_id']} has "
                           f"{video_length(v)} frames")
    score = r.get("score")
    if score is not None and (not isinstance(score, (int, float)) or isinstance(score, bool)):
        raise WsovvisError(f"{where}.score must be a number, got {score!r}")
    return v, segs, None if score is None else float(score)


@dataclass
class YTVIS:
    """A loaded YouTube-VIS dataset with id indexes. ``data`` is the raw dict (not copied)."""

    data: dict
    source: str = "<memory>"
    video_by_id: dict[int, dict] = field(init=False)
    cat_by_id: dict[int, dict] = field(init=False)
    anns_by_video: dict[int, list[dict]] = field(init=False)

    def __post_init__(self) -> None:
        # Tolerant of malformed entries so that `wsovvis check` can index a file it is reporting on.
        self.video_by_id = {v["id"]: v for v in self.data["videos"] if isinstance(v, dict) and "id" in v}
        self.cat_by_id = {c["id"]: c for c in self.data["categories"] if isinstance(c, dict) and "id" in c}
        self.anns_by_video = defaultdict(list)
        for a in self.annotations:
            if isinstance(a, dict) and "video_id" in a:
                self.anns_by_video[a["video_id"]].append(a)

    @property
    def videos(self) -> list[dict]:
        return self.data["videos"]

    @property
    def categories(self) -> list[dict]:
        return self.data["categories"]

    @property
    def annotations(self) -> list[dict]:
        anns = self.data.get("annotations")
        return anns if isinstance(anns, list) else []

    @property
    def has_annotations(self) -> bool:
        return "annotations" in self.data


def load(
    src: str | os.PathLike | dict | YTVIS,
    *,
    require_annotations: bool = False,
    validate_json: bool = True,
    what: str = "YouTube-VIS JSON",
    source: str | None = None,
) -> YTVIS:
    """Load and validate a YouTube-VIS file (or wrap an already loaded dict).

    Raises `WsovvisError` naming the file (``source`` names an already loaded dict) and listing
    problems, or, with ``require_annotations``, saying that the file has no ground truth.
    """
    if isinstance(src, YTVIS):
        ds = src
    else:
        if isinstance(src, dict):
            data, source = src, source or "<memory>"
        else:
            data, source = read_json(src, what), str(src)
        if validate_json:
            problems = [p for p in validate(data) if p.severity == "error"]
            if problems:
                raise WsovvisError(format_problems(source, problems))
        ds = YTVIS(data, source)
    if require_annotations and not ds.has_annotations:
        raise WsovvisError(
            f"{ds.source}: has no 'annotations' (an images-only JSON, like the public val/test splits); "
            "this step needs ground truth"
        )
    return ds


def write(data: dict | YTVIS, path: str | os.PathLike, indent: int | None = None, *, check: bool = True) -> Path:
    """Validate, then write atomically; an invalid dict is never written.

    ``check=False`` is for writers whose output is valid by construction and large enough for
    validation to cost (the converter).
    """
    if isinstance(data, YTVIS):
        data = data.data
    problems = validate(data) if check else []
    if problems:
        raise WsovvisError(format_problems(f"{path} (not written)", problems))
    atomic_write_json(path, data, indent=indent)
    return Path(path)
